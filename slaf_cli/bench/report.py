"""Machine description, result tables and the generated part of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from slaf_cli.nn.native import native_compiler, native_library

BEGIN_MARK = "<!-- slaf-bench:begin (generated, rewritten by each run) -->"
END_MARK = "<!-- slaf-bench:end -->"


@dataclass(frozen=True)
class Environment:
    """Machine of a benchmark run: hardware, load and software versions."""

    cpu_model: str
    cores: int
    load_average: str
    device: str
    threads: int
    torch_version: str
    python_version: str
    native_kernels: str  # the compiled library, or why the eager ops run instead


def cpu_model() -> str:
    """Return the CPU model from /proc/cpuinfo, else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_environment(device: torch.device) -> Environment:
    """Describe this machine now; call it before the benchmark loads the CPU."""
    try:
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unavailable"
    if device.type == "cuda":
        device_name = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        device_name = "cpu"
    return Environment(
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 0,
        load_average=load,
        device=device_name,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        native_kernels=describe_native(device),
    )


def describe_native(device: torch.device) -> str:
    """Name the native SLAF kernels that the fast rows use on this device.

    Builds them if needed, so the build time stays out of the measured steps.
    """
    if device.type != "cpu":
        return f"not used on {device.type} (eager PyTorch ops)"
    library = native_library()
    if library is None:
        return "unavailable, the build failed (eager PyTorch ops)"
    return f"{Path(library._name).name}, built with {native_compiler()}"


Row = list[str]


def text_table(header: Row, rows: list[Row]) -> str:
    """Format rows as left-aligned, space-padded columns for a terminal."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(header: Row, rows: list[Row]) -> str:
    """Format rows as a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment_lines(environment: Environment, command: str) -> list[str]:
    """Return Markdown bullet lines for the command and the machine."""
    return [
        f"- Command: `{command}`",
        f"- CPU: {environment.cpu_model}, {environment.cores} cores; load average "
        f"at start (1, 5, 15 min): {environment.load_average}",
        f"- Device: {environment.device}, torch threads: {environment.threads}",
        f"- torch {environment.torch_version}, Python {environment.python_version}",
        f"- Native SLAF kernels: {environment.native_kernels}",
    ]


def update_markdown(path: Path, section: str) -> None:
    """Write ``section`` between the generated-section marks of ``path``.

    Text outside the marks is kept. A file without the marks gets the section
    appended, and a missing file is created with a title.
    """
    block = f"{BEGIN_MARK}\n\n{section.strip()}\n\n{END_MARK}\n"
    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = "# Benchmarks\n\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
