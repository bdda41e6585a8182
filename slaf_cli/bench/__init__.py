"""Side-by-side benchmark of ReLU and SLAF training steps and MNIST data paths."""

from slaf_cli.bench.run import BenchOptions, BenchResults, format_text, run_benchmark

__all__ = ["BenchOptions", "BenchResults", "format_text", "run_benchmark"]
