"""Legendre polynomials P_1..P_k."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from slaf_cli.nn.bases.base import OrthogonalPolynomialBasis
from slaf_cli.nn.bases.registry import register_basis


@register_basis("legendre")
class LegendreBasis(OrthogonalPolynomialBasis):
    """Legendre polynomials g_j = P_j(t), j = 1..degree, natural domain t in [-1, 1].

    ``input_range`` maps affinely to [-1, 1] and ``out_of_range`` (clamp or squash)
    keeps t inside it. Values come from Bonnet's recurrence
    (n + 1) P_{n+1} = (2n + 1) t P_n - n P_{n-1} and slopes from
    P'_{n+1} = P'_{n-1} + (2n + 1) P_n, so |P_j| <= 1 on the domain. Max degree 32.
    """

    max_degree = 32

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        for value, _ in self._recurrence(t, with_slopes=False):
            yield value

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for value, slope in self._recurrence(t, with_slopes=True):
            assert slope is not None
            yield value, slope

    def _recurrence(
        self, t: Tensor, with_slopes: bool
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        previous = torch.ones_like(t)
        current = t
        slope_previous = torch.zeros_like(t) if with_slopes else None
        slope_current = torch.ones_like(t) if with_slopes else None
        yield current, slope_current
        for n in range(1, self.degree):
            # P_{n+1} = ((2n + 1) t P_n - n P_{n-1}) / (n + 1)
            following = torch.addcmul(
                previous * (-n / (n + 1)), t, current, value=(2 * n + 1) / (n + 1)
            )
            slope_following = None
            if slope_previous is not None:
                slope_following = torch.add(slope_previous, current, alpha=2 * n + 1)
            yield following, slope_following
            previous, current = current, following
            slope_previous, slope_current = slope_current, slope_following
