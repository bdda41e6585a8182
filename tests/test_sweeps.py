"""Sweeps through Hydra's launcher and sweeper plugins, and their aggregate table."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

import slaf_cli.cli.train  # noqa: F401  (registers the schemas and the slaf_uid resolver)
from tests.conftest import REPO_ROOT, run_cli

pytestmark = pytest.mark.slow

QUICK = ["trainer.epochs=1", "trainer.progress=off", "trainer.plot_features=0"]


def sweep_rows(root: Path) -> tuple[Path, list[dict[str, str]]]:
    sweeps = [p for p in (root / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    with open(sweeps[0] / "summary.csv", newline="") as handle:
        return sweeps[0], list(csv.DictReader(handle))


def test_joblib_sweep_four_runs(tmp_path: Path) -> None:
    result = run_cli(
        ["-m", "hydra/launcher=parallel", "activation=relu,slaf", "seed=0,1", *QUICK],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sweep, rows = sweep_rows(tmp_path)
    assert len(rows) == 4
    assert {row["status"] for row in rows} == {"completed"}
    for summary_file in sweep.glob("*/summary.json"):
        summary = json.loads(summary_file.read_text())
        assert summary["config"]["trainer"]["num_threads"] >= 1


def test_optuna_sweep_four_trials(tmp_path: Path) -> None:
    result = run_cli(
        ["-m", "hparams_search=slaf_optuna", "hydra.sweeper.n_trials=4", *QUICK],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sweep, rows = sweep_rows(tmp_path)
    assert len(rows) == 4
    assert (sweep / "optimization_results.yaml").is_file()
    assert "best_value" in (sweep / "optimization_results.yaml").read_text()
    assert all(row["overrides"].count("basis=") == 1 for row in rows)


def test_failed_jobs_kept_in_table(tmp_path: Path) -> None:
    result = run_cli(
        [
            "-m",
            "optimizer.lr=0.001,1.0",
            "routine=plain",
            "basis.degree=6",
            "scheduler=none",
            *QUICK,
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    _, rows = sweep_rows(tmp_path)
    statuses = {row["overrides"].split()[0]: row["status"] for row in rows}
    assert statuses["optimizer.lr=0.001"] == "completed"
    assert statuses["optimizer.lr=1.0"] == "diverged"


def test_slurm_launcher_config_composes() -> None:
    with initialize_config_module(config_module="slaf_cli.conf", version_base="1.3"):
        cfg = compose(
            "train", overrides=["hydra/launcher=slurm"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.timeout_min == 240
    assert launcher.gpus_per_node == 1
    assert launcher.tasks_per_node == 1


def test_slurm_launcher_rejects_unknown_key() -> None:
    with initialize_config_module(config_module="slaf_cli.conf", version_base="1.3"):
        with pytest.raises(Exception, match="not_a_slurm_key"):
            compose(
                "train",
                overrides=["hydra/launcher=slurm", "hydra.launcher.not_a_slurm_key=1"],
                return_hydra_config=True,
            )


def run_torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run slaf-train in two processes on this machine through torchrun."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "slaf_cli.cli.train",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_match(tmp_path: Path) -> None:
    args = ["trainer.epochs=3", "trainer.progress=off", "trainer.plot_features=0"]
    single_dir = tmp_path / "single"
    ddp_dir = tmp_path / "ddp"
    single_dir.mkdir()
    ddp_dir.mkdir()
    single = run_cli(args, cwd=single_dir)
    assert single.returncode == 0, single.stderr

    ddp = run_torchrun(args, cwd=ddp_dir)
    assert ddp.returncode == 0, ddp.stderr
    runs = [p for p in (ddp_dir / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    single_summary = json.loads(
        next(single_dir.glob("outputs/*/*/summary.json")).read_text()
    )
    assert summary["world_size"] == 2
    assert summary["status"] == "completed"
    assert summary["metrics"]["test/acc"] == pytest.approx(
        single_summary["metrics"]["test/acc"], abs=0.03
    )
    assert len(list(runs[0].glob("events.out.tfevents.*"))) == 1

    # Resuming under torchrun continues the same folder for one more epoch.
    resumed = run_torchrun([f"resume={runs[0]}", "trainer.epochs=4"], cwd=ddp_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 3" in resumed.stderr
    final = json.loads((runs[0] / "summary.json").read_text())
    assert final["status"] == "completed"
    assert final["world_size"] == 2
    assert [row["epoch"] for row in final["history"]] == [1, 2, 3, 4]
    assert [p for p in (ddp_dir / "outputs").glob("*/*") if p.is_dir()] == runs
    assert REPO_ROOT.is_dir()
