"""MNIST epoch time: torchvision's per-sample loader against the in-memory path.

All paths train the same fast-SLAF MLP (784-512-512-10, batch 256) for the same
number of batches, so the differences are the data path alone:

- ``compute``: the training steps on one batch of real MNIST images, made once,
  so no data loading.
- ``in-memory``: :class:`~slaf_cli.data.loader.BatchLoader` over the decoded,
  standardised tensors that :func:`slaf_cli.data.builders.mnist` returns.
- ``torchvision wN``: ``torchvision.datasets.MNIST`` with ``ToTensor`` and
  ``Normalize`` per PIL image, batched by a ``DataLoader`` with N worker processes.

Each path also runs once without training steps, which times the loader alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from slaf_cli.bench.training import build_model, training_step
from slaf_cli.data.builders import mnist
from slaf_cli.data.loader import BatchLoader

logger = logging.getLogger(__name__)

BATCH_SIZE = 256
# The usual MNIST statistics of torchvision examples, for the per-sample pipeline.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class EpochResult:
    """Seconds of one data path: with training steps and loader alone."""

    path: str
    batches: int
    seconds: float
    loader_seconds: float | None


def _run_epoch(
    batches: Iterable[tuple[Tensor, Tensor]],
    limit: int,
    model: nn.Module | None,
    device: torch.device,
) -> tuple[float, int]:
    """Iterate up to ``limit`` batches, training when ``model`` is given.

    Returns (seconds, batches seen). Worker start-up counts, as in a real epoch.
    """
    optimizer = (
        torch.optim.SGD(model.parameters(), lr=1e-3) if model is not None else None
    )
    count = 0
    start = time.perf_counter()
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if model is not None and optimizer is not None:
            training_step(model, optimizer, x, y)
        count += 1
        if count == limit:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, count


def _torchvision_loader(root: Path, workers: int) -> Iterable[tuple[Tensor, Tensor]]:
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )
    dataset = torchvision.datasets.MNIST(
        str(root), train=True, download=False, transform=transform
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers
    )


def bench_epoch(
    root: Path,
    device: torch.device,
    degree: int,
    max_batches: int | None,
    workers: tuple[int, ...] = (0, 2),
) -> tuple[list[EpochResult], float]:
    """Time one MNIST epoch per data path; also return the one-off build seconds.

    ``max_batches`` stops each epoch early (None runs all 235 batches of 60 000
    training images). The build time is :func:`mnist` decoding or reading its cache
    once, which the in-memory path pays per run, not per epoch.
    """
    start = time.perf_counter()
    bundle = mnist(root=root, download=False, val_fraction=0.0)
    build_seconds = time.perf_counter() - start
    loader = BatchLoader(bundle.train, BATCH_SIZE, shuffle=True, seed=0, device=device)
    limit = len(loader) if max_batches is None else min(max_batches, len(loader))
    torch.manual_seed(0)
    model = build_model("mlp", "slaf fast", degree).to(device)

    # The first batch of the epoch: real images, so values match the other paths.
    x, y = next(iter(loader))
    # Warm-up, so the first measured path does not pay for lazy initialisation.
    _run_epoch([(x, y)] * 3, 3, model, device)
    results = []
    seconds, count = _run_epoch([(x, y)] * limit, limit, model, device)
    results.append(EpochResult("compute", count, seconds, None))

    paths: list[tuple[str, object]] = [("in-memory", None)]
    paths += [(f"torchvision w{n}", n) for n in workers]
    for name, worker_count in paths:
        logger.info("timing MNIST epoch: %s (%d batches)", name, limit)
        timings = []
        for train in (True, False):
            if worker_count is None:
                batches: Iterable[tuple[Tensor, Tensor]] = loader
            else:
                batches = _torchvision_loader(root, int(worker_count))
            seconds, count = _run_epoch(
                batches, limit, model if train else None, device
            )
            timings.append(seconds)
        results.append(EpochResult(name, count, timings[0], timings[1]))
    return results, build_seconds
