"""Chebyshev polynomials of the first kind T_1..T_k."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from slaf_cli.nn.bases.base import OrthogonalPolynomialBasis
from slaf_cli.nn.bases.registry import register_basis


@register_basis("chebyshev")
class ChebyshevBasis(OrthogonalPolynomialBasis):
    """Chebyshev polynomials g_j = T_j(t), j = 1..degree, natural domain t in [-1, 1].

    ``input_range`` maps affinely to [-1, 1] and ``out_of_range`` (clamp or squash)
    keeps t inside it. Values come from T_{n+1} = 2t T_n - T_{n-1} and slopes from
    T'_{n+1} = 2 T_n + 2t T'_n - T'_{n-1}, so both stay finite at t = +-1, where
    formulas through acos have an infinite slope. Max degree 32.
    """

    max_degree = 32

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        previous = torch.ones_like(t)
        current = t
        yield current
        for _ in range(1, self.degree):
            # 2t T_n - T_{n-1}, written as -(T_{n-1} - 2t T_n) to need one buffer.
            following = torch.addcmul(previous, t, current, value=-2.0).neg_()
            yield following
            previous, current = current, following

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        previous = torch.ones_like(t)
        current = t
        slope_previous = torch.zeros_like(t)
        slope_current = torch.ones_like(t)
        yield current, slope_current
        for _ in range(1, self.degree):
            following = torch.addcmul(previous, t, current, value=-2.0).neg_()
            slope_following = torch.addcmul(
                slope_previous, t, slope_current, value=-2.0
            )
            slope_following.neg_().add_(current, alpha=2.0)
            yield following, slope_following
            previous, current = current, following
            slope_previous, slope_current = slope_current, slope_following
