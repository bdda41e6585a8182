"""``slaf-train``: the Hydra entry point.

Exit codes:

- 0: the run completed.
- 2: a user error, such as an invalid override or value or a damaged checkpoint.
  It prints one line on stderr and no traceback (``HYDRA_FULL_ERROR=1`` adds it).
- 3: training diverged.
- 130 or 143: SIGINT or SIGTERM arrived, and a checkpoint was saved.
- 1: anything else.

In a multirun a failed job is recorded in its summary and the sweep goes on.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from slaf_cli.cli.common import USER_ERROR, call_hydra_main
from slaf_cli.config import register_configs
from slaf_cli.errors import ConfigError

log = logging.getLogger("slaf_cli")

DIVERGED = 3
RESUME_SUBDIR = ".hydra/resume"
_RUN_UID_ENV = "SLAF_RUN_UID"
_task_started = False


def _run_uid() -> str:
    """Return a short random token, one per command (sweep workers inherit it)."""
    if _RUN_UID_ENV not in os.environ:
        os.environ[_RUN_UID_ENV] = secrets.token_hex(3)
    return os.environ[_RUN_UID_ENV]


register_configs()
if not OmegaConf.has_resolver("slaf_uid"):
    OmegaConf.register_new_resolver("slaf_uid", _run_uid)


@hydra.main(version_base="1.3", config_path="pkg://slaf_cli.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train one configuration; return the monitored metric (for sweepers)."""
    global _task_started
    _task_started = True
    from slaf_cli.runner import run  # torch is imported here, after parsing

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    choices = {
        k: v
        for k, v in hydra_cfg.runtime.choices.items()
        if not k.startswith(("hydra", "schema")) and v is not None
    }
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    _limit_threads_per_job(cfg, hydra_cfg)
    from slaf_cli.train.guard import Diverged, Interrupted

    try:
        summary = run(cfg, run_dir, overrides=overrides, choices=choices)
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        if multirun:
            return None
        sys.exit(USER_ERROR)
    except Diverged:
        if multirun:
            return None
        sys.exit(DIVERGED)
    except Interrupted as interrupt:
        sys.exit(interrupt.exit_code)
    except Exception:
        if not multirun:
            raise
        log.exception("Job %s failed; the sweep goes on", run_dir)
        return None
    if int(os.environ.get("RANK", 0)) == 0:
        _print_result(summary)
    return _optimized_value(cfg, summary)


def _optimized_value(cfg: DictConfig, summary: dict) -> float | None:
    """Return the metric a sweeper optimises: ``optimized_metric`` if set.

    Without it: val/acc, else val/rmse, else None (a run without validation).
    """
    metrics = summary.get("metrics", {})
    key = cfg.optimized_metric
    if key is None:
        return metrics.get("val/acc", metrics.get("val/rmse"))
    if key not in metrics:
        log.error(
            "optimized_metric=%s is not among this run's metrics (%s); "
            "set optimized_metric to one of them",
            key,
            ", ".join(metrics),
        )
        return None
    return metrics[key]


def _limit_threads_per_job(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Give each job of a parallel (joblib) sweep its share of the CPU cores.

    Without a cap every job starts one torch thread per core, and n_jobs jobs
    oversubscribe the machine n_jobs times.
    """
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    if "joblib" not in launcher or cfg.trainer.num_threads is not None:
        return
    cores = os.cpu_count() or 1
    n_jobs = hydra_cfg.launcher.n_jobs
    jobs = cores if n_jobs is None or n_jobs <= 0 else min(n_jobs, cores)
    cfg.trainer.num_threads = max(1, cores // jobs)


def _print_result(summary: dict) -> None:
    metrics = summary.get("metrics", {})
    keys = [k for k in metrics if k.startswith("test/")] or list(metrics)
    numbers = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys)
    sys.stdout.write(
        f"{summary['status']}: {numbers}  ({summary['wall_time_s']:.1f} s)\n"
        f"run dir: {summary['run_dir']}\n"
    )
    sys.stdout.flush()


def _resume_arguments(argv: list[str]) -> list[str]:
    """Rewrite ``resume=RUN_DIR ...`` into that run's overrides, continued in place.

    The run is composed again from the overrides saved in ``RUN_DIR/.hydra``, so it
    gets the same config. Overrides given after ``resume=`` replace saved ones with
    the same key (for example ``trainer.epochs=20`` to train longer). Hydra writes
    the new composition into ``.hydra/resume``; the runner copies it over
    ``.hydra`` only once the checkpoint has loaded, so a failed resume leaves the
    saved config as it was.
    """
    resume = [a for a in argv if a.startswith("resume=")]
    if not resume:
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={run_dir} is not a run folder ({saved} not found); pass the "
            "folder of a run, e.g. resume=outputs/2026-01-31/12-00-00_train_ab12cd"
        )
    original = [str(o) for o in OmegaConf.load(saved)]
    extra = [a for a in argv if not a.startswith("resume=")]
    merged: dict[str, str] = {}
    for override in [*original, *extra]:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra."):
            continue
        merged.pop(key, None)
        merged[key] = override
    return [
        *merged.values(),
        f"resume={run_dir.resolve()}",
        f"hydra.run.dir={run_dir}",
        f"hydra.output_subdir={RESUME_SUBDIR}",
    ]


def _worker_rank_arguments(argv: list[str]) -> list[str]:
    """Keep DDP ranks other than 0 out of the run folder.

    Under torchrun every rank runs this entry point. Ranks above 0 get a private
    scratch folder and no log file, so exactly one run folder appears, written by
    rank 0; the runner shares rank 0's folder with them for reading checkpoints.
    """
    rank = int(os.environ.get("RANK", 0))
    if rank == 0:
        return argv
    scratch = tempfile.mkdtemp(prefix=f"slaf_rank{rank}_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [
        *argv,
        f"hydra.run.dir={scratch}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]


def cli() -> None:
    """Console-script entry: map Hydra's composition errors to the user-error code."""
    os.environ[_RUN_UID_ENV] = secrets.token_hex(3)
    try:
        sys.argv[1:] = _worker_rank_arguments(_resume_arguments(sys.argv[1:]))
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(USER_ERROR)
    call_hydra_main(main, lambda: _task_started)


if __name__ == "__main__":
    cli()
