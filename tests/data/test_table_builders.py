"""Builders of packaged and synthetic datasets: shapes, splits and statistics."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.preprocessing import PolynomialFeatures

from slaf_cli.data import builders
from slaf_cli.errors import ConfigError

SMALL = {
    "digits": {},
    "diabetes": {},
    "mnist1d": {"n_samples": 500},
    "two_spirals": {"n_samples": 400},
    "polynomial": {"n_samples": 400},
}
EXPECTED = {
    # name: (task, input_shape, num_outputs)
    "digits": ("classification", (1, 8, 8), 10),
    "diabetes": ("regression", (10,), 1),
    "mnist1d": ("classification", (1, 40), 10),
    "two_spirals": ("classification", (2,), 2),
    "polynomial": ("regression", (4,), 1),
}


def build(name: str, **overrides):
    return getattr(builders, name)(**(SMALL[name] | overrides))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_builder_shapes_and_dtypes(name):
    task, input_shape, num_outputs = EXPECTED[name]
    bundle = build(name)
    assert bundle.name == name
    assert bundle.task == task
    assert bundle.input_shape == input_shape
    assert bundle.num_outputs == num_outputs
    assert bundle.augment is None
    for split in (bundle.train, bundle.val, bundle.test):
        assert split.x.dtype == torch.float32
        assert tuple(split.x.shape[1:]) == input_shape
        if task == "classification":
            assert split.y.dtype == torch.int64
            assert split.y.shape == (len(split),)
        else:
            assert split.y.dtype == torch.float32
            assert split.y.shape == (len(split), 1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_split(name):
    first, second = build(name, split_seed=5), build(name, split_seed=5)
    assert torch.equal(first.train.x, second.train.x)
    assert torch.equal(first.val.y, second.val.y)
    assert torch.equal(first.test.x, second.test.x)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_other_seed_other_split(name):
    first, second = build(name, split_seed=0), build(name, split_seed=1)
    assert not torch.equal(first.train.y, second.train.y)
    assert not torch.equal(first.val.x, second.val.x)


def test_val_fraction_sets_sizes():
    bundle = build("two_spirals", val_fraction=0.25)
    assert len(bundle.test) == 80  # test_fraction 0.2 of 400
    assert len(bundle.val) == 80  # 0.25 of the remaining 320
    assert len(bundle.train) == 240


def test_zero_val_fraction_empty_val():
    bundle = build("digits", val_fraction=0.0)
    assert len(bundle.val) == 0
    assert bundle.val.x.shape[1:] == (1, 8, 8)


def test_splits_share_no_samples():
    bundle = build("two_spirals")
    rows = [
        tuple(x.tolist()) for s in (bundle.train, bundle.val, bundle.test) for x in s.x
    ]
    assert len(set(rows)) == len(rows)


def test_subsets_limit_pool_and_test():
    bundle = build("digits", val_fraction=0.1, subset=100, test_subset=50)
    assert len(bundle.train) == 90
    assert len(bundle.val) == 10
    assert len(bundle.test) == 50


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_inputs_standardised_with_train(name):
    bundle = build(name)
    assert abs(bundle.train.x.mean().item()) < 1e-5
    assert abs(bundle.train.x.std(correction=0).item() - 1.0) < 1e-4
    # Statistics of train only leave the held-out splits off exactly 0.
    assert abs(bundle.test.x.mean().item()) > 1e-4
    assert abs(bundle.val.x.mean().item()) > 1e-4


def test_diabetes_standardises_features_and_target():
    bundle = build("diabetes")
    assert torch.allclose(bundle.train.x.mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(
        bundle.train.x.std(0, correction=0), torch.ones(10), atol=1e-4
    )
    assert abs(bundle.train.y.mean().item()) < 1e-5
    assert abs(bundle.train.y.std(correction=0).item() - 1.0) < 1e-4
    assert abs(bundle.test.y.mean().item()) > 1e-4


def test_polynomial_target_standardised():
    bundle = build("polynomial", noise=0.1)
    assert abs(bundle.train.y.mean().item()) < 1e-5
    assert abs(bundle.train.y.std(correction=0).item() - 1.0) < 1e-4
    assert bundle.train.x.abs().max() <= 1.0  # inputs stay U(-1, 1)


def residual_of_fit(x: torch.Tensor, y: torch.Tensor, degree: int) -> float:
    """Return the RMS residual of a least-squares fit by all monomials <= degree."""
    features = PolynomialFeatures(degree).fit_transform(x.double().numpy())
    target = y.double().numpy()
    coefficients, *_ = np.linalg.lstsq(features, target, rcond=None)
    return float(np.sqrt(np.mean((features @ coefficients - target) ** 2)))


def test_polynomial_target_has_degree():
    bundle = build("polynomial", degree=3, noise=0.0)
    x, y = bundle.train.x, bundle.train.y
    assert residual_of_fit(x, y, degree=3) < 1e-4
    assert residual_of_fit(x, y, degree=2) > 1e-2  # one term has full degree 3


def test_polynomial_seed_changes_target():
    first = build("polynomial", seed=0)
    second = build("polynomial", seed=1)
    assert not torch.equal(first.train.y, second.train.y)


def test_spirals_classes_balanced():
    bundle = build("two_spirals", val_fraction=0.0, test_fraction=0.5)
    labels = torch.cat([bundle.train.y, bundle.test.y])
    assert torch.bincount(labels).tolist() == [200, 200]


def test_mnist1d_restores_global_rng():
    random.seed(123)
    np.random.seed(123)
    expected_python, expected_numpy = random.random(), np.random.rand()
    random.seed(123)
    np.random.seed(123)
    build("mnist1d")
    assert random.random() == expected_python
    assert np.random.rand() == expected_numpy


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_bad_val_fraction_raises(value):
    with pytest.raises(ConfigError, match=f"dataset.val_fraction={value}"):
        build("digits", val_fraction=value)


@pytest.mark.parametrize("key", ["subset", "test_subset"])
def test_bad_subset_raises(key):
    with pytest.raises(ConfigError, match=f"dataset.{key}=0"):
        build("digits", **{key: 0})


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("two_spirals", "n_samples", 0),
        ("two_spirals", "noise", -1.0),
        ("two_spirals", "turns", 0.0),
        ("polynomial", "degree", 0),
        ("polynomial", "in_features", 0),
        ("mnist1d", "test_fraction", 1.0),
    ],
)
def test_bad_generator_arg_raises(name, key, value):
    with pytest.raises(ConfigError, match=f"dataset.{key}={value}"):
        build(name, **{key: value})


def test_too_many_terms_raises():
    # Degree <= 2 in 2 variables allows 5 monomials: x0, x1, x0^2, x0*x1, x1^2.
    with pytest.raises(ConfigError, match="exceeds the 5 distinct monomials"):
        build("polynomial", in_features=2, degree=2, n_terms=6)


def test_tiny_pool_rejects_val_fraction():
    with pytest.raises(ConfigError, match="leaves no training samples"):
        build("digits", subset=1, val_fraction=0.5)
