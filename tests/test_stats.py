"""Statistics over seeds, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sp_stats

from bn_core.analysis.stats import compare_variants, describe, welch_p_value

A = [0.80, 0.82, 0.84]  # mean 0.82, sample std 0.02
B = [0.70, 0.71, 0.72]  # mean 0.71, sample std 0.01


def test_describe_by_hand():
    d = describe(A)
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(0.82)
    assert d["std"] == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2} from a t table
    assert d["ci95_low"] == pytest.approx(0.82 - half)
    assert d["ci95_high"] == pytest.approx(0.82 + half)


def test_describe_undefined_parts_are_none():
    assert describe([]) == {"n": 0, "mean": None, "std": None, "ci95_low": None, "ci95_high": None}
    one = describe([0.5, None, float("nan")])
    assert one["n"] == 1 and one["mean"] == 0.5 and one["std"] is None and one["ci95_low"] is None


def test_welch_against_the_formula():
    va, vb, n = 0.02**2, 0.01**2, 3
    se2 = va / n + vb / n
    t = (0.82 - 0.71) / math.sqrt(se2)
    df = se2**2 / ((va / n) ** 2 / (n - 1) + (vb / n) ** 2 / (n - 1))  # Welch-Satterthwaite
    expected = 2 * sp_stats.t.sf(t, df)
    assert df == pytest.approx(2.9411764, rel=1e-6)
    assert welch_p_value(A, B) == pytest.approx(expected, rel=1e-9)
    assert welch_p_value(A, [0.7]) is None  # one run: no variance estimate
    assert welch_p_value([0.5, 0.5], [0.5, 0.5]) is None  # zero variance on both sides


def test_compare_variants_table():
    results = [{"variant": "lenet", "test_accuracy": v} for v in B] + [
        {"variant": "lenet_fc_bn2", "test_accuracy": v} for v in A
    ]
    table = compare_variants(results).set_index("variant")
    assert list(table.index) == ["lenet", "lenet_fc_bn2"]
    assert table.loc["lenet", "n"] == 3 and table.loc["lenet_fc_bn2", "n"] == 3
    assert table.loc["lenet_fc_bn2", "diff_vs_baseline"] == pytest.approx(0.11)
    assert table.loc["lenet_fc_bn2", "p_value"] == pytest.approx(welch_p_value(A, B))
    assert table.loc["lenet", "p_value"] is None or math.isnan(table.loc["lenet", "p_value"])


def test_compare_variants_without_baseline_has_no_p_values():
    table = compare_variants([{"variant": "lenet_bn1", "test_accuracy": v} for v in A])
    assert table.loc[0, "mean"] == pytest.approx(0.82)
    assert table["p_value"].isna().all() and table["diff_vs_baseline"].isna().all()
