"""Small dataset files in the exact on-disk formats that torchvision reads.

Pixel values follow a pattern that reveals the layout: in sample ``i``, channel
``c``, row ``h``, column ``w`` the value is ``pixel_value(i, c, h, w)``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io

IDX_UBYTE = 0x08  # IDX type code for unsigned bytes


def pixel_value(i: int | np.ndarray, c, h, w) -> np.ndarray:
    """Return the uint8 pixel the fake files store at (sample, channel, row, col)."""
    return ((i * 7 + c * 50 + h * 3 + w) % 256).astype(np.uint8)


def image_block(n: int, channels: int, size: int) -> np.ndarray:
    """Return fake images (n, channels, size, size) uint8 built from pixel_value."""
    i, c, h, w = np.meshgrid(
        np.arange(n), np.arange(channels), np.arange(size), np.arange(size),
        indexing="ij",
    )  # fmt: skip
    return pixel_value(i, c, h, w)


def labels_for(n: int, num_classes: int) -> np.ndarray:
    """Return labels ``i % num_classes`` for samples 0..n-1."""
    return (np.arange(n) % num_classes).astype(np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed big-endian IDX file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, IDX_UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root: Path, n_train: int, n_test: int) -> None:
    """Write the four IDX files of ``FashionMNIST/raw`` (28x28 grey images)."""
    raw = root / "FashionMNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", image_block(n, 1, 28)[:, 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels_for(n, 10))


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(obj, file, protocol=2)


def _cifar_rows(n: int) -> np.ndarray:
    # CIFAR stores each image as 1024 red, 1024 green, 1024 blue bytes, row-major.
    return image_block(n, 3, 32).reshape(n, 3 * 32 * 32)


def write_cifar10(root: Path, n_per_batch: int, n_test: int) -> None:
    """Write ``cifar-10-batches-py``: five train batches, test_batch, batches.meta."""
    folder = root / "cifar-10-batches-py"
    n_train = 5 * n_per_batch
    rows, labels = _cifar_rows(n_train), labels_for(n_train, 10)
    for batch in range(5):
        part = slice(batch * n_per_batch, (batch + 1) * n_per_batch)
        entry = {"data": rows[part], "labels": labels[part].tolist()}
        _dump(folder / f"data_batch_{batch + 1}", entry)
    test = {"data": _cifar_rows(n_test), "labels": labels_for(n_test, 10).tolist()}
    _dump(folder / "test_batch", test)
    _dump(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)]})


def write_cifar100(root: Path, n_train: int, n_test: int) -> None:
    """Write ``cifar-100-python``: train, test and meta pickles with fine labels."""
    folder = root / "cifar-100-python"
    for name, n in (("train", n_train), ("test", n_test)):
        fine = labels_for(n, 100)
        entry = {
            "data": _cifar_rows(n),
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
        }
        _dump(folder / name, entry)
    names = {"fine_label_names": [f"fine{k}" for k in range(100)]}
    _dump(folder / "meta", names | {"coarse_label_names": [f"c{k}" for k in range(20)]})


def write_svhn(root: Path, n_train: int, n_test: int) -> None:
    """Write ``train_32x32.mat`` and ``test_32x32.mat`` with X of shape (H, W, C, N).

    Labels are 1..10 as in the real files, where 10 encodes the digit 0.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        images = image_block(n, 3, 32).transpose(2, 3, 1, 0)  # NCHW -> HWCN
        labels = labels_for(n, 10)
        labels[labels == 0] = 10
        mat = {"X": np.ascontiguousarray(images), "y": labels.reshape(n, 1)}
        scipy.io.savemat(root / f"{name}_32x32.mat", mat)
