"""Compare training-step time of SLAF against ReLU. Run by hand, not a test.

    python -m slaf_cli.nn._bench_check [--steps 30]

Logs the median time of one training step (forward, cross-entropy, backward, SGD
step). The models are a 784-512-512-10 MLP at batch 256 and a two-block MNIST CNN
at batch 128. Each runs with ReLU and with SLAF (monomial degree 4, per feature) on
the fast and reference paths.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.slaf import SLAF

logger = logging.getLogger(__name__)

Activation = Callable[[int], nn.Module]


def build_mlp(activation: Activation) -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 512),
        activation(512),
        nn.Linear(512, 512),
        activation(512),
        nn.Linear(512, 10),
    )


def build_cnn(activation: Activation) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        activation(32),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        activation(64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        activation(128),
        nn.Linear(128, 10),
    )


def time_steps(
    models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int
) -> dict[str, float]:
    """Return the median seconds of one SGD training step per model.

    Models take turns step by step, so a load change on the machine hits all alike.
    The first 5 rounds are warm-up.
    """
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=1e-3)
        for name, model in models.items()
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(steps + 5):
        for name, model in models.items():
            start = time.perf_counter()
            optimizers[name].zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizers[name].step()
            if step >= 5:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logger.info("torch %s, %d threads", torch.__version__, torch.get_num_threads())
    torch.manual_seed(0)
    basis = build_basis("monomial", degree=4)

    variants: dict[str, Activation] = {
        "relu": lambda c: nn.ReLU(),
        "slaf fast": lambda c: SLAF(c, basis, sharing="neuron"),
        "slaf fast normalized": lambda c: SLAF(c, basis, normalize=True),
        "slaf reference": lambda c: SLAF(c, basis, fast=False),
    }
    cases = {
        "mlp": (build_mlp, torch.randn(256, 784)),
        "cnn": (build_cnn, torch.randn(128, 1, 28, 28)),
    }
    for case, (build, x) in cases.items():
        y = torch.randint(0, 10, (x.shape[0],))
        models = {name: build(activation) for name, activation in variants.items()}
        times = time_steps(models, x, y, args.steps)
        base = times["relu"]
        for name, seconds in times.items():
            logger.info(
                "%s %-22s %7.2f ms  %.2fx relu",
                case,
                name,
                seconds * 1e3,
                seconds / base,
            )
        logger.info(
            "%s reference / fast: %.2fx",
            case,
            times["slaf reference"] / times["slaf fast"],
        )


if __name__ == "__main__":
    main()
