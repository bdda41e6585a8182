"""The result summary of a run: ``summary.json`` (programs), ``summary.md`` (people)."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from slaf_cli.files import atomic_write_text

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape a run's numbers."""
    versions = {"python": platform.python_version()}
    for package in ("slaf_cli", "torch", "torchvision", "hydra-core", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``run_dir``, each atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(
        run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, default=str) + "\n"
    )
    atomic_write_text(run_dir / SUMMARY_MD, render_markdown(summary))


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_JSON).read_text(encoding="utf-8"))


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(summary: dict[str, Any]) -> str:
    """Render a short page for people: status, final metrics, model size, time."""
    lines = [f"# Run summary: {summary.get('run_name', 'run')}", ""]
    lines.append(f"- status: **{summary.get('status')}**")
    if summary.get("error"):
        lines.append(f"- error: {summary['error']}")
    for key in ("dataset", "model", "activation", "basis", "routine"):
        if key in summary.get("choices", {}):
            lines.append(f"- {key}: {summary['choices'][key]}")
    overrides = summary.get("overrides") or []
    lines.append(
        f"- overrides: `{' '.join(overrides)}`" if overrides else "- overrides: none"
    )
    lines.append(
        f"- best epoch: {summary.get('best_epoch')} "
        f"of {summary.get('epochs_completed')}"
    )
    params = summary.get("parameters", {})
    lines.append(
        f"- parameters: {params.get('total', '?'):,} total, "
        f"{params.get('activation', '?'):,} in activations"
    )
    lines.append(
        f"- wall time: {summary.get('wall_time_s', 0):.1f} s on {summary.get('device')}"
    )
    lines += ["", "| metric | value |", "|---|---|"]
    for key, value in summary.get("metrics", {}).items():
        lines.append(f"| {key} | {_format(value)} |")
    lines.append("")
    return "\n".join(lines)
