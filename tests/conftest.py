"""Shared fixtures: the repository layout, the real MNIST folder and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests run in parallel workers (pytest-xdist) and start training subprocesses;
# one torch thread each keeps them from oversubscribing the cores. Set before
# torch is imported here and inherited by every subprocess.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def mnist_root() -> Path:
    """Folder holding ``MNIST/raw``: ``$SLAF_DATA_ROOT``, else ``../shared/data``."""
    return Path(os.environ.get("SLAF_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


requires_mnist = pytest.mark.skipif(
    not (mnist_root() / "MNIST" / "raw").is_dir(),
    reason=f"real MNIST not found under {mnist_root()}; set SLAF_DATA_ROOT",
)


def run_cli(
    args: list[str],
    cwd: Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    module: str = "slaf_cli.cli.train",
) -> subprocess.CompletedProcess[str]:
    """Run a console script's module (``slaf-train`` by default) as a user would,
    in ``cwd``, and capture its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run_dir(root: Path) -> Path:
    """The single run folder under ``root/outputs`` (fails if there are more)."""
    runs = [p for p in (root / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, found {runs}"
    return runs[0]
