"""Checkpoints: everything needed to continue a run, written atomically.

A checkpoint is a dict of tensors and Python primitives, so it loads with
``torch.load(weights_only=True)``. ``last.pt`` is rewritten at the end of every
epoch and on an interrupt. ``best.pt`` contains the best-validation weights.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slaf_cli.errors import ConfigError
from slaf_cli.files import atomic_write

LAST = "last.pt"
BEST = "best.pt"
CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), NumPy and Python, as loadable tensors."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": _python_state_to_tensor(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    random.setstate(_python_state_from_tensor(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_tensor(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _python_state_from_tensor(state: dict[str, Any]) -> tuple:
    return (
        state["version"],
        tuple(int(v) for v in state["internal"].tolist()),
        state["gauss"],
    )


def weights_are_finite(model: nn.Module) -> bool:
    """Return True when every parameter is finite and no buffer contains NaN.

    Buffers may contain infinities by design (SLAF's ``input_min`` starts at +inf).
    """
    for param in model.parameters():
        if not bool(torch.isfinite(param).all()):
            return False
    for buffer in model.buffers():
        if buffer.is_floating_point() and bool(torch.isnan(buffer).any()):
            return False
    return True


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` through :func:`slaf_cli.files.atomic_write`."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a damaged file is a ConfigError."""
    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} not found; resume needs a run folder with "
            f"{CHECKPOINT_DIR}/{LAST} (a run that finished at least one epoch)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise ConfigError(
            f"checkpoint {path} is unreadable ({error.__class__.__name__}, likely "
            "truncated or corrupted); restore an intact copy of it, or start a new "
            "run without resume="
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT_VERSION:
        raise ConfigError(
            f"checkpoint {path} is not a slaf_cli checkpoint of format "
            f"{FORMAT_VERSION}; "
            "resume only run folders written by this version"
        )
    return checkpoint


class Checkpointer:
    """Write ``last.pt`` and ``best.pt`` under ``run_dir/checkpoints``.

    With ``writable=False`` (DDP ranks other than 0) saving is a no-op and only
    loading works.
    """

    def __init__(self, run_dir: str | Path, writable: bool = True) -> None:
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.writable = writable

    @property
    def last_path(self) -> Path:
        return self.directory / LAST

    @property
    def best_path(self) -> Path:
        return self.directory / BEST

    def save_last(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Save a full training state; non-finite weights are never written."""
        if not self.writable:
            return
        if not weights_are_finite(model):
            raise ValueError("refusing to save a checkpoint with non-finite weights")
        atomic_save({"format": FORMAT_VERSION, **state}, self.last_path)

    def load_last(self) -> dict[str, Any]:
        return load_checkpoint(self.last_path)

    def save_best(self, model: nn.Module, epoch: int, value: float) -> None:
        if not self.writable:
            return
        if not weights_are_finite(model):
            raise ValueError("refusing to save best weights that are not finite")
        atomic_save(
            {
                "format": FORMAT_VERSION,
                "model": model.state_dict(),
                "epoch": epoch,
                "value": value,
            },
            self.best_path,
        )
