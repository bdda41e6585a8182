"""Turn a composed config into objects, train them, and report the result.

This is the only module that reads the config tree: everything it calls takes
plain values and objects.
"""

from __future__ import annotations

import logging
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from slaf_cli.config import validate
from slaf_cli.data import BatchLoader, DataBundle, Split
from slaf_cli.errors import ConfigError
from slaf_cli.files import atomic_write_text
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.factory import ActivationFactory, slaf_modules
from slaf_cli.nn.functional import reset_compiled_kernels
from slaf_cli.nn.native import NativeKernels, native_library
from slaf_cli.report.summary import library_versions, write_summary
from slaf_cli.report.tensorboard import TensorBoardReporter
from slaf_cli.train.checkpoint import Checkpointer, load_checkpoint
from slaf_cli.train.distributed import (
    DistContext,
    broadcast_from_main,
    context_from_env,
    destroy_process_group,
    init_process_group,
)
from slaf_cli.train.guard import Diverged, DivergenceGuard, Interrupted, SignalFlag
from slaf_cli.train.loop import Trainer, format_scalars
from slaf_cli.train.routines import Routine
from slaf_cli.train.schedulers import build_scheduler
from slaf_cli.train.tasks import make_task

log = logging.getLogger(__name__)

SLAF_ACTIVATIONS = ("slaf", "hybrid")


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising a ConfigError that the target raised.

    Hydra wraps every error of a target in InstantiationException; unwrapping it
    keeps a user error to one line.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
        if isinstance(cause, TypeError) and unexpected:
            # A key added with +group.key that the option's target does not take.
            group, key = node._key(), unexpected.group(1)
            raise ConfigError(
                f"{group}.{key} is not an option of {group}={node.get('name')}; "
                f"remove the override +{group}.{key}"
            ) from None
        raise


def select_device(name: str, context: DistContext) -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is a ConfigError.

    Under torchrun each rank takes the CUDA device of its local rank.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and context.enabled:
        name = f"cuda:{context.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.device={name} is not available (no CUDA device found); "
            "use trainer.device=cpu or auto"
        )
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total trainable parameters, and those inside activation modules (SLAF, PReLU)."""
    total = sum(p.numel() for p in model.parameters())
    activation = sum(
        p.numel()
        for module in model.modules()
        if isinstance(module, nn.PReLU) or module in {m for _, m in slaf_modules(model)}
        for p in module.parameters(recurse=False)
    )
    return {"total": total, "activation": activation}


def build_activation(cfg: DictConfig) -> ActivationFactory:
    """Build the activation factory, and its basis when the activation uses SLAF."""
    basis = None
    if cfg.activation.name in SLAF_ACTIVATIONS:
        basis_kwargs = OmegaConf.to_container(cfg.basis, resolve=True)
        basis_kwargs["input_range"] = tuple(basis_kwargs["input_range"])
        basis = build_basis(**basis_kwargs)
    return build(
        cfg.activation,
        basis=basis,
        init_range=tuple(cfg.activation.init_range),
        normalize=cfg.routine.normalize,
        eps=cfg.routine.eps,
        momentum=cfg.routine.momentum,
        _convert_="all",
    )


def kernel_names(model: nn.Module, device: torch.device) -> list[str]:
    """Return the kernel classes that the model's SLAF layers run on ``device``.

    Builds the native kernels when a layer needs them, so the build time falls
    before the first epoch. ``NativeKernels`` is reported as ``Kernels`` where
    it runs the eager ops: on CUDA, or when the build failed.
    """
    names = set()
    for _, module in slaf_modules(model):
        name = type(module.kernels).__name__
        if isinstance(module.kernels, NativeKernels):
            if device.type != "cpu" or native_library() is None:
                name = "Kernels"
        names.add(name)
    return sorted(names)


def build_model(
    cfg: DictConfig, data: DataBundle, factory: ActivationFactory
) -> nn.Module:
    log.info("Instantiating model <%s>", cfg.model._target_)
    model = build(
        cfg.model,
        input_shape=tuple(data.input_shape),
        num_outputs=data.num_outputs,
        activation=factory,
        _convert_="all",
    )
    factory.check_hybrid()
    return model


def build_routine(cfg: DictConfig) -> Routine:
    routine = cfg.routine
    return Routine(
        name=routine.name,
        clip_grad_norm=routine.clip_grad_norm,
        penalty=routine.penalty,
        penalty_weight=routine.penalty_weight,
        slaf_lr=routine.slaf_lr,
        freeze_epochs=routine.freeze_epochs,
    )


def hparams_of(cfg: DictConfig, choices: dict[str, str]) -> dict[str, Any]:
    """Return the flat hyperparameters shown in TensorBoard's HPARAMS dashboard."""
    params: dict[str, Any] = {f"choice/{k}": v for k, v in choices.items()}
    params.update(
        {
            "basis.degree": cfg.basis.degree,
            "activation.sharing": cfg.activation.sharing,
            "activation.init": cfg.activation.init,
            "optimizer.lr": cfg.optimizer.lr,
            "trainer.epochs": cfg.trainer.epochs,
            "trainer.batch_size": cfg.trainer.batch_size,
            "seed": cfg.seed,
        }
    )
    return params


def make_loaders(
    cfg: DictConfig, data: DataBundle, device: torch.device, context: DistContext
) -> tuple[BatchLoader, BatchLoader | None, BatchLoader]:
    """Train, validation and test loaders for this rank.

    ``trainer.batch_size`` is the global batch: each of N ranks takes 1/N of it.
    Evaluation splits are cut into disjoint, unpadded slices per rank, so metrics
    summed over ranks count every sample once.
    """
    batch_size = cfg.trainer.batch_size
    if batch_size % context.world_size:
        raise ConfigError(
            f"trainer.batch_size={batch_size} does not split evenly over "
            f"{context.world_size} processes; use a multiple of {context.world_size}"
        )
    train = BatchLoader(
        data.train,
        batch_size=batch_size // context.world_size,
        shuffle=True,
        seed=cfg.seed,
        device=device,
        augment=data.augment,
        crop_padding=data.crop_padding,
        rank=context.rank,
        world_size=context.world_size,
    )

    def evaluation(split: Split) -> BatchLoader:
        shard = Split(
            split.x[context.rank :: context.world_size],
            split.y[context.rank :: context.world_size],
        )
        return BatchLoader(
            shard,
            batch_size=cfg.trainer.eval_batch_size,
            shuffle=False,
            seed=0,
            device=device,
        )

    val = evaluation(data.val) if len(data.val.x) else None
    return train, val, evaluation(data.test)


def _final_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    last = dict(history[-1]) if history else {}
    return {k: v for k, v in last.items() if k != "epoch" and not k.startswith("time/")}


def run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str] | None = None,
    choices: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train one configuration in ``run_dir``; return the summary that was written.

    Under torchrun every rank calls this; rank 0 alone writes into ``run_dir``.
    """
    started = time.perf_counter()
    validate(cfg)
    context = context_from_env()
    device = select_device(cfg.trainer.device, context)
    init_process_group(context, device)
    try:
        return _run(
            cfg, run_dir, overrides or [], choices or {}, context, device, started
        )
    finally:
        destroy_process_group()


def _run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    choices: dict[str, str],
    context: DistContext,
    device: torch.device,
    started: float,
) -> dict[str, Any]:
    run_dir = Path(broadcast_from_main(str(run_dir)))
    summary: dict[str, Any] = {
        "run_name": cfg.run_name,
        "status": "running",
        "run_dir": str(run_dir),
        "overrides": overrides,
        "choices": choices,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": library_versions(),
        "device": str(device),
        "world_size": context.world_size,
    }
    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    seed_everything(cfg.seed, cfg.trainer.deterministic)

    log.info("Instantiating dataset <%s>", cfg.dataset.name)
    data: DataBundle = build(cfg.dataset, _convert_="all")
    log.info(
        "Dataset %s: %s, input %s, %d outputs, %d/%d/%d train/val/test samples",
        data.name,
        data.task,
        tuple(data.input_shape),
        data.num_outputs,
        len(data.train.x),
        len(data.val.x),
        len(data.test.x),
    )
    if cfg.activation.compile:
        reset_compiled_kernels()
    factory = build_activation(cfg)
    model = build_model(cfg, data, factory).to(device)
    summary["parameters"] = count_parameters(model)
    summary["init_fit_error"] = {
        name: getattr(module, "init_fit_error", None)
        for name, module in slaf_modules(model)
    }
    log.info(
        "Model: %d parameters, %d in activations, SLAF layers: %d",
        summary["parameters"]["total"],
        summary["parameters"]["activation"],
        len(slaf_modules(model)),
    )
    forward_model: nn.Module = model
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        forward_model = DistributedDataParallel(model, device_ids=device_ids)

    routine = build_routine(cfg)
    optimizer = build(cfg.optimizer, _convert_="all")(
        routine.param_groups(model, cfg.optimizer.lr)
    )
    sched = cfg.scheduler
    scheduler = build_scheduler(
        optimizer,
        sched.name,
        epochs=cfg.trainer.epochs,
        step_size=sched.step_size,
        gamma=sched.gamma,
        min_lr=sched.min_lr,
        warmup_epochs=sched.warmup_epochs,
    )
    train_loader, val_loader, test_loader = make_loaders(cfg, data, device, context)

    trainer_cfg = cfg.trainer
    resume_checkpoint = None
    if cfg.resume is not None:
        resume_checkpoint = load_checkpoint(Checkpointer(cfg.resume).last_path)
    checkpointer = None
    if trainer_cfg.checkpoint or cfg.trainer.divergence == "rollback":
        checkpointer = Checkpointer(run_dir, writable=context.is_main)

    progress = {"on": True, "off": False}.get(trainer_cfg.progress, sys.stderr.isatty())
    signals = SignalFlag().install()
    # Built after the handler is installed, so Ctrl-C during the build stops the
    # compiler and the run ends through the usual interrupted path.
    summary["slaf_kernels"] = kernel_names(model, device)
    if summary["slaf_kernels"]:
        log.info("SLAF kernels: %s", ", ".join(summary["slaf_kernels"]))
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        routine=routine,
        task=make_task(data.task),
        train_loader=train_loader,
        val_loader=val_loader,
        epochs=trainer_cfg.epochs,
        eval_every=trainer_cfg.eval_every,
        max_steps_per_epoch=trainer_cfg.max_steps_per_epoch,
        log_every=trainer_cfg.log_every,
        progress=progress and context.is_main,
        checkpointer=checkpointer,
        guard=DivergenceGuard(
            trainer_cfg.divergence,
            max_rollbacks=trainer_cfg.max_rollbacks,
            lr_factor=trainer_cfg.rollback_lr_factor,
        ),
        signals=signals,
        forward_model=forward_model,
        context=context,
    )
    if resume_checkpoint is not None:
        _resume(trainer, resume_checkpoint, Path(cfg.resume), context.is_main)
    reporter = None
    if context.is_main:
        purge_step = (
            resume_checkpoint["train_state"]["step"] if resume_checkpoint else None
        )
        plot_every = trainer_cfg.plot_every or max(1, trainer_cfg.epochs // 10)
        reporter = TensorBoardReporter(
            run_dir,
            plot_features=trainer_cfg.plot_features,
            plot_every=plot_every,
            epochs=trainer_cfg.epochs,
            purge_step=purge_step,
        )
    trainer.reporter = reporter

    log.info(
        "Training for %d epoch%s on %s%s",
        trainer_cfg.epochs,
        "" if trainer_cfg.epochs == 1 else "s",
        device,
        f" x {context.world_size} processes" if context.enabled else "",
    )
    try:
        state = trainer.fit()
        summary["metrics"] = _final_metrics(state.history)
        if cfg.test:
            trainer.load_best()
            test_metrics = trainer.evaluate(test_loader, "test")
            summary["metrics"].update(test_metrics)
            log.info(
                "Test (best epoch %d): %s",
                state.best_epoch,
                format_scalars(test_metrics),
            )
        summary["status"] = "completed"
        if reporter is not None:
            finite = {k: v for k, v in summary["metrics"].items() if math.isfinite(v)}
            reporter.log_hparams(hparams_of(cfg, choices), finite)
    except Diverged as error:
        log.error("Run diverged: %s; the last good checkpoint is kept", error)
        summary.update(
            status="diverged",
            error=str(error),
            diverged_at={"epoch": error.epoch, "step": error.step},
        )
        raise
    except Interrupted as error:
        log.warning("Run %s; resume with: slaf-train resume=%s", error, run_dir)
        summary.update(status="interrupted", error=str(error))
        raise
    finally:
        signals.uninstall()
        _finish_summary(summary, trainer, started)
        if reporter is not None:
            reporter.close()
        if context.is_main:
            write_summary(run_dir, summary)
    return summary


def _resume(
    trainer: Trainer, checkpoint: dict[str, Any], run_dir: Path, main: bool
) -> None:
    """Load ``last.pt`` (and ``best.pt``) into the trainer, then adopt the new config.

    A checkpoint that does not fit the composed model (an override changed its
    shape) is a ConfigError, and the run's saved ``.hydra`` files stay untouched.
    """
    try:
        trainer.resume(checkpoint)
        best_path = Checkpointer(run_dir).best_path
        if best_path.is_file():
            trainer.best_weights = load_checkpoint(best_path)["model"]
    except (RuntimeError, KeyError, ValueError) as error:
        lines = [line.strip() for line in str(error).strip().splitlines()]
        detail = next((line for line in lines if "mismatch" in line), lines[0])
        raise ConfigError(
            f"checkpoint in {run_dir} does not fit this configuration ({detail}); "
            "resume with the run's own model, activation and basis settings"
        ) from None
    if main:
        _adopt_resume_config(run_dir)
    log.info(
        "Resuming %s after epoch %d, batch %d (step %d)",
        run_dir,
        trainer.state.epoch,
        trainer.state.batch_in_epoch,
        trainer.state.step,
    )


def _adopt_resume_config(run_dir: Path) -> None:
    """Copy the resumed composition from ``.hydra/resume`` over the run's ``.hydra``."""
    source = run_dir / ".hydra" / "resume"
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        if (source / name).is_file():
            atomic_write_text(run_dir / ".hydra" / name, (source / name).read_text())


def _finish_summary(summary: dict[str, Any], trainer: Trainer, started: float) -> None:
    state = trainer.state
    summary.update(
        wall_time_s=time.perf_counter() - started,
        best_epoch=state.best_epoch,
        epochs_completed=state.epoch,
        steps=state.step,
        skipped_steps=state.skipped_steps,
        rollbacks=state.rollbacks,
        history=state.history,
    )
    summary.setdefault("metrics", _final_metrics(state.history))
    if summary["status"] == "running":
        summary["status"] = "failed"
