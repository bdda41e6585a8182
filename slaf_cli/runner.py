"""Turn a composed config into objects, train them, and report the result.

This is the only module that reads the config tree: everything it calls takes
plain values and objects.
"""

from __future__ import annotations

import logging
import math
import random
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

from slaf_cli.config import validate
from slaf_cli.data import BatchLoader, DataBundle
from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.factory import ActivationFactory, slaf_modules
from slaf_cli.report.summary import library_versions, write_summary
from slaf_cli.report.tensorboard import TensorBoardReporter
from slaf_cli.train.checkpoint import Checkpointer, load_checkpoint
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
        raise


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    """The activation factory; builds the basis only when the activation uses SLAF."""
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


def build_model(cfg: DictConfig, data: DataBundle, factory: ActivationFactory) -> nn.Module:
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
    """The flat hyperparameters shown in TensorBoard's HPARAMS dashboard."""
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


def run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str] | None = None,
    choices: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train one configuration in ``run_dir``; return the summary that was written."""
    started = time.perf_counter()
    overrides = overrides or []
    choices = choices or {}
    summary: dict[str, Any] = {
        "run_name": cfg.run_name,
        "status": "running",
        "run_dir": str(run_dir),
        "overrides": overrides,
        "choices": choices,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": library_versions(),
    }

    validate(cfg)
    device = select_device(cfg.trainer.device)
    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    summary["device"] = str(device)

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
    factory = build_activation(cfg)
    model = build_model(cfg, data, factory).to(device)
    summary["parameters"] = count_parameters(model)
    summary["init_fit_error"] = {
        name: getattr(module, "init_fit_error", None) for name, module in slaf_modules(model)
    }
    log.info(
        "Model: %d parameters, %d in activations, %d SLAF layers",
        summary["parameters"]["total"],
        summary["parameters"]["activation"],
        len(slaf_modules(model)),
    )

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
    task = make_task(data.task)

    trainer_cfg = cfg.trainer
    train_loader = BatchLoader(
        data.train,
        batch_size=trainer_cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        device=device,
        augment=data.augment,
    )
    eval_loader_args = dict(batch_size=trainer_cfg.eval_batch_size, shuffle=False, seed=0, device=device)
    val_loader = BatchLoader(data.val, **eval_loader_args) if len(data.val.x) else None
    test_loader = BatchLoader(data.test, **eval_loader_args)

    checkpointer = Checkpointer(run_dir) if trainer_cfg.checkpoint else None
    resume_checkpoint = None
    if cfg.resume is not None:
        resume_checkpoint = load_checkpoint(Checkpointer(run_dir).last_path)

    progress = {"on": True, "off": False}.get(trainer_cfg.progress, sys.stderr.isatty())
    purge_step = resume_checkpoint["train_state"]["step"] if resume_checkpoint else None
    reporter = TensorBoardReporter(
        run_dir, plot_features=trainer_cfg.plot_features, purge_step=purge_step
    )
    signals = SignalFlag().install()
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        routine=routine,
        task=task,
        train_loader=train_loader,
        val_loader=val_loader,
        epochs=trainer_cfg.epochs,
        eval_every=trainer_cfg.eval_every,
        max_steps_per_epoch=trainer_cfg.max_steps_per_epoch,
        log_every=trainer_cfg.log_every,
        reporter=reporter,
        progress=progress,
        checkpointer=checkpointer,
        guard=DivergenceGuard(
            trainer_cfg.divergence,
            max_rollbacks=trainer_cfg.max_rollbacks,
            lr_factor=trainer_cfg.rollback_lr_factor,
        ),
        signals=signals,
    )
    if resume_checkpoint is not None:
        trainer.load_training_state(resume_checkpoint)
        best_path = Checkpointer(run_dir).best_path
        if best_path.is_file():
            trainer.best_weights = load_checkpoint(best_path)["model"]
        log.info(
            "Resuming %s after epoch %d, batch %d (step %d)",
            run_dir,
            trainer.state.epoch,
            trainer.state.batch_in_epoch,
            trainer.state.step,
        )

    log.info("Training for %d epochs on %s", trainer_cfg.epochs, device)
    try:
        state = trainer.fit()
        metrics = dict(state.history[-1]) if state.history else {}
        metrics.pop("epoch", None)
        if cfg.test:
            trainer.load_best()
            test_metrics = trainer.evaluate(test_loader, "test")
            metrics.update(test_metrics)
            log.info("Test (best epoch %d): %s", state.best_epoch, format_scalars(test_metrics))
        summary.update(
            status="completed",
            metrics={k: v for k, v in metrics.items() if not k.startswith("time/")},
        )
        finite = {k: v for k, v in summary["metrics"].items() if math.isfinite(v)}
        reporter.log_hparams(hparams_of(cfg, choices), finite)
    except Diverged as error:
        log.error("Run diverged: %s; the last good checkpoint is kept", error)
        summary.update(status="diverged", error=str(error), diverged_at={"epoch": error.epoch, "step": error.step})
        raise
    except Interrupted as error:
        log.warning("Run %s; resume with: slaf-train resume=%s", error, run_dir)
        summary.update(status="interrupted", error=str(error))
        raise
    finally:
        signals.uninstall()
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
        if "metrics" not in summary:
            last = dict(state.history[-1]) if state.history else {}
            summary["metrics"] = {
                k: v for k, v in last.items() if k != "epoch" and not k.startswith("time/")
            }
        reporter.close()
        if summary["status"] == "running":
            summary["status"] = "failed"
        write_summary(run_dir, summary)
    return summary
