"""Abstract basis of activation terms g_1..g_K and the shared input checks.

A basis is a plain Python object without parameters. It creates every tensor on the
device and dtype of its input, so one instance can serve many layers.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from slaf_cli.errors import ConfigError

InputRange = tuple[float, float]


def validate_degree(name: str, degree: object, max_degree: int) -> int:
    """Return ``degree`` as an int, or raise ConfigError naming value and fix."""
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise ConfigError(
            f"basis degree {degree!r} is invalid; set basis.degree to an integer >= 1"
        )
    if degree < 1:
        raise ConfigError(
            f"basis degree {degree} is invalid; set basis.degree to an integer >= 1"
        )
    if degree > max_degree:
        raise ConfigError(
            f"basis degree {degree} is too high for the {name} basis (max "
            f"{max_degree}); set basis.degree to an integer from 1 to {max_degree}"
        )
    return degree


def validate_range(value: object, option: str = "basis.input_range") -> InputRange:
    """Return ``value`` as a float pair (lo, hi) with lo < hi, or raise ConfigError."""
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(
            f"{option} {value!r} is invalid; set {option} to two numbers [min, max]"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(
            f"{option} {value!r} is invalid because min >= max or a bound is not "
            f"finite; set {option} to [min, max] with min < max"
        )
    return lo, hi


def feature_view(values: Tensor, rank: int) -> Tensor:
    """Reshape (P,) to (P, 1, ..., 1) so it broadcasts along dim 1 of a rank-r input."""
    return values.reshape(values.shape[0], *([1] * (rank - 2)))


def term_weights(coefficients: Tensor, rank: int) -> list[Tensor]:
    """Split (P, K) coefficients into K contiguous (P, 1, ..., 1) columns."""
    columns = coefficients.t().contiguous()
    return [feature_view(column, rank) for column in columns.unbind(0)]


def feature_sum(t: Tensor, num_rows: int, keep_features: bool = False) -> Tensor:
    """Sum t (N, C, *) over all dims but 1 to shape (C,), or over all when one
    coefficient row is shared (``num_rows == 1``) and not ``keep_features``.

    The trailing dims are summed first, along contiguous memory, and then dim 0.
    On (N, C, H, W) inputs and a 2-core CPU, this order ran 2 to 3 times faster
    than one sum over (0, 2, 3) in a single measurement.
    """
    if num_rows == 1 and not keep_features:
        return t.sum()
    if t.dim() > 2:
        t = t.flatten(2).sum(dim=-1)
    return t.sum(dim=0)


class Basis(abc.ABC):
    """Terms g_1(z)..g_K(z) of a SLAF f(z) = b + sum_j c_j g_j(z).

    Subclasses implement ``map_input`` (z to the natural domain t) and the streamed
    term iterators, which yield one tensor of the input's shape per term, so the
    fast path never keeps all K terms in memory at once. Yielded tensors are new
    and never modified afterwards, so callers may keep them.
    """

    name: ClassVar[str]
    max_degree: ClassVar[int]
    #: Whether the fast SLAF path may stream this basis. False means SLAF falls back
    #: to the reference path, which materialises the (..., K) term tensor.
    streaming: ClassVar[bool] = True

    def __init__(self, degree: int, input_range: Sequence[float] = (-3.0, 3.0)):
        self.degree = validate_degree(self.name, degree, self.max_degree)
        self.input_range: InputRange = validate_range(input_range)

    @property
    @abc.abstractmethod
    def num_terms(self) -> int:
        """Number K of non-constant terms."""

    @abc.abstractmethod
    def map_input(self, z: Tensor) -> tuple[Tensor, Tensor | float]:
        """Map z to the natural domain. Returns t and dt/dz (a tensor or a float)."""

    @abc.abstractmethod
    def terms(self, t: Tensor) -> Iterator[Tensor]:
        """Yield g_1(t)..g_K(t) of a mapped input t, each of t's shape."""

    @abc.abstractmethod
    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (g_j(t), dg_j/dt) for j = 1..K, each of t's shape."""

    def __call__(self, z: Tensor) -> Tensor:
        """Evaluate all terms. Shape (*S) -> (*S, K), differentiable by autograd."""
        t, _ = self.map_input(z)
        return torch.stack(list(self.terms(t)), dim=-1)

    def derivative(self, z: Tensor) -> Tensor:
        """Evaluate dg_j/dz including the input mapping. Shape (*S) -> (*S, K)."""
        t, dt_dz = self.map_input(z)
        slopes = torch.stack([d for _, d in self.terms_with_derivatives(t)], dim=-1)
        if isinstance(dt_dz, Tensor):
            return slopes * dt_dz.unsqueeze(-1)
        return slopes * dt_dz

    def identity_coefficients(self) -> tuple[float, Tensor]:
        """Return (b, c) with c of shape (K,), float64, that fit f(z) = z.

        The default is the least-squares fit on ``input_range``. Subclasses that
        contain z exactly on that range override it with the exact coefficients.
        """
        from slaf_cli.nn.fit import fit_target  # fit imports this module

        result = fit_target(self, "identity", self.input_range)
        return result.bias, result.coefficients

    def weighted_sum(self, z: Tensor, coefficients: Tensor, bias: Tensor) -> Tensor:
        """Compute bias + sum_j coefficients[:, j] * g_j(z) term by term.

        z is (N, C, *) with features on dim 1, coefficients (P, K) and bias (P,)
        with P = C or 1. Returns a new tensor of z's shape. At most a few terms
        are alive at any time.
        """
        t, _ = self.map_input(z)
        weights = term_weights(coefficients, z.dim())
        bias_view = feature_view(bias, z.dim())
        out: Tensor | None = None
        for g, w in zip(self.terms(t), weights, strict=True):
            if out is None:
                out = torch.addcmul(bias_view, g, w)
            else:
                out.addcmul_(g, w)
        assert out is not None
        return out

    def weighted_sum_backward(
        self, z: Tensor, coefficients: Tensor, grad_output: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return (dL/dz, dL/dcoefficients) of ``weighted_sum`` for an upstream grad.

        dL/dz has z's shape and dL/dcoefficients the (P, K) shape of coefficients.
        The terms are recomputed from z.
        """
        t, dt_dz = self.map_input(z)
        rows = coefficients.shape[0]
        weights = term_weights(coefficients, z.dim())
        slope: Tensor | None = None
        grad_weights = []
        for (g, dg), w in zip(self.terms_with_derivatives(t), weights, strict=True):
            grad_weights.append(feature_sum(grad_output * g, rows))
            if slope is None:
                slope = dg * w
            else:
                slope.addcmul_(dg, w)
        assert slope is not None
        grad_z = slope.mul_(grad_output)
        if isinstance(dt_dz, Tensor) or dt_dz != 1.0:
            grad_z.mul_(dt_dz)
        return grad_z, torch.stack(grad_weights, dim=-1).reshape(coefficients.shape)

    def term_moments(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return the mean and biased variance of every term, per feature.

        z is (N, C, *). Each result is (C, K), reduced over all dims but 1. The
        variance is E[g^2] - E[g]^2 clamped at 0. That is accurate here because
        every streamed basis except monomial keeps |g| <= 1.
        """
        t, _ = self.map_input(z)
        features = z.shape[1]
        sums, squares = [], []
        for g in self.terms(t):
            sums.append(feature_sum(g, features, keep_features=True))
            squares.append(feature_sum(torch.mul(g, g), features, keep_features=True))
        count = z.numel() // z.shape[1]
        mean = torch.stack(sums, dim=-1).div_(count)
        variance = torch.stack(squares, dim=-1).div_(count)
        return mean, variance.sub_(mean * mean).clamp_min_(0.0)

    def term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor
    ) -> Tensor:
        """Return sum_j dg_j/dz * (offsets[:, j] + scales[:, j] * g_j(z)), z's shape.

        ``offsets`` and ``scales`` are (C, K). The gradient of ``term_moments``
        with respect to z has this form.
        """
        t, dt_dz = self.map_input(z)
        grad_z: Tensor | None = None
        pairs = self.terms_with_derivatives(t)
        offset_views = term_weights(offsets, z.dim())
        scale_views = term_weights(scales, z.dim())
        for (g, dg), offset, scale in zip(
            pairs, offset_views, scale_views, strict=True
        ):
            factor = torch.addcmul(offset, g, scale)
            if grad_z is None:
                grad_z = factor.mul_(dg)
            else:
                grad_z.addcmul_(factor, dg)
        assert grad_z is not None
        if isinstance(dt_dz, Tensor) or dt_dz != 1.0:
            grad_z.mul_(dt_dz)
        return grad_z

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(degree={self.degree}, "
            f"input_range={self.input_range}, num_terms={self.num_terms})"
        )


class AffineBasis(Basis):
    """A basis whose natural domain is [-1, 1], reached by an affine map of z.

    ``input_range`` (lo, hi) maps to [-1, 1]: t = (z - (lo + hi) / 2) / ((hi - lo) / 2).
    """

    @property
    def center(self) -> float:
        return 0.5 * (self.input_range[0] + self.input_range[1])

    @property
    def half_width(self) -> float:
        return 0.5 * (self.input_range[1] - self.input_range[0])

    def map_input(self, z: Tensor) -> tuple[Tensor, Tensor | float]:
        return (z - self.center) / self.half_width, 1.0 / self.half_width


OUT_OF_RANGE_POLICIES = ("clamp", "squash")


class BoundedBasis(AffineBasis):
    """A basis on t in [-1, 1] with a policy for inputs beyond ``input_range``.

    ``out_of_range="clamp"`` clips t to [-1, 1], so f is constant beyond
    ``input_range`` and has zero slope there. The slope exactly at the edges is the
    one inside. ``out_of_range="squash"`` uses t = tanh(u)
    for the affine image u of z, which is smooth and stays inside (-1, 1), but
    it also bends the map inside the range, so f(z) = z is no longer exact.
    """

    def __init__(
        self,
        degree: int,
        input_range: Sequence[float] = (-3.0, 3.0),
        out_of_range: str = "clamp",
    ):
        super().__init__(degree, input_range)
        if out_of_range not in OUT_OF_RANGE_POLICIES:
            raise ConfigError(
                f"basis.out_of_range {out_of_range!r} is invalid; set it to one of "
                f"{', '.join(OUT_OF_RANGE_POLICIES)}"
            )
        self.out_of_range = out_of_range

    def map_input(self, z: Tensor) -> tuple[Tensor, Tensor | float]:
        u = (z - self.center) / self.half_width
        if self.out_of_range == "clamp":
            # torch.where instead of torch.clamp fixes the slope at the edges
            # to the inside one, the same for autograd and for the fast path.
            inside = (u >= -1.0) & (u <= 1.0)
            t = torch.where(inside, u, u.detach().clamp(-1.0, 1.0))
            return t, inside.to(z.dtype) / self.half_width
        t = torch.tanh(u)
        return t, (1.0 - t * t) / self.half_width

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, out_of_range={self.out_of_range!r})"


class OrthogonalPolynomialBasis(BoundedBasis):
    """Orthogonal polynomials P_1..P_degree on [-1, 1] with P_1(t) = t."""

    @property
    def num_terms(self) -> int:
        return self.degree

    def identity_coefficients(self) -> tuple[float, Tensor]:
        """Return the exact (b, c) for f(z) = z on ``input_range`` when clamping.

        P_1(t) = t, so z = center + half_width * P_1(t) inside the range.
        """
        if self.out_of_range != "clamp":
            return super().identity_coefficients()
        coefficients = torch.zeros(self.num_terms, dtype=torch.float64)
        coefficients[0] = self.half_width
        return self.center, coefficients
