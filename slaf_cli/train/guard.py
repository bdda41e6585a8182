"""Divergence guard and signal handling: how a run stops without losing work."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

POLICIES = ("stop", "skip", "rollback")
_MAX_SKIP_WARNINGS = 5


class Diverged(RuntimeError):
    """A non-finite loss, gradient or coefficient that the policy did not absorb."""

    def __init__(self, quantity: str, epoch: int, step: int) -> None:
        super().__init__(f"non-finite {quantity} at epoch {epoch}, step {step}")
        self.quantity = quantity
        self.epoch = epoch
        self.step = step


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the loop saved a checkpoint after the current step."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report


class DivergenceGuard:
    """Policy for non-finite values found during a step.

    ``stop`` raises :class:`Diverged`. ``skip`` drops and counts a step whose loss or
    gradient is non-finite. A non-finite coefficient after a step still raises,
    because the weights already changed. ``rollback`` raises too, and the trainer
    reloads the last checkpoint with learning rates times ``lr_factor``, at most
    ``max_rollbacks`` times.
    """

    def __init__(
        self, policy: str = "stop", max_rollbacks: int = 3, lr_factor: float = 0.5
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"guard policy {policy!r} is invalid; use {', '.join(POLICIES)}"
            )
        self.policy = policy
        self.max_rollbacks = max_rollbacks
        self.lr_factor = lr_factor
        self._skip_warnings = 0

    def handle(self, quantity: str, value: float, epoch: int, step: int) -> None:
        """Absorb a non-finite ``quantity`` (skip policy) or raise :class:`Diverged`."""
        if self.policy != "skip":
            raise Diverged(quantity, epoch, step)
        self._skip_warnings += 1
        if self._skip_warnings <= _MAX_SKIP_WARNINGS:
            log.warning(
                "Skipped step %d of epoch %d: %s is %s", step, epoch, quantity, value
            )
        if self._skip_warnings == _MAX_SKIP_WARNINGS:
            log.warning("Further skipped steps are counted in the summary, not logged")

    def escalate(self, quantity: str, epoch: int, step: int) -> None:
        raise Diverged(quantity, epoch, step)

    def may_roll_back(self, checkpointer: object | None, rollbacks: int) -> bool:
        if self.policy != "rollback" or checkpointer is None:
            return False
        last: Path = checkpointer.last_path  # type: ignore[attr-defined]
        return last.is_file() and rollbacks < self.max_rollbacks


class SignalFlag:
    """Record the first SIGINT/SIGTERM; a second one ends the process at once.

    Checkpoints and summaries are written atomically, so ending the process between
    two writes leaves every file either old or new.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            os._exit(128 + signum)
        self.received = signum
        log.warning(
            "%s received: saving a checkpoint after the current step "
            "(send it again to exit at once)",
            signal.Signals(signum).name,
        )

    def install(self) -> SignalFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
