"""Monomial basis z, z^2, ..., z^k."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from slaf_cli.nn.bases.base import Basis
from slaf_cli.nn.bases.registry import register_basis


@register_basis("monomial")
class MonomialBasis(Basis):
    """Powers g_j(z) = z^j for j = 1..degree, so f is a polynomial of that degree.

    The natural domain is the whole real line and no input mapping is applied, so
    ``input_range`` is validated but unused. Outside about [-3, 3] high powers grow
    fast, and z^16 overflows float32 once |z| exceeds about 250. The fast path
    evaluates f and df/dz by Horner's rule. Max degree 16.
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

    def weighted_sum(
        self, z: Tensor, weights: Sequence[Tensor], bias: Tensor
    ) -> Tensor:
        return evaluate_polynomial(z, [bias, *weights])

    def weighted_sum_backward(
        self,
        z: Tensor,
        weights: Sequence[Tensor],
        grad_output: Tensor,
        reduce_dims: list[int],
    ) -> tuple[Tensor, list[Tensor]]:
        # One buffer serves twice. First it holds grad_output * z^j, updated in
        # place, for dL/dc_j; then it holds df/dz = sum_j j c_j z^(j-1) by Horner.
        buffer = torch.mul(grad_output, z)
        grad_weights = [buffer.sum(dim=reduce_dims)]
        for _ in range(1, len(weights)):
            grad_weights.append(buffer.mul_(z).sum(dim=reduce_dims))

        if len(weights) == 1:
            return torch.mul(grad_output, weights[0], out=buffer), grad_weights
        slope = [w * j for j, w in enumerate(weights, start=1)]
        grad_z = evaluate_polynomial(z, slope, out=buffer).mul_(grad_output)
        return grad_z, grad_weights

    def term_moments(self, z: Tensor, dims: list[int]) -> tuple[Tensor, Tensor]:
        # Raw moments E[z^i], i = 1..2K, from one running power: E[g_j] = E[z^j] and
        # E[g_j^2] = E[z^(2j)].
        # NOTE: var = E[z^(2j)] - E[z^j]^2 loses digits when |mean| >> std, which
        # for float32 starts to matter near |mean| / std ~ 1e3 per term.
        power = torch.mul(z, z)
        raw = [z.mean(dim=dims), power.mean(dim=dims)]
        for _ in range(3, 2 * self.degree + 1):
            raw.append(power.mul_(z).mean(dim=dims))
        moments = torch.stack(raw, dim=-1)
        mean = moments[:, : self.degree]
        variance = (moments[:, 1::2] - mean * mean).clamp_min_(0.0)
        return mean, variance

    def term_moments_backward(
        self, z: Tensor, offsets: Sequence[Tensor], scales: Sequence[Tensor]
    ) -> Tensor:
        # sum_j j z^(j-1) (o_j + s_j z^j) is a polynomial of degree 2K - 1 in z.
        coefficients = [torch.zeros_like(offsets[0]) for _ in range(2 * self.degree)]
        for j, (offset, scale) in enumerate(zip(offsets, scales, strict=True), 1):
            coefficients[j - 1] = coefficients[j - 1] + offset * j
            coefficients[2 * j - 1] = coefficients[2 * j - 1] + scale * j
        return evaluate_polynomial(z, coefficients)


def evaluate_polynomial(
    z: Tensor, coefficients: Sequence[Tensor], out: Tensor | None = None
) -> Tensor:
    """Evaluate sum_i coefficients[i] * z^i by Horner's rule, one pass per degree.

    Needs at least two coefficients, each broadcastable against z. Writes into
    ``out`` when given (it must not alias z) and returns it.
    """
    out = torch.addcmul(coefficients[-2], z, coefficients[-1], out=out)
    for coefficient in reversed(coefficients[:-2]):
        torch.addcmul(coefficient, out, z, out=out)
    return out
