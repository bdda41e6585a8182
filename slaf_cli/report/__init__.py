"""Reporting: TensorBoard, figures, run summaries and sweep tables. Never changes training state."""
