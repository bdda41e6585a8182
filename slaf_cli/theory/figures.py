"""Figures of the theory commands, saved as PNG with matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from slaf_cli.theory.approx import ApproxRow
from slaf_cli.theory.distill import DistillRow

# An exact fit (error 0) is drawn at this floor so it stays on the log axis.
LOG_FLOOR = 1e-17
MARKERS = "osD^vx"


def plot_approx(rows: Sequence[ApproxRow], path: Path) -> None:
    """Save max (solid) and RMS (dashed) error versus terms K, one panel per target."""
    targets = list(dict.fromkeys(row.target for row in rows))
    bases = list(dict.fromkeys(row.basis for row in rows))
    figure, axes = plt.subplots(
        1, len(targets), figsize=(4.2 * len(targets), 3.6), dpi=100, squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, target in zip(axes[0], targets, strict=True):
        for index, name in enumerate(bases):
            series = [r for r in rows if r.target == target and r.basis == name]
            terms = [r.terms for r in series]
            color = colors[index % len(colors)]
            max_errors = [max(r.max_error, LOG_FLOOR) for r in series]
            rms_errors = [max(r.rms_error, LOG_FLOOR) for r in series]
            # Markers and shrinking widths keep bases with identical errors visible
            # (monomial, chebyshev and legendre span the same polynomials).
            width = 2.6 - 0.35 * index
            marker = MARKERS[index % len(MARKERS)]
            axis.plot(
                terms,
                max_errors,
                linestyle="-",
                marker=marker,
                color=color,
                linewidth=width,
                markersize=3,
                label=name,
            )
            axis.plot(terms, rms_errors, "--", color=color, linewidth=1, alpha=0.6)
        axis.set_yscale("log")
        axis.set_title(target)
        axis.set_xlabel("terms K")
        axis.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("error (solid: max, dashed: RMS)")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_distill(
    rows: Sequence[DistillRow], metric: str, teacher_metric: float, path: Path
) -> None:
    """Save output error (log) and test metric versus degree, before/after fine-tune."""
    degrees = [row.degree for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), dpi=100)
    left.plot(
        degrees, [max(r.output_error, LOG_FLOOR) for r in rows], "o-", label="fitted"
    )
    left.plot(
        degrees,
        [max(r.finetuned_output_error, LOG_FLOOR) for r in rows],
        "s--",
        label="fine-tuned",
    )
    left.set_yscale("log")
    left.set_xlabel("degree")
    left.set_ylabel("relative output error vs teacher")
    right.plot(degrees, [r.metric for r in rows], "o-", label="fitted")
    right.plot(degrees, [r.finetuned_metric for r in rows], "s--", label="fine-tuned")
    right.axhline(teacher_metric, color="grey", linestyle=":", label="teacher")
    right.set_xlabel("degree")
    right.set_ylabel(f"test {metric}")
    for axis in (left, right):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
