"""Every model option builds on every dataset's shape with every activation option."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import slaf_cli.cli.train  # noqa: F401  (registers the schemas and the slaf_uid resolver)
from slaf_cli.errors import ConfigError
from slaf_cli.nn.factory import slaf_modules
from slaf_cli.runner import build, build_activation, build_model
from tests.conftest import mnist_root, requires_mnist
from tests.data import fake_files
from tests.test_config import options

IMAGE_FAKES = {
    "fashion_mnist": lambda root: fake_files.write_fashion_mnist(root, 20, 10),
    "cifar10": lambda root: fake_files.write_cifar10(root, 4, 10),
    "cifar100": lambda root: fake_files.write_cifar100(root, 20, 10),
    "svhn": lambda root: fake_files.write_svhn(root, 20, 10),
}
OFFLINE = ["digits", "diabetes", "mnist1d", "two_spirals", "polynomial"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def skip_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake CIFAR/SVHN files cannot match torchvision's md5 sums: check existence."""

    def exists_only(fpath: str, md5: str | None = None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists_only)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", exists_only)


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="slaf_cli.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def build_and_forward(cfg: DictConfig) -> tuple[torch.nn.Module, torch.Tensor]:
    data = build(cfg.dataset, _convert_="all")
    model = build_model(cfg, data, build_activation(cfg))
    model.eval()
    x = data.train.x[:3]
    with torch.no_grad():
        output = model(x)
    assert output.shape == (3, data.num_outputs)
    assert torch.isfinite(output).all()
    return model, output


def supports(model: str, dataset: str) -> bool:
    images = {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"}
    if model == "resnet":
        return dataset in images
    if model == "cnn":
        return dataset in images or dataset == "mnist1d"
    return True


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("dataset", OFFLINE)
def test_model_builds_on_offline_dataset(model: str, dataset: str) -> None:
    cfg = compose_train([f"dataset={dataset}", f"model={model}", "activation=hybrid"])
    if not supports(model, dataset):
        with pytest.raises(ConfigError, match=f"model={model}"):
            build_and_forward(cfg)
        return
    model_module, _ = build_and_forward(cfg)
    assert len(slaf_modules(model_module)) == 1


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("dataset", sorted(IMAGE_FAKES))
def test_model_builds_on_image_dataset(
    model: str, dataset: str, tmp_path: Path, skip_md5: None
) -> None:
    IMAGE_FAKES[dataset](tmp_path)
    cfg = compose_train(
        [
            f"dataset={dataset}",
            f"dataset.root={tmp_path}",
            "dataset.download=false",
            f"model={model}",
        ]
    )
    model_module, _ = build_and_forward(cfg)
    assert len(slaf_modules(model_module)) > 0


@requires_mnist
@pytest.mark.parametrize("model", options("model"))
def test_model_builds_on_mnist(model: str) -> None:
    cfg = compose_train(
        [
            "dataset=mnist",
            f"dataset.root={mnist_root()}",
            "dataset.download=false",
            "dataset.subset=200",
            "dataset.test_subset=50",
            f"model={model}",
        ]
    )
    build_and_forward(cfg)


@pytest.mark.parametrize("activation", options("activation"))
@pytest.mark.parametrize("model", options("model"))
def test_activation_option_builds(activation: str, model: str) -> None:
    model_module, _ = build_and_forward(
        compose_train([f"model={model}", f"activation={activation}"])
    )
    count = len(slaf_modules(model_module))
    if activation == "slaf":
        assert count > 1
    elif activation == "hybrid":
        assert count == 1
    else:
        assert count == 0


@pytest.mark.parametrize("basis", options("basis"))
def test_basis_option_builds(basis: str) -> None:
    model_module, output = build_and_forward(compose_train([f"basis={basis}"]))
    assert all(m.basis.name == basis for _, m in slaf_modules(model_module))


@pytest.mark.parametrize(
    ("model", "stages", "expected"),
    [
        ("mlp", "[hidden]", 2),
        ("cnn", "[conv]", 2),
        ("cnn", "[head]", 1),
        ("resnet", "[stem,stage1]", 7),
    ],
)
def test_hybrid_stages_select_layers(model: str, stages: str, expected: int) -> None:
    cfg = compose_train(
        [
            f"model={model}",
            "activation=hybrid",
            "activation.slaf_layers=null",
            f"activation.slaf_stages={stages}",
        ]
    )
    model_module, _ = build_and_forward(cfg)
    assert len(slaf_modules(model_module)) == expected


def test_resnet32_has_31_activations() -> None:
    cfg = compose_train(["model=resnet", "model.depth=32", "activation=slaf"])
    model_module, _ = build_and_forward(cfg)
    assert len(slaf_modules(model_module)) == 31


def test_hybrid_unknown_stage_rejected() -> None:
    cfg = compose_train(
        ["model=mlp", "activation=hybrid", "activation.slaf_stages=[conv]"]
    )
    with pytest.raises(ConfigError, match="conv"):
        build_and_forward(cfg)
