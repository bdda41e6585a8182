"""Distil a trained ReLU, tanh, GELU or SiLU network into a SLAF network.

Each fixed activation is replaced by a SLAF fitted by least squares (through
:class:`slaf_cli.nn.SLAF`'s ``init``, which calls ``fit_target``) on the range its
inputs took over the training split. The sweep reports, per degree, how far the
student's outputs are from the teacher's on the test split and how the test
metric changes, before and after a short fine-tune on the task loss.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slaf_cli.data import BatchLoader, DataBundle
from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.slaf import SLAF
from slaf_cli.train.guard import Diverged
from slaf_cli.train.loop import Trainer
from slaf_cli.train.routines import Routine
from slaf_cli.train.tasks import make_task

logger = logging.getLogger(__name__)

TEACHER_ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
}
EVAL_BATCH = 1024


@dataclass(frozen=True)
class ActivationSite:
    """One fixed activation of the teacher and the range of its inputs.

    ``name`` is the qualified module name, ``target`` the name of the function in
    ``slaf_cli.nn.fit.TARGETS`` and ``num_features`` the size of dim 1 of its input.
    """

    name: str
    target: str
    num_features: int
    low: float
    high: float


@dataclass(frozen=True)
class DistillRow:
    """Student of one degree against the teacher, on the test split.

    ``output_error`` is ||student - teacher||_F / ||teacher||_F over the test
    outputs, ``fit_error`` the largest max fit error of any layer on its range, and
    ``metric`` the task metric (acc, or rmse for regression). ``finetuned_*`` are
    the same after the fine-tune, NaN when it diverged.
    """

    degree: int
    terms: int
    fit_error: float
    output_error: float
    metric: float
    finetuned_output_error: float
    finetuned_metric: float


def teacher_sites(model: nn.Module) -> list[tuple[str, str]]:
    """Return (name, target) of every fixed activation, or raise ConfigError."""
    sites = []
    for name, module in model.named_modules():
        if isinstance(module, (SLAF, nn.PReLU)):
            raise ConfigError(
                f"layer {name} is a {type(module).__name__}, not a fixed activation; "
                "distil a network trained with activation=relu, tanh, gelu or silu"
            )
        target = TEACHER_ACTIVATIONS.get(type(module))
        if target is None:
            continue
        if isinstance(module, nn.GELU) and module.approximate != "none":
            raise ConfigError(
                f"layer {name} uses GELU(approximate={module.approximate!r}); only "
                "the exact erf form matches the gelu fit target"
            )
        sites.append((name, target))
    if not sites:
        raise ConfigError(
            f"{type(model).__name__} has no relu, tanh, gelu or silu activation to "
            "replace; distil a network trained with one of them"
        )
    return sites


@torch.no_grad()
def record_input_ranges(model: nn.Module, x: Tensor) -> list[ActivationSite]:
    """Run ``model`` in eval mode over x and return each activation's input range.

    Forward hooks record the min and max over all elements of every input batch.
    A range narrower than 1e-6 is widened to width 1 so a fit is still defined.
    """
    ranges: dict[str, list[float]] = {}
    features: dict[str, int] = {}
    handles = []
    targets = dict(teacher_sites(model))
    for name, module in model.named_modules():
        if name not in targets:
            continue

        def hook(_: nn.Module, inputs: tuple[Tensor, ...], name: str = name) -> None:
            low, high = torch.aminmax(inputs[0])
            seen = ranges.setdefault(name, [math.inf, -math.inf])
            seen[0] = min(seen[0], float(low))
            seen[1] = max(seen[1], float(high))
            features[name] = inputs[0].shape[1]

        handles.append(module.register_forward_pre_hook(hook))
    model.eval()
    try:
        for batch in torch.split(x, EVAL_BATCH):
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    sites = []
    for name, target in targets.items():
        low, high = ranges[name]
        if high - low < 1e-6:
            low, high = low - 0.5, high + 0.5
        sites.append(ActivationSite(name, target, features[name], low, high))
        logger.info("%s (%s): inputs in [%.3g, %.3g]", name, target, low, high)
    return sites


def build_student(
    model: nn.Module,
    sites: Sequence[ActivationSite],
    basis: str,
    degree: int,
    basis_options: Mapping[str, Any] | None = None,
    sharing: str = "channel",
) -> nn.Module:
    """Return a copy of ``model`` with each site's activation replaced by a fitted SLAF.

    Each SLAF uses the plain routine (no term normalisation) and a basis whose
    ``input_range`` is the site's range, and starts as the least-squares fit of
    the site's target on that range.
    """
    student = copy.deepcopy(model)
    for site in sites:
        parent_name, _, attribute = site.name.rpartition(".")
        parent = student.get_submodule(parent_name)
        slaf = SLAF(
            site.num_features,
            build_basis(
                basis,
                degree=degree,
                input_range=(site.low, site.high),
                **(basis_options or {}),
            ),
            sharing=sharing,
            init=site.target,
            init_range=(site.low, site.high),
        )
        setattr(parent, attribute, slaf)
    return student.eval()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    return torch.cat([model(batch) for batch in torch.split(x, EVAL_BATCH)])


def relative_output_error(student: Tensor, teacher: Tensor) -> float:
    """Return ||student - teacher||_F / ||teacher||_F."""
    return float(torch.linalg.norm(student - teacher) / torch.linalg.norm(teacher))


def task_metric(data: DataBundle, outputs: Tensor) -> tuple[str, float]:
    """Return the task's monitored metric name (acc or rmse) and its test value."""
    task = make_task(data.task)
    meter = task.meter()
    meter.update(outputs, data.test.y, task.loss(outputs, data.test.y))
    name = task.monitor.split("/", 1)[1]
    return name, meter.compute()[name]


def finetune(
    model: nn.Module,
    data: DataBundle,
    epochs: int,
    lr: float,
    batch_size: int,
    clip_grad_norm: float | None,
    seed: int,
) -> bool:
    """Train all parameters of ``model`` in place on the task loss with Adam.

    Returns False when training diverged (a non-finite loss, gradient or SLAF
    coefficient), True otherwise.
    """
    torch.manual_seed(seed)
    trainer = Trainer(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        scheduler=None,
        routine=Routine(name="finetune", clip_grad_norm=clip_grad_norm),
        task=make_task(data.task),
        train_loader=BatchLoader(
            data.train, batch_size=batch_size, shuffle=True, seed=seed, device="cpu"
        ),
        val_loader=None,
        epochs=epochs,
    )
    try:
        trainer.fit()
    except Diverged as error:
        logger.warning("Fine-tune diverged: %s", error)
        return False
    return True


def distill_sweep(
    model: nn.Module,
    data: DataBundle,
    degrees: Sequence[int],
    basis: str = "monomial",
    basis_options: Mapping[str, Any] | None = None,
    sharing: str = "channel",
    finetune_epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 128,
    clip_grad_norm: float | None = 1.0,
    seed: int = 0,
) -> tuple[str, float, list[DistillRow]]:
    """Distil ``model`` at every degree; return (metric name, teacher metric, rows).

    ``model`` is the teacher, on the CPU, and is not changed. ``finetune_epochs``
    of 0 skips the fine-tune, and its columns then repeat the fitted student.
    """
    sites = record_input_ranges(model, data.train.x)
    teacher_out = predict(model, data.test.x)
    metric_name, teacher_metric = task_metric(data, teacher_out)
    logger.info("Teacher: test %s %.4f", metric_name, teacher_metric)
    rows = []
    for degree in degrees:
        student = build_student(model, sites, basis, degree, basis_options, sharing)
        layers = [m for m in student.modules() if isinstance(m, SLAF)]
        fit_error = max(layer.init_fit_error["max"] for layer in layers)
        student_out = predict(student, data.test.x)
        output_error = relative_output_error(student_out, teacher_out)
        metric = task_metric(data, student_out)[1]

        tuned_error, tuned_metric = output_error, metric
        if finetune_epochs > 0:
            tuned_error, tuned_metric = math.nan, math.nan
            if finetune(
                student, data, finetune_epochs, lr, batch_size, clip_grad_norm, seed
            ):
                tuned_out = predict(student, data.test.x)
                tuned_error = relative_output_error(tuned_out, teacher_out)
                tuned_metric = task_metric(data, tuned_out)[1]
        row = DistillRow(
            degree,
            layers[0].basis.num_terms,
            fit_error,
            output_error,
            metric,
            tuned_error,
            tuned_metric,
        )
        logger.info(
            "degree %d: output error %.3g, %s %.4f, fine-tuned %.4f",
            degree,
            output_error,
            metric_name,
            metric,
            tuned_metric,
        )
        rows.append(row)
    return metric_name, teacher_metric, rows


def distill_table(
    rows: Sequence[DistillRow], metric: str, teacher_metric: float
) -> list[dict[str, Any]]:
    """Rows for the printed table and CSV, with metric changes against the teacher."""
    return [
        {
            "degree": row.degree,
            "terms": row.terms,
            "fit_error": row.fit_error,
            "output_error": row.output_error,
            metric: row.metric,
            f"{metric}_change": row.metric - teacher_metric,
            "ft_output_error": row.finetuned_output_error,
            f"ft_{metric}": row.finetuned_metric,
            f"ft_{metric}_change": row.finetuned_metric - teacher_metric,
        }
        for row in rows
    ]
