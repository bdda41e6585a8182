"""The theory commands run as a user would: files, exit codes, one-line errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.theory.conftest import only_output_dir, run_theory_cli

SMALL_SWEEP = [
    "targets=[tanh,relu]",
    "bases=[monomial,fourier]",
    "degrees=[1,2,3]",
    "basis_options={}",
    "num_points=201",
    "eval_points=401",
]

BAD_INPUTS = [
    # (command, overrides, text the one error line must contain)
    ("approx", ["targets=[swish]"], "target 'swish' is not known"),
    ("approx", ["bases=[monomial]", "degrees=[1,20]"], "degree 20 is too high"),
    ("approx", ["interval=[2,-2]"], "interval [2.0, -2.0]"),
    ("export", [], "run_dir is missing"),
]


def test_approx_cli_writes_outputs(tmp_path: Path) -> None:
    result = run_theory_cli("approx", SMALL_SWEEP, cwd=tmp_path)
    run_dir = only_output_dir(tmp_path)
    with open(run_dir / "approx.csv") as handle:
        rows = list(csv.DictReader(handle))

    assert result.returncode == 0, result.stderr
    assert "| degree | monomial | fourier |" in result.stdout
    assert len(rows) == 2 * 2 * 3
    assert {row["target"] for row in rows} == {"tanh", "relu"}
    assert "## relu" in (run_dir / "approx.md").read_text()
    assert (run_dir / "approx.png").stat().st_size > 10_000
    assert "tanh: no basis reaches max error 0.01; lowest is fourier" in result.stderr


def test_bad_input_exits_2_one_line(tmp_path: Path) -> None:
    # Started together, because each spends most of its time importing torch.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    processes = []
    for index, (command, overrides, _) in enumerate(BAD_INPUTS):
        folder = tmp_path / str(index)
        folder.mkdir()
        argv = [sys.executable, "-m", "slaf_cli.cli.theory", command, *overrides]
        processes.append(
            subprocess.Popen(
                argv,
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process, (command, _, expected) in zip(processes, BAD_INPUTS, strict=True):
        _, stderr = process.communicate(timeout=180)
        lines = stderr.strip().splitlines()

        assert process.returncode == 2, (command, stderr)
        assert len(lines) == 1, (command, stderr)
        assert expected in lines[0]
        assert "Traceback" not in stderr


def test_export_cli_on_trained_run(tmp_path: Path, plain_run: Path) -> None:
    result = run_theory_cli("export", [f"run_dir={plain_run}"], cwd=tmp_path)
    run_dir = only_output_dir(tmp_path)
    network = json.loads((run_dir / "network.json").read_text())
    layers = json.loads((run_dir / "layers.json").read_text())

    assert result.returncode == 0, result.stderr
    assert "9 (expected 9)" in result.stdout
    assert network["outputs"][0]["total_degree"] == 9
    assert network["max_relative_error"] < 1e-6
    assert sorted(layers["layers"]) == ["net.2", "net.4"]
    assert "f_0(z) =" in (run_dir / "layers.md").read_text()
