"""Fourier basis sin(k pi t / 2), cos(k pi t / 2) for k = 1..degree."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from slaf_cli.nn.bases.base import AffineBasis
from slaf_cli.nn.bases.registry import register_basis


@register_basis("fourier")
class FourierBasis(AffineBasis):
    """Terms sin(k pi t / 2), cos(k pi t / 2) for k = 1..degree, so K = 2 degree.

    ``degree`` is the highest frequency. ``input_range`` maps affinely to t in
    [-1, 1], which is half of the longest period (4 in t). A non-periodic target such
    as f(z) = z can then be fitted on the range without a jump at its ends. Inputs
    beyond the range are not clipped: f repeats with period 2 * (hi - lo) in z, so
    it stays bounded and smooth but is not monotone. Max degree 32.
    """

    max_degree = 32

    @property
    def num_terms(self) -> int:
        return 2 * self.degree

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        angle = t * (0.5 * math.pi)
        for k in range(1, self.degree + 1):
            yield torch.sin(angle * k)
            yield torch.cos(angle * k)

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        angle = t * (0.5 * math.pi)
        for k in range(1, self.degree + 1):
            sine = torch.sin(angle * k)
            cosine = torch.cos(angle * k)
            yield sine, cosine * (0.5 * k * math.pi)
            yield cosine, sine * (-0.5 * k * math.pi)
