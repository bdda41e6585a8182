"""Approximation sweep: errors fall with degree, and the table has one row per fit."""

from __future__ import annotations

import pytest

from slaf_cli.errors import ConfigError
from slaf_cli.theory.approx import ApproxRow, fastest_basis, sweep_errors, wide_table

# tanh is odd, so on a symmetric interval an even degree adds nothing to the
# polynomial bases; the ladders step over odd degrees. rbf and bspline errors are
# not monotone in degree (rbf has a floor set by its width, bspline order
# alternates), so their ladders are sparser.
LADDERS = {
    "monomial": [1, 3, 7, 11, 15],
    "chebyshev": [1, 3, 7, 11, 15],
    "legendre": [1, 3, 7, 11, 15],
    "fourier": [1, 2, 4, 8, 16],
    "rbf": [2, 6, 10],
    "bspline": [1, 3],
}


@pytest.mark.parametrize("basis", sorted(LADDERS))
def test_tanh_error_shrinks_with_degree(basis: str) -> None:
    rows = sweep_errors(["tanh"], {basis: LADDERS[basis]}, num_points=801)
    errors = [row.max_error for row in rows]

    for smaller, larger in zip(errors[1:], errors[:-1], strict=True):
        assert smaller < larger, errors
    assert all(row.rms_error <= row.max_error for row in rows)


def test_table_has_row_per_fit() -> None:
    degrees = {"monomial": [1, 2, 3], "fourier": [1, 2], "bspline": [2, 3]}
    rows = sweep_errors(
        ["relu", "tanh"],
        degrees,
        basis_options={"bspline": {"grid_size": 4}},
        num_points=401,
    )
    keys = [(row.target, row.basis, row.degree) for row in rows]
    terms = {(row.basis, row.degree): row.terms for row in rows}

    assert len(rows) == 2 * 7
    assert len(set(keys)) == len(keys)
    assert keys[0] == ("relu", "monomial", 1)
    assert terms[("monomial", 3)] == 3
    assert terms[("fourier", 2)] == 4
    assert terms[("bspline", 3)] == 4 + 3


def test_wide_table_marks_missing_degrees() -> None:
    rows = sweep_errors(
        ["gelu"], {"monomial": [1, 2, 3], "bspline": [1]}, num_points=401
    )
    table = wide_table(rows, "gelu")

    assert [row["degree"] for row in table] == [1, 2, 3]
    assert table[2]["bspline"] == "-"
    assert table[0]["bspline"] == rows[3].max_error


def test_fastest_basis_prefers_fewer_terms() -> None:
    rows = [
        ApproxRow("tanh", "monomial", 5, 5, 5e-3, 1e-3),
        ApproxRow("tanh", "fourier", 2, 4, 8e-3, 2e-3),
        ApproxRow("tanh", "rbf", 3, 3, 5e-2, 1e-2),
    ]

    assert "fourier" in fastest_basis(rows, "tanh", tolerance=1e-2)
    assert "no basis reaches" in fastest_basis(rows, "tanh", tolerance=1e-3)
    assert "monomial" in fastest_basis(rows, "tanh", tolerance=1e-3)


@pytest.mark.parametrize(
    ("targets", "degrees", "interval", "expected"),
    [
        (["swish"], {"monomial": [2]}, (-3.0, 3.0), "'swish'"),
        (["tanh"], {"monomial": [17]}, (-3.0, 3.0), "max 16"),
        (["tanh"], {"bspline": [6]}, (-3.0, 3.0), "max 5"),
        (["tanh"], {"monomial": [2]}, [3.0, -3.0], "[3.0, -3.0]"),
    ],
    ids=["unknown target", "monomial degree", "bspline degree", "reversed interval"],
)
def test_sweep_rejects_invalid_input(targets, degrees, interval, expected) -> None:
    with pytest.raises(ConfigError) as error:
        sweep_errors(targets, degrees, interval)

    assert expected in str(error.value)
