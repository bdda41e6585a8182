"""One training loop for classification and regression, with checkpoints and guards."""

from __future__ import annotations

import copy
import logging
import math
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from slaf_cli.nn.factory import slaf_modules
from slaf_cli.train.checkpoint import Checkpointer, capture_rng, restore_rng
from slaf_cli.train.distributed import DistContext, any_rank
from slaf_cli.train.guard import Diverged, DivergenceGuard, Interrupted, SignalFlag
from slaf_cli.train.routines import Routine
from slaf_cli.train.tasks import MetricMeter, Task

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives what the loop measures; implemented by ``slaf_cli.report``."""

    def log_step(self, step: int, scalars: dict[str, float]) -> None: ...

    def log_epoch(
        self, epoch: int, scalars: dict[str, float], model: nn.Module
    ) -> None: ...


class Loader(Protocol):
    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class TrainState:
    """Progress of a run: everything needed to continue it, apart from tensors."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch done (interrupted runs)
    best_value: float | None = None  # best value of the task's monitored metric
    best_epoch: int = 0  # 1-based epoch of best_value; 0 before any evaluation
    skipped_steps: int = 0  # steps dropped by the skip policy
    rollbacks: int = 0  # reloads of the last good checkpoint
    lr_scale: float = 1.0  # product of the rollbacks' learning-rate factors
    history: list[dict[str, float]] = field(default_factory=list)
    meter: dict[str, Any] | None = None  # partial train metrics of an interrupted epoch

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        return cls(**values)


class Trainer:
    """Run epochs of optimizer steps, evaluate, and keep the best-validation weights.

    The scheduler steps once per epoch. With a ``checkpointer`` the loop saves
    ``last.pt`` before the first step and after every epoch, and ``best.pt`` whenever
    the monitored metric improves. ``guard`` decides what a non-finite loss,
    gradient or SLAF coefficient does; ``signals`` stops the loop after the current
    step with a checkpoint (raising :class:`Interrupted`).

    Under DDP, ``model`` is the plain module (its state dict has no ``module.``
    prefix) and ``forward_model`` the DistributedDataParallel wrapper that runs the
    steps. Loaders yield this rank's shard, and metrics are summed over ranks.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        routine: Routine,
        task: Task,
        train_loader: Loader,
        val_loader: Loader | None,
        epochs: int,
        eval_every: int = 1,
        max_steps_per_epoch: int | None = None,
        log_every: int = 20,
        reporter: Reporter | None = None,
        progress: bool = False,
        checkpointer: Checkpointer | None = None,
        guard: DivergenceGuard | None = None,
        signals: SignalFlag | None = None,
        forward_model: nn.Module | None = None,
        context: DistContext | None = None,
    ) -> None:
        self.model = model
        self.forward_model = forward_model if forward_model is not None else model
        self.context = context or DistContext()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.routine = routine
        self.task = task
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.epochs = epochs
        self.eval_every = eval_every
        self.max_steps_per_epoch = max_steps_per_epoch
        self.log_every = log_every
        self.reporter = reporter
        self.progress = progress
        self.checkpointer = checkpointer
        self.guard = guard or DivergenceGuard()
        self.signals = signals
        self.state = TrainState()
        self.best_weights: dict[str, Tensor] | None = None
        self._stop_requested = False
        self._slaf_parameters = [
            p for _, module in slaf_modules(model) for p in module.parameters()
        ]

    # ------------------------------------------------------------------ state

    def training_state(self) -> dict[str, Any]:
        """Return the full state saved as ``last.pt``."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "rng": capture_rng(),
            "train_state": self.state.to_dict(),
        }

    def load_training_state(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`training_state`."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None and checkpoint["scheduler"] is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        restore_rng(checkpoint["rng"])
        self.state = TrainState.from_dict(checkpoint["train_state"])

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint of an earlier process, on this trainer's schedule.

        The scheduler state is not loaded. Instead, the freshly built scheduler is
        stepped again up to the saved epoch. An unchanged schedule gets the same
        learning rates, because the steps repeat the same arithmetic. A changed one
        (``trainer.epochs`` raised on resume, say) continues on the new schedule.
        The learning-rate scale of earlier rollbacks carries over.
        """
        start_lrs = [group["lr"] for group in self.optimizer.param_groups]
        saved = checkpoint["scheduler"]
        self.load_training_state({**checkpoint, "scheduler": None})
        if self.scheduler is None:
            return
        scale = self.state.lr_scale
        for group, lr in zip(self.optimizer.param_groups, start_lrs, strict=True):
            group["lr"] = lr * scale
        for scheduler in [self.scheduler, *getattr(self.scheduler, "_schedulers", [])]:
            scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]
        steps = saved["last_epoch"] if saved is not None else self.state.epoch
        with warnings.catch_warnings():
            # torch warns that scheduler.step() runs before optimizer.step().
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(steps):
                self.scheduler.step()

    def save_last(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save_last(self.model, self.training_state())

    # ------------------------------------------------------------------ steps

    def train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float] | None:
        """Take one optimizer step; return the output, task loss and gradient norm.

        Returns None when the guard's ``skip`` policy dropped the step.
        """
        output = self.forward_model(x)
        loss = self.task.loss(output, y)
        total = loss
        penalty = self.routine.penalty_loss(self.model)
        if penalty is not None:
            total = total + penalty
        # One collective decides for every rank: a rank that skipped backward alone
        # would leave the others waiting in the gradient all-reduce.
        signalled = self.signals is not None and self.signals.received is not None
        non_finite, self._stop_requested = any_rank(
            [not bool(torch.isfinite(total)), signalled], x.device
        )
        if non_finite:
            return self._non_finite("loss", float(total.detach()))

        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = self.routine.clip_and_measure(self.model)
        if not math.isfinite(grad_norm):
            return self._non_finite("gradient norm", grad_norm)

        self.optimizer.step()
        self.state.step += 1
        if not all(bool(torch.isfinite(p).all()) for p in self._slaf_parameters):
            # The weights already changed, so this step cannot be skipped.
            self.guard.escalate(
                "SLAF coefficient", self.state.epoch + 1, self.state.step
            )
        return output, loss.detach(), grad_norm

    def _non_finite(self, quantity: str, value: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.guard.handle(quantity, value, self.state.epoch + 1, self.state.step + 1)
        self.state.skipped_steps += 1
        return None

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (0-based ``epoch``); return its running train metrics.

        An epoch interrupted earlier continues after its last finished batch, with
        its partial metrics restored.
        """
        self.model.train()
        self.routine.apply_freeze(self.model, epoch)
        self.train_loader.set_epoch(epoch)
        meter = self.task.meter()
        if self.state.meter is not None and self.context.is_main:
            # The saved partial sums already cover every rank; rank 0 carries them.
            vars(meter).update(self.state.meter)
        start = self.state.batch_in_epoch
        total = len(self.train_loader)
        if self.max_steps_per_epoch is not None:
            total = min(total, self.max_steps_per_epoch)
        bar = tqdm(
            total=total,
            initial=start,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        finished_steps = 0
        for batch_index, (x, y) in enumerate(self.train_loader):
            if batch_index >= total:
                break
            if batch_index < start:
                # Done before an interrupt; iterating keeps the augmentation RNG.
                continue
            result = self.train_step(x, y)
            self.state.batch_in_epoch = batch_index + 1
            if result is not None:
                finished_steps += 1
                output, loss, grad_norm = result
                meter.update(output.detach(), y, loss.detach())
                self._log_step(float(loss), grad_norm)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in meter.compute().items()})
            if self._stop_requested:
                self._save_interrupted(meter)
        bar.close()
        if finished_steps == 0 and total > start:
            # The skip policy dropped every step: the weights did not move at all.
            raise Diverged("loss or gradient in every step", epoch + 1, self.state.step)
        self.state.batch_in_epoch = 0
        self.state.meter = None
        return {f"train/{k}": v for k, v in self._reduce(meter).compute().items()}

    def _reduce(self, meter: MetricMeter) -> MetricMeter:
        if not self.context.enabled:
            return meter
        return meter.all_reduce(next(self.model.parameters()).device)

    def _log_step(self, loss: float, grad_norm: float) -> None:
        if self.reporter is None or self.state.step % self.log_every != 0:
            return
        scalars = {
            "train/step_loss": loss,
            "train/grad_norm": grad_norm,
            "train/lr": self.optimizer.param_groups[0]["lr"],
        }
        self.reporter.log_step(self.state.step, scalars)

    def _save_interrupted(self, meter: MetricMeter) -> None:
        self.state.meter = dict(vars(self._reduce(meter)))
        self.save_last()
        received = self.signals.received if self.signals is not None else None
        raise Interrupted(received or signal.SIGTERM)

    @torch.no_grad()
    def evaluate(self, loader: Loader, prefix: str) -> dict[str, float]:
        """Metrics of the model in eval mode over one pass of ``loader``."""
        self.model.eval()
        meter = self.task.meter()
        for x, y in loader:
            output = self.model(x)
            meter.update(output, y, self.task.loss(output, y))
        return {f"{prefix}/{k}": v for k, v in self._reduce(meter).compute().items()}

    # ------------------------------------------------------------------ epochs

    def fit(self) -> TrainState:
        """Train from ``state.epoch`` to ``epochs``; return the final state.

        Raises :class:`Diverged` when the guard gives up and :class:`Interrupted`
        after a signal; both leave a finite ``last.pt``.
        """
        if self.state.epoch == 0 and self.state.batch_in_epoch == 0:
            self.save_last()  # the rollback target before the first epoch ends
        while self.state.epoch < self.epochs:
            try:
                self._run_epoch()
            except Diverged as diverged:
                if not self.guard.may_roll_back(
                    self.checkpointer, self.state.rollbacks
                ):
                    raise
                self._roll_back(diverged)
        return self.state

    def _run_epoch(self) -> None:
        epoch = self.state.epoch
        started = time.perf_counter()
        scalars = self.train_epoch(epoch)
        scalars["train/lr"] = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()

        last = epoch + 1 == self.epochs
        improved = False
        if self.val_loader is not None and ((epoch + 1) % self.eval_every == 0 or last):
            scalars.update(self.evaluate(self.val_loader, "val"))
            improved = self._track_best(epoch, scalars)
        elif self.val_loader is None:
            # Without a validation split the latest weights count as the best.
            improved = True
            self.state.best_epoch = epoch + 1
            self.best_weights = copy.deepcopy(self.model.state_dict())

        scalars["time/epoch_s"] = time.perf_counter() - started
        self.state.epoch = epoch + 1
        self.state.history.append({"epoch": epoch + 1, **scalars})
        log.info("Epoch %d/%d: %s", epoch + 1, self.epochs, format_scalars(scalars))
        if self.reporter is not None:
            self.reporter.log_epoch(epoch + 1, scalars, self.model)
        self.save_last()
        if improved and self.checkpointer is not None:
            value = (
                self.state.best_value if self.state.best_value is not None else math.nan
            )
            self.checkpointer.save_best(self.model, epoch + 1, value)
        signalled = self.signals is not None and self.signals.received is not None
        if any_rank([signalled], next(self.model.parameters()).device)[0]:
            self._save_interrupted(self.task.meter())

    def _roll_back(self, diverged: Diverged) -> None:
        """Reload ``last.pt`` and scale the learning rates down by the guard's factor.

        The scale accumulates over rollbacks, also when two rollbacks load the same
        checkpoint.
        """
        rollbacks = self.state.rollbacks + 1
        lr_scale = self.state.lr_scale * self.guard.lr_factor
        self.load_training_state(self.checkpointer.load_last())
        factor = lr_scale / self.state.lr_scale
        self.state.rollbacks = rollbacks
        self.state.lr_scale = lr_scale
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        if self.scheduler is not None:
            self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        log.warning(
            "%s; rolled back to the end of epoch %d with learning rates x%g "
            "(rollback %d of %d)",
            diverged,
            self.state.epoch,
            lr_scale,
            rollbacks,
            self.guard.max_rollbacks,
        )

    def _track_best(self, epoch: int, scalars: dict[str, float]) -> bool:
        value = scalars.get(self.task.monitor)
        if value is None or not math.isfinite(value):
            return False
        if not self.task.better(value, self.state.best_value):
            return False
        self.state.best_value = value
        self.state.best_epoch = epoch + 1
        self.best_weights = copy.deepcopy(self.model.state_dict())
        return True

    def load_best(self) -> None:
        """Put the best-validation weights back into the model (no-op if none)."""
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


def format_scalars(scalars: dict[str, float]) -> str:
    """``key=value`` pairs with 4 significant digits, learning rates in e-notation."""
    parts = []
    for key, value in scalars.items():
        parts.append(
            f"{key}={value:.3e}" if key.endswith("lr") else f"{key}={value:.4g}"
        )
    return " ".join(parts)
