"""Distillation: fitted SLAF students approach a trained tanh teacher with degree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from slaf_cli.errors import ConfigError
from slaf_cli.models import MLP
from slaf_cli.nn import ActivationFactory, build_basis
from slaf_cli.nn.slaf import SLAF
from slaf_cli.theory.distill import (
    build_student,
    distill_sweep,
    record_input_ranges,
)
from slaf_cli.theory.runs import LoadedRun, load_run, train_run

TEACHER = [
    "activation=tanh",
    "model.widths=[32]",
    "trainer.epochs=3",
    "optimizer.lr=0.01",
    "trainer.progress=off",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> LoadedRun:
    folder: Path = tmp_path_factory.mktemp("teacher")
    return load_run(train_run(TEACHER, folder))


def test_input_ranges_match_hidden_layer(teacher: LoadedRun) -> None:
    sites = record_input_ranges(teacher.model, teacher.data.train.x)
    with torch.no_grad():
        hidden = teacher.model.net[1](teacher.model.net[0](teacher.data.train.x))

    assert [site.name for site in sites] == ["net.2"]
    assert sites[0].target == "tanh"
    assert sites[0].num_features == 32
    assert sites[0].low == pytest.approx(float(hidden.min()))
    assert sites[0].high == pytest.approx(float(hidden.max()))


def test_student_replaces_every_activation(teacher: LoadedRun) -> None:
    sites = record_input_ranges(teacher.model, teacher.data.train.x)
    student = build_student(teacher.model, sites, "chebyshev", degree=4)
    layers = [m for m in student.modules() if isinstance(m, SLAF)]

    assert len(layers) == 1
    assert layers[0].basis.input_range == (sites[0].low, sites[0].high)
    assert not any(isinstance(m, torch.nn.Tanh) for m in student.modules())
    assert any(isinstance(m, torch.nn.Tanh) for m in teacher.model.modules())


def test_output_error_shrinks_with_degree(teacher: LoadedRun) -> None:
    metric, teacher_metric, rows = distill_sweep(
        teacher.model, teacher.data, [1, 3, 5, 7], finetune_epochs=0
    )
    output_errors = [row.output_error for row in rows]
    fit_errors = [row.fit_error for row in rows]

    assert metric == "acc"
    assert teacher_metric > 0.5
    for smaller, larger in zip(output_errors[1:], output_errors[:-1], strict=True):
        assert smaller < larger, output_errors
    for smaller, larger in zip(fit_errors[1:], fit_errors[:-1], strict=True):
        assert smaller < larger, fit_errors
    assert output_errors[-1] < 0.05
    assert abs(rows[-1].metric - teacher_metric) < 0.05


def test_finetune_reports_finite_metric(teacher: LoadedRun) -> None:
    _, _, rows = distill_sweep(
        teacher.model, teacher.data, [3], finetune_epochs=1, batch_size=256
    )

    assert math.isfinite(rows[0].finetuned_output_error)
    assert 0.0 <= rows[0].finetuned_metric <= 1.0
    assert rows[0].finetuned_output_error != rows[0].output_error


def test_slaf_teacher_is_rejected() -> None:
    factory = ActivationFactory("slaf", build_basis("monomial", degree=2))
    model = MLP((4,), 2, factory, widths=(3,))

    with pytest.raises(ConfigError, match="not a fixed activation"):
        record_input_ranges(model, torch.randn(8, 4))
