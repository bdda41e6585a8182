"""Dataset builders that Hydra instantiates from ``cfg.dataset``.

Every builder returns a :class:`~slaf_cli.data.bundle.DataBundle` and accepts:

- ``val_fraction``: share of the training pool held out for validation, in [0, 1).
- ``split_seed``: seed of every shuffle that forms the splits. The same seed gives
  the same splits; it is independent of the training seed.
- ``subset``: keep this many samples of the shuffled training pool before the
  validation split is carved from it (None keeps all), for quick runs.
- ``test_subset``: keep this many samples of the shuffled test split.
- ``augment`` and ``crop_padding`` (image datasets): batch augmentation of the
  training split, e.g. ``crop`` from images padded by ``crop_padding`` pixels.
- ``name``: label stored as ``DataBundle.name``; the dataset config passes its own.

Invalid values raise :class:`slaf_cli.errors.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path

from slaf_cli.data.augment import CROP_PADDING
from slaf_cli.data.bundle import DataBundle
from slaf_cli.data.packaged import diabetes, digits, mnist1d
from slaf_cli.data.synthetic import polynomial, two_spirals
from slaf_cli.data.vision import build_image_dataset

__all__ = [
    "cifar10",
    "cifar100",
    "diabetes",
    "digits",
    "fashion_mnist",
    "mnist",
    "mnist1d",
    "polynomial",
    "svhn",
    "two_spirals",
]


def mnist(
    root: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    augment: str | None = None,
    crop_padding: int = CROP_PADDING,
    name: str = "mnist",
) -> DataBundle:
    """Build MNIST from ``<root>/MNIST/raw``: x (N, 1, 28, 28), 10 classes."""
    return build_image_dataset(
        "mnist",
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        subset=subset,
        test_subset=test_subset,
        augment=augment,
        crop_padding=crop_padding,
        name=name,
    )


def fashion_mnist(
    root: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    augment: str | None = None,
    crop_padding: int = CROP_PADDING,
    name: str = "fashion_mnist",
) -> DataBundle:
    """Build Fashion-MNIST from ``<root>/FashionMNIST/raw``: x (N, 1, 28, 28)."""
    return build_image_dataset(
        "fashion_mnist",
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        subset=subset,
        test_subset=test_subset,
        augment=augment,
        crop_padding=crop_padding,
        name=name,
    )


def cifar10(
    root: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    augment: str | None = "crop_flip",
    crop_padding: int = CROP_PADDING,
    name: str = "cifar10",
) -> DataBundle:
    """Build CIFAR-10 from ``<root>/cifar-10-batches-py``: x (N, 3, 32, 32)."""
    return build_image_dataset(
        "cifar10",
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        subset=subset,
        test_subset=test_subset,
        augment=augment,
        crop_padding=crop_padding,
        name=name,
    )


def cifar100(
    root: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    augment: str | None = "crop_flip",
    crop_padding: int = CROP_PADDING,
    name: str = "cifar100",
) -> DataBundle:
    """Build CIFAR-100 (fine labels) from ``<root>/cifar-100-python``."""
    return build_image_dataset(
        "cifar100",
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        subset=subset,
        test_subset=test_subset,
        augment=augment,
        crop_padding=crop_padding,
        name=name,
    )


def svhn(
    root: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    augment: str | None = "crop",
    crop_padding: int = CROP_PADDING,
    name: str = "svhn",
) -> DataBundle:
    """Build SVHN from ``<root>/train_32x32.mat`` and ``test_32x32.mat``.

    The default augmentation is ``crop`` without flips, because mirrored digits are
    not digits. The ``extra`` split is not used.
    """
    return build_image_dataset(
        "svhn",
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        subset=subset,
        test_subset=test_subset,
        augment=augment,
        crop_padding=crop_padding,
        name=name,
    )
