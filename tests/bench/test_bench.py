"""``slaf-bench`` end to end in a tiny configuration: rows and ratios, no timings."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from slaf_cli.bench.run import BenchResults, targets
from slaf_cli.bench.training import (
    COMPILED_VARIANTS,
    VARIANTS,
    StepResult,
    build_factory,
)
from slaf_cli.cli.bench import parse_args
from tests.conftest import mnist_root, requires_mnist, run_cli

STEP_ROWS = [
    (model, variant)
    for model in ("mlp", "cnn")
    for variant in (
        "relu",
        "slaf naive",
        "slaf eager",
        "slaf fast",
        "slaf fast normalized",
    )
]
EPOCH_PATHS = ["compute", "in-memory", "torchvision w0", "torchvision w2"]
RATIO = re.compile(r"(\d+\.\d+|inf|nan)x")


def run_bench(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``slaf-bench`` through its module, as the console script does."""
    return run_cli(args, cwd=cwd, timeout=600, module="slaf_cli.cli.bench")


def find_line(text: str, *cells: str) -> str:
    """Return the first line that contains every cell as a separate column."""
    for line in text.splitlines():
        columns = [c.strip() for c in re.split(r"\s{2,}|\|", line) if c.strip()]
        if all(cell in columns for cell in cells):
            return line
    raise AssertionError(f"no line with {cells} in:\n{text}")


def assert_finite_ratios(line: str, expected: int) -> None:
    ratios = RATIO.findall(line)
    assert len(ratios) >= expected, line
    for ratio in ratios:
        assert math.isfinite(float(ratio)), line
        assert float(ratio) > 0, line


def test_compiled_variants_build_and_judge():
    """Compiled rows without compiling: factory options and their targets."""
    for variant in COMPILED_VARIANTS:
        factory = build_factory(variant, degree=4)
        assert factory.compile is True
        assert factory.fast is True
    assert build_factory("slaf compiled normalized", 4).normalize is True
    result = StepResult(0.1, 1.0, 100, 10, None)
    steps = {
        model: {variant: result for variant in VARIANTS + COMPILED_VARIANTS}
        for model in ("mlp", "cnn")
    }
    found = {t.name: t for t in targets(BenchResults(steps, [], None, "skipped"))}
    assert found["cnn: compiled / relu step time"].value == 1.0
    assert found["cnn: naive / compiled step time"].met is False


def test_quick_writes_no_file_by_default():
    assert parse_args(["--quick"]).output == ""
    assert parse_args([]).output.endswith("docs/benchmarks.md")
    assert parse_args(["--quick", "--output", "b.md"]).output == "b.md"


@pytest.mark.slow
@requires_mnist
def test_quick_run_writes_every_row(tmp_path):
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\nHand-written notes stay.\n", encoding="utf-8")
    result = run_bench(
        [
            "--quick",
            "--no-compile",
            "--steps",
            "3",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--mnist-root",
            str(mnist_root()),
            "--output",
            str(output),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    markdown = output.read_text(encoding="utf-8")
    assert "Hand-written notes stay." in markdown
    assert "`slaf-bench --quick --no-compile --steps 3" in markdown
    assert "torch " in markdown
    for text in (result.stdout, markdown):
        for model, variant in STEP_ROWS:
            assert_finite_ratios(find_line(text, model, variant), expected=3)
        for path in EPOCH_PATHS:
            assert_finite_ratios(find_line(text, path), expected=1)
        assert "n/a (quick sizes)" in find_line(text, "cnn: naive / fast step time")
        assert find_line(text, "mnist epoch: torchvision w2 / in-memory")
    if shutil.which("cc"):
        assert "- Native SLAF kernels: monomial-" in markdown


@pytest.mark.slow
def test_rerun_replaces_generated_section(tmp_path):
    """Two runs into one file: the second replaces the first's section.

    The first run points at a missing MNIST folder, the second disables the
    epoch part, so both ways of skipping it are covered too.
    """
    output = tmp_path / "benchmarks.md"
    args = ["--quick", "--steps", "1", "--threads", "1", "--device", "cpu"]
    args += ["--no-compile"]
    args += ["--output", str(output)]
    missing = run_bench([*args, "--mnist-root", str(tmp_path / "absent")], tmp_path)
    assert missing.returncode == 0, missing.stderr
    assert "MNIST epoch skipped: MNIST not found under" in missing.stdout
    disabled = run_bench([*args, "--no-epoch"], cwd=tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    assert "MNIST epoch skipped: disabled with --no-epoch" in disabled.stdout

    markdown = output.read_text(encoding="utf-8")
    assert markdown.count("slaf-bench:begin") == 1
    assert markdown.count("### Training step") == 1
    for model, variant in STEP_ROWS:
        assert_finite_ratios(find_line(markdown, model, variant), expected=3)
    assert "slaf compiled" not in markdown
