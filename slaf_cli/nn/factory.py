"""Activation factory: models request activations through numbered slots."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import Basis
from slaf_cli.nn.fit import get_target
from slaf_cli.nn.slaf import SHARING_MODES, SLAF

logger = logging.getLogger(__name__)

ACTIVATIONS = ("relu", "slaf", "hybrid", "gelu", "tanh", "silu", "prelu")
SLOT_KINDS = ("dense", "conv")


@dataclass(frozen=True)
class ActivationSlot:
    """One place where a model needs an activation.

    ``index`` counts slots from 0 in model order. ``stage`` names the model part,
    for example "block2" or "head". ``num_features`` is the size of dim 1 of the
    activation input. ``kind`` is "dense" for (N, C) or "conv" for (N, C, *).
    """

    index: int
    stage: str
    num_features: int
    kind: str


class ActivationFactory:
    """Build the activation module for each slot a model requests, and record it.

    ``name`` "slaf" puts a SLAF in every slot. "hybrid" puts one where the slot's
    index is in ``slaf_layers`` or its stage is in ``slaf_stages`` and a ReLU
    elsewhere. "prelu" learns one slope per feature, or one per layer when
    ``sharing="layer"``. Call ``check_hybrid`` after building the model.
    """

    def __init__(
        self,
        name: str,
        basis: Basis | None = None,
        sharing: str = "channel",
        init: str = "identity",
        init_range: Sequence[float] = (-3.0, 3.0),
        normalize: bool = False,
        eps: float = 1e-5,
        slaf_layers: Sequence[int] | None = None,
        slaf_stages: Sequence[str] | None = None,
        fast: bool = True,
        momentum: float = 0.1,
        compile: bool = False,
        native: bool = True,
    ):
        if name not in ACTIVATIONS:
            raise ConfigError(
                f"activation {name!r} is not known; set activation.name to one of "
                f"{', '.join(ACTIVATIONS)}"
            )
        if name in ("slaf", "hybrid") and basis is None:
            raise ConfigError(
                f"activation {name} requires a basis; set activation.basis (for "
                f"example basis=monomial)"
            )
        if sharing not in SHARING_MODES:
            raise ConfigError(
                f"activation sharing {sharing!r} is invalid; set it to one of "
                f"{', '.join(SHARING_MODES)}"
            )
        if name == "hybrid" and slaf_layers is None and slaf_stages is None:
            raise ConfigError(
                "activation hybrid needs slaf_layers or slaf_stages; set "
                "activation.slaf_layers (slot indices) or activation.slaf_stages "
                "(stage names)"
            )
        get_target(init)

        self.name = name
        self.basis = basis
        self.sharing = sharing
        self.init = init
        self.init_range = init_range
        self.normalize = normalize
        self.eps = eps
        self.momentum = momentum
        self.fast = fast
        self.compile = compile
        self.native = native
        if compile and name in ("slaf", "hybrid"):
            reference = not fast or (basis is not None and not basis.streaming)
            if reference:
                reason = "fast=false" if not fast else f"the {basis.name} basis"
                logger.warning(
                    "activation.compile=true has no effect: %s uses the reference "
                    "path, which is not compiled",
                    reason,
                )
        self.slaf_layers = list(slaf_layers or [])
        self.slaf_stages = list(slaf_stages or [])
        self.slots: list[ActivationSlot] = []

    def __call__(self, slot: ActivationSlot) -> nn.Module:
        """Record ``slot`` and return a new activation module for it."""
        if slot.kind not in SLOT_KINDS:
            raise ValueError(
                f"slot kind must be one of {SLOT_KINDS}, got {slot.kind!r}"
            )
        self.slots.append(slot)
        if self._uses_slaf(slot):
            return self._build_slaf(slot)
        if self.name == "prelu":
            count = 1 if self.sharing == "layer" else slot.num_features
            return nn.PReLU(num_parameters=count)
        if self.name == "gelu":
            return nn.GELU()
        if self.name == "tanh":
            return nn.Tanh()
        if self.name == "silu":
            return nn.SiLU()
        return nn.ReLU()

    def _uses_slaf(self, slot: ActivationSlot) -> bool:
        if self.name == "slaf":
            return True
        if self.name != "hybrid":
            return False
        return slot.index in self.slaf_layers or slot.stage in self.slaf_stages

    def _build_slaf(self, slot: ActivationSlot) -> SLAF:
        assert self.basis is not None
        return SLAF(
            slot.num_features,
            self.basis,
            sharing=self.sharing,
            normalize=self.normalize,
            eps=self.eps,
            momentum=self.momentum,
            init=self.init,
            init_range=self.init_range,
            fast=self.fast,
            compile=self.compile,
            native=self.native,
        )

    def check_hybrid(self) -> None:
        """Raise ConfigError if ``slaf_layers`` or ``slaf_stages`` name a missing slot.

        Does nothing unless ``name`` is "hybrid". The message lists the slot indices
        and stages the model requested.
        """
        if self.name != "hybrid":
            return
        indices = sorted({slot.index for slot in self.slots})
        stages = sorted({slot.stage for slot in self.slots})
        bad_layers = [i for i in self.slaf_layers if i not in indices]
        if bad_layers:
            raise ConfigError(
                f"activation.slaf_layers {bad_layers} are not activation slots of this "
                f"model; use indices from {indices}"
            )
        bad_stages = [s for s in self.slaf_stages if s not in stages]
        if bad_stages:
            raise ConfigError(
                f"activation.slaf_stages {bad_stages} are not stages of this model; "
                f"use stages from {stages}"
            )
        chosen = [slot.index for slot in self.slots if self._uses_slaf(slot)]
        logger.info("hybrid activation: SLAF in slots %s of %s", chosen, indices)


def slaf_modules(model: nn.Module) -> list[tuple[str, SLAF]]:
    """Return (qualified name, module) for every SLAF in ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SLAF)]
