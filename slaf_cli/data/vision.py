"""Image datasets read by torchvision, decoded once and cached as uint8 tensors.

torchvision's dataset classes stay the source of truth for file names and decoding.
This module calls them once per source-file version, stores the decoded uint8
images of shape ``(N, C, H, W)`` and int64 labels with :mod:`slaf_cli.data.cache`,
and standardises every split with per-channel statistics of the train split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from slaf_cli.data import cache
from slaf_cli.data.augment import get_augmentation
from slaf_cli.data.bundle import DataBundle, Split, check_common_args, make_splits
from slaf_cli.errors import ConfigError

logger = logging.getLogger(__name__)

_TENSOR_DTYPES = {
    "train_x": torch.uint8,
    "train_y": torch.int64,
    "test_x": torch.uint8,
    "test_y": torch.int64,
}


@dataclass(frozen=True)
class ImageSource:
    """How to find, download and decode one torchvision image dataset."""

    name: str
    num_classes: int
    folder_hint: str  # what the root must contain, for error messages
    files: Callable[[], list[str]]  # paths relative to root, from torchvision
    open_split: Callable[[Path, bool, bool], object]  # (root, train, download)
    to_tensors: Callable[[object], tuple[Tensor, Tensor]]  # -> (uint8 x, int64 y)


def _mnist_files(cls: type) -> Callable[[], list[str]]:
    # torchvision.datasets.MNIST reads the uncompressed name of each resource.
    def files() -> list[str]:
        names = [Path(url).stem for url, _ in cls.resources]
        return [f"{cls.__name__}/raw/{name}" for name in names]

    return files


def _cifar_files(cls: type) -> Callable[[], list[str]]:
    def files() -> list[str]:
        names = [name for name, _ in cls.train_list + cls.test_list]
        names.append(cls.meta["filename"])
        return [f"{cls.base_folder}/{name}" for name in names]

    return files


def _svhn_files() -> list[str]:
    split_list = torchvision.datasets.SVHN.split_list
    return [split_list["train"][1], split_list["test"][1]]


def _mnist_tensors(dataset: object) -> tuple[Tensor, Tensor]:
    return dataset.data.unsqueeze(1).contiguous(), dataset.targets.to(torch.int64)


def _cifar_tensors(dataset: object) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC->NCHW
    return x, torch.tensor(dataset.targets, dtype=torch.int64)


def _svhn_tensors(dataset: object) -> tuple[Tensor, Tensor]:
    # torchvision already transposes SVHN to (N, C, H, W) and maps label 10 to 0.
    x = torch.from_numpy(dataset.data).contiguous()
    return x, torch.from_numpy(dataset.labels).to(torch.int64)


def _open_train_test(cls: type) -> Callable[[Path, bool, bool], object]:
    def open_split(root: Path, train: bool, download: bool) -> object:
        return cls(root=str(root), train=train, download=download)

    return open_split


def _open_svhn(root: Path, train: bool, download: bool) -> object:
    split = "train" if train else "test"
    return torchvision.datasets.SVHN(root=str(root), split=split, download=download)


_tv = torchvision.datasets
SOURCES = {
    "mnist": ImageSource(
        name="mnist",
        num_classes=10,
        folder_hint="MNIST/raw",
        files=_mnist_files(_tv.MNIST),
        open_split=_open_train_test(_tv.MNIST),
        to_tensors=_mnist_tensors,
    ),
    "fashion_mnist": ImageSource(
        name="fashion_mnist",
        num_classes=10,
        folder_hint="FashionMNIST/raw",
        files=_mnist_files(_tv.FashionMNIST),
        open_split=_open_train_test(_tv.FashionMNIST),
        to_tensors=_mnist_tensors,
    ),
    "cifar10": ImageSource(
        name="cifar10",
        num_classes=10,
        folder_hint="cifar-10-batches-py",
        files=_cifar_files(_tv.CIFAR10),
        open_split=_open_train_test(_tv.CIFAR10),
        to_tensors=_cifar_tensors,
    ),
    "cifar100": ImageSource(
        name="cifar100",
        num_classes=100,
        folder_hint="cifar-100-python",
        files=_cifar_files(_tv.CIFAR100),
        open_split=_open_train_test(_tv.CIFAR100),
        to_tensors=_cifar_tensors,
    ),
    "svhn": ImageSource(
        name="svhn",
        num_classes=10,
        folder_hint="train_32x32.mat and test_32x32.mat",
        files=_svhn_files,
        open_split=_open_svhn,
        to_tensors=_svhn_tensors,
    ),
}


def load_uint8(
    source: ImageSource, root: str | Path, download: bool
) -> dict[str, Tensor]:
    """Return decoded ``train_x, train_y, test_x, test_y``, from cache when valid.

    Raises ConfigError when the source files are missing and ``download`` is off, or
    when torchvision rejects them (for example an md5 mismatch).
    """
    root = Path(root).expanduser()
    files = source.files()
    missing = [name for name in files if not (root / name).is_file()]
    if missing and download:
        _download(source, root)
        missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise ConfigError(
            f"dataset files for {source.name} not found under {root} (missing "
            f"{missing[0]}); set dataset.download=true or point dataset.root at a "
            f"folder containing {source.folder_hint}"
        )

    file_name = f"{source.name}-{cache.source_key(root, files)}.pt"
    paths = cache.candidate_paths(root, file_name)
    for path in paths:
        tensors = cache.load_cached(path, _TENSOR_DTYPES)
        if tensors is not None:
            logger.debug("loaded %s from cache %s", source.name, path)
            return tensors

    start = time.perf_counter()
    tensors = {}
    for prefix, train in (("train", True), ("test", False)):
        dataset = _open_checked(source, root, train, download=False)
        tensors[f"{prefix}_x"], tensors[f"{prefix}_y"] = source.to_tensors(dataset)
    written = cache.save_cached(paths, tensors)
    logger.info(
        "decoded %s from %s (%d train, %d test images) in %.1f s, cache file %s",
        source.name,
        root,
        len(tensors["train_y"]),
        len(tensors["test_y"]),
        time.perf_counter() - start,
        written,
    )
    return tensors


def _download(source: ImageSource, root: Path) -> None:
    logger.info("downloading %s into %s with torchvision", source.name, root)
    for train in (True, False):
        try:
            source.open_split(root, train, True)
        except (OSError, RuntimeError) as error:
            # OSError covers URLError and a read-only root. torchvision wraps failed
            # mirrors and md5 mismatches in RuntimeError.
            raise ConfigError(
                f"downloading {source.name} into {root} failed: {_one_line(error)}; "
                f"check the network, or place {source.folder_hint} under {root} "
                "and set dataset.download=false"
            ) from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _open_checked(
    source: ImageSource, root: Path, train: bool, download: bool
) -> object:
    try:
        return source.open_split(root, train, download)
    except RuntimeError as error:
        # torchvision raises RuntimeError for missing or md5-mismatched files.
        raise ConfigError(
            f"torchvision could not read {source.name} under {root}: "
            f"{_one_line(error)}; "
            "replace the files or set dataset.download=true"
        ) from error


def uint8_channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Return exact per-channel mean and std of uint8 ``x`` (N, C, H, W) as (C,).

    A 256-bin histogram per channel avoids a float copy of the whole split. A
    constant channel gets std 1.
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for channel in range(x.shape[1]):
        counts = torch.bincount(x[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * values.square()).sum() / total - mean.square()
        means.append(mean)
        std = var.clamp_min(0.0).sqrt()
        stds.append(std if std > 1e-6 else torch.ones_like(std))  # constant channel
    return torch.stack(means).float(), torch.stack(stds).float()


def normalise(split: Split, mean: Tensor, std: Tensor) -> Split:
    """Convert uint8 images to float32 standardised with per-channel ``mean``/``std``.

    ``mean`` and ``std`` are in raw 0-255 units, so the result equals scaling to
    [0, 1] first and then standardising with the scaled statistics.
    """
    x = split.x.to(torch.float32)
    x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return Split(x, split.y)


def build_image_dataset(
    source_name: str,
    root: str | Path,
    download: bool,
    val_fraction: float,
    split_seed: int,
    subset: int | None,
    test_subset: int | None,
    augment: str | None,
    crop_padding: int,
    name: str,
) -> DataBundle:
    """Build the DataBundle of ``SOURCES[source_name]``, as documented in builders."""
    check_common_args(val_fraction, subset, test_subset)
    source = SOURCES[source_name]
    tensors = load_uint8(source, root, download)
    train, val, test = make_splits(
        Split(tensors["train_x"], tensors["train_y"]),
        Split(tensors["test_x"], tensors["test_y"]),
        val_fraction,
        split_seed,
        subset,
        test_subset,
    )
    # Reject a bad name or padding before any training starts.
    get_augmentation(augment, tuple(train.x.shape[1:]), crop_padding)
    mean, std = uint8_channel_stats(train.x)
    logger.debug("%s train mean %s std %s (0-255 units)", name, mean, std)
    return DataBundle(
        name=name,
        task="classification",
        train=normalise(train, mean, std),
        val=normalise(val, mean, std),
        test=normalise(test, mean, std),
        input_shape=tuple(train.x.shape[1:]),
        num_outputs=source.num_classes,
        augment=augment,
        crop_padding=crop_padding,
    )
