"""Gaussian radial basis functions on a uniform grid of centres."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import AffineBasis
from slaf_cli.nn.bases.registry import register_basis


@register_basis("rbf")
class RBFBasis(AffineBasis):
    """Gaussian bumps g_j(t) = exp(-((t - m_j) / w)^2) with K = degree centres m_j.

    ``degree`` is the number of centres, spaced evenly over t in [-1, 1], the affine
    image of ``input_range``. The width w is ``width`` times the centre spacing
    (times 1 for a single centre). The natural domain is the real line and nothing
    is clipped: every bump decays to 0 beyond the range, so f tends to b there.
    Max degree 64.

    NOTE: with w tied to the spacing, the least-squares fit error of smooth targets
    stops shrinking at some degree (about 1e-2 for gelu on (-3, 3) with width 2).
    A larger ``width`` lowers that floor but makes the fit worse conditioned.
    """

    max_degree = 64

    def __init__(
        self,
        degree: int,
        input_range: Sequence[float] = (-3.0, 3.0),
        width: float = 2.0,
    ):
        super().__init__(degree, input_range)
        if not isinstance(width, (int, float)) or not width > 0:
            raise ConfigError(
                f"basis.width {width!r} is invalid; set basis.width to a number > 0"
            )
        spacing = 2.0 / (degree - 1) if degree > 1 else 1.0
        self.width = float(width)
        self.scale = self.width * spacing
        self.centers = (
            [-1.0 + spacing * j for j in range(degree)] if degree > 1 else [0.0]
        )

    @property
    def num_terms(self) -> int:
        return self.degree

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        for center in self.centers:
            offset = (t - center) / self.scale
            yield torch.exp(-offset * offset)

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for center in self.centers:
            offset = (t - center) / self.scale
            value = torch.exp(-offset * offset)
            yield value, value * offset * (-2.0 / self.scale)
