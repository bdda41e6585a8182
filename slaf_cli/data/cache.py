"""On-disk cache of decoded datasets as torch.save tensor files.

A cache file is named ``<name>-<key>.pt``, where the key hashes the resolved root
and the relative path, size and mtime of each source file, so replacing a source
file invalidates the entry. Files go to ``<root>/slaf_cache`` when that is writable,
else to ``$XDG_CACHE_HOME/slaf_cli`` (default ``~/.cache/slaf_cli``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the payload layout changes
ROOT_CACHE_DIR = "slaf_cache"
_DIGEST_KEY = "blake2b"
# Exceptions torch.load raises for a truncated, empty or garbled file or a read error.
_LOAD_ERRORS = (RuntimeError, EOFError, KeyError, OSError, pickle.UnpicklingError)


def source_key(root: Path, relative_paths: Sequence[str]) -> str:
    """Return a 16-hex-digit key of the root path and each file's size and mtime."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}\n{root.resolve()}\n".encode())
    for relative in relative_paths:
        info = (root / relative).stat()
        digest.update(f"{relative}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def user_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/slaf_cli``, or ``~/.cache/slaf_cli`` when unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "slaf_cli"


def is_writable_dir(path: Path) -> bool:
    """Return whether files may be created in ``path`` or its nearest existing parent.

    A directory whose mode has no write bit counts as read-only even when the process
    could write anyway (as the superuser can), because such a folder was made
    read-only on purpose.
    """
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    if not existing.is_dir():
        return False
    mode = existing.stat().st_mode
    has_write_bit = bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return has_write_bit and os.access(existing, os.W_OK)


def candidate_paths(root: Path, file_name: str) -> list[Path]:
    """Return cache locations in lookup order: under root first, then the user dir."""
    return [root / ROOT_CACHE_DIR / file_name, user_cache_dir() / file_name]


def _tensor_digest(tensors: Mapping[str, Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(tensors):
        tensor = tensors[key].contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().reshape(-1))
    return digest.hexdigest()


def load_cached(
    path: Path, expected: Mapping[str, torch.dtype]
) -> dict[str, Tensor] | None:
    """Load and verify a cache file, or delete it and return None when it is invalid.

    ``expected`` maps each tensor name to its dtype. The file is trusted only when it
    contains exactly those tensors and their stored blake2b digest matches.
    """
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        tensors = _verified_tensors(payload, expected)
    except (*_LOAD_ERRORS, ValueError) as error:
        logger.warning("discarding invalid dataset cache %s: %s", path, error)
        path.unlink(missing_ok=True)
        return None
    return tensors


def _verified_tensors(
    payload: object, expected: Mapping[str, torch.dtype]
) -> dict[str, Tensor]:
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise ValueError("unknown cache format")
    tensors = payload.get("tensors")
    if not isinstance(tensors, dict) or set(tensors) != set(expected):
        raise ValueError(f"expected tensors {sorted(expected)}")
    for key, dtype in expected.items():
        if not isinstance(tensors[key], Tensor) or tensors[key].dtype != dtype:
            raise ValueError(f"tensor {key!r} is missing or not {dtype}")
    if payload.get(_DIGEST_KEY) != _tensor_digest(tensors):
        raise ValueError("checksum mismatch")
    return tensors


def save_cached(paths: Sequence[Path], tensors: Mapping[str, Tensor]) -> Path | None:
    """Write ``tensors`` atomically to the first writable path and return that path.

    The file is written to a temporary name in the same folder and renamed into
    place, so a reader never sees a partial file. Returns None, after a warning,
    when no path is writable, and the dataset then works without a cache.
    """
    payload = {
        "format": CACHE_FORMAT,
        "tensors": dict(tensors),
        _DIGEST_KEY: _tensor_digest(tensors),
    }
    for path in paths:
        if not is_writable_dir(path.parent):
            logger.debug(
                "cache folder %s is read-only, trying the next one", path.parent
            )
            continue
        try:
            _atomic_save(payload, path)
        except OSError as error:
            logger.warning("writing dataset cache %s failed: %s", path, error)
            continue
        return path
    logger.warning(
        "no writable cache folder among %s, so the dataset is not cached",
        [str(p) for p in paths],
    )
    return None


def _atomic_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates mode 0600, so widen it for other users of a shared root.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
