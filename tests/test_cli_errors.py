"""Bad input ends in one line that names the value, exit code 2 and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

FAST = ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.progress=off"]

CASES = [
    # (overrides, text the error must contain): one per layer that can reject input.
    # tests/test_config.py checks many more values in-process.
    (["basis.degree=0"], "basis.degree=0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    (["activation=hybrid", "activation.slaf_layers=[7]"], "7"),
    (["dataset=mnist", "dataset.root=nowhere", "dataset.download=false"], "nowhere"),
    (["trainer.epochs=abc"], "trainer.epochs"),
    (["trainer.not_a_key=1"], "not_a_key"),
    (["model=nonexistent"], "nonexistent"),
    (["model=resnet", "dataset=two_spirals"], "model=resnet"),
    (["+dataset.augment=crop"], "remove the override +dataset.augment"),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES]
)
def test_invalid_override_rejected(
    tmp_path: Path, overrides: list[str], expected: str
) -> None:
    result = run_cli([*FAST, *overrides], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert not list(tmp_path.glob("outputs/*/*/summary.json"))


def test_config_error_single_line(tmp_path: Path) -> None:
    result = run_cli([*FAST, "basis.degree=0"], cwd=tmp_path, timeout=120)
    error_lines = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(error_lines) == 1, result.stderr
    assert "set basis.degree" in error_lines[0]
