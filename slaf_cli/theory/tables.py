"""Result tables shared by the theory commands: markdown for people, CSV for tools."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slaf_cli.files import atomic_write_text

Row = Mapping[str, Any]


def format_value(value: Any) -> str:
    """Format a float with 3 significant digits (e-notation when small), else str()."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0.0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """Render ``rows`` as a GitHub markdown table with one column per key."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header line; floats keep full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
