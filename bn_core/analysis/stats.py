"""Statistics over repeats (seeds): is a variant's difference real, or seed noise?

For each variant with n runs (one per seed) of a metric x_1..x_n:

    mean  = 1/n * sum x_i
    std   = sqrt(1/(n-1) * sum (x_i - mean)^2)              (sample std, ddof=1)
    95% CI = mean -/+ t_{0.975, n-1} * std / sqrt(n)          (Student's t; needs n >= 2)

and against the plain baseline (``lenet``) the difference of means with the p-value of
Welch's t-test (unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``), which needs
at least two runs on each side. Where a statistic is undefined it is None, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from scipy import stats as sp_stats

from bn_core.analysis.summary import BASELINE

STATS_COLUMNS = (
    "variant",
    "n",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "diff_vs_baseline",
    "p_value",
)


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample std and the 95% confidence interval of the mean."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95_low": None, "ci95_high": None}
    mean = sum(xs) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "ci95_low": None, "ci95_high": None}
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(sp_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None with fewer than 2 values on a side or when
    both sides have zero variance (the test is undefined there)."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2 or (_spread(xs) == 0 and _spread(ys) == 0):
        return None
    p = float(sp_stats.ttest_ind(xs, ys, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def compare_variants(
    results: Sequence[dict[str, Any]], metric: str = "test_accuracy", baseline: str = BASELINE
) -> pd.DataFrame:
    """One row per variant (first-seen order): ``describe`` of ``metric`` over its runs, and
    the difference of means and Welch p-value against ``baseline`` (None for the baseline
    itself, or when it is absent)."""
    by_variant: dict[str, list[float]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], []).append(r.get(metric))
    base = by_variant.get(baseline)
    base_mean = describe(base)["mean"] if base else None
    rows = []
    for variant, values in by_variant.items():
        row = {"variant": variant, **describe(values)}
        if base is None or variant == baseline or row["mean"] is None or base_mean is None:
            row.update(diff_vs_baseline=None, p_value=None)
        else:
            row.update(
                diff_vs_baseline=row["mean"] - base_mean, p_value=welch_p_value(values, base)
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(STATS_COLUMNS))


def _spread(xs: list[float]) -> float:
    return max(xs) - min(xs)


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]
