"""Image builders on small fake files in torchvision's formats, and on real MNIST.

CIFAR and SVHN files written here cannot match torchvision's md5 sums, so the
``skip_md5`` fixture replaces only torchvision's ``check_integrity`` in those two
modules with an existence check. IDX files need no patch: torchvision's MNIST
classes check only that the files exist.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from slaf_cli.data import builders, cache, vision
from slaf_cli.errors import ConfigError
from tests.conftest import mnist_root, requires_mnist
from tests.data import fake_files

FAKE = {
    # name: (writer, writer args, channels, size, classes, n_train, n_test, augment)
    "fashion_mnist": (
        fake_files.write_fashion_mnist,
        (60, 20),
        1,
        28,
        10,
        60,
        20,
        None,
    ),
    "cifar10": (fake_files.write_cifar10, (12, 20), 3, 32, 10, 60, 20, "crop_flip"),
    "cifar100": (fake_files.write_cifar100, (60, 20), 3, 32, 100, 60, 20, "crop_flip"),
    "svhn": (fake_files.write_svhn, (60, 20), 3, 32, 10, 60, 20, "crop"),
}


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """Point the user cache folder at a fresh temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "slaf_cli"


@pytest.fixture
def skip_md5(monkeypatch) -> None:
    def exists_only(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists_only)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", exists_only)


def write_fake(name: str, root: Path) -> None:
    writer, args = FAKE[name][:2]
    writer(root, *args)


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt"))


@pytest.mark.parametrize("name", sorted(FAKE))
def test_image_builder_shapes(name, tmp_path, skip_md5):
    _, _, channels, size, classes, n_train, n_test, augment = FAKE[name]
    write_fake(name, tmp_path)
    bundle = getattr(builders, name)(root=tmp_path, val_fraction=0.2)
    assert bundle.name == name
    assert bundle.task == "classification"
    assert bundle.input_shape == (channels, size, size)
    assert bundle.num_outputs == classes
    assert bundle.augment == augment
    assert len(bundle.train) == n_train - round(0.2 * n_train)
    assert len(bundle.val) == round(0.2 * n_train)
    assert len(bundle.test) == n_test
    assert bundle.train.x.dtype == torch.float32
    assert bundle.train.y.dtype == torch.int64
    assert tuple(bundle.test.x.shape[1:]) == (channels, size, size)


@pytest.mark.parametrize("name", sorted(FAKE))
def test_decoded_layout_is_nchw(name, tmp_path, skip_md5):
    write_fake(name, tmp_path)
    tensors = vision.load_uint8(vision.SOURCES[name], tmp_path, download=False)
    _, _, channels, size, classes, n_train, _, _ = FAKE[name]
    expected = fake_files.image_block(n_train, channels, size)
    assert torch.equal(tensors["train_x"], torch.from_numpy(expected))
    labels = torch.from_numpy(fake_files.labels_for(n_train, classes))
    assert torch.equal(tensors["train_y"], labels)  # SVHN's label 10 becomes 0


@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist"])
def test_image_standardised_with_train(name, tmp_path, skip_md5):
    write_fake(name, tmp_path)
    bundle = getattr(builders, name)(root=tmp_path, val_fraction=0.2)
    dims = (0, 2, 3)
    assert torch.allclose(bundle.train.x.mean(dim=dims), torch.tensor(0.0), atol=1e-4)
    train_std = bundle.train.x.std(dim=dims, correction=0)
    assert torch.allclose(train_std, torch.tensor(1.0), atol=1e-4)
    # The test images differ from the train ones, so train stats leave them off 0.
    assert bundle.test.x.mean(dim=dims).abs().max() > 1e-3


def test_image_split_depends_on_seed(tmp_path, skip_md5):
    write_fake("cifar10", tmp_path)
    first = builders.cifar10(root=tmp_path, split_seed=3)
    again = builders.cifar10(root=tmp_path, split_seed=3)
    other = builders.cifar10(root=tmp_path, split_seed=4)
    assert torch.equal(first.val.y, again.val.y)
    assert torch.equal(first.train.x, again.train.x)
    assert not torch.equal(first.train.x, other.train.x)


def test_image_subsets_limit_sizes(tmp_path, skip_md5):
    write_fake("svhn", tmp_path)
    bundle = builders.svhn(root=tmp_path, val_fraction=0.1, subset=30, test_subset=7)
    assert len(bundle.train) == 27
    assert len(bundle.val) == 3
    assert len(bundle.test) == 7


def test_cache_created_then_reused(tmp_path, monkeypatch):
    write_fake("fashion_mnist", tmp_path)
    first = builders.fashion_mnist(root=tmp_path)
    written = cache_files(tmp_path / cache.ROOT_CACHE_DIR)
    assert len(written) == 1
    assert written[0].name.startswith("fashion_mnist-")

    def fail(*args, **kwargs):
        raise AssertionError("torchvision decoder called despite a valid cache")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "_load_data", fail)
    second = builders.fashion_mnist(root=tmp_path)
    assert torch.equal(first.train.x, second.train.x)
    assert torch.equal(first.test.y, second.test.y)


def count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = torchvision.datasets.FashionMNIST._load_data

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "_load_data", counting)
    return calls


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped_byte"])
def test_corrupt_cache_is_rebuilt(damage, tmp_path, monkeypatch):
    write_fake("fashion_mnist", tmp_path)
    expected = builders.fashion_mnist(root=tmp_path)
    (path,) = cache_files(tmp_path / cache.ROOT_CACHE_DIR)
    content = bytearray(path.read_bytes())
    if damage == "garbage":
        content = bytearray(b"not a tensor file")
    elif damage == "truncated":
        content = content[: len(content) // 2]
    else:
        content[len(content) // 2] ^= 0xFF  # inside the tensor data, not the header
    path.write_bytes(bytes(content))

    decodes = count_decodes(monkeypatch)
    rebuilt = builders.fashion_mnist(root=tmp_path)
    assert len(decodes) == 2  # train and test decoded again
    assert torch.equal(rebuilt.train.x, expected.train.x)
    assert cache.load_cached(path, vision._TENSOR_DTYPES) is not None


def test_changed_source_invalidates_cache(tmp_path, monkeypatch):
    write_fake("fashion_mnist", tmp_path)
    builders.fashion_mnist(root=tmp_path)
    labels = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    decodes = count_decodes(monkeypatch)
    builders.fashion_mnist(root=tmp_path)
    assert len(decodes) == 2
    assert len(cache_files(tmp_path / cache.ROOT_CACHE_DIR)) == 2


def test_read_only_root_uses_user_cache(tmp_path, user_cache):
    root = tmp_path / "readonly"
    write_fake("fashion_mnist", root)
    for folder in (root, root / "FashionMNIST", root / "FashionMNIST" / "raw"):
        folder.chmod(0o555)
    try:
        builders.fashion_mnist(root=root)
    finally:
        root.chmod(0o755)
    assert not (root / cache.ROOT_CACHE_DIR).exists()
    assert len(cache_files(user_cache)) == 1


def test_missing_files_raise_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        builders.fashion_mnist(root=tmp_path, download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path) in message
    assert "dataset.download=true" in message
    assert "FashionMNIST/raw" in message


def test_failed_download_raises_config_error(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(ConfigError) as caught:
        builders.fashion_mnist(root=tmp_path, download=True)
    message = str(caught.value)
    assert "\n" not in message
    assert f"downloading fashion_mnist into {tmp_path} failed" in message
    assert "network is unreachable" in message
    assert "dataset.download=false" in message


def test_md5_mismatch_raises_config_error(tmp_path):
    write_fake("cifar10", tmp_path)  # real md5 check stays on: fake files fail it
    with pytest.raises(ConfigError) as caught:
        builders.cifar10(root=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "cifar10" in message
    assert "corrupted" in message


def test_unknown_augment_raises(tmp_path):
    write_fake("fashion_mnist", tmp_path)
    with pytest.raises(ConfigError, match="dataset.augment='rotate'"):
        builders.fashion_mnist(root=tmp_path, augment="rotate")


@requires_mnist
def test_real_mnist_from_shared_root(user_cache):
    root = mnist_root()
    bundle = builders.mnist(root=root, subset=500, test_subset=200)
    assert bundle.input_shape == (1, 28, 28)
    assert bundle.num_outputs == 10
    assert len(bundle.train) == 450
    assert len(bundle.val) == 50
    assert len(bundle.test) == 200
    assert set(bundle.test.y.tolist()) == set(range(10))
    assert not (root / cache.ROOT_CACHE_DIR).exists()  # read-only root untouched
    assert len(cache_files(user_cache)) == 1
    assert np.isfinite(bundle.train.x.numpy()).all()
