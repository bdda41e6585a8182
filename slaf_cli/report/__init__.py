"""Reporting: TensorBoard, figures, summaries, sweep tables; never changes training."""
