"""Memory-lean autograd functions behind the fast SLAF path.

Both functions save only the input x (plus (P, K)-sized tensors) for backward and
recompute basis terms there, so a SLAF layer keeps about as much memory alive as a
ReLU. Features are on dim 1 of an input of rank >= 2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from slaf_cli.nn.bases.base import Basis


class BasisSum(Function):
    """f(x) = bias + sum_j coefficients[:, j] * g_j(x), per feature on dim 1.

    Inputs: x (N, C, *), coefficients (P, K), bias (P,) with P = C or 1, and the
    basis. Output has x's shape. Backward returns exact gradients for all three
    tensors. Double backward is not supported.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, coefficients: Tensor, bias: Tensor, basis: Basis
    ) -> Tensor:
        ctx.basis = basis
        ctx.save_for_backward(x, coefficients)
        return basis.weighted_sum(x, coefficients, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, coefficients = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        grad_x, grad_coefficients = ctx.basis.weighted_sum_backward(
            x, coefficients, grad_output
        )
        dims = [0, *range(2, x.dim())] if coefficients.shape[0] > 1 else None
        grad_bias = grad_output.sum(dim=dims).reshape(coefficients.shape[0])
        return grad_x, grad_coefficients, grad_bias, None


class TermMoments(Function):
    """Per-feature batch mean and biased variance of every basis term.

    Input x (N, C, *). Returns mean and variance, each (C, K), reduced over all dims
    but 1, with gradients to x as if the (N, C, *, K) term tensor had been built.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, basis: Basis
    ) -> tuple[Tensor, Tensor]:
        mean, variance = basis.term_moments(x)
        ctx.basis = basis
        ctx.save_for_backward(x, mean)
        return mean, variance

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_mean: Tensor | None, grad_variance: Tensor | None
    ) -> tuple[Tensor | None, None]:
        x, mean = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        if grad_mean is None:
            grad_mean = torch.zeros_like(mean)
        if grad_variance is None:
            grad_variance = torch.zeros_like(mean)
        # d mean_j / dx = g_j' / n and d var_j / dx = 2 (g_j - mean_j) g_j' / n, so
        # dL/dx = sum_j g_j' * (offset_j + scale_j * g_j) with per-feature constants.
        scales = grad_variance * (2.0 / count)
        offsets = (grad_mean - 2.0 * grad_variance * mean) / count
        return ctx.basis.term_moments_backward(x, offsets, scales), None
