"""Run the whole benchmark and turn its measurements into tables and target checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from slaf_cli.bench.epoch import EpochResult, bench_epoch
from slaf_cli.bench.report import (
    Environment,
    Row,
    environment_lines,
    markdown_table,
    text_table,
)
from slaf_cli.bench.training import (
    COMPILED_VARIANTS,
    VARIANTS,
    StepResult,
    bench_architecture,
)

logger = logging.getLogger(__name__)

MIB = 2**20


@dataclass(frozen=True)
class BenchOptions:
    """Settings of one ``slaf-bench`` run; ``slaf-bench --help`` describes each."""

    device: torch.device
    steps: int
    warmup: int
    degree: int
    mlp_batch: int
    cnn_batch: int
    mnist_root: Path | None
    epoch_batches: int | None
    compile: bool = True  # also time the torch.compile-d variants


@dataclass(frozen=True)
class BenchResults:
    """Every measurement of one run."""

    steps: dict[str, dict[str, StepResult]]  # architecture -> variant -> result
    epochs: list[EpochResult]  # empty when MNIST was not found
    build_seconds: float | None
    skipped_epoch: str | None  # why the epoch part did not run


@dataclass(frozen=True)
class Target:
    """One goal: a measured ratio and the bound it should meet."""

    name: str
    value: float
    bound: float
    at_most: bool

    @property
    def met(self) -> bool:
        return self.value <= self.bound if self.at_most else self.value >= self.bound


def run_benchmark(options: BenchOptions) -> BenchResults:
    """Measure training steps of both architectures, then the MNIST epoch paths."""
    steps = {}
    for architecture, batch in (("mlp", options.mlp_batch), ("cnn", options.cnn_batch)):
        logger.info("timing %s training steps (batch %d)", architecture, batch)
        steps[architecture] = bench_architecture(
            architecture,
            batch,
            options.device,
            options.degree,
            options.steps,
            options.warmup,
            VARIANTS + COMPILED_VARIANTS if options.compile else VARIANTS,
        )
    root = options.mnist_root
    if root is None:
        return BenchResults(steps, [], None, "disabled with --no-epoch")
    if not (root / "MNIST" / "raw").is_dir():
        reason = f"MNIST not found under {root}/MNIST/raw; pass --mnist-root"
        logger.warning("skipping the MNIST epoch benchmark: %s", reason)
        return BenchResults(steps, [], None, reason)
    epochs, build_seconds = bench_epoch(
        root, options.device, options.degree, options.epoch_batches
    )
    return BenchResults(steps, epochs, build_seconds, None)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _mib(count: int) -> str:
    return f"{count / MIB:.2f}"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x"


def step_rows(results: BenchResults) -> tuple[Row, list[Row]]:
    """Return the header and rows of the training-step table."""
    header = [
        "model",
        "activation",
        "ms/step",
        "time vs relu",
        "first step s",
        "saved MiB",
        "saved vs relu",
        "act. saved MiB",
        "act. saved vs relu",
    ]
    has_peak = any(
        r.peak_bytes is not None for v in results.steps.values() for r in v.values()
    )
    if has_peak:
        header += ["cuda peak MiB", "peak vs relu"]
    rows = []
    for architecture, variants in results.steps.items():
        relu = variants["relu"]
        for name, result in variants.items():
            row = [
                architecture,
                name,
                _ms(result.seconds),
                _ratio(result.seconds, relu.seconds),
                f"{result.first_step_seconds:.2f}",
                _mib(result.saved_bytes),
                _ratio(result.saved_bytes, relu.saved_bytes),
                _mib(result.activation_saved_bytes),
                _ratio(result.activation_saved_bytes, relu.activation_saved_bytes),
            ]
            if has_peak and result.peak_bytes and relu.peak_bytes:
                row += [
                    _mib(result.peak_bytes),
                    _ratio(result.peak_bytes, relu.peak_bytes),
                ]
            rows.append(row)
    return header, rows


def epoch_rows(results: BenchResults) -> tuple[Row, list[Row]]:
    """Return the header and rows of the MNIST epoch table."""
    header = ["data path", "batches", "epoch s", "vs compute", "loader-only s"]
    compute = results.epochs[0].seconds
    rows = []
    for epoch in results.epochs:
        loader = "-" if epoch.loader_seconds is None else f"{epoch.loader_seconds:.2f}"
        rows.append(
            [
                epoch.path,
                str(epoch.batches),
                f"{epoch.seconds:.2f}",
                _ratio(epoch.seconds, compute),
                loader,
            ]
        )
    return header, rows


def targets(results: BenchResults) -> list[Target]:
    """Compare the measured ratios with the performance goals of the fast path."""
    mlp, cnn = results.steps["mlp"], results.steps["cnn"]
    found = [
        Target("mlp: fast / relu step time", _div(mlp, "slaf fast"), 1.15, True),
        Target(
            "mlp: fast normalized / relu step time",
            _div(mlp, "slaf fast normalized"),
            1.4,
            True,
        ),
        Target("cnn: fast / relu step time", _div(cnn, "slaf fast"), 1.05, True),
        Target(
            "cnn: naive / fast step time",
            cnn["slaf naive"].seconds / cnn["slaf fast"].seconds,
            3.0,
            False,
        ),
    ]
    if "slaf compiled" in cnn:
        found += [
            Target(
                "mlp: compiled / relu step time", _div(mlp, "slaf compiled"), 1.15, True
            ),
            Target(
                "mlp: compiled normalized / relu step time",
                _div(mlp, "slaf compiled normalized"),
                1.4,
                True,
            ),
            Target(
                "cnn: compiled / relu step time", _div(cnn, "slaf compiled"), 1.05, True
            ),
            Target(
                "cnn: naive / compiled step time",
                cnn["slaf naive"].seconds / cnn["slaf compiled"].seconds,
                3.0,
                False,
            ),
        ]
    for architecture, variants in results.steps.items():
        fast = variants["slaf fast"].activation_saved_bytes
        relu = variants["relu"].activation_saved_bytes
        found.append(
            Target(
                f"{architecture}: fast / relu activation saved bytes",
                fast / relu,
                1.2,
                True,
            )
        )
    if results.epochs:
        by_path = {epoch.path: epoch for epoch in results.epochs}
        memory = by_path["in-memory"].seconds
        found.append(
            Target(
                "mnist epoch: in-memory / compute",
                memory / by_path["compute"].seconds,
                1.25,
                True,
            )
        )
        if "torchvision w2" in by_path:
            found.append(
                Target(
                    "mnist epoch: torchvision w2 / in-memory",
                    by_path["torchvision w2"].seconds / memory,
                    4.0,
                    False,
                )
            )
    return found


def _div(variants: dict[str, StepResult], name: str) -> float:
    return variants[name].seconds / variants["relu"].seconds


def target_rows(results: BenchResults, judged: bool = True) -> tuple[Row, list[Row]]:
    """Return the header and rows of the target table.

    With ``judged`` false (the ``--quick`` sizes, too small to compare against
    the goals) the "met" column reads "n/a (quick sizes)".
    """
    header = ["target", "measured", "goal", "met"]
    rows = []
    for target in targets(results):
        goal = f"{'<=' if target.at_most else '>='} {target.bound:.2f}"
        if not judged:
            met = "n/a (quick sizes)"
        else:
            met = "yes" if target.met else "no"
        rows.append([target.name, f"{target.value:.2f}", goal, met])
    return header, rows


def format_text(results: BenchResults, judged: bool = True) -> str:
    """Render all tables for a terminal; ``judged`` as in :func:`target_rows`."""
    parts = [text_table(*step_rows(results))]
    if results.epochs:
        parts.append(text_table(*epoch_rows(results)))
    else:
        parts.append(f"MNIST epoch skipped: {results.skipped_epoch}")
    parts.append(text_table(*target_rows(results, judged)))
    return "\n\n".join(parts)


def format_markdown(
    results: BenchResults,
    environment: Environment,
    command: str,
    options: BenchOptions,
    judged: bool = True,
) -> str:
    """Render the generated section of docs/benchmarks.md."""
    lines = ["## Latest run", "", *environment_lines(environment, command)]
    lines += [
        f"- Monomial degree {options.degree}, per-channel coefficients; median of "
        f"{options.steps} interleaved steps after {options.warmup} warm-up "
        f"round{'' if options.warmup == 1 else 's'}; "
        f"MLP batch {options.mlp_batch}, CNN batch {options.cnn_batch}.",
        "",
        "### Training step",
        "",
        markdown_table(*step_rows(results)),
        "",
        "### MNIST epoch (fast-SLAF MLP, batch 256)",
        "",
    ]
    if results.epochs:
        lines.append(markdown_table(*epoch_rows(results)))
        lines += [
            "",
            f"Building the in-memory dataset took {results.build_seconds:.2f} s.",
        ]
    else:
        lines.append(f"Skipped: {results.skipped_epoch}.")
    lines += ["", "### Targets", "", markdown_table(*target_rows(results, judged))]
    return "\n".join(lines)
