"""Memory-lean autograd functions behind the fast SLAF path.

Both functions (:class:`BasisSum`, and :class:`NormalizedBasisSum` for the
normalized routine's training steps) save only the input x (plus (C, K)-sized
tensors) for backward and recompute basis terms there, so a SLAF layer keeps about
as much memory alive as a ReLU. Features are on dim 1 of an input of rank >= 2.

The functions call four kernels: ``weighted_sum``, ``weighted_sum_backward``,
``term_moments`` and ``term_moments_backward``. :class:`Kernels` runs a basis'
methods as eager PyTorch ops, one pass over x per op. :func:`compiled_kernels`
returns the same kernels compiled with ``torch.compile``, which fuses each into a
few passes, and :class:`~slaf_cli.nn.native.NativeKernels` runs them in C.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from slaf_cli.nn.bases.base import Basis, feature_sum

logger = logging.getLogger(__name__)

KERNEL_NAMES = (
    "weighted_sum",
    "weighted_sum_backward",
    "term_moments",
    "term_moments_backward",
)


# Compiled variants allowed per kernel, against torch's default of 8. Each input
# rank takes one, and so does each size that torch specialises (a dim of 1, say).
RECOMPILE_LIMIT = 64


class Kernels:
    """The fast path's kernels for one basis, run as eager PyTorch ops.

    ``weighted_sum_backward`` returns the bias gradient too, so a compiled version
    folds that reduction into the same kernel. The public methods widen the range
    buffers in ``track`` and add into ``out``. Subclasses that only change how
    the values are computed override the ``_weighted_sum``, ``_term_moments`` and
    ``_term_moments_backward`` hooks.
    """

    def __init__(self, basis: Basis) -> None:
        self.basis = basis

    def weighted_sum(
        self,
        z: Tensor,
        coefficients: Tensor,
        bias: Tensor,
        track: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if track is not None:
            update_range(z, *track)
        return self._weighted_sum(z, coefficients, bias)

    def _weighted_sum(self, z: Tensor, coefficients: Tensor, bias: Tensor) -> Tensor:
        return self.basis.weighted_sum(z, coefficients, bias)

    def weighted_sum_backward(
        self, z: Tensor, coefficients: Tensor, grad_output: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return weighted_sum_backward(self.basis, z, coefficients, grad_output)

    def term_moments(
        self, z: Tensor, track: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if track is not None:
            update_range(z, *track)
        return self._term_moments(z)

    def _term_moments(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.basis.term_moments(z)

    def term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor, out: Tensor | None = None
    ) -> Tensor:
        """Return dL/dz from the moments' gradients, or add it to ``out``."""
        grad = self._term_moments_backward(z, offsets, scales)
        return grad if out is None else out.add_(grad)

    def _term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor
    ) -> Tensor:
        return self.basis.term_moments_backward(z, offsets, scales)


@torch.no_grad()
def update_range(z: Tensor, low: Tensor, high: Tensor) -> None:
    """Lower ``low`` to z's minimum and raise ``high`` to its maximum, in place."""
    z_low, z_high = torch.aminmax(z)
    torch.minimum(low, z_low, out=low)
    torch.maximum(high, z_high, out=high)


def weighted_sum_backward(
    basis: Basis, z: Tensor, coefficients: Tensor, grad_output: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Return the gradients of ``basis.weighted_sum`` for z, coefficients and bias."""
    grad_z, grad_coefficients = basis.weighted_sum_backward(
        z, coefficients, grad_output
    )
    rows = coefficients.shape[0]
    grad_bias = feature_sum(grad_output, rows).reshape(rows)
    return grad_z, grad_coefficients, grad_bias


class CompiledKernels(Kernels):
    """The kernels of :class:`Kernels` compiled with ``torch.compile``.

    Compiling fuses the passes of each kernel over z into a few loops. Shapes are
    dynamic, so a kernel compiles about once per input rank, plus a variant for
    each size that torch specialises. On a loaded 2-core CPU the MNIST CNN's first
    step took about 50 s to compile, and 3 to 20 s in slaf-bench runs that found
    the generated code in Inductor's on-disk cache. If compiling or running a
    compiled kernel raises, one warning is logged and every later call runs the
    eager kernels, so a machine without a C++ compiler (or Triton on CUDA) still
    trains.
    """

    def __init__(self, basis: Basis) -> None:
        super().__init__(basis)
        self.failed = False
        eager = Kernels(basis)
        self._eager = eager
        self._compiled = {
            name: torch.compile(getattr(eager, name), dynamic=True)
            for name in KERNEL_NAMES
        }

    def _call(self, name: str, *args: Any) -> Any:
        if not self.failed:
            # Detached inputs all have requires_grad=False, which torch.compile
            # guards on, so training and evaluation share compiled code.
            inputs = [a.detach() if isinstance(a, Tensor) else a for a in args]
            try:
                # Past the recompile limit a kernel would run eagerly without a
                # word; raising instead reaches the warning below.
                with torch._dynamo.config.patch(
                    recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True
                ):
                    return self._compiled[name](*inputs)
            except Exception as error:  # Backends raise many types, so catch them all.
                self.failed = True
                first_line = (str(error).strip().splitlines() or [""])[0]
                logger.warning(
                    "torch.compile failed for the %s SLAF kernels (%s: %s). Using "
                    "the eager kernels. Set activation.compile=false to skip "
                    "compiling.",
                    self.basis.name,
                    type(error).__name__,
                    first_line[:200],
                )
        return getattr(self._eager, name)(*args)

    def _weighted_sum(self, z: Tensor, coefficients: Tensor, bias: Tensor) -> Tensor:
        return self._call("weighted_sum", z, coefficients, bias)

    def weighted_sum_backward(
        self, z: Tensor, coefficients: Tensor, grad_output: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self._call("weighted_sum_backward", z, coefficients, grad_output)

    def _term_moments(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._call("term_moments", z)

    def _term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor
    ) -> Tensor:
        return self._call("term_moments_backward", z, offsets, scales)

    def __deepcopy__(self, memo: dict[int, Any]) -> CompiledKernels:
        return self  # Copies share the compiled code, which contains no tensors.


# One compiled set per basis configuration, so layers with equal bases share code.
_COMPILED: dict[tuple[type, str], CompiledKernels] = {}


def compiled_kernels(basis: Basis) -> CompiledKernels:
    """Return the compiled kernels for ``basis``, shared by all equal bases."""
    key = (type(basis), repr(sorted(vars(basis).items())))
    if key not in _COMPILED:
        _COMPILED[key] = CompiledKernels(basis)
    return _COMPILED[key]


def reset_compiled_kernels() -> None:
    """Forget every compiled kernel and torch.compile's caches in this process.

    All bases of one class share the code object of each kernel, and torch compiles
    at most :data:`RECOMPILE_LIMIT` variants of a code object. The runner calls
    this before each run, so each job of a sweep in one process compiles afresh,
    and a failed compile warns again.
    """
    _COMPILED.clear()
    torch._dynamo.reset()


class BasisSum(Function):
    """f(x) = bias + sum_j coefficients[:, j] * g_j(x), per feature on dim 1.

    Inputs: x (N, C, *), coefficients (P, K), bias (P,) with P = C or 1, and the
    basis' :class:`Kernels`. Output has x's shape. Backward returns exact
    gradients for all three tensors. Double backward is not supported. ``track``,
    a pair of 0-dim tensors (low, high), is widened in place to x's range.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        coefficients: Tensor,
        bias: Tensor,
        kernels: Kernels,
        track: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        ctx.kernels = kernels
        ctx.save_for_backward(x, coefficients)
        return kernels.weighted_sum(x, coefficients, bias, track)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, coefficients = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        grad_x, grad_coefficients, grad_bias = ctx.kernels.weighted_sum_backward(
            x, coefficients, grad_output
        )
        return grad_x, grad_coefficients, grad_bias, None, None


class NormalizedBasisSum(Function):
    """f(x) = b + sum_j c_j (g_j(x) - mu_j) / sqrt(var_j + eps) in one autograd node.

    mu and var (C, K) are the biased batch moments of each term per feature,
    reduced over all dims but 1, and gradients flow through them. Forward makes
    two passes over x (moments, then the weighted sum with c / sqrt(var + eps)
    folded into the coefficients). Backward makes two: the weighted sum's gradient
    and sums, then the moments' part of dL/dx added in place.

    Inputs as in :class:`BasisSum` plus ``eps``. Returns the output and the
    detached batch mean and variance, for the running statistics.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        coefficients: Tensor,
        bias: Tensor,
        kernels: Kernels,
        eps: float,
        track: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        mean, variance = kernels.term_moments(x, track)
        rstd = torch.rsqrt(variance + eps)
        weights = coefficients * rstd  # (C, K) even when coefficients is (1, K)
        shift = bias - (weights * mean).sum(dim=-1)
        out = kernels.weighted_sum(x, weights, shift)
        ctx.kernels = kernels
        ctx.save_for_backward(x, coefficients, mean, rstd, weights)
        ctx.mark_non_differentiable(mean, variance)
        return out, mean, variance

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_output: Tensor, *unused: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        x, coefficients, mean, rstd, weights = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        # Direct part: dL/dx = g f'(x), dL/dw_j = sum g x^j, dL/dshift = sum g.
        grad_x, grad_weights, grad_shift = ctx.kernels.weighted_sum_backward(
            x, weights, grad_output
        )
        # shift = b - sum_j w_j mu_j and w_j = c_j / sqrt(var_j + eps).
        grad_weights = grad_weights - grad_shift.unsqueeze(1) * mean
        grad_mean = -grad_shift.unsqueeze(1) * weights
        grad_variance = -0.5 * grad_weights * coefficients * rstd.pow(3)
        grad_coefficients = grad_weights * rstd
        grad_bias = grad_shift
        if coefficients.shape[0] == 1:
            grad_coefficients = grad_coefficients.sum(dim=0, keepdim=True)
            grad_bias = grad_bias.sum(dim=0, keepdim=True)
        # The moments' part: d mean_j / dx = g_j' / n and d var_j / dx =
        # 2 (g_j - mean_j) g_j' / n, so it is sum_j g_j' (offset_j + scale_j g_j).
        count = x.numel() // x.shape[1]
        scales = grad_variance * (2.0 / count)
        offsets = (grad_mean - 2.0 * grad_variance * mean) / count
        grad_x = ctx.kernels.term_moments_backward(x, offsets, scales, out=grad_x)
        return grad_x, grad_coefficients, grad_bias, None, None, None
