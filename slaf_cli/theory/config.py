"""Structured configs of the theory commands, stored in Hydra's ConfigStore.

Each root YAML (``conf/approx.yaml``, ``conf/export.yaml``, ``conf/distill.yaml``)
names its schema first in its defaults list, so Hydra rejects unknown keys and
wrong types while composing. Value checks happen in ``slaf_cli.theory``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

ALL_BASES = ["monomial", "chebyshev", "legendre", "fourier", "rbf", "bspline"]


@dataclass
class ApproxConfig:
    targets: list[str] = field(default_factory=lambda: ["relu", "tanh", "gelu"])
    bases: list[str] = field(default_factory=lambda: list(ALL_BASES))
    degrees: list[int] = field(default_factory=lambda: list(range(1, 17)))
    interval: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    num_points: int = 2001  # evenly spaced fit points on the interval
    eval_points: int = 4001  # error points: the fit points and every midpoint
    tolerance: float = 1e-2  # max error that defines the fastest-converging basis
    # Per basis: constructor options (grid_size, width, out_of_range) and an optional
    # `degrees` list that replaces the global one for that basis.
    basis_options: dict[str, Any] = field(default_factory=dict)
    run_name: str = "approx"


@dataclass
class ExportConfig:
    run_dir: str | None = None  # folder of a slaf-train run
    checkpoint: str = "best"  # best | last
    network: bool = True  # also expand the whole network as one polynomial per output
    num_samples: int = 256  # random inputs per verification
    tolerance: float = 1e-6  # max relative error of an export against the module
    seed: int = 0  # seeds the verification inputs
    max_inputs: int = 8  # whole-network limits, so that sympy finishes in seconds
    max_width: int = 32
    max_terms: int = 5000  # bound C(inputs + degree, degree) on the terms per output
    md_features: int = 8  # features per layer written to layers.md
    md_terms: int = 12  # largest terms per output written to network.md
    run_name: str = "export"


@dataclass
class DistillConfig:
    run_dir: str | None = None  # trained teacher run; null trains one first
    checkpoint: str = "best"  # best | last
    # slaf-train overrides of the teacher trained when run_dir is null
    teacher: list[str] = field(default_factory=list)
    basis: str = "monomial"  # basis of the student SLAFs
    basis_options: dict[str, Any] = field(default_factory=dict)
    degrees: list[int] = field(default_factory=lambda: list(range(1, 9)))
    sharing: str = "channel"  # channel | neuron | layer, of the student SLAFs
    finetune_epochs: int = 2  # 0 skips the fine-tune
    lr: float = 1e-3  # fine-tune Adam learning rate
    batch_size: int = 128
    clip_grad_norm: float | None = 1.0  # fine-tune gradient clipping; null: none
    seed: int = 0
    run_name: str = "distill"


def register_theory_configs() -> None:
    """Store the three root schemas as approx_schema, export_schema, distill_schema."""
    store = ConfigStore.instance()
    store.store(name="approx_schema", node=ApproxConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="distill_schema", node=DistillConfig)
