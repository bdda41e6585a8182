"""Bad input ends in one line that names the value, exit code 2 and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

FAST = ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.progress=off"]

CASES = [
    # (overrides, text the error must contain)
    (["basis.degree=0"], "basis.degree=0"),
    (["trainer.batch_size=0"], "trainer.batch_size=0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    (["activation=hybrid", "activation.slaf_layers=[7]"], "7"),
    (
        [
            "activation=hybrid",
            "activation.slaf_layers=null",
            "activation.slaf_stages=[conv]",
        ],
        "conv",
    ),
    (["dataset=mnist", "dataset.root=nowhere", "dataset.download=false"], "nowhere"),
    (["trainer.epochs=abc"], "trainer.epochs"),
    (["trainer.not_a_key=1"], "not_a_key"),
    (["model=nonexistent"], "nonexistent"),
    (["activation.name=swish"], "swish"),
    (["model=resnet", "model.depth=21"], "model.depth=21"),
    (["basis=chebyshev", "basis.input_range=[2,1]"], "input_range"),
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
