"""slaf_cli: experiments with self-learnable activation functions (SLAF)."""

__version__ = "0.1.0"
