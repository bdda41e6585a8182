"""SLAF layers and networks as explicit polynomials, verified against the modules.

Per layer, each feature's activation becomes coefficients a_0..a_K of
f(z) = sum_i a_i z^i: exactly for the monomial basis, and on the input range for
chebyshev and legendre with out_of_range=clamp. With the ``normalized`` routine,
the eval-mode layer f(z) = b + sum_j c_j (z^j - mu_j) / sqrt(var_j + eps) uses the
running statistics, and it folds into a_j = c_j / sqrt(var_j + eps) and
a_0 = b - sum_j a_j mu_j.

For a chain of Linear and monomial SLAF layers (an MLP without BatchNorm) the
whole network is a polynomial of its flattened input, of total degree the product
of the SLAF degrees. :func:`network_polynomial` expands it with sympy, one
``sympy.Poly`` per output. Every export is compared with the module's own eval-mode
output in float64 on random inputs.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy
import torch
from sympy.polys.rings import ring
from torch import Tensor, nn

from slaf_cli.errors import ConfigError
from slaf_cli.models import MLP
from slaf_cli.nn.bases.base import OrthogonalPolynomialBasis
from slaf_cli.nn.factory import slaf_modules
from slaf_cli.nn.slaf import SLAF

logger = logging.getLogger(__name__)

PASSTHROUGH = (nn.Flatten, nn.Dropout, nn.Identity)


class ExportMismatch(RuntimeError):
    """An exported polynomial disagrees with the module beyond the tolerance."""


@dataclass
class LayerPolynomial:
    """Explicit polynomials of one SLAF layer.

    ``coefficients`` is (C, K + 1) float64, row c holding a_0..a_K of feature c in
    increasing powers of z. ``valid_range`` is None when the polynomial is exact on
    the whole real line (monomial basis). Otherwise it is the interval where the
    polynomial is exact, because a clamped orthogonal basis is constant beyond it.
    """

    name: str
    basis: str
    degree: int
    normalize: bool
    coefficients: Tensor
    valid_range: tuple[float, float] | None
    max_relative_error: float


@dataclass
class NetworkPolynomial:
    """The whole network as one expanded polynomial per output.

    ``variables`` names the flattened input features x0..x{n-1} in the order of
    ``torch.flatten``. ``expected_degree`` is the product of the SLAF degrees.
    """

    variables: list[str]
    outputs: list[sympy.Poly]
    expected_degree: int
    max_relative_error: float

    @property
    def total_degrees(self) -> list[int]:
        return [int(poly.total_degree()) for poly in self.outputs]

    @property
    def num_terms(self) -> list[int]:
        return [len(poly.terms()) for poly in self.outputs]


def relative_error(approx: Tensor, exact: Tensor) -> float:
    """Return max |approx - exact| / max |exact| (the max-norm relative error)."""
    scale = exact.abs().max().clamp_min(torch.finfo(exact.dtype).tiny)
    return float((approx - exact).abs().max() / scale)


def evaluate_polynomials(coefficients: Tensor, z: Tensor) -> Tensor:
    """Evaluate per-feature polynomials by Horner's rule: (C, K+1), (G, C) -> (G, C)."""
    out = coefficients[:, -1].expand_as(z).clone()
    for index in range(coefficients.shape[1] - 2, -1, -1):
        out = out * z + coefficients[:, index]
    return out


def monomial_coefficients(module: SLAF) -> Tensor:
    """Fold a monomial SLAF's eval-mode function into (C, K + 1) float64 powers."""
    features, terms = module.num_features, module.basis.num_terms
    weights = module.coefficients.detach().double().expand(features, terms)
    bias = module.bias.detach().double().expand(features)
    if module.normalize:
        # NOTE: restates the fold in SLAF._activate_fast; SLAF exposes no public hook.
        scale = torch.rsqrt(module.running_var.detach().double() + module.eps)
        weights = weights * scale
        bias = bias - (weights * module.running_mean.detach().double()).sum(dim=-1)
    return torch.cat([bias.unsqueeze(1), weights], dim=1)


def interpolated_coefficients(module: SLAF, lo: float, hi: float) -> Tensor:
    """Recover (C, K + 1) power coefficients of a polynomial SLAF on [lo, hi].

    The layer is sampled at 4 (K + 1) Chebyshev nodes and each feature is fitted
    by numpy in the scaled domain, then converted to powers of z.
    """
    degree = module.basis.degree
    count = 4 * (degree + 1)
    nodes = np.cos(np.pi * (np.arange(count) + 0.5) / count) * (hi - lo) / 2
    nodes = nodes + (hi + lo) / 2
    values = curve_float64(module, torch.from_numpy(nodes)).numpy()
    rows = []
    for feature in range(module.num_features):
        fitted = np.polynomial.Polynomial.fit(
            nodes, values[:, feature], degree, domain=[lo, hi]
        )
        rows.append(np.pad(fitted.convert().coef, (0, degree + 1)))
    return torch.from_numpy(np.stack(rows)[:, : degree + 1])


def curve_float64(module: SLAF, grid: Tensor) -> Tensor:
    """Evaluate the layer on a grid in float64 eval semantics: (G,) -> (G, C)."""
    return copy.deepcopy(module).double().curve(grid.double())


def seen_range(module: SLAF) -> tuple[float, float]:
    """Return the range the layer's training inputs took, else its basis range."""
    low, high = float(module.input_min), float(module.input_max)
    if math.isfinite(low) and math.isfinite(high) and high > low:
        return low, high
    return module.basis.input_range


def layer_polynomial(
    name: str,
    module: SLAF,
    num_samples: int = 256,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> LayerPolynomial:
    """Export one SLAF layer and check it on ``num_samples`` random inputs per feature.

    Inputs are drawn uniformly from the valid range, or from the range seen in
    training for the monomial basis. Raises ConfigError for a basis that is not a
    polynomial (fourier, rbf, bspline, or squash) and ExportMismatch when the
    relative error exceeds ``tolerance``.
    """
    basis = module.basis
    valid_range: tuple[float, float] | None = None
    if basis.name == "monomial":
        coefficients = monomial_coefficients(module)
        lo, hi = seen_range(module)
    elif isinstance(basis, OrthogonalPolynomialBasis) and basis.out_of_range == "clamp":
        valid_range = basis.input_range
        lo, hi = valid_range
        coefficients = interpolated_coefficients(module, lo, hi)
    else:
        raise ConfigError(
            f"layer {name} uses the {basis!r} basis, which is not a polynomial of z; "
            "only monomial, and chebyshev or legendre with out_of_range=clamp, export"
        )

    generator = torch.Generator().manual_seed(seed)
    grid = torch.rand(num_samples, generator=generator, dtype=torch.float64)
    grid = lo + (hi - lo) * grid
    expected = curve_float64(module, grid)
    exported = evaluate_polynomials(coefficients, grid.unsqueeze(1).expand_as(expected))
    error = relative_error(exported, expected)
    if not error <= tolerance:
        raise ExportMismatch(
            f"layer {name}: exported polynomial differs from the module by relative "
            f"error {error:.2e} > tolerance {tolerance:g}"
        )
    return LayerPolynomial(
        name,
        basis.name,
        basis.degree,
        module.normalize,
        coefficients,
        valid_range,
        error,
    )


def export_layers(
    model: nn.Module, num_samples: int = 256, tolerance: float = 1e-6, seed: int = 0
) -> tuple[list[LayerPolynomial], dict[str, str]]:
    """Export every SLAF layer that is a polynomial; return them and the skipped ones.

    The second value maps each skipped layer's name to the reason.
    """
    exported, skipped = [], {}
    for name, module in slaf_modules(model):
        try:
            exported.append(
                layer_polynomial(name, module, num_samples, tolerance, seed)
            )
        except ConfigError as error:
            skipped[name] = str(error)
            logger.warning("Skipped layer %s: %s", name, error)
    return exported, skipped


def polynomial_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return the layers of an MLP or nn.Sequential whose output is a polynomial.

    Raises ConfigError naming the first layer that is not Linear, monomial SLAF,
    Flatten, Dropout or Identity.
    """
    if isinstance(model, MLP):
        model = model.net
        prefix = "net."
    elif isinstance(model, nn.Sequential):
        prefix = ""
    else:
        raise ConfigError(
            f"whole-network export supports MLP or nn.Sequential models, not "
            f"{type(model).__name__}; use the per-layer export (network=false)"
        )
    chain = []
    for name, layer in model.named_children():
        polynomial = isinstance(layer, (nn.Linear, *PASSTHROUGH)) or (
            isinstance(layer, SLAF) and layer.basis.name == "monomial"
        )
        if not polynomial:
            kind = f" {layer.basis.name}" if isinstance(layer, SLAF) else ""
            raise ConfigError(
                f"layer {prefix}{name} ({type(layer).__name__}{kind}) is not a Linear "
                "or monomial SLAF layer, so the network is not a polynomial of its "
                "input; export an MLP trained with activation=slaf basis=monomial "
                "model.batch_norm=false"
            )
        chain.append((f"{prefix}{name}", layer))
    return chain


def check_network_size(
    chain: Sequence[tuple[str, nn.Module]],
    max_inputs: int,
    max_width: int,
    max_terms: int,
) -> tuple[int, int]:
    """Return (inputs, expected total degree); raise ConfigError when too large.

    The term count of a dense polynomial in n variables of total degree D is
    C(n + D, D), the bound that ``max_terms`` limits.
    """
    linears = [layer for _, layer in chain if isinstance(layer, nn.Linear)]
    if not linears:
        raise ConfigError("whole-network export needs at least one Linear layer")
    inputs = linears[0].in_features
    width = max(layer.out_features for layer in linears[:-1]) if len(linears) > 1 else 0
    degree = math.prod(
        layer.basis.degree for _, layer in chain if isinstance(layer, SLAF)
    )
    bound = math.comb(inputs + degree, degree)
    if inputs > max_inputs or width > max_width or bound > max_terms:
        raise ConfigError(
            f"network too large for a symbolic expansion: {inputs} inputs (max "
            f"{max_inputs}), width {width} (max {max_width}), total degree {degree} "
            f"with up to {bound} terms (max_terms={max_terms}); export the layers "
            "only with network=false, or raise max_inputs, max_width, max_terms"
        )
    return inputs, degree


def network_polynomial(
    model: nn.Module,
    max_inputs: int = 8,
    max_width: int = 32,
    max_terms: int = 5000,
    num_samples: int = 256,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> NetworkPolynomial:
    """Expand the network's outputs as polynomials of its flattened input.

    The layers are composed in sympy's sparse polynomial ring over RR (53-bit
    floats), Horner's rule for each SLAF, and the result checked against the
    model in float64 eval mode on ``num_samples`` standard-normal inputs. Raises
    ConfigError for an unsupported or too large model and ExportMismatch when the
    relative error exceeds ``tolerance``.
    """
    chain = polynomial_chain(model)
    inputs, expected_degree = check_network_size(
        chain, max_inputs, max_width, max_terms
    )
    names = [f"x{i}" for i in range(inputs)]
    polynomial_ring, *variables = ring(",".join(names), sympy.RR)
    values = list(variables)
    for _, layer in chain:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().double().tolist()
            bias = layer.bias.detach().double().tolist()
            values = [
                sum(
                    (w * v for w, v in zip(row, values, strict=True)),
                    polynomial_ring(b),
                )
                for row, b in zip(weight, bias, strict=True)
            ]
        elif isinstance(layer, SLAF):
            coefficients = monomial_coefficients(layer).tolist()
            values = [
                horner(polynomial_ring, row, value)
                for row, value in zip(coefficients, values, strict=True)
            ]
    symbols = sympy.symbols(names)
    outputs = [
        sympy.Poly.from_dict(dict(value), *symbols, domain=sympy.RR) for value in values
    ]

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, inputs, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        expected = copy.deepcopy(model).double().eval()(x)
    error = relative_error(evaluate_network(outputs, x), expected)
    if not error <= tolerance:
        raise ExportMismatch(
            f"network polynomial differs from the model by relative error "
            f"{error:.2e} > tolerance {tolerance:g}"
        )
    return NetworkPolynomial(names, outputs, expected_degree, error)


def horner(polynomial_ring, coefficients: Sequence[float], value):  # type: ignore[no-untyped-def]
    """Return sum_i coefficients[i] * value**i for a ring element ``value``."""
    out = polynomial_ring(coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        out = out * value + coefficient
    return out


def evaluate_network(outputs: Sequence[sympy.Poly], x: Tensor) -> Tensor:
    """Evaluate expanded polynomials at inputs x (N, n) in float64 -> (N, outputs)."""
    columns = []
    for poly in outputs:
        monomials, coefficients = zip(*poly.terms(), strict=True)
        exponents = torch.tensor(monomials, dtype=torch.float64)  # (T, n)
        weights = torch.tensor([float(c) for c in coefficients], dtype=torch.float64)
        powers = x.unsqueeze(1).pow(exponents).prod(dim=-1)  # (N, T)
        columns.append(powers @ weights)
    return torch.stack(columns, dim=1)
