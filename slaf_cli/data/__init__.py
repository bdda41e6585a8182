"""Datasets as in-memory tensors, and the batch loader that iterates them.

Builders live in :mod:`slaf_cli.data.builders`, which Hydra configs target.
"""

from slaf_cli.data.bundle import DataBundle, Split
from slaf_cli.data.loader import BatchLoader

__all__ = ["BatchLoader", "DataBundle", "Split"]
