"""Loss and metrics of the two task kinds, accumulated over batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Task:
    """Loss, metrics and best-epoch rule of a task kind.

    ``monitor`` is the validation metric that selects the best epoch. ``mode`` is
    ``max`` when larger is better.
    """

    kind: str  # classification | regression
    monitor: str
    mode: str

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.kind == "classification":
            return F.cross_entropy(output, target)
        return F.mse_loss(output, target.view_as(output))

    def better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def meter(self) -> MetricMeter:
        return MetricMeter(self.kind)


def make_task(kind: str) -> Task:
    if kind == "classification":
        return Task(kind, monitor="val/acc", mode="max")
    if kind == "regression":
        return Task(kind, monitor="val/rmse", mode="min")
    raise ValueError(
        f"unknown task kind {kind!r}; expected classification or regression"
    )


class MetricMeter:
    """Sums of loss and metric statistics over batches; ``compute`` returns means.

    Classification: ``loss`` (cross-entropy) and ``acc``. Regression: ``loss``
    (MSE), ``rmse`` and ``r2`` (1 - SSE/SST over all targets seen).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.sse = 0.0
        self.target_sum = 0.0
        self.target_sq_sum = 0.0
        self.target_count = 0

    @torch.no_grad()
    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        batch = target.shape[0]
        self.count += batch
        self.loss_sum += float(loss) * batch
        if self.kind == "classification":
            self.correct += int((output.argmax(dim=1) == target).sum())
            return
        target = target.view_as(output).double()
        self.sse += float(((output.double() - target) ** 2).sum())
        self.target_sum += float(target.sum())
        self.target_sq_sum += float((target**2).sum())
        self.target_count += target.numel()

    _SUMS = (
        "count",
        "loss_sum",
        "correct",
        "sse",
        "target_sum",
        "target_sq_sum",
        "target_count",
    )

    def all_reduce(self, device: torch.device) -> MetricMeter:
        """Return a copy of this meter whose sums cover every rank."""
        from slaf_cli.train.distributed import all_reduce_sum

        values = torch.tensor(
            [float(getattr(self, k)) for k in self._SUMS],
            dtype=torch.float64,
            device=device,
        )
        all_reduce_sum(values)
        reduced = MetricMeter(self.kind)
        for key, value in zip(self._SUMS, values.tolist(), strict=True):
            setattr(reduced, key, value)
        return reduced

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {}
        metrics = {"loss": self.loss_sum / self.count}
        if self.kind == "classification":
            metrics["acc"] = self.correct / self.count
            return metrics
        n = self.target_count
        metrics["rmse"] = (self.sse / n) ** 0.5
        sst = self.target_sq_sum - self.target_sum**2 / n
        metrics["r2"] = 1.0 - self.sse / sst if sst > 0 else float("nan")
        return metrics
