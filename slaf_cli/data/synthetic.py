"""Synthetic datasets drawn from a seeded NumPy generator."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

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
from slaf_cli.errors import ConfigError

logger = logging.getLogger(__name__)


def two_spirals(
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    n_samples: int = 2000,
    turns: float = 1.5,
    noise: float = 0.05,
    seed: int = 0,
    test_fraction: float = 0.2,
    name: str = "two_spirals",
) -> DataBundle:
    """Generate two interleaved spirals: x (N, 2), 2 balanced classes.

    Each point sits at radius ``r = 0.05 + 0.95 t`` and angle ``2 pi turns t`` with
    ``t ~ U(0, 1)``. Class 1 is class 0 rotated by pi. Gaussian noise of std
    ``noise`` is added to both coordinates, which stay roughly in [-1, 1] and are not
    standardised.
    """
    check_common_args(val_fraction, subset, test_subset)
    check_fraction("test_fraction", test_fraction)
    check_positive("n_samples", n_samples)
    check_positive("turns", turns)
    check_positive("noise", noise, allow_zero=True)
    if n_samples < 2:
        raise ConfigError(
            f"dataset.n_samples={n_samples} is too small for two classes; "
            "set it to at least 2"
        )
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % 2
    t = rng.uniform(0.0, 1.0, n_samples)
    radius = 0.05 + 0.95 * t
    angle = 2.0 * math.pi * turns * t + math.pi * labels
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(0.0, noise, points.shape)

    full = Split(
        torch.from_numpy(points).to(torch.float32),
        torch.from_numpy(labels).to(torch.int64),
    )
    pool, test = carve_fraction(full, test_fraction, split_seed + 2, "test_fraction")
    train, val, test = make_splits(
        pool, test, val_fraction, split_seed, subset, test_subset
    )
    return DataBundle(name, "classification", train, val, test, (2,), 2)


def _draw_monomials(
    rng: np.random.Generator, in_features: int, n_terms: int, degree: int
) -> np.ndarray:
    """Draw ``n_terms`` distinct exponent vectors (n_terms, in_features).

    Each total degree is uniform in [1, degree], except that the first term has
    exactly ``degree``, so the polynomial has the requested degree.
    """
    available = math.comb(in_features + degree, degree) - 1  # non-constant monomials
    if n_terms > available:
        raise ConfigError(
            f"dataset.n_terms={n_terms} exceeds the {available} distinct monomials of "
            f"degree <= {degree} in {in_features} variables; lower n_terms or raise "
            "degree or in_features"
        )
    chosen: dict[tuple[int, ...], None] = {}
    while len(chosen) < n_terms:
        total = degree if not chosen else int(rng.integers(1, degree + 1))
        variables = rng.integers(0, in_features, size=total)
        exponents = np.bincount(variables, minlength=in_features)
        chosen[tuple(int(e) for e in exponents)] = None
    # NOTE: rejection sampling slows down when n_terms is close to `available`.
    return np.array(list(chosen), dtype=np.int64)


def _format_polynomial(coefficients: np.ndarray, exponents: np.ndarray) -> str:
    terms = []
    for coefficient, powers in zip(coefficients, exponents, strict=True):
        factors = [
            f"x{i}" if p == 1 else f"x{i}^{p}" for i, p in enumerate(powers) if p
        ]
        terms.append(f"{coefficient:+.3f}*" + "*".join(factors))
    return " ".join(terms)


def polynomial(
    val_fraction: float = 0.1,
    split_seed: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    in_features: int = 4,
    n_terms: int = 6,
    degree: int = 3,
    n_samples: int = 4000,
    noise: float = 0.0,
    seed: int = 0,
    test_fraction: float = 0.2,
    name: str = "polynomial",
) -> DataBundle:
    """Generate regression targets of a sparse polynomial: x (N, F), y (N, 1).

    Inputs are ``U(-1, 1)`` and are not standardised. The target is a sum of
    ``n_terms`` distinct monomials of total degree <= ``degree`` with coefficients
    of magnitude in [0.5, 1.5] and random sign. Gaussian noise with std ``noise``
    times the std of the clean target is added, and the target is then standardised
    with the train split's mean and std.
    """
    check_common_args(val_fraction, subset, test_subset)
    check_fraction("test_fraction", test_fraction)
    for key, value in (("in_features", in_features), ("n_terms", n_terms)):
        check_positive(key, value)
    check_positive("degree", degree)
    check_positive("n_samples", n_samples)
    check_positive("noise", noise, allow_zero=True)

    rng = np.random.default_rng(seed)
    exponents = _draw_monomials(rng, in_features, n_terms, degree)
    signs = rng.choice([-1.0, 1.0], size=n_terms)
    coefficients = signs * rng.uniform(0.5, 1.5, size=n_terms)
    logger.info("polynomial target: %s", _format_polynomial(coefficients, exponents))

    x = rng.uniform(-1.0, 1.0, size=(n_samples, in_features))
    monomials = np.prod(x[:, None, :] ** exponents[None, :, :], axis=2)  # (N, terms)
    y = monomials @ coefficients
    y = y + noise * y.std() * rng.normal(size=n_samples)

    full = Split(
        torch.from_numpy(x).to(torch.float32),
        torch.from_numpy(y).to(torch.float32).unsqueeze(1),
    )
    pool, test = carve_fraction(full, test_fraction, split_seed + 2, "test_fraction")
    splits = make_splits(pool, test, val_fraction, split_seed, subset, test_subset)
    train, val, test = standardise(splits, dims=None, targets=True)
    shape = (in_features,)
    return DataBundle(name, "regression", train, val, test, shape, 1)
