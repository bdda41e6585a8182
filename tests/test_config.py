"""Every option of every config group composes, validates and builds its model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import slaf_cli.cli.train  # noqa: F401  (registers the schemas and the slaf_uid resolver)
from slaf_cli.config import validate
from slaf_cli.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = [
    "dataset",
    "model",
    "activation",
    "basis",
    "routine",
    "optimizer",
    "scheduler",
    "trainer",
]


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="slaf_cli.conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize(
    "override", [f"{group}={option}" for group in GROUPS for option in options(group)]
)
def test_group_option_composes(override: str) -> None:
    cfg = compose_train([override])
    group, option = override.split("=")
    validate(cfg)
    assert cfg[group] is not None


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), f"conf/{group} has no options"


def test_unknown_key_rejected() -> None:
    with pytest.raises(Exception, match="not_a_key"):
        compose_train(["trainer.not_a_key=3"])


def test_wrong_type_rejected() -> None:
    with pytest.raises(Exception, match="trainer.epochs"):
        compose_train(["trainer.epochs=ten"])


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["model=cnn", "model.pool=median"], "model.pool='median'"),
        (["optimizer=sgd", "optimizer.momentum=-5"], "optimizer.momentum=-5"),
        (["model=resnet", "model.depth=10"], "model.depth=10"),
        (["model=cnn", "model.channels=[32,0]"], "model.channels"),
    ],
)
def test_invalid_option_values(overrides: list[str], fragment: str) -> None:
    cfg = compose_train(overrides)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert fragment in str(error.value)


def test_dataset_option_keys_checked() -> None:
    with pytest.raises(Exception, match="turns"):
        compose_train(["dataset=mnist", "dataset.turns=3"])


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("trainer.epochs=0", "trainer.epochs=0"),
        ("trainer.batch_size=0", "trainer.batch_size=0"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1"),
        ("optimizer.lr=inf", "optimizer.lr=inf"),
        ("optimizer.betas=[2,3]", "optimizer.betas=[2.0, 3.0]"),
        ("activation.name=swish", "activation.name='swish'"),
        ("trainer.eval_every=0", "trainer.eval_every=0"),
        ("trainer.device=tpu", "trainer.device='tpu'"),
        ("dataset.val_fraction=1.0", "dataset.val_fraction=1.0"),
        ("activation.sharing=row", "activation.sharing='row'"),
        ("activation.init_range=[1,1]", "activation.init_range"),
        ("routine.momentum=0", "routine.momentum=0"),
        ("routine.penalty=l3", "routine.penalty='l3'"),
        ("routine.penalty_weight=-1", "routine.penalty_weight=-1"),
        ("scheduler.gamma=0", "scheduler.gamma=0"),
        ("model.widths=[]", "model.widths=[]"),
        ("model.dropout=1.5", "model.dropout=1.5"),
        ("trainer.divergence=explode", "trainer.divergence='explode'"),
        ("trainer.rollback_lr_factor=2", "trainer.rollback_lr_factor=2"),
        ("trainer.max_steps_per_epoch=0", "trainer.max_steps_per_epoch=0"),
        ("trainer.log_every=0", "trainer.log_every=0"),
        ("trainer.progress=maybe", "trainer.progress='maybe'"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1"),
        ("scheduler.step_size=0", "scheduler.step_size=0"),
        ("scheduler.warmup_epochs=-1", "scheduler.warmup_epochs=-1"),
        ("routine.slaf_lr=0", "routine.slaf_lr=0"),
        ("routine.freeze_epochs=-1", "routine.freeze_epochs=-1"),
        ("dataset.subset=0", "dataset.subset=0"),
        ("basis.degree=-2", "basis.degree=-2"),
        ("basis.input_range=[0,0,1]", "basis.input_range"),
    ],
)
def test_invalid_value_names_key(override: str, fragment: str) -> None:
    """Each invalid value is rejected before training, naming the key and value."""
    cfg = compose_train([override])
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)
