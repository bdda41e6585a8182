"""Small runs trained for real once per session, shared by the theory tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slaf_cli.theory.runs import train_run

# 4 inputs and two degree-3 SLAF layers give one degree-9 polynomial with at most
# C(4 + 9, 9) = 715 terms, which sympy expands in about a second.
POLYNOMIAL_RUN = [
    "dataset=polynomial",
    "dataset.n_samples=600",
    "model.widths=[6,6]",
    "activation=slaf",
    "basis=monomial",
    "basis.degree=3",
    "trainer.epochs=1",
    "trainer.max_steps_per_epoch=15",
    "trainer.progress=off",
]


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A monomial SLAF MLP trained 15 steps with the plain routine."""
    folder = tmp_path_factory.mktemp("run_plain")
    return train_run([*POLYNOMIAL_RUN, "routine=plain"], folder)


@pytest.fixture(scope="session")
def normalized_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same MLP trained with the normalized routine (running statistics)."""
    folder = tmp_path_factory.mktemp("run_normalized")
    return train_run([*POLYNOMIAL_RUN, "routine=normalized"], folder)


@pytest.fixture(params=["plain", "normalized"])
def polynomial_run(request: pytest.FixtureRequest) -> Path:
    """Each of the two trained runs in turn."""
    return request.getfixturevalue(f"{request.param}_run")


def run_theory_cli(
    command: str, args: list[str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``slaf-<command>`` as a user would, in ``cwd``, and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "slaf_cli.cli.theory", command, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_output_dir(root: Path) -> Path:
    """The single run folder under ``root/outputs`` (fails if there are more)."""
    runs = [p for p in (root / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, found {runs}"
    return runs[0]
