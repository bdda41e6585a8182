"""Basis values and slopes against independent float64 references, and config errors."""

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev, legendre
from scipy.interpolate import BSpline

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import BASES, build_basis

LO, HI = -2.0, 4.0  # an asymmetric range, so the affine map is not a plain scaling
ALL_BASES = ["bspline", "chebyshev", "fourier", "legendre", "monomial", "rbf"]


def mapped(z: np.ndarray, policy: str = "clamp") -> tuple[np.ndarray, np.ndarray]:
    """Return t in [-1, 1] and dt/dz for the affine image of (LO, HI)."""
    half = (HI - LO) / 2
    u = (z - (LO + HI) / 2) / half
    if policy == "none":
        return u, np.full_like(u, 1 / half)
    if policy == "clamp":
        inside = (u >= -1) & (u <= 1)
        return np.clip(u, -1, 1), inside / half
    return np.tanh(u), (1 - np.tanh(u) ** 2) / half


def reference_terms(name: str, degree: int, z: np.ndarray, policy: str = "clamp"):
    """Return (values, slopes) of shape (len(z), K) computed with numpy/scipy."""
    if name == "monomial":
        powers = np.arange(1, degree + 1)
        return z[:, None] ** powers, powers * z[:, None] ** (powers - 1)
    t, dt = mapped(z, "none" if name in ("fourier", "rbf") else policy)
    columns = []
    if name in ("chebyshev", "legendre"):
        evaluate, differentiate = {
            "chebyshev": (chebyshev.chebval, chebyshev.chebder),
            "legendre": (legendre.legval, legendre.legder),
        }[name]
        for j in range(1, degree + 1):
            unit = np.eye(degree + 1)[j]
            columns.append((evaluate(t, unit), evaluate(t, differentiate(unit))))
    elif name == "fourier":
        for k in range(1, degree + 1):
            angle = k * math.pi / 2
            columns.append((np.sin(angle * t), angle * np.cos(angle * t)))
            columns.append((np.cos(angle * t), -angle * np.sin(angle * t)))
    elif name == "rbf":
        width = 2.0 * 2.0 / (degree - 1)
        for center in np.linspace(-1, 1, degree):
            value = np.exp(-(((t - center) / width) ** 2))
            columns.append((value, -2 * (t - center) / width**2 * value))
    elif name == "bspline":
        step = 2.0 / 5
        knots = -1 + step * np.arange(-degree, 5 + degree + 1)
        for i in range(5 + degree):
            coefficients = np.eye(5 + degree)[i]
            spline = BSpline(knots, coefficients, degree, extrapolate=False)
            columns.append((spline(t), spline.derivative()(t)))
    values = np.stack([c[0] for c in columns], 1)
    slopes = np.stack([c[1] for c in columns], 1) * dt[:, None]
    return values, slopes


BOUNDED_BASES = ["bspline", "chebyshev", "legendre"]
POLICY_CASES = [(name, "clamp") for name in ALL_BASES] + [
    (name, "squash") for name in BOUNDED_BASES
]


@pytest.mark.parametrize(("name", "policy"), POLICY_CASES)
def test_basis_matches_float64_reference(name, policy):
    degree = 3 if name == "bspline" else 6
    kwargs = {"degree": degree, "input_range": (LO, HI)}
    if name in BOUNDED_BASES:
        kwargs["out_of_range"] = policy
    basis = build_basis(name, **kwargs)
    # Interior points, both edges and points outside the range.
    z = np.concatenate(
        [np.linspace(LO + 0.01, HI - 0.01, 101), [LO, HI, LO - 3, HI + 3]]
    )
    if name == "bspline":
        z = np.linspace(LO + 0.001, HI - 0.001, 101)  # scipy is 0 outside, not clamped
    values, slopes = reference_terms(name, degree, z, policy)
    tensor = torch.tensor(z, dtype=torch.float64)

    assert basis.num_terms == values.shape[1]
    np.testing.assert_allclose(basis(tensor).numpy(), values, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        basis.derivative(tensor).numpy(), slopes, rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("name", ALL_BASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_basis_finite_at_edges(name, dtype):
    basis = build_basis(name, degree=5, input_range=(-1.0, 1.0))
    z = torch.tensor([-1.0, 1.0, -1.0 - 1e-7, 1.0 + 1e-7, -7.0, 7.0, 0.0], dtype=dtype)
    z.requires_grad_(True)
    values = basis(z)
    (grad,) = torch.autograd.grad(values.sum(), z)

    assert torch.isfinite(values).all()
    assert torch.isfinite(grad).all()
    assert torch.isfinite(basis.derivative(z.detach())).all()


@pytest.mark.parametrize("name", BOUNDED_BASES)
def test_clamp_slope_matches_autograd_at_edges(name):
    basis = build_basis(name, degree=3, input_range=(-1.0, 1.0))
    z = torch.tensor([-1.0, 1.0, -2.0, 2.0, 0.3], dtype=torch.float64)
    z.requires_grad_(True)
    values = basis(z)
    slopes = basis.derivative(z.detach())
    for j in range(basis.num_terms):
        (autograd_slope,) = torch.autograd.grad(
            values[:, j].sum(), z, retain_graph=True
        )
        assert torch.allclose(autograd_slope, slopes[:, j], atol=1e-12), f"term {j}"


def test_bspline_partition_of_unity():
    basis = build_basis("bspline", degree=3, input_range=(-3.0, 3.0), grid_size=7)
    z = torch.linspace(-3.0, 3.0, 301, dtype=torch.float64)
    assert torch.allclose(basis(z).sum(-1), torch.ones_like(z), atol=1e-12)


@pytest.mark.parametrize("name", ["monomial", "chebyshev", "legendre", "bspline"])
def test_identity_coefficients_exact_inside_range(name):
    basis = build_basis(name, degree=3, input_range=(-2.0, 5.0))
    bias, coefficients = basis.identity_coefficients()
    z = torch.linspace(-2.0, 5.0, 201, dtype=torch.float64)
    assert coefficients.shape == (basis.num_terms,)
    assert torch.allclose(basis(z) @ coefficients + bias, z, atol=1e-12)


def test_monomial_identity_coefficients_are_unit():
    bias, coefficients = build_basis("monomial", degree=4).identity_coefficients()
    assert bias == 0.0
    assert coefficients.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_registry_lists_all_bases():
    assert sorted(BASES) == ALL_BASES


def test_unknown_basis_name_rejected():
    with pytest.raises(ConfigError, match=r"'cubic' is not known.*chebyshev"):
        build_basis("cubic", degree=3)


@pytest.mark.parametrize("degree", [0, -2, 2.5, True])
def test_invalid_degree_rejected(degree):
    with pytest.raises(ConfigError, match=r"set basis\.degree to an integer"):
        build_basis("chebyshev", degree=degree)


@pytest.mark.parametrize("name", ALL_BASES)
def test_degree_above_max_rejected(name):
    limit = BASES[name].max_degree
    with pytest.raises(ConfigError, match=rf"degree {limit + 1} is too high.*{limit}"):
        build_basis(name, degree=limit + 1)


@pytest.mark.parametrize("bad_range", [(1.0, 1.0), (2.0, -2.0), (0.0, float("inf"))])
def test_invalid_input_range_rejected(bad_range):
    with pytest.raises(ConfigError, match=r"input_range.*min < max"):
        build_basis("legendre", degree=3, input_range=bad_range)


def test_unknown_basis_option_rejected():
    with pytest.raises(ConfigError, match=r"no option grid_size.*out_of_range"):
        build_basis("chebyshev", degree=3, grid_size=4)


def test_invalid_out_of_range_rejected():
    with pytest.raises(ConfigError, match=r"'wrap' is invalid.*clamp, squash"):
        build_basis("chebyshev", degree=3, out_of_range="wrap")
