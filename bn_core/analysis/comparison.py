"""Comparing runs: curves over seeds (mean, std), arms of a sweep, and the per-variant summary
(test accuracy with its CI and Welch p-value, steps to the baseline's best, speed-up).

Plain data in (result dicts from ``RunStore.result_dicts``), DataFrames out; no Streamlit, no
TensorFlow, no figures (those are ``bn_core.views.comparison``).
"""

from __future__ import annotations

import dataclasses
import statistics
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from bn_core.analysis.stats import compare_variants
from bn_core.analysis.summary import (
    BASELINE,
    curves_frame,
    first_epoch_reaching,
    learned_nothing,
    summary_table,
)
from bn_core.config import TrainConfig
from bn_core.results import HISTORY_KEYS
from bn_core.variants import VARIANT_NAMES
from bn_core.vocabulary import RunStatus

COMPARE_METRICS: tuple[str, ...] = ("val_accuracy", "val_loss", "accuracy", "loss")
# Keys that differ between runs by design; config_differences reports the others.
BY_DESIGN: tuple[str, ...] = ("variant", "seed")
ARM_SEP = " · "  # "lenet · learning_rate=0.005": a variant with settings that vary within it


def store_results(store: Any, runs: Sequence[Any]) -> list[dict[str, Any]]:
    """``store.result_dicts(runs)`` with each run's ``steps_per_epoch`` (for speed-ups),
    labelled by arm (``label_arms``)."""
    results = store.result_dicts(list(runs))
    for result, run in zip(results, runs, strict=True):
        result["steps_per_epoch"] = run.steps_per_epoch
    return label_arms(results)


def label_arms(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results whose variant is its *arm*: when some setting (besides variant and seed) varies
    between runs of the same variant (a sweep), runs are grouped by variant and those settings,
    e.g. "lenet · learning_rate=0.005", so seeds are averaged only over equal settings. The
    real variant is kept as ``base_variant``. Results without such settings come back as is."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], []).append(r["config"])
    keys = [
        k
        for k in config_differences([r["config"] for r in results], ignore=BY_DESIGN)
        if any(len({repr(c.get(k)) for c in configs}) > 1 for configs in by_variant.values())
    ]
    if not keys:
        return list(results)
    return [
        {
            **r,
            "variant": ARM_SEP.join(
                [r["variant"], *(f"{k}={format_value(r['config'].get(k))}" for k in keys)]
            ),
            "base_variant": r["variant"],
        }
        for r in results
    ]


def baseline_of(arm: str) -> str:
    """The plain-LeNet arm with the same settings: "lenet_bn1 · batch_size=4" -> "lenet · ..."."""
    return ARM_SEP.join([BASELINE, *arm.split(ARM_SEP)[1:]])


def _study_order(arm: str) -> int:
    variant = arm.split(ARM_SEP)[0]
    return VARIANT_NAMES.index(variant) if variant in VARIANT_NAMES else len(VARIANT_NAMES)


def run_curves(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long table, one row per (run, epoch): run_id, variant, seed, epoch, HISTORY_KEYS.
    Results without a run_id (from the CLI) are numbered 1, 2, ... in the given order."""
    numbered = [
        r if r.get("run_id") is not None else {**r, "run_id": i}
        for i, r in enumerate(results, start=1)
    ]
    return curves_frame(numbered, keys=("run_id", "variant", "seed"))


def group_curves(curves: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one run) and n per (variant, epoch, metric).

    Takes ``run_curves``' frame or the results themselves. Rows: variant, epoch, metric,
    mean, std, n, variants in first-seen order.
    """
    frame = curves if isinstance(curves, pd.DataFrame) else run_curves(curves)
    columns = ["variant", "epoch", "metric", "mean", "std", "n"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    long = frame.melt(
        id_vars=["variant", "epoch"], value_vars=list(HISTORY_KEYS), var_name="metric"
    ).dropna(subset=["value"])
    stats = (
        long.groupby(["variant", "epoch", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    order = {v: i for i, v in enumerate(dict.fromkeys(frame["variant"]))}
    stats = stats.sort_values(["variant", "metric", "epoch"], key=_variant_key(order))
    return stats[columns].reset_index(drop=True)


def _variant_key(order: dict[str, int]):
    return lambda col: col.map(order) if col.name == "variant" else col


def seeds_text(counts: Sequence[int]) -> str:
    """'3 seeds per variant', '1–3 seeds per variant' or 'no runs'."""
    if not counts:
        return "no runs"
    low, high = min(counts), max(counts)
    many = "s" * (high != 1)
    return f"{low} seed{many} per variant" if low == high else f"{low}–{high} seeds per variant"


def config_differences(
    configs: Iterable[TrainConfig | dict[str, Any]], ignore: Iterable[str] = ()
) -> list[str]:
    """Config keys (TrainConfig field order) whose values are not the same in all ``configs``."""
    dicts = [c.to_dict() if isinstance(c, TrainConfig) else dict(c) for c in configs]
    skip = set(ignore)
    keys = [f.name for f in dataclasses.fields(TrainConfig)]
    keys += sorted({k for d in dicts for k in d} - set(keys))
    return [k for k in keys if k not in skip and len({repr(d.get(k)) for d in dicts}) > 1]


SUMMARY_COLUMNS = (
    "variant",
    "runs",
    "seeds",
    RunStatus.COMPLETED.value,  # how many completed
    "no_learning",
    "n",
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_accuracy_ci95_low",
    "test_accuracy_ci95_high",
    "diff_vs_baseline",
    "p_value",
    "best_val_accuracy",
    "epoch_reaching_baseline_best",
    "steps_to_baseline_best",
    "speedup",
    "mean_epoch_seconds",
    "images_per_second",
    "config",
)
SPEEDUP_NOTE = (
    f"Steps to {BASELINE}'s best: epoch-level resolution, from the mean validation curve over "
    "seeds: the first epoch whose mean validation accuracy reaches the best of plain "
    f"{BASELINE}'s mean curve, times the steps per epoch. Speed-up = {BASELINE}'s steps to its "
    "own best ÷ the variant's steps (the paper's 'fewer steps' measure); – where undefined."
)
STATS_NOTE = (
    "n: runs with a test accuracy. Test accuracy: mean ± sample std over seeds; 95% CI of the "
    f"mean (Student t); Δ and p: difference of means and Welch's t-test against plain "
    f"{BASELINE} with the same settings (n ≥ 2 on both sides). No learning: runs that ended "
    "at chance, their final accuracy at most 0.10 + max(3 binomial standard deviations, 0.03)."
)


def variant_summary(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per variant, or per arm (``label_arms``), in study order.

    runs, seeds, completed runs, runs that learned nothing (``learned_nothing``: final
    accuracy at chance); n, mean, sample std and 95% CI of the test accuracy and, against
    plain lenet with the same settings, the difference of means and Welch's p-value
    (``bn_core.analysis.stats.compare_variants``); best validation accuracy (mean over runs of each
    run's best); on the MEAN validation curve over seeds, the first epoch reaching the best of
    lenet's mean curve, the steps that takes (epoch x steps_per_epoch, when every run of the
    variant reports the same one) and the speed-up = lenet's steps to its own best / those
    steps; mean seconds per epoch; median images/s over all epochs; and ``config``: the values
    of the settings that differ between the given runs (besides variant and seed), e.g.
    "epsilon=0.001". Undefined values are None, never 0.
    """
    results = label_arms(results)
    per_run = summary_table(list(results))
    grouped = group_curves(list(results))
    val = grouped[grouped["metric"] == "val_accuracy"]
    curve = {v: g.sort_values("epoch")["mean"].tolist() for v, g in val.groupby("variant")}
    differing = config_differences([r["config"] for r in results], ignore=BY_DESIGN)
    variants = sorted(dict.fromkeys(r["variant"] for r in results), key=_study_order)
    stats = _stats_against_baselines(results, variants)
    rows = []
    for variant in variants:
        mine = [r for r in results if r["variant"] == variant]
        st = stats[variant]
        rows.append(
            {
                "variant": variant,
                "runs": len(mine),
                "seeds": ", ".join(str(r.get("seed", r["config"].get("seed"))) for r in mine),
                RunStatus.COMPLETED.value: sum(r["status"] == RunStatus.COMPLETED for r in mine),
                "no_learning": sum(learned_nothing(r) for r in mine),
                "n": st["n"],
                "test_accuracy_mean": st["mean"],
                "test_accuracy_std": st["std"],
                "test_accuracy_ci95_low": st["ci95_low"],
                "test_accuracy_ci95_high": st["ci95_high"],
                "diff_vs_baseline": st["diff_vs_baseline"],
                "p_value": st["p_value"],
                "best_val_accuracy": _mean(
                    per_run.loc[per_run["variant"] == variant, "best_val_accuracy"]
                ),
                **_speed(variant, results, curve),
                "config": ", ".join(_values_text(k, mine) for k in differing),
            }
        )
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(object)
    return frame.where(frame.notna(), None)


def _stats_against_baselines(
    results: Sequence[dict[str, Any]], variants: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``compare_variants`` per group of arms sharing a baseline, keyed by arm."""
    stats = {}
    for base in dict.fromkeys(baseline_of(v) for v in variants):
        arms = [r for r in results if baseline_of(r["variant"]) == base]
        with warnings.catch_warnings():  # scipy warns when one side's values are all equal
            warnings.simplefilter("ignore", RuntimeWarning)
            table = compare_variants(arms, baseline=base)
        stats.update(table.set_index("variant").to_dict("index"))
    return stats


def _speed(
    variant: str, results: Sequence[dict[str, Any]], curve: dict[str, list[float]]
) -> dict[str, Any]:
    """The summary's speed columns of one arm: on the mean validation curves, the first epoch
    reaching the baseline's best, the steps that takes and the speed-up; seconds per epoch
    and median images/s."""
    mine = [r for r in results if r["variant"] == variant]
    base = baseline_of(variant)
    target = _best(curve.get(base, []))
    epoch = None if target is None else first_epoch_reaching(curve.get(variant, []), target)
    steps = _steps(epoch, mine)
    base_steps = None
    if target is not None:
        base_runs = [r for r in results if r["variant"] == base]
        base_steps = _steps(first_epoch_reaching(curve[base], target), base_runs)
    seconds = [s for r in mine for s in r["history"]["seconds"] if s is not None]
    speeds = [s for r in mine for s in r["history"]["images_per_second"] if s is not None]
    return {
        "epoch_reaching_baseline_best": epoch,
        "steps_to_baseline_best": steps,
        "speedup": base_steps / steps if base_steps and steps else None,
        "mean_epoch_seconds": statistics.fmean(seconds) if seconds else None,
        "images_per_second": statistics.median(speeds) if speeds else None,
    }


def _best(values: Sequence[float]) -> float | None:
    kept = [v for v in values if v is not None and not pd.isna(v)]
    return max(kept) if kept else None


def _steps(epoch: int | None, runs: Sequence[dict[str, Any]]) -> int | None:
    """epoch x the runs' steps per epoch; None when either is unknown or the runs disagree."""
    per_epoch = {r.get("steps_per_epoch") for r in runs}
    if epoch is None or len(per_epoch) != 1 or None in per_epoch:
        return None
    return epoch * int(per_epoch.pop())


def _values_text(key: str, results: Sequence[dict[str, Any]]) -> str:
    values = list(dict.fromkeys(format_value(r["config"].get(key)) for r in results))
    return f"{key}={'|'.join(values)}"


def format_value(value: Any) -> str:
    """A setting as people read it: None -> "default", floats short (0.001, 1e-08)."""
    return "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _mean(values: Iterable[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None and not pd.isna(v)]
    return statistics.fmean(kept) if kept else None
