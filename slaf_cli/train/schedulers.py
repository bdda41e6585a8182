"""Per-epoch learning-rate schedules from torch.optim.lr_scheduler."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
    StepLR,
)


def build_scheduler(
    optimizer: Optimizer,
    name: str,
    epochs: int,
    step_size: int = 10,
    gamma: float = 0.1,
    min_lr: float = 0.0,
    warmup_epochs: int = 0,
) -> LRScheduler | None:
    """Return a scheduler stepped once per epoch, or None for ``none`` without warm-up.

    A warm-up ramps the learning rate linearly from 1% of its value over
    ``warmup_epochs``; the named schedule then runs for the remaining epochs.
    """
    warmup = min(warmup_epochs, max(epochs - 1, 0))
    remaining = max(epochs - warmup, 1)
    if name == "cosine":
        main: LRScheduler | None = CosineAnnealingLR(
            optimizer, T_max=remaining, eta_min=min_lr
        )
    elif name == "step":
        main = StepLR(optimizer, step_size=step_size, gamma=gamma)
    elif name == "none":
        main = None
    else:
        raise ValueError(f"unknown scheduler {name!r}; expected none, cosine or step")
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup)
    if main is None:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
