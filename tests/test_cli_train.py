"""End-to-end runs of ``slaf-train`` in a subprocess, read back from the run folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import mnist_root, only_run_dir, requires_mnist, run_cli

pytestmark = pytest.mark.slow


def load_events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "images": 0}
    )
    accumulator.Reload()
    return accumulator


def test_default_run_digits(tmp_path: Path) -> None:
    """The offline default: SLAF MLP on digits, full length, read back completely."""
    result = run_cli(["trainer.progress=off"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"]["test/acc"] >= 0.95
    assert summary["choices"]["activation"] == "slaf"
    assert summary["parameters"]["activation"] > 0
    assert summary["parameters"]["total"] > summary["parameters"]["activation"]
    assert summary["epochs_completed"] == summary["config"]["trainer"]["epochs"]
    assert 1 <= summary["best_epoch"] <= summary["epochs_completed"]
    assert summary["versions"]["torch"]
    assert summary["device"] == "cpu"
    native = ["NativeKernels"] if shutil.which("cc") else ["Kernels"]
    assert summary["slaf_kernels"] == native
    assert (run_dir / "summary.md").read_text().startswith("# Run summary")
    assert (run_dir / "train.log").stat().st_size > 0
    assert "test/acc=" in result.stdout

    events = load_events(run_dir)
    tags = events.Tags()
    for tag in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "train/lr",
        "train/grad_norm",
    ):
        assert tag in tags["scalars"], tag
    val_acc = [event.value for event in events.Scalars("val/acc")]
    assert len(val_acc) == summary["epochs_completed"]
    assert val_acc[-1] > val_acc[0]
    assert any(tag.endswith("/coefficients") for tag in tags["histograms"])
    assert any(tag.endswith("/curve") for tag in tags["images"])


def test_hparams_record_readable(tmp_path: Path) -> None:
    result = run_cli(
        ["trainer.epochs=1", "trainer.progress=off", "activation=relu"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    events = load_events(only_run_dir(tmp_path))
    content = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in content
    assert "_hparams_/session_start_info" in content
    assert "hparam/test/acc" in events.Tags()["scalars"]


@requires_mnist
def test_mnist_cnn_slaf_subset(tmp_path: Path) -> None:
    """Real MNIST files, a small subset, CNN with normalised SLAF."""
    result = run_cli(
        [
            "dataset=mnist",
            f"dataset.root={mnist_root()}",
            "dataset.download=false",
            "dataset.subset=1500",
            "dataset.test_subset=500",
            "model=cnn",
            "activation=slaf",
            "routine=normalized",
            "trainer.epochs=2",
            "trainer.progress=off",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"]["test/acc"] >= 0.8
    assert summary["config"]["dataset"]["name"] == "mnist"
    assert "val/acc" in load_events(run_dir).Tags()["scalars"]


def test_debug_fast_preset_runs(tmp_path: Path) -> None:
    result = run_cli(["debug=fast"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == 5
    assert "ERROR" not in result.stderr


def test_regression_reports_rmse(tmp_path: Path) -> None:
    result = run_cli(
        ["dataset=polynomial", "trainer.epochs=3", "trainer.progress=off"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert "test/rmse" in summary["metrics"]
    assert "test/r2" in summary["metrics"]
    assert "test/acc" not in summary["metrics"]
    assert summary["metrics"]["test/r2"] > 0.5


def test_multirun_writes_sweep_table(tmp_path: Path) -> None:
    result = run_cli(
        [
            "-m",
            "activation=relu,slaf,hybrid",
            "seed=0,1",
            "trainer.epochs=1",
            "trainer.progress=off",
            "trainer.plot_features=0",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sweeps = list((tmp_path / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    sweep = sweeps[0]
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 6

    with open(sweep / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert {row["status"] for row in rows} == {"completed"}
    overrides = {row["overrides"] for row in rows}
    assert any(o.startswith("activation=hybrid seed=1 ") for o in overrides)
    assert all(float(row["test/acc"]) > 0.5 for row in rows)
    table = (sweep / "summary.md").read_text()
    assert table.count("| completed |") == 6
