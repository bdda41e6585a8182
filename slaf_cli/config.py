"""Structured configs: one dataclass per group option, stored in Hydra's ConfigStore.

Each YAML under ``conf/<group>/`` names its schema in its defaults list
(``- /schema/<group>@_here_: <schema>``), so Hydra rejects unknown keys and wrong
types while composing, before any training starts. Value checks that a type cannot
express (ranges, choices) live in :func:`validate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from slaf_cli.errors import ConfigError

# ---------------------------------------------------------------- dataset


@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    val_fraction: float = 0.1  # share of the training split held out for validation
    split_seed: int = 0  # seed of the train/validation split, fixed across runs
    subset: Optional[int] = None  # keep only this many training samples (quick runs)
    test_subset: Optional[int] = None  # keep only this many test samples


@dataclass
class TorchvisionDatasetConfig(DatasetConfig):
    root: str = "data"  # folder torchvision reads from (and downloads into)
    download: bool = True  # fetch the files when they are missing under root
    augment: Optional[str] = None  # crop | crop_flip: padded random crop (+ h-flip)
    crop_padding: int = 4  # pixels of padding on each side before a random crop


@dataclass
class TableDatasetConfig(DatasetConfig):
    test_fraction: float = 0.2  # share held out as the test split (no official one)


@dataclass
class MNIST1DConfig(TableDatasetConfig):
    n_samples: int = 5000  # train + test sequences generated
    seed: int = 42  # generator seed (42 reproduces the published split)


@dataclass
class SpiralsConfig(TableDatasetConfig):
    n_samples: int = 2000
    turns: float = 1.5  # revolutions of each arm
    noise: float = 0.05  # Gaussian noise, in units of the outer radius
    seed: int = 0  # generator seed


@dataclass
class PolynomialConfig(TableDatasetConfig):
    n_samples: int = 4000
    in_features: int = 4
    n_terms: int = 6  # monomials with a non-zero coefficient
    degree: int = 3  # maximum total degree of a monomial
    noise: float = 0.0  # Gaussian noise added to the standardised target
    seed: int = 0


# ---------------------------------------------------------------- model


@dataclass
class MLPConfig:
    _target_: str = "slaf_cli.models.MLP"
    widths: list[int] = field(default_factory=lambda: [256, 256])
    dropout: float = 0.0
    batch_norm: bool = False


@dataclass
class CNNConfig:
    _target_: str = "slaf_cli.models.CNN"
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    pool: str = "max"  # max | avg
    hidden: int = 128  # width of the dense head
    dropout: float = 0.0
    batch_norm: bool = True


@dataclass
class ResNetConfig:
    _target_: str = "slaf_cli.models.ResNet"
    depth: int = 20  # 6n+2: 20, 32, 44, 56, 110
    width: int = 16  # channels of the first stage, doubled at each later stage


# ---------------------------------------------------------------- activation


@dataclass
class ActivationConfig:
    _target_: str = "slaf_cli.nn.factory.ActivationFactory"
    name: str = "relu"  # relu | slaf | hybrid | gelu | tanh | silu | prelu
    sharing: str = (
        "channel"  # channel | neuron | layer (channel and neuron: per dim-1 feature)
    )
    init: str = "identity"  # function the SLAF starts as, fitted by least squares
    init_range: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    slaf_layers: Optional[list[int]] = (
        None  # hybrid: activation indices that get a SLAF
    )
    slaf_stages: Optional[list[str]] = None  # hybrid: stage names that get a SLAF
    fast: bool = True  # fused SLAF kernel; false selects the reference implementation
    compile: bool = False  # torch.compile the fast kernels (compiles on first use)
    native: bool = True  # monomial on CPU: fused C kernels, built once with $CC


@dataclass
class BasisConfig:
    name: str = "monomial"
    degree: int = 3
    input_range: list[float] = field(default_factory=lambda: [-3.0, 3.0])


@dataclass
class BoundedBasisConfig(BasisConfig):
    out_of_range: str = "clamp"  # clamp | squash: inputs outside input_range


@dataclass
class BSplineBasisConfig(BoundedBasisConfig):
    grid_size: int = 5  # knot intervals over input_range


@dataclass
class RBFBasisConfig(BasisConfig):
    width: float = 2.0  # bump width, in units of the grid spacing


# ---------------------------------------------------------------- training


@dataclass
class RoutineConfig:
    name: str = "plain"
    normalize: bool = False  # normalise each basis term with batch statistics
    eps: float = 1e-5  # added to the variance of each normalised term
    momentum: float = 0.1  # running-statistics update rate of the normalised terms
    clip_grad_norm: Optional[float] = (
        None  # max global gradient norm; null: no clipping
    )
    penalty: str = "none"  # none | l1 | l2 penalty on SLAF coefficients
    penalty_weight: float = 0.0
    slaf_lr: Optional[float] = (
        None  # learning rate of SLAF parameters; null: optimizer.lr
    )
    freeze_epochs: int = (
        0  # hold SLAF parameters at their initial shape this many epochs
    )


@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | cosine | step
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    min_lr: float = 0.0  # cosine: final learning rate
    warmup_epochs: int = 0  # linear warm-up before the schedule


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # deterministic kernels, for bit-exact reruns
    eval_every: int = 1  # evaluate on the validation split every N epochs
    max_steps_per_epoch: Optional[int] = None  # cut epochs short (debug runs)
    progress: str = "auto"  # auto (only on a terminal) | on | off
    log_every: int = 20  # optimizer steps between TensorBoard scalar records
    plot_features: int = 4  # activation-curve figure: curves drawn per SLAF layer
    plot_every: Optional[int] = None  # epochs between figures; null: about 10 per run
    num_threads: Optional[int] = None  # torch intra-op threads; null: torch default
    checkpoint: bool = True  # write checkpoints/last.pt each epoch and best.pt
    divergence: str = "stop"  # stop | skip | rollback, on a non-finite loss/grad/coef
    max_rollbacks: int = 3  # rollback: reloads of the last checkpoint before stopping
    rollback_lr_factor: float = 0.5  # rollback: learning-rate multiplier per reload


@dataclass
class TrainConfig:
    dataset: Any = MISSING
    model: Any = MISSING
    activation: ActivationConfig = MISSING
    basis: BasisConfig = MISSING
    routine: RoutineConfig = MISSING
    optimizer: Any = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    seed: int = 0  # seeds weights, shuffling and augmentation
    run_name: str = "train"
    test: bool = True  # evaluate the best-validation weights on the test split
    resume: Optional[str] = None  # run folder to continue in place
    optimized_metric: Optional[str] = (
        None  # returned to sweepers; null: val/acc or val/rmse
    )


_SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {
        "table": TableDatasetConfig,
        "mnist1d": MNIST1DConfig,
        "torchvision": TorchvisionDatasetConfig,
        "spirals": SpiralsConfig,
        "polynomial": PolynomialConfig,
    },
    "model": {"mlp": MLPConfig, "cnn": CNNConfig, "resnet": ResNetConfig},
    "activation": {"activation": ActivationConfig},
    "basis": {
        "basis": BasisConfig,
        "bounded": BoundedBasisConfig,
        "bspline": BSplineBasisConfig,
        "rbf": RBFBasisConfig,
    },
    "routine": {"routine": RoutineConfig},
    "optimizer": {"adam": AdamConfig, "adamw": AdamWConfig, "sgd": SGDConfig},
    "scheduler": {"scheduler": SchedulerConfig},
    "trainer": {"trainer": TrainerConfig},
}


def register_configs() -> None:
    """Store each schema under ``schema/<group>``, the root one as ``train_schema``."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, schemas in _SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


# ---------------------------------------------------------------- value checks

ACTIVATIONS = ("relu", "slaf", "hybrid", "gelu", "tanh", "silu", "prelu")
SHARINGS = ("channel", "neuron", "layer")
PENALTIES = ("none", "l1", "l2")
SCHEDULERS = ("none", "cosine", "step")
POOLS = ("max", "avg")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _require(
        value in choices,
        f"{key}={value!r} is invalid; choose one of {', '.join(choices)}",
    )


def _check_positive(
    key: str, value: float | int | None, allow_zero: bool = False
) -> None:
    if value is None:
        return
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    bound = ">= 0" if allow_zero else "> 0"
    _require(ok, f"{key}={value} is invalid; set {key} to a value {bound}")


def validate(cfg: DictConfig) -> None:
    """Check values that schema types cannot express; raise ConfigError on the first.

    Checks that need a built object (a hybrid layer the model does not have, a
    dataset root without files, a degree too high for its basis) happen where that
    object is built, still before the first training step.
    """
    trainer = cfg.trainer
    _check_positive("trainer.epochs", trainer.epochs)
    _check_positive("trainer.batch_size", trainer.batch_size)
    _check_positive("trainer.eval_batch_size", trainer.eval_batch_size)
    _check_positive("trainer.eval_every", trainer.eval_every)
    _check_positive("trainer.max_steps_per_epoch", trainer.max_steps_per_epoch)
    _check_positive("trainer.log_every", trainer.log_every)
    _check_positive("trainer.plot_features", trainer.plot_features, allow_zero=True)
    _check_positive("trainer.plot_every", trainer.plot_every)
    _check_positive("trainer.num_threads", trainer.num_threads)
    _check_choice("trainer.progress", trainer.progress, ("auto", "on", "off"))
    _check_choice(
        "trainer.divergence", trainer.divergence, ("stop", "skip", "rollback")
    )
    _check_positive("trainer.max_rollbacks", trainer.max_rollbacks, allow_zero=True)
    _require(
        0.0 < trainer.rollback_lr_factor < 1.0,
        f"trainer.rollback_lr_factor={trainer.rollback_lr_factor} is invalid; "
        "use a value in (0, 1)",
    )
    device = trainer.device
    _require(
        device in ("auto", "cpu", "cuda") or device.startswith("cuda:"),
        f"trainer.device={device!r} is invalid; use auto, cpu, cuda or cuda:N",
    )

    data = cfg.dataset
    _require(
        0.0 <= data.val_fraction < 1.0,
        f"dataset.val_fraction={data.val_fraction} is invalid; use a value in [0, 1)",
    )
    _check_positive("dataset.subset", data.subset)
    _check_positive("dataset.test_subset", data.test_subset)

    act = cfg.activation
    _check_choice("activation.name", act.name, ACTIVATIONS)
    _check_choice("activation.sharing", act.sharing, SHARINGS)
    _require(
        len(act.init_range) == 2 and act.init_range[0] < act.init_range[1],
        f"activation.init_range={list(act.init_range)} is invalid; "
        "give [min, max] with min < max",
    )
    basis = cfg.basis
    _require(
        basis.degree >= 1,
        f"basis.degree={basis.degree} is invalid; set basis.degree to an integer >= 1",
    )
    _require(
        len(basis.input_range) == 2 and basis.input_range[0] < basis.input_range[1],
        f"basis.input_range={list(basis.input_range)} is invalid; "
        "give [min, max] with min < max",
    )

    routine = cfg.routine
    _check_positive("routine.eps", routine.eps)
    _require(
        0.0 < routine.momentum <= 1.0,
        f"routine.momentum={routine.momentum} is invalid; use a value in (0, 1]",
    )
    _check_positive("routine.clip_grad_norm", routine.clip_grad_norm)
    _check_choice("routine.penalty", routine.penalty, PENALTIES)
    _check_positive("routine.penalty_weight", routine.penalty_weight, allow_zero=True)
    _check_positive("routine.slaf_lr", routine.slaf_lr)
    _check_positive("routine.freeze_epochs", routine.freeze_epochs, allow_zero=True)

    _validate_optimizer(cfg.optimizer)

    sched = cfg.scheduler
    _check_choice("scheduler.name", sched.name, SCHEDULERS)
    _check_positive("scheduler.step_size", sched.step_size)
    _check_positive("scheduler.gamma", sched.gamma)
    _check_positive("scheduler.min_lr", sched.min_lr, allow_zero=True)
    _check_positive("scheduler.warmup_epochs", sched.warmup_epochs, allow_zero=True)

    _validate_model(cfg.model)


def _validate_optimizer(optimizer: DictConfig) -> None:
    _check_positive("optimizer.lr", optimizer.lr)
    _check_positive("optimizer.weight_decay", optimizer.weight_decay, allow_zero=True)
    if "momentum" in optimizer:
        _require(
            0.0 <= optimizer.momentum < 1.0,
            f"optimizer.momentum={optimizer.momentum} is invalid; "
            "use a value in [0, 1)",
        )
    if "betas" in optimizer:
        betas = list(optimizer.betas)
        _require(
            len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas),
            f"optimizer.betas={betas} is invalid; give two values in [0, 1), "
            "e.g. [0.9,0.999]",
        )


def _validate_model(model: DictConfig) -> None:
    if "widths" in model:
        _require(
            len(model.widths) > 0 and all(w > 0 for w in model.widths),
            f"model.widths={list(model.widths)} is invalid; give one or more "
            "positive layer widths, e.g. model.widths=[256,256]",
        )
    if "channels" in model:
        _require(
            len(model.channels) > 0 and all(c > 0 for c in model.channels),
            f"model.channels={list(model.channels)} is invalid; give positive "
            "channel counts, e.g. model.channels=[32,64]",
        )
        _check_choice("model.pool", model.pool, POOLS)
        _check_positive("model.kernel_size", model.kernel_size)
        _check_positive("model.hidden", model.hidden)
    if "depth" in model:
        _require(
            model.depth >= 8 and (model.depth - 2) % 6 == 0,
            f"model.depth={model.depth} is invalid; a CIFAR ResNet has depth 6n+2, "
            "e.g. 20, 32 or 56",
        )
        _check_positive("model.width", model.width)
    if "dropout" in model:
        _require(
            0.0 <= model.dropout < 1.0,
            f"model.dropout={model.dropout} is invalid; use a value in [0, 1)",
        )
