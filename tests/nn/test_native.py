"""The native C kernels of the monomial SLAF: same values, gradients and range as
the eager kernels for every layout they serve, and the fallback when the build
fails."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

import slaf_cli.nn.native as native
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.functional import Kernels
from slaf_cli.nn.native import (
    FLAG_SETS,
    NativeKernels,
    library_path,
    native_library,
    reset_native_library,
    supports_native,
)
from slaf_cli.nn.slaf import SLAF
from slaf_cli.runner import build, build_activation, build_model
from tests.test_models import compose_train

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="no C compiler (cc) to build the kernels"
)

# (N, C), (N, C, L) and (N, C, H, W); sizes that leave partial chunks of 16.
SHAPES = [(5, 3), (7, 37), (3, 2, 5), (2, 5, 40), (3, 4, 9, 9), (2, 3, 4, 4)]


@pytest.fixture(autouse=True)
def fresh_library():
    """Each test loads the library itself and leaves no failed build behind."""
    reset_native_library()
    yield
    reset_native_library()


def random_inputs(shape, rows, terms, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=generator, dtype=dtype)
    grad = torch.randn(shape, generator=generator, dtype=dtype)
    coefficients = torch.randn(rows, terms, generator=generator, dtype=dtype) * 0.5
    bias = torch.randn(rows, generator=generator, dtype=dtype)
    return z, grad, coefficients, bias


def test_library_builds_and_loads():
    assert native_library() is not None


@pytest.mark.parametrize("degree", [1, 3, 4, 9])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("shared", [False, True])
def test_kernels_match_eager_float64(degree, shape, shared):
    basis = build_basis("monomial", degree=degree)
    native, eager = NativeKernels(basis), Kernels(basis)
    rows = 1 if shared else shape[1]
    z, grad, coefficients, bias = random_inputs(shape, rows, degree, torch.float64)

    out = native.weighted_sum(z, coefficients, bias)
    assert torch.allclose(out, eager.weighted_sum(z, coefficients, bias))
    found = native.weighted_sum_backward(z, coefficients, grad)
    expected = eager.weighted_sum_backward(z, coefficients, grad)
    for name, a, b in zip(("x", "coefficients", "bias"), found, expected, strict=True):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b), name
    mean, variance = native.term_moments(z)
    eager_mean, eager_variance = eager.term_moments(z)
    assert torch.allclose(mean, eager_mean)
    assert torch.allclose(variance, eager_variance)
    offsets, scales = (torch.randn(shape[1], degree, dtype=torch.float64) for _ in "os")
    assert torch.allclose(
        native.term_moments_backward(z, offsets, scales),
        eager.term_moments_backward(z, offsets, scales),
    )


@pytest.mark.parametrize("shape", [(64, 100), (16, 8, 14, 14)])
@pytest.mark.parametrize("degree", [3, 4])
def test_kernels_match_eager_float32(shape, degree):
    basis = build_basis("monomial", degree=degree)
    native, eager = NativeKernels(basis), Kernels(basis)
    z, grad, coefficients, bias = random_inputs(shape, shape[1], degree, torch.float32)
    out = native.weighted_sum(z, coefficients, bias)
    assert out.dtype == torch.float32
    assert torch.allclose(out, eager.weighted_sum(z, coefficients, bias), atol=1e-5)
    found = native.weighted_sum_backward(z, coefficients, grad)
    reference = Kernels(basis).weighted_sum_backward(
        z.double(), coefficients.double(), grad.double()
    )
    for a, b in zip(found, reference, strict=True):
        assert a.dtype == torch.float32
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4)
    mean, variance = native.term_moments(z)
    ref_mean, ref_variance = Kernels(basis).term_moments(z.double())
    assert torch.allclose(mean.double(), ref_mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(variance.double(), ref_variance, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(9, 40), (3, 4, 9, 9)])
@pytest.mark.parametrize("normalize", [False, True])
def test_range_folded_into_first_pass(shape, normalize):
    layer = SLAF(shape[1], build_basis("monomial", degree=3), normalize=normalize)
    assert isinstance(layer.kernels, NativeKernels)
    x = torch.randn(shape) * 3
    layer(x)
    assert layer.input_min.item() == x.min().item()
    assert layer.input_max.item() == x.max().item()
    layer(x * 0.1)  # a narrower batch keeps the range
    assert layer.input_min.item() == x.min().item()
    assert layer.input_max.item() == x.max().item()


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 3, 3)])
def test_layer_gradcheck_native(normalize, shape):
    torch.manual_seed(0)
    layer = SLAF(4, build_basis("monomial", degree=3), normalize=normalize)
    layer = layer.double()
    with torch.no_grad():
        layer.coefficients.normal_(0.0, 0.5)
    assert isinstance(layer.kernels, NativeKernels)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.coefficients, layer.bias)
    assert torch.autograd.gradcheck(lambda x, c, b: layer(x), inputs)


def test_results_equal_across_thread_counts():
    basis = build_basis("monomial", degree=4)
    native = NativeKernels(basis)
    results = []
    threads = torch.get_num_threads()
    for shape in [(33, 70), (4, 6, 10, 10)]:
        z, grad, coefficients, bias = random_inputs(shape, shape[1], 4, torch.float32)
        for count in (1, 2):
            torch.set_num_threads(count)
            try:
                results.append(
                    [
                        native.weighted_sum(z, coefficients, bias),
                        *native.weighted_sum_backward(z, coefficients, grad),
                        *native.term_moments(z),
                    ]
                )
            finally:
                torch.set_num_threads(threads)
    for single, double in ((results[0], results[1]), (results[2], results[3])):
        for a, b in zip(single, double, strict=True):
            assert torch.equal(a, b)


def test_channels_last_and_bfloat16():
    basis = build_basis("monomial", degree=3)
    native, eager = NativeKernels(basis), Kernels(basis)
    z, _, coefficients, bias = random_inputs((2, 4, 5, 5), 4, 3, torch.float32)
    channels_last = z.to(memory_format=torch.channels_last)
    assert torch.allclose(
        native.weighted_sum(channels_last, coefficients, bias),
        eager.weighted_sum(z, coefficients, bias),
        atol=1e-6,
    )
    half = z.bfloat16()
    out = native.weighted_sum(half, coefficients.bfloat16(), bias.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.equal(
        out, eager.weighted_sum(half, coefficients.bfloat16(), bias.bfloat16())
    )


@pytest.mark.parametrize("compiler", ["/nonexistent/cc", "false"])
def test_failed_build_warns_once(compiler, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", compiler)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    basis = build_basis("monomial", degree=3)
    native, eager = NativeKernels(basis), Kernels(basis)
    z, grad, coefficients, bias = random_inputs((4, 6), 6, 3, torch.float32)
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.native"):
        first = native.weighted_sum(z, coefficients, bias)
        native.weighted_sum_backward(z, coefficients, grad)
    assert torch.equal(first, eager.weighted_sum(z, coefficients, bias))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "activation.native=false" in warnings[0].getMessage()
    assert native_library() is None
    if compiler == "false":  # a compiler error, remembered for later runs
        assert ".failed is deleted" in warnings[0].getMessage()


def test_failed_build_is_not_repeated(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native_library() is None
    markers = list(tmp_path.rglob("*.failed"))
    assert len(markers) == 1
    reset_native_library()  # a new process, as far as the library goes
    calls = []
    monkeypatch.setattr(native, "_build", lambda *args: calls.append(args))
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.native"):
        assert native_library() is None
    assert calls == []
    assert str(markers[0]) in caplog.records[-1].getMessage()


def fake_build(source: Path):
    """Return a stand-in for ``native._build`` that copies an existing build."""

    def build(compiler, flags, target):
        native._digest_path(target).write_text(native._sha256(source))
        shutil.copy(source, target)

    return build


def test_truncated_library_is_rebuilt(tmp_path, monkeypatch, caplog):
    built = Path(native_library()._name)  # the real build, in the real cache
    reset_native_library()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = library_path(shutil.which("cc"), FLAG_SETS[0])
    assert path.is_relative_to(tmp_path)
    # Loading these bytes killed the process with SIGBUS before digests.
    path.write_bytes(built.read_bytes()[:20000])
    # Copy the real build instead of compiling it a second time in this test.
    monkeypatch.setattr(native, "_build", fake_build(built))
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.native"):
        library = native_library()
    assert library is not None
    assert path.read_bytes() == built.read_bytes()
    messages = [r.getMessage() for r in caplog.records]
    assert any("damaged" in m for m in messages)


def test_unwritable_cache_falls_back_to_temp(tmp_path, monkeypatch):
    built = Path(native_library()._name)
    reset_native_library()
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    monkeypatch.setattr(native.tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(native, "_build", fake_build(built))
    library = native_library()
    assert library is not None
    assert Path(library._name).is_relative_to(tmp_path / "tmp")


def test_shared_temp_folder_is_not_used(tmp_path, monkeypatch, caplog):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    monkeypatch.setattr(native.tempfile, "tempdir", str(tmp_path / "tmp"))
    planted = tmp_path / "tmp" / f"slaf_cli-{os.getuid()}" / "native"
    planted.mkdir(parents=True)
    planted.chmod(0o777)  # as if another user had created it first
    monkeypatch.setattr(native, "_build", lambda *args: pytest.fail("built"))
    with caplog.at_level(logging.WARNING, logger="slaf_cli.nn.native"):
        assert native_library() is None
    assert "private to this user" in caplog.records[-1].getMessage()


def test_fallback_flags_build_is_reused(tmp_path, monkeypatch):
    built = Path(native_library()._name)
    reset_native_library()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fallback = library_path(shutil.which("cc"), FLAG_SETS[-1])
    fake_build(built)(None, None, fallback)
    monkeypatch.setattr(native, "_build", lambda *args: pytest.fail("built"))
    library = native_library()
    assert library is not None
    assert Path(library._name) == fallback


def test_config_selects_native_kernels():
    cfg = compose_train(["activation=slaf"])
    data = build(cfg.dataset, _convert_="all")
    model = build_model(cfg, data, build_activation(cfg))
    layers = [m for m in model.modules() if isinstance(m, SLAF)]
    assert layers
    for layer in layers:
        assert isinstance(layer.kernels, NativeKernels)
        assert "native=True" in repr(layer)
    off = compose_train(["activation=slaf", "activation.native=false"])
    model = build_model(off, data, build_activation(off))
    for layer in (m for m in model.modules() if isinstance(m, SLAF)):
        assert type(layer.kernels) is Kernels
    assert not supports_native(build_basis("chebyshev", degree=3))
    assert type(SLAF(3, build_basis("chebyshev", degree=3)).kernels) is Kernels
