"""Monomial basis z, z^2, ..., z^k."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from slaf_cli.nn.bases.base import Basis, feature_sum, feature_view, term_weights
from slaf_cli.nn.bases.registry import register_basis


@register_basis("monomial")
class MonomialBasis(Basis):
    """Powers g_j(z) = z^j for j = 1..degree, so f is a polynomial of that degree.

    The natural domain is the whole real line and no input mapping is applied, so
    ``input_range`` is validated but unused. Outside about [-3, 3] high powers grow
    fast, and z^16 overflows float32 once |z| exceeds about 250. The normalized
    routine also needs z^(2 * degree), which at degree 16 overflows beyond |z| of
    about 16. The fast path evaluates f and df/dz by Horner's rule. Max degree 16.
    """

    max_degree = 16

    @property
    def num_terms(self) -> int:
        return self.degree

    def map_input(self, z: Tensor) -> tuple[Tensor, Tensor | float]:
        return z, 1.0

    def terms(self, t: Tensor) -> Iterator[Tensor]:
        power = t
        yield power
        for _ in range(1, self.degree):
            power = power * t
            yield power

    def terms_with_derivatives(self, t: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        previous = torch.ones_like(t)
        for j in range(1, self.degree + 1):
            power = previous * t
            yield power, previous * j
            previous = power

    def identity_coefficients(self) -> tuple[float, Tensor]:
        """Return b = 0, c = (1, 0, ..., 0): f(z) = z exactly on the whole line."""
        coefficients = torch.zeros(self.num_terms, dtype=torch.float64)
        coefficients[0] = 1.0
        return 0.0, coefficients

    def weighted_sum(self, z: Tensor, coefficients: Tensor, bias: Tensor) -> Tensor:
        polynomial = torch.cat([bias.unsqueeze(1), coefficients], dim=1)
        return evaluate_polynomial(z, polynomial)

    def weighted_sum_backward(
        self, z: Tensor, coefficients: Tensor, grad_output: Tensor
    ) -> tuple[Tensor, Tensor]:
        # One buffer serves twice. First it contains grad_output * z^j, updated in
        # place, for dL/dc_j. Then it contains df/dz = sum_j j c_j z^(j-1) (Horner).
        rows = coefficients.shape[0]
        buffer = torch.mul(grad_output, z)
        grad_terms = [feature_sum(buffer, rows)]
        for _ in range(1, self.degree):
            grad_terms.append(feature_sum(buffer.mul_(z), rows))
        grad_coefficients = torch.stack(grad_terms, dim=-1).reshape(coefficients.shape)

        if self.degree == 1:
            weight = feature_view(coefficients[:, 0], z.dim())
            return torch.mul(grad_output, weight, out=buffer), grad_coefficients
        powers = torch.arange(1, self.degree + 1, dtype=z.dtype, device=z.device)
        slope = evaluate_polynomial(z, coefficients * powers, out=buffer)
        return slope.mul_(grad_output), grad_coefficients

    def term_moments(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # Raw moments E[z^i], i = 1..2K, from one running power: E[g_j] = E[z^j] and
        # E[g_j^2] = E[z^(2j)].
        # NOTE: var = E[z^(2j)] - E[z^j]^2 cancels when |mean| >> std. In float32
        # its relative error is roughly 1e-7 * E[g^2] / var (an estimate), so about
        # 10% for g = z at |mean| / std = 1e3.
        features = z.shape[1]
        power = torch.mul(z, z)
        sums = [
            feature_sum(z, features, keep_features=True),
            feature_sum(power, features, keep_features=True),
        ]
        for _ in range(3, 2 * self.degree + 1):
            sums.append(feature_sum(power.mul_(z), features, keep_features=True))
        moments = torch.stack(sums, dim=-1).div_(z.numel() // z.shape[1])
        mean = moments[:, : self.degree]
        variance = (moments[:, 1::2] - mean * mean).clamp_min_(0.0)
        return mean, variance

    def term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor
    ) -> Tensor:
        return evaluate_polynomial(z, self.moments_backward_polynomial(offsets, scales))

    def moments_backward_polynomial(self, offsets: Tensor, scales: Tensor) -> Tensor:
        """Return the coefficients (C, 2K) of sum_j j z^(j-1) (o_j + s_j z^j)."""
        degree = self.degree
        powers = torch.arange(1, degree + 1, dtype=offsets.dtype, device=offsets.device)
        polynomial = offsets.new_zeros(offsets.shape[0], 2 * degree)
        polynomial[:, :degree] = offsets * powers
        polynomial[:, 1::2] += scales * powers
        return polynomial


def evaluate_polynomial(
    z: Tensor, coefficients: Tensor, out: Tensor | None = None
) -> Tensor:
    """Evaluate sum_i coefficients[:, i] * z^i by Horner's rule, one pass per degree.

    z is (N, C, *) and coefficients (P, D + 1) with D >= 1 and P = C or 1, applied
    per feature on dim 1. Writes into ``out`` when given (it must not alias z).
    """
    columns = term_weights(coefficients, z.dim())
    out = torch.addcmul(columns[-2], z, columns[-1], out=out)
    for column in reversed(columns[:-2]):
        torch.addcmul(column, out, z, out=out)
    return out
