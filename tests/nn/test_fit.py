"""Least-squares fits of SLAF coefficients to target activations."""

import pytest
import torch

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.fit import TARGETS, fit_error, fit_target

NONLINEAR_TARGETS = [name for name in TARGETS if name != "identity"]
# Degrees per basis whose max fit error must shrink step by step. rbf is left out
# because its error levels off at a floor set by the bump width, and bspline gains
# accuracy from grid_size (tested below), not from its polynomial degree.
DEGREE_LADDERS = {
    "monomial": [2, 5, 10],
    "chebyshev": [2, 6, 14],
    "legendre": [2, 6, 14],
    "fourier": [1, 3, 8],
}


@pytest.mark.parametrize("basis_name", sorted(DEGREE_LADDERS))
@pytest.mark.parametrize("target", NONLINEAR_TARGETS)
def test_fit_error_shrinks_with_degree(basis_name, target):
    errors = []
    for degree in DEGREE_LADDERS[basis_name]:
        basis = build_basis(basis_name, degree=degree, input_range=(-3.0, 3.0))
        errors.append(fit_target(basis, target, (-3.0, 3.0), num_points=801).max_error)

    assert errors[1] < errors[0], errors
    assert errors[2] < errors[1], errors


@pytest.mark.parametrize("target", NONLINEAR_TARGETS)
def test_bspline_error_shrinks_with_grid(target):
    errors = []
    for grid_size in (2, 4, 8):
        basis = build_basis("bspline", degree=3, grid_size=grid_size)
        errors.append(fit_target(basis, target, (-3.0, 3.0), num_points=801).max_error)

    assert errors[1] < errors[0], errors
    assert errors[2] < errors[1], errors


@pytest.mark.parametrize("target", NONLINEAR_TARGETS)
def test_fit_reproduces_each_target(target):
    basis = build_basis("chebyshev", degree=16, input_range=(-3.0, 3.0))
    result = fit_target(basis, target, (-3.0, 3.0))
    grid = torch.linspace(-3.0, 3.0, 301, dtype=torch.float64)
    fitted = basis(grid) @ result.coefficients + result.bias
    # Kinked targets (relu, leaky_relu) converge slowly, smooth ones fast.
    tolerance = 0.08 if target in ("relu", "leaky_relu", "elu") else 1e-3

    assert result.max_error < tolerance
    assert torch.allclose(fitted, TARGETS[target](grid), atol=tolerance)
    assert result.rms_error <= result.max_error


def test_fit_identity_is_exact_for_polynomials():
    basis = build_basis("monomial", degree=6)
    result = fit_target(basis, "identity", (-3.0, 3.0))
    assert result.max_error < 1e-9
    assert abs(result.coefficients[0].item() - 1.0) < 1e-9


def test_fit_error_reports_max_and_rms():
    basis = build_basis("monomial", degree=1)
    coefficients = torch.tensor([1.0], dtype=torch.float64)
    max_error, rms_error = fit_error(basis, 0.5, coefficients, "identity", (-1, 1))
    assert max_error == pytest.approx(0.5)
    assert rms_error == pytest.approx(0.5)


def test_fit_result_dtype_and_shape():
    basis = build_basis("legendre", degree=5)
    result = fit_target(basis, "gelu")
    assert result.coefficients.dtype == torch.float64
    assert result.coefficients.shape == (5,)


def test_unknown_target_lists_valid_ones():
    basis = build_basis("monomial", degree=3)
    with pytest.raises(ConfigError, match=r"'swish' is not known.*relu.*gelu"):
        fit_target(basis, "swish")


def test_fit_rejects_empty_range():
    basis = build_basis("monomial", degree=3)
    with pytest.raises(ConfigError, match=r"init_range"):
        fit_target(basis, "relu", (2.0, 2.0))
