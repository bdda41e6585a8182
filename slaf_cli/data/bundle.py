"""Dataset containers and the split, subset and standardisation helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from slaf_cli.data.augment import CROP_PADDING
from slaf_cli.errors import ConfigError

logger = logging.getLogger(__name__)

TASKS = ("classification", "regression")


@dataclass
class Split:
    """Inputs and targets of one split.

    ``x`` is float32 of shape ``(N, *input_shape)``. ``y`` is int64 of shape ``(N,)``
    for classification and float32 of shape ``(N, T)`` for regression. ``N`` may be
    0, for example for the validation split when ``val_fraction`` is 0.
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"Split has {self.x.shape[0]} inputs but {self.y.shape[0]} targets"
            )

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class DataBundle:
    """A dataset ready for training: three splits plus the facts a model needs."""

    name: str
    task: str  # "classification" | "regression"
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]  # (C, H, W) images, (C, L) sequences, (F,) tables
    num_outputs: int  # classes, or regression targets
    augment: str | None = None  # batch augmentation for training, e.g. "crop_flip"
    crop_padding: int = CROP_PADDING  # pixels of padding on each side before a crop

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")


def check_common_args(
    val_fraction: float, subset: int | None, test_subset: int | None
) -> None:
    """Raise ConfigError for an invalid val_fraction, subset or test_subset."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(
            f"dataset.val_fraction={val_fraction} is outside [0, 1); "
            "set it to a fraction such as 0.1, or 0 for no validation split"
        )
    for key, value in (("subset", subset), ("test_subset", test_subset)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ConfigError(
                f"dataset.{key}={value} is invalid; "
                "set it to a positive number of samples, or null to keep all"
            )


def check_fraction(key: str, value: float) -> None:
    """Raise ConfigError unless ``0 < value < 1``."""
    if not 0.0 < value < 1.0:
        raise ConfigError(
            f"dataset.{key}={value} is outside (0, 1); set it to a fraction such as 0.2"
        )


def check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    """Raise ConfigError unless ``value > 0`` (or ``>= 0`` with ``allow_zero``)."""
    if value > 0 or (allow_zero and value == 0):
        return
    bound = "non-negative" if allow_zero else "positive"
    raise ConfigError(f"dataset.{key}={value} is invalid; set it to a {bound} number")


def seeded_permutation(n: int, seed: int) -> Tensor:
    """Return a permutation of ``range(n)`` that depends only on ``(n, seed)``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)


def shuffle_and_take(split: Split, seed: int, limit: int | None) -> Split:
    """Shuffle ``split`` with ``seed`` and keep the first ``limit`` samples.

    ``limit=None`` keeps everything and returns ``split`` unshuffled. A limit larger
    than the split keeps every sample, in shuffled order.
    """
    if limit is None:
        return split
    if limit > len(split):
        logger.info(
            "subset=%d exceeds the %d samples, so all are kept", limit, len(split)
        )
    index = seeded_permutation(len(split), seed)[:limit]
    return Split(split.x[index], split.y[index])


def carve_fraction(
    pool: Split, fraction: float, seed: int, key: str
) -> tuple[Split, Split]:
    """Split ``pool`` into (rest, carved) with a permutation seeded by ``seed``.

    The carved split gets ``round(fraction * N)`` samples, at least one when
    ``fraction > 0``. ``key`` names the setting in the ConfigError raised when the
    rest would be empty.
    """
    n = len(pool)
    n_carved = round(fraction * n)
    if fraction > 0:
        n_carved = max(n_carved, 1)
    if n - n_carved < 1:
        raise ConfigError(
            f"dataset.{key}={fraction} leaves no training samples out of {n}; "
            f"lower {key} or raise subset/n_samples"
        )
    index = seeded_permutation(n, seed)
    carved_index, rest_index = index[:n_carved], index[n_carved:]
    rest = Split(pool.x[rest_index], pool.y[rest_index])
    carved = Split(pool.x[carved_index], pool.y[carved_index])
    return rest, carved


def make_splits(
    train_pool: Split,
    test: Split,
    val_fraction: float,
    split_seed: int,
    subset: int | None,
    test_subset: int | None,
) -> tuple[Split, Split, Split]:
    """Apply ``subset`` to the training pool, carve validation, apply ``test_subset``.

    ``subset`` limits the pool before the validation split is carved from it, so
    train and val together hold at most ``subset`` samples. Every step is a function
    of ``split_seed`` only. Returns (train, val, test).
    """
    train_pool = shuffle_and_take(train_pool, split_seed, subset)
    train, val = carve_fraction(train_pool, val_fraction, split_seed, "val_fraction")
    test = shuffle_and_take(test, split_seed + 1, test_subset)
    return train, val, test


def channel_stats(x: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Return mean and std of ``x`` reduced over ``dims``, kept for broadcasting.

    Statistics are accumulated in float64. A std below 1e-8 becomes 1, so constant
    features map to 0 instead of inf.
    """
    x64 = x.to(torch.float64)
    mean = x64.mean(dim=dims, keepdim=True)
    std = x64.std(dim=dims, keepdim=True, correction=0)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.to(torch.float32), std.to(torch.float32)


def standardise(
    splits: tuple[Split, Split, Split],
    dims: tuple[int, ...] | None,
    targets: bool = False,
) -> tuple[Split, Split, Split]:
    """Standardise inputs and/or targets with statistics of the first split.

    ``splits`` is (train, val, test). Input means and stds are reduced over ``dims``
    (``None`` leaves inputs unchanged). ``targets=True`` also standardises ``y`` per
    column.
    """
    train = splits[0]
    if dims is not None:
        x_mean, x_std = channel_stats(train.x, dims)
    if targets:
        y_mean, y_std = channel_stats(train.y, (0,))
    result = []
    for split in splits:
        x = (split.x - x_mean) / x_std if dims is not None else split.x
        y = (split.y - y_mean) / y_std if targets else split.y
        result.append(Split(x, y))
    return result[0], result[1], result[2]
