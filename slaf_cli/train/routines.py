"""Training routines: what a SLAF network needs beyond a plain optimizer step.

The ``normalized`` routine lives inside the SLAF module, which is built with
``normalize=True``. Everything else lives here: gradient clipping, coefficient
penalties, a separate learning rate for SLAF parameters and a freeze schedule.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slaf_cli.nn.factory import slaf_modules

log = logging.getLogger(__name__)


@dataclass
class Routine:
    name: str = "plain"
    clip_grad_norm: float | None = None
    penalty: str = "none"  # none | l1 | l2
    penalty_weight: float = 0.0
    slaf_lr: float | None = None
    freeze_epochs: int = 0

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """Split parameters into SLAF ones (own lr, no weight decay) and the rest."""
        slaf_ids = {
            id(p) for _, module in slaf_modules(model) for p in module.parameters()
        }
        slaf = [p for p in model.parameters() if id(p) in slaf_ids]
        other = [p for p in model.parameters() if id(p) not in slaf_ids]
        groups = [{"params": other, "name": "weights"}]
        if slaf:
            groups.append(
                {
                    "params": slaf,
                    "name": "slaf",
                    "lr": self.slaf_lr if self.slaf_lr is not None else lr,
                    "weight_decay": 0.0,
                }
            )
        return groups

    def penalty_loss(self, model: nn.Module) -> Tensor | None:
        """Weighted sum of every SLAF module's coefficient penalty, or None."""
        if self.penalty == "none" or self.penalty_weight == 0.0:
            return None
        terms = [module.penalty(self.penalty) for _, module in slaf_modules(model)]
        if not terms:
            return None
        return self.penalty_weight * torch.stack(terms).sum()

    def clip_and_measure(self, model: nn.Module) -> float:
        """Clip grads to ``clip_grad_norm`` if set; return the norm before clipping."""
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.clip_grad_norm if self.clip_grad_norm is not None else math.inf
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def apply_freeze(self, model: nn.Module, epoch: int) -> None:
        """Hold SLAF parameters fixed during the first ``freeze_epochs`` epochs."""
        if self.freeze_epochs <= 0:
            return
        frozen = epoch < self.freeze_epochs
        for _, module in slaf_modules(model):
            for param in module.parameters():
                param.requires_grad_(not frozen)
        if epoch == self.freeze_epochs:
            log.info("Epoch %d: SLAF parameters unfrozen", epoch + 1)
