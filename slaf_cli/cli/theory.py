"""``slaf-approx``, ``slaf-export`` and ``slaf-distill``: the theory commands.

Each is a Hydra app with its own root config (``conf/approx.yaml``,
``conf/export.yaml``, ``conf/distill.yaml``) and writes into its own run folder
under ``outputs/``. Exit codes: 0 on success; 2 for a user error (one line on
stderr, no traceback unless ``HYDRA_FULL_ERROR=1``); 1 for anything else,
including an export that fails its verification.
``python -m slaf_cli.cli.theory approx|export|distill ARGS`` runs one of them.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from slaf_cli.cli.common import USER_ERROR, call_hydra_main
from slaf_cli.config import register_configs
from slaf_cli.errors import ConfigError
from slaf_cli.files import atomic_write_text
from slaf_cli.theory.config import register_theory_configs

log = logging.getLogger("slaf_cli")

FAILED = 1
CONFIG_PATH = "pkg://slaf_cli.conf"
_task_started = False

register_configs()
register_theory_configs()
if not OmegaConf.has_resolver("slaf_uid"):
    _uid = secrets.token_hex(3)
    OmegaConf.register_new_resolver("slaf_uid", lambda: _uid)


def _run_task(task: Callable[[DictConfig, Path], None], cfg: DictConfig) -> None:
    """Run ``task`` in the Hydra run folder; map user errors to exit code 2."""
    global _task_started
    _task_started = True
    from slaf_cli.theory.polynomial import ExportMismatch  # torch loads after parsing

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        task(cfg, run_dir)
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("Invalid configuration: %s", error)
        sys.exit(USER_ERROR)
    except ExportMismatch as error:
        log.error("Export verification failed: %s", error)
        sys.exit(FAILED)
    log.info("Results in %s", run_dir)


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key}={value} is invalid; set {key} to a value {bound}")


# ---------------------------------------------------------------- slaf-approx


def approx_task(cfg: DictConfig, run_dir: Path) -> None:
    """Sweep the fits, write approx.csv, approx.md and approx.png, print the tables."""
    from slaf_cli.theory import approx
    from slaf_cli.theory.figures import plot_approx
    from slaf_cli.theory.tables import markdown_table, write_csv

    if cfg.num_points < 2 or cfg.eval_points < 2:
        raise ConfigError(
            f"num_points={cfg.num_points} and eval_points={cfg.eval_points} must both "
            "be >= 2; set them to grid sizes such as 2001 and 4001"
        )
    _check_positive("tolerance", cfg.tolerance)
    options: Any = OmegaConf.to_container(cfg.basis_options, resolve=True)
    degrees_by_basis = {}
    for name in cfg.bases:
        extra = options.get(name, {})
        if not isinstance(extra, dict):
            raise ConfigError(
                f"basis_options.{name}={extra!r} is invalid; give a mapping such as "
                "basis_options.bspline={grid_size:8}"
            )
        degrees_by_basis[name] = list(extra.pop("degrees", cfg.degrees))
    rows = approx.sweep_errors(
        list(cfg.targets),
        degrees_by_basis,
        list(cfg.interval),
        options,
        cfg.num_points,
        cfg.eval_points,
    )

    interval = list(cfg.interval)
    note = (
        "Max error of the least-squares fit on "
        f"{interval}. Rows are the basis' own degree; its number of terms K is the "
        "degree, except fourier (K = 2 x degree) and bspline (K = grid_size + "
        "degree). The figure plots against K; approx.csv has both.\n"
    )
    sections = []
    for target in cfg.targets:
        wide = approx.wide_table(rows, target)
        sections.append(f"## {target}\n\n{markdown_table(wide, list(wide[0]))}")
    verdicts = [
        approx.fastest_basis(rows, target, cfg.tolerance) for target in cfg.targets
    ]
    for verdict in verdicts:
        log.info(verdict)
    table = note + "\n" + "\n".join(sections)
    _print(table)

    long_rows = approx.rows_as_dicts(rows)
    write_csv(run_dir / "approx.csv", long_rows, approx.COLUMNS)
    full = markdown_table(long_rows, approx.COLUMNS)
    text = "\n".join(["# SLAF approximation error", "", table, "", *verdicts, "", full])
    atomic_write_text(run_dir / "approx.md", text)
    plot_approx(rows, run_dir / "approx.png")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="approx")
def approx_main(cfg: DictConfig) -> None:
    _run_task(approx_task, cfg)


# ---------------------------------------------------------------- slaf-export


def export_task(cfg: DictConfig, run_dir: Path) -> None:
    """Export a run's SLAF layers and network, write the files, print a table."""
    from slaf_cli.theory.export import (
        SUMMARY_COLUMNS,
        export_network,
        summary_rows,
        write_export,
    )
    from slaf_cli.theory.runs import load_run
    from slaf_cli.theory.tables import markdown_table

    if cfg.run_dir is None:
        raise ConfigError(
            "run_dir is missing; pass the folder of a slaf-train run, e.g. "
            "slaf-export run_dir=outputs/2026-01-31/12-00-00_train_ab12cd"
        )
    for key in ("num_samples", "max_inputs", "max_width", "max_terms", "tolerance"):
        _check_positive(key, cfg[key])
    loaded = load_run(cfg.run_dir, cfg.checkpoint)
    result = export_network(
        loaded.model,
        network=cfg.network,
        num_samples=cfg.num_samples,
        tolerance=cfg.tolerance,
        seed=cfg.seed,
        max_inputs=cfg.max_inputs,
        max_width=cfg.max_width,
        max_terms=cfg.max_terms,
    )
    if not result.layers and result.network is None:
        raise ConfigError(
            f"run_dir={cfg.run_dir} has no polynomial SLAF layer to export "
            f"(activation={loaded.cfg.activation.name}, "
            f"basis={loaded.cfg.basis.name}); "
            "export a run trained with activation=slaf basis=monomial"
        )
    write_export(result, run_dir, cfg.md_features, cfg.md_terms)
    whole = result.network
    if whole is not None:
        for index, degree in enumerate(whole.total_degrees):
            if degree != whole.expected_degree:
                log.warning(
                    "output %d has total degree %d, not %d: the top terms cancelled",
                    index,
                    degree,
                    whole.expected_degree,
                )
    else:
        log.info("Whole network not expanded: %s", result.network_skipped)
    _print(markdown_table(summary_rows(result), SUMMARY_COLUMNS))


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def export_main(cfg: DictConfig) -> None:
    _run_task(export_task, cfg)


# ---------------------------------------------------------------- slaf-distill


def distill_task(cfg: DictConfig, run_dir: Path) -> None:
    """Distil a trained (or freshly trained) network; write distill.csv/.md/.png."""
    from slaf_cli.nn.bases import BASES
    from slaf_cli.theory.distill import (
        TEACHER_ACTIVATIONS,
        distill_sweep,
        distill_table,
    )
    from slaf_cli.theory.figures import plot_distill
    from slaf_cli.theory.runs import compose_train_config, load_run, train_config
    from slaf_cli.theory.tables import markdown_table, write_csv

    if cfg.basis not in BASES:
        raise ConfigError(
            f"basis {cfg.basis!r} is not known; set basis to one of "
            f"{', '.join(sorted(BASES))}"
        )
    limit = BASES[cfg.basis].max_degree
    bad = [d for d in cfg.degrees if not 1 <= d <= limit]
    if not cfg.degrees or bad:
        raise ConfigError(
            f"degrees {list(cfg.degrees)} are invalid for the {cfg.basis} basis; "
            f"set degrees to integers from 1 to {limit}"
        )
    _check_positive("finetune_epochs", cfg.finetune_epochs, allow_zero=True)
    _check_positive("lr", cfg.lr)
    _check_positive("batch_size", cfg.batch_size)

    teacher_dir = cfg.run_dir
    if teacher_dir is None:
        overrides = list(cfg.teacher)
        teacher_cfg = compose_train_config(overrides)
        if teacher_cfg.activation.name not in TEACHER_ACTIVATIONS.values():
            raise ConfigError(
                f"teacher activation {teacher_cfg.activation.name!r} is not a fixed "
                "activation; set activation=relu, tanh, gelu or silu in teacher"
            )
        teacher_dir = train_config(teacher_cfg, run_dir / "teacher", overrides)
    loaded = load_run(teacher_dir, cfg.checkpoint)
    options = OmegaConf.to_container(cfg.basis_options, resolve=True)
    metric, teacher_metric, rows = distill_sweep(
        loaded.model,
        loaded.data,
        list(cfg.degrees),
        basis=cfg.basis,
        basis_options=options,  # type: ignore[arg-type]
        sharing=cfg.sharing,
        finetune_epochs=cfg.finetune_epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        clip_grad_norm=cfg.clip_grad_norm,
        seed=cfg.seed,
    )
    table_rows = distill_table(rows, metric, teacher_metric)
    columns = list(table_rows[0])
    heading = (
        f"Teacher {teacher_dir}: test {metric} {teacher_metric:.4f}. Student: "
        f"{cfg.basis} SLAFs fitted on each layer's input range; ft_ columns after "
        f"{cfg.finetune_epochs} fine-tune epochs.\n\n"
    )
    table = heading + markdown_table(table_rows, columns)
    _print(table)
    write_csv(run_dir / "distill.csv", table_rows, columns)
    atomic_write_text(run_dir / "distill.md", "# SLAF distillation\n\n" + table)
    plot_distill(rows, metric, teacher_metric, run_dir / "distill.png")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="distill")
def distill_main(cfg: DictConfig) -> None:
    _run_task(distill_task, cfg)


# ---------------------------------------------------------------- entry points


def _entry(main: Callable[[], None]) -> None:
    """Call a Hydra main; a composition error (exit 1 before the task) becomes 2."""
    call_hydra_main(main, lambda: _task_started)


def approx_cli() -> None:
    _entry(approx_main)


def export_cli() -> None:
    _entry(export_main)


def distill_cli() -> None:
    _entry(distill_main)


COMMANDS = {"approx": approx_cli, "export": export_cli, "distill": distill_cli}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(
            f"usage: python -m slaf_cli.cli.theory {{{','.join(COMMANDS)}}} ...\n"
        )
        sys.exit(USER_ERROR)
    COMMANDS[sys.argv.pop(1)]()
