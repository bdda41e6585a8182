"""Polynomial export: layers and whole network match the module in float64."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slaf_cli.models import MLP
from slaf_cli.nn import ActivationFactory, build_basis
from slaf_cli.nn.slaf import SLAF
from slaf_cli.theory.export import export_network
from slaf_cli.theory.polynomial import evaluate_network, evaluate_polynomials
from slaf_cli.theory.runs import load_run

TOLERANCE = 1e-6


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).abs().max() / exact.abs().max())


def random_slaf(features: int, degree: int, seed: int) -> SLAF:
    slaf = SLAF(features, build_basis("monomial", degree=degree))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        slaf.coefficients.copy_(torch.randn(features, degree, generator=generator))
        slaf.bias.copy_(torch.randn(features, generator=generator))
    return slaf


def test_trained_run_is_trained(polynomial_run: Path) -> None:
    model = load_run(polynomial_run).model
    slaf = model.net[2]

    assert isinstance(slaf, SLAF)
    assert not torch.allclose(slaf.coefficients[:, 0], torch.ones(6))
    if slaf.normalize:
        assert not torch.allclose(slaf.running_var, torch.ones_like(slaf.running_var))


def test_layer_export_matches_module(polynomial_run: Path) -> None:
    model = load_run(polynomial_run).model
    result = export_network(model, network=False)
    grid = torch.linspace(-4.0, 4.0, 301, dtype=torch.float64)

    assert [layer.name for layer in result.layers] == ["net.2", "net.4"]
    for layer in result.layers:
        module = model.get_submodule(layer.name).double()
        expected = module.curve(grid)
        exported = evaluate_polynomials(
            layer.coefficients, grid.unsqueeze(1).expand_as(expected)
        )
        assert layer.coefficients.shape == (6, 4)
        assert layer.max_relative_error < TOLERANCE
        assert relative_error(exported, expected) < TOLERANCE


def test_network_export_matches_model(polynomial_run: Path) -> None:
    model = load_run(polynomial_run).model
    network = export_network(model).network
    x = torch.randn(
        500, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7)
    )
    with torch.no_grad():
        expected = model.double()(x)

    assert network is not None
    assert network.variables == ["x0", "x1", "x2", "x3"]
    assert network.expected_degree == 9
    assert network.total_degrees == [9]
    assert network.num_terms == [math.comb(4 + 9, 9)]
    assert network.max_relative_error < TOLERANCE
    assert relative_error(evaluate_network(network.outputs, x), expected) < TOLERANCE


def test_network_degree_is_product() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 4),
        random_slaf(4, degree=2, seed=1),
        nn.Linear(4, 5),
        random_slaf(5, degree=3, seed=2),
        nn.Linear(5, 2),
    ).eval()
    network = export_network(model).network

    assert network is not None
    assert network.expected_degree == 6
    assert network.total_degrees == [6, 6]
    assert network.max_relative_error < TOLERANCE


def test_batchnorm_blocks_network_export() -> None:
    factory = ActivationFactory("slaf", build_basis("monomial", degree=2))
    model = MLP((3,), 2, factory, widths=(4,), batch_norm=True).eval()
    result = export_network(model)

    assert result.network is None
    assert "BatchNorm1d" in result.network_skipped
    assert len(result.layers) == 1


def test_wide_input_blocks_network_export() -> None:
    factory = ActivationFactory("slaf", build_basis("monomial", degree=3))
    model = MLP((1, 8, 8), 10, factory, widths=(16, 16)).eval()
    result = export_network(model)

    assert result.network is None
    assert "64 inputs" in result.network_skipped
    assert len(result.layers) == 2


def test_chebyshev_layer_exports_on_range() -> None:
    basis = build_basis("chebyshev", degree=5, input_range=(-2.0, 2.0))
    slaf = SLAF(3, basis, init="tanh", init_range=(-2.0, 2.0))
    model = nn.Sequential(nn.Linear(2, 3), slaf, nn.Linear(3, 1)).eval()
    result = export_network(model)
    layer = result.layers[0]
    grid = torch.linspace(-2.0, 2.0, 201, dtype=torch.float64)
    exported = evaluate_polynomials(layer.coefficients, grid.unsqueeze(1).expand(-1, 3))

    assert layer.valid_range == (-2.0, 2.0)
    assert relative_error(exported, slaf.double().curve(grid)) < TOLERANCE
    fit_error = slaf.init_fit_error["max"]
    assert np.allclose(exported[:, 0].numpy(), np.tanh(grid.numpy()), atol=fit_error)
    assert result.network is None
    assert "chebyshev" in result.network_skipped


def test_fourier_layer_is_skipped() -> None:
    slaf = SLAF(3, build_basis("fourier", degree=2))
    result = export_network(nn.Sequential(nn.Linear(2, 3), slaf).eval())

    assert result.layers == []
    assert "not a polynomial" in result.skipped["1"]
