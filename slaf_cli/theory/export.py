"""Polynomial export of a SLAF network: layers and whole network, as JSON and markdown.

:func:`export_network` is the Python entry point; ``slaf-export`` calls it on a
trained run and writes the files of :func:`write_export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy
from torch import nn

from slaf_cli.errors import ConfigError
from slaf_cli.files import atomic_write_text
from slaf_cli.theory.polynomial import (
    LayerPolynomial,
    NetworkPolynomial,
    export_layers,
    network_polynomial,
)
from slaf_cli.theory.tables import markdown_table

SUMMARY_COLUMNS = ("part", "polynomial", "degree", "terms", "max_relative_error")


@dataclass
class ExportResult:
    """Output of :func:`export_network`.

    ``skipped`` maps each SLAF layer that is not a polynomial to the reason, and
    ``network_skipped`` is the reason the whole network was not expanded (None when
    ``network`` is set).
    """

    layers: list[LayerPolynomial]
    skipped: dict[str, str]
    network: NetworkPolynomial | None
    network_skipped: str | None


def export_network(
    model: nn.Module,
    network: bool = True,
    num_samples: int = 256,
    tolerance: float = 1e-6,
    seed: int = 0,
    max_inputs: int = 8,
    max_width: int = 32,
    max_terms: int = 5000,
) -> ExportResult:
    """Export every polynomial SLAF layer and, when possible, the whole network.

    Each part is verified against ``model`` in float64 eval mode on ``num_samples``
    random inputs; a relative error above ``tolerance`` raises ExportMismatch. A
    model that is not a polynomial chain, or too large for the ``max_*`` limits,
    keeps its per-layer export and gets a reason in ``network_skipped``.
    """
    layers, skipped = export_layers(model, num_samples, tolerance, seed)
    if not network:
        return ExportResult(layers, skipped, None, "not requested (network=false)")
    try:
        whole = network_polynomial(
            model, max_inputs, max_width, max_terms, num_samples, tolerance, seed
        )
    except ConfigError as error:
        return ExportResult(layers, skipped, None, str(error))
    return ExportResult(layers, skipped, whole, None)


def format_univariate(coefficients: list[float]) -> str:
    """Format a_0..a_K as ``a_0 + a_1 z + a_2 z^2 ...`` with 4 significant digits."""
    parts = []
    for power, value in enumerate(coefficients):
        term = f"{abs(value):.4g}"
        if power == 1:
            term += " z"
        elif power > 1:
            term += f" z^{power}"
        if not parts:
            parts.append(f"-{term}" if value < 0 else term)
        else:
            parts.append(f"{'-' if value < 0 else '+'} {term}")
    return " ".join(parts)


def format_multivariate(poly: sympy.Poly, max_terms: int) -> str:
    """Format the ``max_terms`` largest-magnitude terms of ``poly``, then a count."""
    terms = sorted(poly.terms(), key=lambda term: -abs(float(term[1])))
    names = [str(g) for g in poly.gens]
    parts = []
    for monomial, coefficient in terms[:max_terms]:
        factors = [
            name if power == 1 else f"{name}^{power}"
            for name, power in zip(names, monomial, strict=True)
            if power
        ]
        parts.append("*".join([f"{float(coefficient):+.4g}", *factors]))
    rest = len(terms) - max_terms
    return " ".join(parts) + (f" ... ({rest} more terms)" if rest > 0 else "")


def summary_rows(result: ExportResult) -> list[dict[str, Any]]:
    """Build the printed table: one row per exported layer and per network output."""
    rows = []
    for layer in result.layers:
        rows.append(
            {
                "part": layer.name,
                "polynomial": f"{layer.coefficients.shape[0]} x univariate",
                "degree": layer.degree,
                "terms": layer.coefficients.shape[1],
                "max_relative_error": layer.max_relative_error,
            }
        )
    if result.network is not None:
        whole = result.network
        for index, poly in enumerate(whole.outputs):
            degree = poly.total_degree()
            rows.append(
                {
                    "part": f"output {index}",
                    "polynomial": f"{len(whole.variables)}-variate",
                    "degree": f"{degree} (expected {whole.expected_degree})",
                    "terms": len(poly.terms()),
                    "max_relative_error": whole.max_relative_error,
                }
            )
    return rows


def write_export(
    result: ExportResult, folder: Path, md_features: int = 8, md_terms: int = 12
) -> None:
    """Write ``layers.json``, ``layers.md`` and, with a network, ``network.json/.md``.

    The JSON files hold every coefficient; the markdown shows the first
    ``md_features`` features per layer and the ``md_terms`` largest terms per output.
    """
    layers_json = {
        layer.name: {
            "basis": layer.basis,
            "degree": layer.degree,
            "normalize": layer.normalize,
            "valid_range": layer.valid_range,
            "max_relative_error": layer.max_relative_error,
            "coefficients": layer.coefficients.tolist(),
        }
        for layer in result.layers
    }
    atomic_write_text(
        folder / "layers.json",
        json.dumps({"layers": layers_json, "skipped": result.skipped}, indent=1),
    )

    lines = ["# SLAF layers as polynomials", ""]
    lines.append("Feature c of a layer computes f_c(z) = a_0 + a_1 z + ... + a_K z^K.")
    for layer in result.layers:
        span = (
            "all z" if layer.valid_range is None else f"z in {list(layer.valid_range)}"
        )
        lines += [
            "",
            f"## {layer.name}",
            "",
            (
                f"{layer.basis} degree {layer.degree}, normalize={layer.normalize}, "
                f"valid for {span}, max relative error {layer.max_relative_error:.2e}"
            ),
            "",
        ]
        rows = layer.coefficients.tolist()
        for feature, row in enumerate(rows[:md_features]):
            lines.append(f"- f_{feature}(z) = {format_univariate(row)}")
        if len(rows) > md_features:
            lines.append(
                f"- ... {len(rows) - md_features} more features in layers.json"
            )
    for name, reason in result.skipped.items():
        lines += ["", f"## {name}", "", f"Not exported: {reason}"]
    atomic_write_text(folder / "layers.md", "\n".join(lines) + "\n")

    whole = result.network
    if whole is None:
        return
    outputs = [
        {
            "total_degree": degree,
            "num_terms": len(poly.terms()),
            "terms": [[list(m), float(c)] for m, c in poly.terms()],
        }
        for degree, poly in zip(whole.total_degrees, whole.outputs, strict=True)
    ]
    network_json = {
        "variables": whole.variables,
        "expected_degree": whole.expected_degree,
        "max_relative_error": whole.max_relative_error,
        "outputs": outputs,
    }
    atomic_write_text(folder / "network.json", json.dumps(network_json, indent=1))
    lines = [
        "# Network as a polynomial of its flattened input",
        "",
        (
            f"Variables {', '.join(whole.variables)}; expected total degree "
            f"{whole.expected_degree} (product of the SLAF degrees); "
            "max relative error "
            f"{whole.max_relative_error:.2e} against the model in float64."
        ),
        "",
        markdown_table(summary_rows(result)[len(result.layers) :], SUMMARY_COLUMNS),
    ]
    for index, poly in enumerate(whole.outputs):
        lines += [f"## output {index}", "", format_multivariate(poly, md_terms), ""]
    atomic_write_text(folder / "network.md", "\n".join(lines))
