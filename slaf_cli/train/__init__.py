"""Training: routines that keep SLAF trainable, the task definitions and the loop."""
