"""Runs that survive interrupts, divergence and damaged files (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, only_run_dir, run_cli

pytestmark = pytest.mark.slow

LONG_RUN = [
    "trainer.epochs=4",
    "trainer.deterministic=true",
    "trainer.progress=off",
    "trainer.plot_features=0",
    "trainer.batch_size=16",
]
DIVERGING = [
    "routine=plain",
    "basis.degree=6",
    "optimizer.lr=1.0",
    "scheduler=none",
    "trainer.epochs=2",
    "trainer.progress=off",
]


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "slaf_cli.cli.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_epoch(
    run_dir_root: Path, process: subprocess.Popen[str], epoch: int
) -> None:
    """Block until ``train.log`` reports ``epoch`` finished (or the process ends)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        logs = list(run_dir_root.glob("outputs/*/*/train.log"))
        if logs and f"Epoch {epoch}/" in logs[0].read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} never finished: {process.communicate()[0]}")


def test_sigterm_resume_matches_uninterrupted(tmp_path: Path) -> None:
    reference_dir = tmp_path / "reference"
    interrupted_dir = tmp_path / "interrupted"
    reference_dir.mkdir()
    interrupted_dir.mkdir()

    reference = run_cli(LONG_RUN, cwd=reference_dir)
    assert reference.returncode == 0, reference.stderr
    expected = read_summary(only_run_dir(reference_dir))

    process = start_cli(LONG_RUN, cwd=interrupted_dir)
    wait_for_epoch(interrupted_dir, process, 2)
    time.sleep(0.3)  # land inside epoch 3
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 143, output

    run_dir = only_run_dir(interrupted_dir)
    stopped = read_summary(run_dir)
    assert stopped["status"] == "interrupted"
    assert 2 <= stopped["epochs_completed"] < 4
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["train_state"]["epoch"] == stopped["epochs_completed"]

    resumed = run_cli([f"resume={run_dir}"], cwd=interrupted_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {stopped['epochs_completed']}" in resumed.stderr
    final = read_summary(run_dir)
    assert final["status"] == "completed"
    assert final["metrics"]["test/acc"] == expected["metrics"]["test/acc"]
    assert final["metrics"]["test/loss"] == pytest.approx(
        expected["metrics"]["test/loss"], rel=1e-6
    )
    epochs = [row["epoch"] for row in final["history"]]
    assert epochs == list(range(1, 5))
    assert only_run_dir(interrupted_dir) == run_dir


def test_resume_longer_follows_new_schedule(tmp_path: Path) -> None:
    quick = ["trainer.progress=off", "trainer.plot_features=0"]
    short_dir, full_dir = tmp_path / "short", tmp_path / "full"
    short_dir.mkdir()
    full_dir.mkdir()
    assert run_cli([*quick, "trainer.epochs=2"], cwd=short_dir).returncode == 0
    run_dir = only_run_dir(short_dir)
    resumed = run_cli([f"resume={run_dir}", "trainer.epochs=4"], cwd=short_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert run_cli([*quick, "trainer.epochs=4"], cwd=full_dir).returncode == 0

    extended = read_summary(run_dir)["history"]
    fresh = read_summary(only_run_dir(full_dir))["history"]
    assert [row["epoch"] for row in extended] == [1, 2, 3, 4]
    # The cosine schedule of 4 epochs: the last two match a fresh 4-epoch run.
    for epoch in (2, 3):
        assert extended[epoch]["train/lr"] == pytest.approx(fresh[epoch]["train/lr"])
    assert extended[3]["train/lr"] < extended[2]["train/lr"]


def test_diverged_run_stops_cleanly(tmp_path: Path) -> None:
    result = run_cli(DIVERGING, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    run_dir = only_run_dir(tmp_path)
    summary = read_summary(run_dir)
    assert summary["status"] == "diverged"
    assert summary["diverged_at"]["epoch"] == 1
    assert summary["diverged_at"]["step"] >= 1
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    for name, tensor in checkpoint["model"].items():
        if tensor.is_floating_point() and "input_" not in name:
            assert torch.isfinite(tensor).all(), name


def test_rollback_finishes_diverging_run(tmp_path: Path) -> None:
    result = run_cli(
        [
            *DIVERGING,
            "trainer.divergence=rollback",
            "trainer.max_rollbacks=8",
            "trainer.rollback_lr_factor=0.1",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = read_summary(only_run_dir(tmp_path))
    assert summary["status"] == "completed"
    assert summary["rollbacks"] >= 1
    assert summary["metrics"]["test/acc"] > 0.2
    assert "rolled back" in result.stderr


def test_skip_policy_counts_steps(tmp_path: Path) -> None:
    result = run_cli([*DIVERGING, "trainer.divergence=skip"], cwd=tmp_path)
    summary = read_summary(only_run_dir(tmp_path))
    assert summary["skipped_steps"] >= 1 or summary["status"] == "diverged"
    assert result.returncode in (0, 3)


def test_bad_resume_keeps_run_intact(tmp_path: Path) -> None:
    first = run_cli(["trainer.epochs=1", "trainer.progress=off"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    summary_before = (run_dir / "summary.json").read_bytes()
    config_before = (run_dir / ".hydra" / "config.yaml").read_text()

    mismatch = run_cli([f"resume={run_dir}", "model.widths=[32]"], cwd=tmp_path)
    assert mismatch.returncode == 2, mismatch.stderr
    assert "does not fit this configuration" in mismatch.stderr
    assert "size mismatch" in mismatch.stderr
    assert "Traceback" not in mismatch.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before

    last.write_bytes(last.read_bytes()[:1000])

    result = run_cli([f"resume={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "last.pt" in errors[0]
    assert (run_dir / "summary.json").read_bytes() == summary_before


def test_resume_missing_folder_rejected(tmp_path: Path) -> None:
    result = run_cli([f"resume={tmp_path / 'nope'}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "not a run folder" in result.stderr
    assert "Traceback" not in result.stderr


def make_read_only(folder: Path) -> bool:
    """Make ``folder`` unwritable even for root (immutable flag), or return False."""
    if (
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode
        == 0
    ):
        return True
    folder.chmod(0o500)
    return os.geteuid() != 0


def test_read_only_output_rejected(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if not make_read_only(locked):
        pytest.skip("cannot make a folder read-only for root here (no chattr +i)")
    try:
        result = run_cli(
            ["trainer.epochs=1", f"hydra.run.dir={locked}/run"], cwd=tmp_path
        )
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o700)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"output folder {locked}/run is not writable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_output_path_through_file_rejected(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    result = run_cli(["trainer.epochs=1", "hydra.run.dir=afile/run"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "afile/run is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_same_second_runs_get_own_folders(tmp_path: Path) -> None:
    args = ["trainer.epochs=1", "trainer.progress=off", "trainer.plot_features=0"]
    processes = [start_cli(args, cwd=tmp_path) for _ in range(2)]
    for process in processes:
        output = process.communicate(timeout=240)[0]
        assert process.returncode == 0, output
    runs = sorted(p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert read_summary(run)["status"] == "completed"
    assert REPO_ROOT.is_dir()


def test_ctrl_c_during_kernel_build(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group while the native kernels build: the
    compiler dies, and the run ends as interrupted with a summary and exit 130."""
    compiler = tmp_path / "slow-cc"
    started = tmp_path / "compiler-started"
    compiler.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 60\n")
    compiler.chmod(0o755)

    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CC": str(compiler),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "slaf_cli.cli.train", "trainer.num_threads=1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal job
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if started.exists():  # the compiler runs, so the signal reaches it
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)

    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "Traceback" not in output
    summary = read_summary(only_run_dir(tmp_path))
    assert summary["status"] == "interrupted"
    assert summary["slaf_kernels"] == ["Kernels"]
    assert not list((tmp_path / "cache").rglob("*.failed"))
    assert not list((tmp_path / "cache").rglob("tmp*.so"))
