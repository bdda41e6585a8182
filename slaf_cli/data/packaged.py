"""Small datasets that installed packages ship or generate offline.

scikit-learn ships ``load_digits`` and ``load_diabetes``, and the ``mnist1d``
package generates MNIST-1D from its templates. None of them needs a download.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
from mnist1d import data as mnist1d_data
from sklearn import datasets as sklearn_datasets

from slaf_cli.data.bundle import (
    DataBundle,
    Split,
    carve_fraction,
    check_common_args,
    check_fraction,
    check_positive,
    make_splits,
    standardise,
)

logger = logging.getLogger(__name__)


def digits(
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    test_fraction: float = 0.2,
    name: str = "digits",
) -> DataBundle:
    """Build scikit-learn's 1,797 8x8 digits: x (N, 1, 8, 8), 10 classes.

    Pixels (0-16) are scaled to [0, 1] and then standardised with the mean and std
    of the train split. ``test_fraction`` of the samples form the test split.
    """
    check_common_args(val_fraction, subset, test_subset)
    check_fraction("test_fraction", test_fraction)
    data = sklearn_datasets.load_digits()
    x = torch.from_numpy(data.images).to(torch.float32).unsqueeze(1) / 16.0
    pool, test = carve_fraction(
        Split(x, torch.from_numpy(data.target).to(torch.int64)),
        test_fraction,
        split_seed + 2,
        "test_fraction",
    )
    splits = make_splits(pool, test, val_fraction, split_seed, subset, test_subset)
    train, val, test = standardise(splits, dims=(0, 2, 3))
    return DataBundle(name, "classification", train, val, test, (1, 8, 8), 10)


def diabetes(
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    test_fraction: float = 0.2,
    name: str = "diabetes",
) -> DataBundle:
    """Build scikit-learn's diabetes regression: x (N, 10), y (N, 1), 442 samples.

    Features and the target are standardised with the train split's mean and std.
    """
    check_common_args(val_fraction, subset, test_subset)
    check_fraction("test_fraction", test_fraction)
    x, y = sklearn_datasets.load_diabetes(return_X_y=True, scaled=False)
    pool, test = carve_fraction(
        Split(
            torch.from_numpy(x).to(torch.float32),
            torch.from_numpy(y).to(torch.float32).unsqueeze(1),
        ),
        test_fraction,
        split_seed + 2,
        "test_fraction",
    )
    splits = make_splits(pool, test, val_fraction, split_seed, subset, test_subset)
    train, val, test = standardise(splits, dims=(0,), targets=True)
    return DataBundle(name, "regression", train, val, test, (10,), 1)


def mnist1d(
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    n_samples: int = 5000,
    test_fraction: float = 0.2,
    seed: int = 42,
    name: str = "mnist1d",
) -> DataBundle:
    """Generate MNIST-1D with the ``mnist1d`` package: x (N, 1, 40), 10 classes.

    With the defaults (5,000 samples, seed 42, 20% test) the generator's settings
    match ``mnist1d.data.get_dataset_args()``, giving 4,000 train+val and 1,000 test
    sequences. The package's own global scaling is redone with train statistics.
    """
    check_common_args(val_fraction, subset, test_subset)
    check_fraction("test_fraction", test_fraction)
    check_positive("n_samples", n_samples)
    args = mnist1d_data.get_dataset_args()
    args.num_samples = n_samples
    args.train_split = 1.0 - test_fraction
    args.seed = seed
    # make_dataset reseeds the global `random` and NumPy generators, so restore them.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = mnist1d_data.make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        x_tensor = torch.from_numpy(x).to(torch.float32).unsqueeze(1)
        return Split(x_tensor, torch.from_numpy(y).to(torch.int64))

    pool = to_split(data["x"], data["y"])
    test = to_split(data["x_test"], data["y_test"])
    splits = make_splits(pool, test, val_fraction, split_seed, subset, test_subset)
    train, val, test = standardise(splits, dims=(0, 1, 2))
    length = train.x.shape[-1]
    return DataBundle(name, "classification", train, val, test, (1, length), 10)
