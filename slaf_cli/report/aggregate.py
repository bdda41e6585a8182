"""The sweep table: one row per run of a multirun, written when the sweep ends."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from slaf_cli.files import atomic_write_text
from slaf_cli.report.summary import SUMMARY_JSON

log = logging.getLogger(__name__)

SWEEP_CSV = "summary.csv"
SWEEP_MD = "summary.md"


def collect_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """Collect one row per job folder: its overrides, status and final metrics.

    A job folder without a readable ``summary.json`` (the job crashed before writing
    one) becomes a row with status ``failed`` instead of being dropped.
    """
    rows = []
    job_dirs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
        key=lambda p: (len(p.name), p.name),
    )
    for job_dir in job_dirs:
        row: dict[str, Any] = {"job": job_dir.name}
        try:
            summary = json.loads((job_dir / SUMMARY_JSON).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            row.update(
                status="failed",
                error=f"no readable summary.json ({error.__class__.__name__})",
            )
            rows.append(row)
            continue
        row["overrides"] = " ".join(summary.get("overrides") or [])
        row["status"] = summary.get("status")
        row["best_epoch"] = summary.get("best_epoch")
        row.update(summary.get("metrics", {}))
        row["wall_time_s"] = summary.get("wall_time_s")
        if summary.get("error"):
            row["error"] = summary["error"]
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_sweep_tables(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` at the sweep root; return the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir)
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / SWEEP_CSV, buffer.getvalue())

    lines = [f"# Sweep summary: {len(rows)} runs", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    atomic_write_text(sweep_dir / SWEEP_MD, "\n".join(lines) + "\n")
    return rows


class AggregateSweep(Callback):
    """Hydra callback: at the end of a multirun, tabulate every job's summary."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            log.warning("Sweep folder %s not found; no sweep table written", sweep_dir)
            return
        rows = write_sweep_tables(sweep_dir)
        not_ok = [r["job"] for r in rows if r.get("status") != "completed"]
        log.info(
            "Sweep table of %d runs written to %s", len(rows), sweep_dir / SWEEP_MD
        )
        if not_ok:
            log.warning("Runs that did not complete: %s", ", ".join(not_ok))
