"""Least-squares fits of SLAF coefficients to standard activation functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import Basis, validate_range

TARGETS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda z: z,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01, the torch default
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,  # exact erf form
    "silu": F.silu,
    "softplus": F.softplus,
    "elu": F.elu,
}


@dataclass(frozen=True)
class FitResult:
    """Fitted f(z) = bias + sum_j coefficients[j] g_j(z) and its error on the grid.

    ``coefficients`` has shape (K,) and dtype float64. The errors are the max and
    root-mean-square of |f - target| on the evenly spaced fit grid.
    """

    bias: float
    coefficients: Tensor
    max_error: float
    rms_error: float


def get_target(name: str) -> Callable[[Tensor], Tensor]:
    """Return the target function ``name``; ConfigError lists the valid names."""
    if name not in TARGETS:
        raise ConfigError(
            f"activation target {name!r} is not known; use one of {', '.join(TARGETS)}"
        )
    return TARGETS[name]


def fit_error(
    basis: Basis,
    bias: float,
    coefficients: Tensor,
    target: str,
    input_range: Sequence[float],
    num_points: int = 2001,
) -> tuple[float, float]:
    """Return the (max, rms) error of (b, c) against a target on a grid, in float64."""
    lo, hi = validate_range(input_range, "init_range")
    grid = torch.linspace(lo, hi, num_points, dtype=torch.float64)
    values = basis(grid) @ coefficients.to(torch.float64) + bias
    error = (values - get_target(target)(grid)).abs()
    return error.max().item(), error.square().mean().sqrt().item()


def fit_target(
    basis: Basis,
    target: str,
    input_range: Sequence[float] = (-3.0, 3.0),
    num_points: int = 2001,
    ridge: float = 1e-10,
) -> FitResult:
    """Fit (b, c) so that the SLAF matches ``target`` on ``input_range``.

    Solves min ||b + G c - y||^2 + ridge * ||D c||^2 in float64 on ``num_points``
    evenly spaced points, where G is the (num_points, K) term matrix and D scales
    each column of G to unit RMS. Scaling first keeps the high monomial powers
    solvable, and the small ridge picks one solution when columns are nearly
    dependent. The bias is not penalised.
    """
    function = get_target(target)
    lo, hi = validate_range(input_range, "init_range")
    grid = torch.linspace(lo, hi, num_points, dtype=torch.float64)
    terms = basis(grid)
    values = function(grid)

    scale = terms.square().mean(0).sqrt().clamp_min(1e-12)
    design = torch.cat(
        [torch.ones(num_points, 1, dtype=torch.float64), terms / scale], 1
    )
    penalty = torch.zeros(basis.num_terms, basis.num_terms + 1, dtype=torch.float64)
    penalty[:, 1:] = torch.eye(basis.num_terms, dtype=torch.float64) * math.sqrt(ridge)
    design = torch.cat([design, penalty], 0)
    rhs = torch.cat([values, torch.zeros(basis.num_terms, dtype=torch.float64)])
    solution = torch.linalg.lstsq(design, rhs.unsqueeze(1), driver="gelsd").solution[
        :, 0
    ]

    bias = solution[0].item()
    coefficients = solution[1:] / scale
    max_error, rms_error = fit_error(
        basis, bias, coefficients, target, (lo, hi), num_points
    )
    return FitResult(bias, coefficients, max_error, rms_error)
