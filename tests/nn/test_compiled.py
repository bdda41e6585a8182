"""The torch.compile-d SLAF kernels: same values and gradients, and the fallback."""

from __future__ import annotations

import logging

import pytest
import torch

import slaf_cli.nn.functional as functional
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.factory import ActivationFactory, slaf_modules
from slaf_cli.nn.functional import (
    CompiledKernels,
    Kernels,
    compiled_kernels,
    reset_compiled_kernels,
)
from slaf_cli.nn.slaf import SLAF
from slaf_cli.runner import build, build_activation, build_model
from tests.test_models import compose_train


def slaf_pair(normalize: bool) -> tuple[SLAF, SLAF]:
    """Return an eager and a compiled SLAF with equal random coefficients."""
    torch.manual_seed(0)
    eager = SLAF(
        4, build_basis("monomial", degree=4), normalize=normalize, native=False
    )
    with torch.no_grad():
        eager.coefficients.normal_(0.0, 0.5)
        eager.bias.normal_(0.0, 0.5)
    compiled = SLAF(
        4, build_basis("monomial", degree=4), normalize=normalize, compile=True
    )
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def forward_backward(layer: SLAF, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = layer(x)
    grads = torch.autograd.grad(y.square().mean(), [x, layer.coefficients, layer.bias])
    return [y.detach(), *grads]


@pytest.mark.slow
def test_compiled_kernels_match_eager():
    """Training and eval steps of the normalised routine use all four kernels."""
    eager, compiled = slaf_pair(normalize=True)
    x = torch.randn(8, 4, 6, 6)
    names = ["output", "grad x", "grad coefficients", "grad bias"]
    for mode in ("train", "eval"):
        eager.train(mode == "train")
        compiled.train(mode == "train")
        expected = forward_backward(eager, x)
        actual = forward_backward(compiled, x)
        for name, want, got in zip(names, expected, actual, strict=True):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), f"{mode}: {name}"
    assert compiled.kernels.failed is False
    assert torch.allclose(compiled.running_var, eager.running_var)


def test_failed_compile_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(function, **options):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nsecond line")

        return run

    monkeypatch.setattr(functional.torch, "compile", broken_compile)
    kernels = CompiledKernels(build_basis("monomial", degree=3))
    eager = Kernels(kernels.basis)
    z, coefficients, bias = torch.randn(5, 3), torch.randn(3, 3), torch.randn(3)
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.functional"):
        first = kernels.weighted_sum(z, coefficients, bias)
        second = kernels.term_moments(z)
    assert kernels.failed is True
    assert torch.equal(first, eager.weighted_sum(z, coefficients, bias))
    assert torch.equal(second[1], eager.term_moments(z)[1])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "(RuntimeError: no C++ compiler found)" in warnings[0]
    assert "activation.compile=false" in warnings[0]


def test_equal_bases_share_compiled_kernels():
    first = compiled_kernels(build_basis("chebyshev", degree=3))
    assert compiled_kernels(build_basis("chebyshev", degree=3)) is first
    assert compiled_kernels(build_basis("chebyshev", degree=4)) is not first
    other_range = build_basis("chebyshev", degree=3, input_range=(-2.0, 2.0))
    assert compiled_kernels(other_range) is not first


def test_compile_option_reaches_every_slaf():
    cfg = compose_train(["activation=slaf", "activation.compile=true"])
    data = build(cfg.dataset, _convert_="all")
    model = build_model(cfg, data, build_activation(cfg))
    layers = slaf_modules(model)
    assert len(layers) == 2
    for _, layer in layers:
        assert isinstance(layer.kernels, CompiledKernels)
    eager = compose_train(["activation=slaf", "activation.native=false"])
    model = build_model(eager, data, build_activation(eager))
    for _, layer in slaf_modules(model):
        assert type(layer.kernels) is Kernels


def test_reset_forgets_compiled_kernels():
    first = compiled_kernels(build_basis("legendre", degree=3))
    reset_compiled_kernels()
    assert compiled_kernels(build_basis("legendre", degree=3)) is not first


@pytest.mark.slow
def test_recompile_limit_warns_and_falls_back(caplog, monkeypatch):
    """Past the recompile limit, kernels warn and run eagerly, not silently."""
    reset_compiled_kernels()
    monkeypatch.setattr(functional, "RECOMPILE_LIMIT", 1)
    z = torch.randn(6, 3)
    coefficients, bias = torch.randn(3, 2), torch.randn(3)
    first = compiled_kernels(build_basis("monomial", degree=2))
    first.weighted_sum(z, coefficients, bias)
    second = compiled_kernels(build_basis("monomial", degree=3))
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.functional"):
        output = second.weighted_sum(z, torch.randn(3, 3), bias)
    assert first.failed is False
    assert second.failed is True
    assert output.shape == z.shape
    assert "torch.compile failed" in caplog.text
    reset_compiled_kernels()


def test_compile_ignored_for_bspline_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.factory"):
        ActivationFactory("slaf", build_basis("bspline", degree=3), compile=True)
    assert "activation.compile=true has no effect" in caplog.text
    assert "bspline basis" in caplog.text
