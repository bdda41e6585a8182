"""Hydra callbacks of slaf-train that act before any job starts."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

USER_ERROR = 2


def check_writable(folder: Path, key: str) -> None:
    """Create ``folder`` and a probe file in it; on failure exit 2 with one line.

    A probe write catches what a mode check misses: read-only mounts, immutable
    folders, and a path that runs through a regular file.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".slaf-probe-"):
            pass
    except OSError as error:
        sys.stderr.write(
            f"error: output folder {folder} is not writable ({error.strerror}); "
            f"set {key}=PATH to a writable folder or start slaf-train elsewhere\n"
        )
        sys.exit(USER_ERROR)


class CheckOutputFolder(Callback):
    """Reject an unwritable run or sweep folder before Hydra creates it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")
