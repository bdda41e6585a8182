"""Uniform B-splines of configurable degree over the input range."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import BoundedBasis
from slaf_cli.nn.bases.registry import register_basis

MAX_GRID_SIZE = 64


@register_basis("bspline")
class BSplineBasis(BoundedBasis):
    """Uniform B-splines of polynomial degree ``degree`` (3 is cubic).

    t in [-1, 1], the affine image of ``input_range``, is cut into ``grid_size``
    equal intervals of width h. The knot vector extends ``degree`` intervals past
    each end, which gives K = grid_size + degree splines that sum to 1 on [-1, 1].
    ``out_of_range`` (clamp or squash) keeps t inside [-1, 1]. Values come from the
    Cox-de Boor recurrence and slopes from B'_{i,p} = (B_{i,p-1} - B_{i+1,p-1}) / h.
    Every term depends on all K at once, so there is no streamed fast path and SLAF
    uses the reference path for this basis. Max degree 5.
    """

    max_degree = 5
    streaming = False

    def __init__(
        self,
        degree: int = 3,
        input_range: Sequence[float] = (-3.0, 3.0),
        out_of_range: str = "clamp",
        grid_size: int = 5,
    ):
        super().__init__(degree, input_range, out_of_range)
        if (
            isinstance(grid_size, bool)
            or not isinstance(grid_size, int)
            or not 1 <= grid_size <= MAX_GRID_SIZE
        ):
            raise ConfigError(
                f"basis.grid_size {grid_size!r} is invalid; set basis.grid_size to an "
                f"integer from 1 to {MAX_GRID_SIZE}"
            )
        self.grid_size = grid_size
        self.step = 2.0 / grid_size

    @property
    def num_terms(self) -> int:
        return self.grid_size + self.degree

    def _knots(self, like: Tensor) -> Tensor:
        index = torch.arange(
            -self.degree, self.grid_size + self.degree + 1, device=like.device
        )
        return index.to(like.dtype) * self.step - 1.0

    def _splines(self, t: Tensor, degree: int) -> Tensor:
        """Evaluate splines of ``degree``: (*S) -> (*S, grid_size + 2p - degree)."""
        knots = self._knots(t)
        x = t.unsqueeze(-1)
        splines = ((x >= knots[:-1]) & (x < knots[1:])).to(t.dtype)
        for d in range(1, degree + 1):
            width = d * self.step
            left = (x - knots[: -(d + 1)]) / width * splines[..., :-1]
            right = (knots[d + 1 :] - x) / width * splines[..., 1:]
            splines = left + right
        return splines

    def __call__(self, z: Tensor) -> Tensor:
        t, _ = self.map_input(z)
        return self._splines(t, self.degree)

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        yield from self._splines(t, self.degree).unbind(-1)

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        lower = self._splines(t, self.degree - 1)
        slopes = (lower[..., :-1] - lower[..., 1:]) / self.step
        values = self._splines(t, self.degree)
        yield from zip(values.unbind(-1), slopes.unbind(-1), strict=True)

    def identity_coefficients(self) -> tuple[float, Tensor]:
        """Return the exact (b, c) for f(z) = z on ``input_range`` when clamping.

        Splines of degree >= 1 reproduce linear functions: t = sum_i xi_i B_i(t),
        with xi_i the mean of the ``degree`` interior knots of B_i (Greville points).
        """
        if self.out_of_range != "clamp":
            return super().identity_coefficients()
        knots = self._knots(torch.empty(0, dtype=torch.float64))
        greville = knots.unfold(0, self.degree, 1)[1 : self.num_terms + 1].mean(-1)
        return 0.0, self.center + self.half_width * greville
