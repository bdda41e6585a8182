"""Approximation error of least-squares SLAF fits versus degree, per basis and target.

The claim under test: a SLAF f(z) = b + sum_j c_j g_j(z) approximates a Lipschitz
activation on a bounded interval, and its error falls as the basis grows. The fit
itself is :func:`slaf_cli.nn.fit.fit_target`; this module only sweeps it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import BASES, build_basis
from slaf_cli.nn.bases.base import validate_range
from slaf_cli.nn.fit import TARGETS, fit_error, fit_target

logger = logging.getLogger(__name__)

COLUMNS = ("target", "basis", "degree", "terms", "max_error", "rms_error")


@dataclass(frozen=True)
class ApproxRow:
    """Error of the best fit of one basis at one degree to one target.

    ``terms`` is the number K of non-constant terms, which differs from ``degree``
    for fourier (2 per frequency) and bspline (grid_size + order).
    """

    target: str
    basis: str
    degree: int
    terms: int
    max_error: float
    rms_error: float


def validate_sweep(
    targets: Sequence[str],
    degrees_by_basis: Mapping[str, Sequence[int]],
    interval: Sequence[float],
) -> tuple[float, float]:
    """Raise ConfigError for an unknown target or basis or a degree out of range.

    Returns the interval as a float pair. Messages name the config key to change.
    """
    for target in targets:
        if target not in TARGETS:
            raise ConfigError(
                f"target {target!r} is not known; set targets to names from "
                f"{', '.join(TARGETS)}"
            )
    for name, degrees in degrees_by_basis.items():
        if name not in BASES:
            raise ConfigError(
                f"basis {name!r} is not known; set bases to names from "
                f"{', '.join(sorted(BASES))}"
            )
        if not degrees:
            raise ConfigError(f"degrees for basis {name} is empty; give degrees >= 1")
        limit = BASES[name].max_degree
        for degree in degrees:
            if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
                raise ConfigError(
                    f"degree {degree!r} is invalid; set degrees to integers >= 1"
                )
            if degree > limit:
                raise ConfigError(
                    f"degree {degree} is too high for the {name} basis (max {limit}); "
                    f"lower degrees to at most {limit}, set "
                    f"basis_options.{name}.degrees, or drop {name} from bases"
                )
    return validate_range(interval, "interval")


def sweep_errors(
    targets: Sequence[str],
    degrees_by_basis: Mapping[str, Sequence[int]],
    interval: Sequence[float] = (-3.0, 3.0),
    basis_options: Mapping[str, Mapping[str, Any]] | None = None,
    num_points: int = 2001,
    eval_points: int = 4001,
) -> list[ApproxRow]:
    """Fit every target with every basis at every degree; return one row per fit.

    Each basis is built with ``input_range=interval`` plus its ``basis_options`` and
    fitted on ``num_points`` evenly spaced points. Its max and RMS errors are measured
    on ``eval_points`` evenly spaced points, which by default include every midpoint
    between fit points, so they estimate the sup norm rather than the error at the fit
    points alone. Rows are ordered target, basis, degree.
    """
    lo, hi = validate_sweep(targets, degrees_by_basis, interval)
    options = basis_options or {}
    rows = []
    for target in targets:
        for name, degrees in degrees_by_basis.items():
            for degree in degrees:
                basis = build_basis(
                    name, degree=degree, input_range=(lo, hi), **options.get(name, {})
                )
                fit = fit_target(basis, target, (lo, hi), num_points=num_points)
                max_error, rms_error = fit_error(
                    basis, fit.bias, fit.coefficients, target, (lo, hi), eval_points
                )
                rows.append(
                    ApproxRow(
                        target, name, degree, basis.num_terms, max_error, rms_error
                    )
                )
    return rows


def fastest_basis(rows: Sequence[ApproxRow], target: str, tolerance: float) -> str:
    """Name the basis that reaches ``max_error <= tolerance`` with the fewest terms K.

    Ties go to the lower error. When no basis reaches the tolerance, the basis with
    the lowest max error over its whole sweep wins. Returns a one-line verdict.
    """
    candidates = [row for row in rows if row.target == target]
    reached = [row for row in candidates if row.max_error <= tolerance]
    if reached:
        best = min(reached, key=lambda row: (row.terms, row.max_error))
        return (
            f"{target}: fastest-converging basis is {best.basis}, max error "
            f"{best.max_error:.2e} <= {tolerance:g} with K={best.terms} terms "
            f"(degree {best.degree})"
        )
    best = min(candidates, key=lambda row: row.max_error)
    return (
        f"{target}: no basis reaches max error {tolerance:g}; lowest is "
        f"{best.basis} with {best.max_error:.2e} at K={best.terms} terms "
        f"(degree {best.degree})"
    )


def wide_table(rows: Sequence[ApproxRow], target: str) -> list[dict[str, Any]]:
    """Pivot one target's max errors: one row per degree, one column per basis.

    A basis not swept at a degree gets "-".
    """
    bases = list(dict.fromkeys(row.basis for row in rows))
    degrees = sorted({row.degree for row in rows})
    table: dict[int, dict[str, Any]] = {
        degree: {"degree": degree, **{name: "-" for name in bases}}
        for degree in degrees
    }
    for row in rows:
        if row.target == target:
            table[row.degree][row.basis] = row.max_error
    return list(table.values())


def rows_as_dicts(rows: Sequence[ApproxRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
