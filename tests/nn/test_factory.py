"""ActivationFactory: module per slot, hybrid selection and its checks."""

import pytest
import torch
from torch import nn

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.factory import ActivationFactory, ActivationSlot, slaf_modules
from slaf_cli.nn.slaf import SLAF

SLOTS = [
    ActivationSlot(0, "stem", 8, "conv"),
    ActivationSlot(1, "block1", 16, "conv"),
    ActivationSlot(2, "block1", 16, "conv"),
    ActivationSlot(3, "head", 32, "dense"),
]


def build_all(factory):
    return [factory(slot) for slot in SLOTS]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("relu", nn.ReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh), ("silu", nn.SiLU)],
)
def test_fixed_activation_per_slot(name, kind):
    modules = build_all(ActivationFactory(name))
    assert all(isinstance(m, kind) for m in modules)


def test_prelu_is_channel_wise():
    modules = build_all(ActivationFactory("prelu"))
    assert [m.num_parameters for m in modules] == [8, 16, 16, 32]


def test_prelu_layer_sharing_single_slope():
    modules = build_all(ActivationFactory("prelu", sharing="layer"))
    assert [m.num_parameters for m in modules] == [1, 1, 1, 1]


def test_slaf_in_every_slot():
    factory = ActivationFactory("slaf", build_basis("chebyshev", degree=3))
    modules = build_all(factory)
    assert all(isinstance(m, SLAF) for m in modules)
    assert [m.num_features for m in modules] == [8, 16, 16, 32]
    assert factory.slots == SLOTS


def test_slaf_options_reach_module():
    factory = ActivationFactory(
        "slaf",
        build_basis("monomial", degree=2),
        sharing="layer",
        normalize=True,
        eps=1e-3,
        fast=False,
        init="tanh",
    )
    module = factory(SLOTS[0])
    assert module.coefficients.shape == (1, 2)
    assert module.normalize
    assert module.eps == 1e-3
    assert not module.fast
    assert module.init == "tanh"


def test_hybrid_selects_by_layer():
    factory = ActivationFactory(
        "hybrid", build_basis("monomial", degree=2), slaf_layers=[1, 3]
    )
    modules = build_all(factory)
    assert [isinstance(m, SLAF) for m in modules] == [False, True, False, True]
    assert isinstance(modules[0], nn.ReLU)
    factory.check_hybrid()


def test_hybrid_selects_by_stage():
    basis = build_basis("monomial", degree=2)
    factory = ActivationFactory("hybrid", basis, slaf_stages=["block1"])
    modules = build_all(factory)
    assert [isinstance(m, SLAF) for m in modules] == [False, True, True, False]
    factory.check_hybrid()


def test_hybrid_rejects_unknown_layer():
    factory = ActivationFactory(
        "hybrid", build_basis("monomial", degree=2), slaf_layers=[1, 9]
    )
    build_all(factory)
    with pytest.raises(ConfigError, match=r"slaf_layers \[9\].*\[0, 1, 2, 3\]"):
        factory.check_hybrid()


def test_hybrid_rejects_unknown_stage():
    basis = build_basis("monomial", degree=2)
    factory = ActivationFactory("hybrid", basis, slaf_stages=["block9"])
    build_all(factory)
    with pytest.raises(ConfigError, match=r"'block9'.*'block1', 'head', 'stem'"):
        factory.check_hybrid()


def test_hybrid_requires_layers_or_stages():
    with pytest.raises(ConfigError, match=r"slaf_layers or slaf_stages"):
        ActivationFactory("hybrid", build_basis("monomial", degree=2))


def test_slaf_requires_basis():
    with pytest.raises(ConfigError, match=r"requires a basis"):
        ActivationFactory("slaf")


def test_unknown_activation_rejected():
    with pytest.raises(ConfigError, match=r"'swish' is not known.*prelu"):
        ActivationFactory("swish")


def test_unknown_init_target_rejected():
    with pytest.raises(ConfigError, match=r"'cubic' is not known"):
        ActivationFactory("slaf", build_basis("monomial", degree=2), init="cubic")


def test_slaf_modules_lists_named_layers():
    factory = ActivationFactory(
        "hybrid", build_basis("monomial", degree=2), slaf_layers=[1]
    )
    model = nn.Sequential(
        nn.Linear(4, 8), factory(SLOTS[0]), nn.Linear(8, 16), factory(SLOTS[1])
    )
    found = slaf_modules(model)
    assert [name for name, _ in found] == ["3"]
    assert found[0][1] is model[3]
    assert model(torch.randn(2, 4)).shape == (2, 16)
