"""Load a trained run folder back into a model, and train a quick teacher run.

A run folder is what ``slaf-train`` writes: ``.hydra/config.yaml`` (the composed
config) and ``checkpoints/best.pt`` or ``checkpoints/last.pt`` (a dict whose
``"model"`` entry is the state_dict). The model is rebuilt by the same functions
``runner.run`` uses, so any model that trained can be loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from slaf_cli.config import register_configs, validate
from slaf_cli.data import DataBundle
from slaf_cli.errors import ConfigError
from slaf_cli.runner import build, build_activation, build_model, run
from slaf_cli.train.checkpoint import BEST, CHECKPOINT_DIR, LAST, load_checkpoint

logger = logging.getLogger(__name__)

CHECKPOINTS = {"best": BEST, "last": LAST}


@dataclass
class LoadedRun:
    """A trained model in eval mode with the config and data it was trained on."""

    run_dir: Path
    cfg: DictConfig
    model: nn.Module
    data: DataBundle
    checkpoint: Path


def load_run(run_dir: str | Path, checkpoint: str = "best") -> LoadedRun:
    """Rebuild the model of ``run_dir`` and load its weights on the CPU.

    ``checkpoint`` "best" falls back to ``last.pt`` when a run saved no best
    weights (for example one without a validation split). The dataset is built
    again because the model's input shape and output count come from it. Raises
    ConfigError when the folder, its config or its checkpoint is missing or invalid.
    """
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(
            f"checkpoint {checkpoint!r} is invalid; set checkpoint to best or last"
        )
    folder = Path(run_dir).expanduser()
    config_path = folder / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(
            f"run_dir={folder} is not a run folder ({config_path} not found); pass a "
            "folder written by slaf-train, e.g. run_dir=outputs/<date>/<time>_train_*"
        )
    weights = folder / CHECKPOINT_DIR / CHECKPOINTS[checkpoint]
    if checkpoint == "best" and not weights.is_file():
        weights = folder / CHECKPOINT_DIR / LAST
    if not weights.is_file():
        raise ConfigError(
            f"run_dir={folder} has no checkpoint ({weights} not found); train with "
            "trainer.checkpoint=true, or pass a run that finished an epoch"
        )

    cfg = OmegaConf.load(config_path)
    assert isinstance(cfg, DictConfig)
    validate(cfg)
    if "compile" in cfg.activation:
        # Analysis runs a few eval passes, which would not repay compiling.
        cfg.activation.compile = False
    data: DataBundle = build(cfg.dataset, _convert_="all")
    model = build_model(cfg, data, build_activation(cfg))
    model.load_state_dict(load_checkpoint(weights)["model"])
    model.eval()
    logger.info("Loaded %s from %s", type(model).__name__, weights)
    return LoadedRun(folder, cfg, model, data, weights)


def compose_train_config(overrides: list[str]) -> DictConfig:
    """Compose ``slaf-train``'s config with ``overrides``, as the command line would.

    Works inside a running Hydra app (which has already initialised Hydra with the
    package's config folder) and from plain Python. An invalid override raises
    ConfigError with Hydra's message.
    """
    register_configs()
    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name="train", overrides=overrides)
        with initialize_config_module("slaf_cli.conf", version_base="1.3"):
            return compose(config_name="train", overrides=overrides)
    except HydraException as error:
        message = " ".join(str(error).split())
        raise ConfigError(
            f"training overrides {overrides} are invalid: {message}"
        ) from None


def train_run(overrides: list[str], run_dir: Path) -> Path:
    """Train ``slaf-train <overrides>`` in-process into ``run_dir``; return run_dir.

    Saves the composed config as ``run_dir/.hydra/config.yaml``, like Hydra does,
    so :func:`load_run` can read the folder back.
    """
    return train_config(compose_train_config(overrides), run_dir, overrides)


def train_config(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Path:
    """Train a composed ``slaf-train`` config into ``run_dir``; return run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    logger.info("Training %s in %s", " ".join(overrides), run_dir)
    run(cfg, run_dir, overrides=overrides)
    return run_dir
