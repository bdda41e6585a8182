"""The SLAF layer: f(x) = b + sum_j c_j g_j(x) with learned coefficients."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import Basis, feature_view, validate_range
from slaf_cli.nn.fit import fit_error, fit_target, get_target
from slaf_cli.nn.functional import (
    BasisSum,
    Kernels,
    NormalizedBasisSum,
    compiled_kernels,
    update_range,
)
from slaf_cli.nn.native import NativeKernels, supports_native

logger = logging.getLogger(__name__)

SHARING_MODES = ("channel", "neuron", "layer")
PENALTY_KINDS = ("l1", "l2")


class SLAF(nn.Module):
    """Self-learnable activation f(x) = b + sum_j c_j g_j(x) over a basis g_1..g_K.

    Input (N, C), (N, C, L) or (N, C, H, W) with C = ``num_features`` on dim 1, and
    the output has the same shape. ``sharing`` "channel" and "neuron" both learn one
    coefficient row per feature of dim 1 and "layer" learns one row for all, so
    ``coefficients`` is (P, K) and ``bias`` is (P,) with P = C or 1.

    With ``normalize=True`` every term is standardised per feature before weighting,
    f(x) = b + sum_j c_j (g_j(x) - mu_j) / sqrt(var_j + eps), like BatchNorm per term.
    Training uses batch statistics, through which gradients flow, and updates the
    (C, K) buffers ``running_mean`` and ``running_var`` (unbiased) with
    ``momentum``. Eval uses the running buffers. The statistics are per feature even
    when ``sharing="layer"``.

    ``fast=True`` uses custom autograd functions that never build the (..., K) term
    tensor and save only x for backward. Bases with ``streaming = False`` (bspline)
    and ``fast=False`` use the reference path, which stacks the terms and relies on
    autograd. Both compute the same function. The fast path's kernels come from
    :class:`~slaf_cli.nn.native.NativeKernels` (fused C, one pass over x, for
    monomial bases on CPU) when ``native=True``, from ``torch.compile`` (see
    :class:`~slaf_cli.nn.functional.CompiledKernels`) when ``compile=True``, which
    takes precedence, and from eager PyTorch ops otherwise. The first two fall
    back to the eager ops when their build fails.

    Buffers ``input_min`` and ``input_max`` hold the range of training inputs, for
    plotting. They are +inf and -inf before the first training batch and are
    updated on the first training batch and every ``range_interval``-th after it.
    The default 1 gives the exact range. A larger interval skips the min/max pass
    over x on the other batches, whose inputs may then lie outside the range.
    The native kernels fold the range into their first pass over x, so there it
    costs no pass of its own.
    """

    range_interval: int = 1

    def __init__(
        self,
        num_features: int,
        basis: Basis,
        sharing: str = "channel",
        normalize: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        init: str = "identity",
        init_range: Sequence[float] = (-3.0, 3.0),
        fast: bool = True,
        compile: bool = False,
        native: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if sharing not in SHARING_MODES:
            raise ConfigError(
                f"activation sharing {sharing!r} is invalid; set it to one of "
                f"{', '.join(SHARING_MODES)}"
            )
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        get_target(init)
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.basis = basis
        self.sharing = sharing
        self.normalize = normalize
        self.eps = eps
        self.momentum = momentum
        self.init = init
        self.init_range = validate_range(init_range, "init_range")
        self.fast = fast
        self.compile = compile
        self.native = native
        if compile:
            self.kernels: Kernels = compiled_kernels(basis)
        elif native and supports_native(basis):
            self.kernels = NativeKernels(basis)
        else:
            self.kernels = Kernels(basis)
        self.init_fit_error: dict[str, float] = {}
        self._training_batches = 0  # counts forward calls in training mode

        rows = 1 if sharing == "layer" else num_features
        terms = basis.num_terms
        self.coefficients = nn.Parameter(torch.empty(rows, terms, **factory))
        self.bias = nn.Parameter(torch.empty(rows, **factory))
        self.register_buffer("input_min", torch.tensor(float("inf"), **factory))
        self.register_buffer("input_max", torch.tensor(float("-inf"), **factory))
        if normalize:
            self.register_buffer(
                "running_mean", torch.zeros(num_features, terms, **factory)
            )
            self.register_buffer(
                "running_var", torch.ones(num_features, terms, **factory)
            )
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.running_mean: Tensor | None = None
            self.running_var: Tensor | None = None
            self.num_batches_tracked: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set (b, c) to the fit of the ``init`` target on ``init_range``; reset stats.

        "identity" uses the basis' own identity coefficients, which are exact for
        monomial (c_1 = 1, b = 0) and for the clamped orthogonal and B-spline bases
        on their ``input_range``. With ``normalize=True`` the same (b, c) weight the
        standardised terms, so the layer is the target only up to that
        standardisation: the monomial identity init gives (x - mu_1) /
        sqrt(var_1 + eps). ``init_fit_error`` ({"max", "rms"} on ``init_range``)
        always measures the fit of the raw, unstandardised terms.
        """
        if self.init == "identity":
            bias, coefficients = self.basis.identity_coefficients()
            max_error, rms_error = fit_error(
                self.basis, bias, coefficients, "identity", self.init_range
            )
        else:
            result = fit_target(self.basis, self.init, self.init_range)
            bias, coefficients = result.bias, result.coefficients
            max_error, rms_error = result.max_error, result.rms_error
        self.init_fit_error = {"max": max_error, "rms": rms_error}
        logger.debug("SLAF init %s fit error %s", self.init, self.init_fit_error)
        with torch.no_grad():
            self.coefficients.copy_(coefficients.expand_as(self.coefficients))
            self.bias.fill_(bias)
        self.input_min.fill_(float("inf"))
        self.input_max.fill_(float("-inf"))
        self._training_batches = 0
        if self.normalize:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3, 4) or x.shape[1] != self.num_features:
            raise ValueError(
                f"SLAF expects input (N, {self.num_features}[, L | H, W]), got "
                f"{tuple(x.shape)}"
            )
        track = None
        if self.training:
            if self._training_batches % self.range_interval == 0:
                track = (self.input_min, self.input_max)
            self._training_batches += 1
        return self._activate(x, self.training, track)

    def _activate(
        self,
        x: Tensor,
        use_batch_stats: bool,
        track: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if self.fast and self.basis.streaming:
            return self._activate_fast(x, use_batch_stats, track)
        if track is not None:
            update_range(x, *track)
        return self._activate_reference(x, use_batch_stats)

    def _activate_fast(
        self, x: Tensor, use_batch_stats: bool, track: tuple[Tensor, Tensor] | None
    ) -> Tensor:
        if not self.normalize:
            return BasisSum.apply(x, self.coefficients, self.bias, self.kernels, track)
        if use_batch_stats:
            out, mean, variance = NormalizedBasisSum.apply(
                x, self.coefficients, self.bias, self.kernels, self.eps, track
            )
            self._update_running_stats(x, mean, variance)
            return out
        mean, variance = self.running_mean, self.running_var
        # (c / s)(g - mu) + b = (c / s) g + (b - sum_j (c / s) mu): only the (C, K)
        # effective coefficients change, and autograd handles that small step.
        weights = self.coefficients * torch.rsqrt(variance + self.eps)
        bias = self.bias - (weights * mean).sum(dim=-1)
        return BasisSum.apply(x, weights, bias, self.kernels)

    def _activate_reference(self, x: Tensor, use_batch_stats: bool) -> Tensor:
        terms = self.basis(x)  # (N, C, *, K)
        ones = [1] * (x.dim() - 2)
        if self.normalize:
            if use_batch_stats:
                dims = [0, *range(2, x.dim())]
                variance, mean = torch.var_mean(terms, dim=dims, correction=0)
                self._update_running_stats(x, mean.detach(), variance.detach())
            else:
                mean, variance = self.running_mean, self.running_var
            shape = (self.num_features, *ones, -1)
            scale = torch.sqrt(variance.reshape(shape) + self.eps)
            terms = (terms - mean.reshape(shape)) / scale
        weights = self.coefficients.reshape(self.coefficients.shape[0], *ones, -1)
        return (terms * weights).sum(dim=-1) + feature_view(self.bias, x.dim())

    def _update_running_stats(self, x: Tensor, mean: Tensor, variance: Tensor) -> None:
        count = x.numel() // x.shape[1]
        unbiased = variance * (count / max(count - 1, 1))
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(unbiased, self.momentum)
        self.num_batches_tracked.add_(1)

    def penalty(self, kind: str = "l2") -> Tensor:
        """Return the sum of |c| ("l1") or of c^2 ("l2") over all coefficients.

        The bias is not included.
        """
        if kind == "l1":
            return self.coefficients.abs().sum()
        if kind == "l2":
            return self.coefficients.square().sum()
        raise ConfigError(
            f"penalty kind {kind!r} is invalid; set it to one of "
            f"{', '.join(PENALTY_KINDS)}"
        )

    @torch.no_grad()
    def curve(self, grid: Tensor, features: list[int] | None = None) -> Tensor:
        """Evaluate the activation of some features on a grid, in eval semantics.

        grid (G,) -> (G, F) for the F listed features (all C when None). Uses the
        running statistics when normalising and changes no buffer or mode.
        """
        selected = list(range(self.num_features)) if features is None else features
        bad = [f for f in selected if not 0 <= f < self.num_features]
        if bad:
            raise ValueError(
                f"features {bad} are out of range for a SLAF with "
                f"{self.num_features} features"
            )
        param = self.coefficients
        x = grid.to(device=param.device, dtype=param.dtype)
        x = x.unsqueeze(1).expand(-1, self.num_features).contiguous()
        return self._activate(x, use_batch_stats=False)[:, selected]

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, basis={self.basis.name}, "
            f"degree={self.basis.degree}, "
            f"sharing={self.sharing}, normalize={self.normalize}, fast={self.fast}"
            + (", compile=True" if self.compile else "")
            + (", native=True" if isinstance(self.kernels, NativeKernels) else "")
        )
