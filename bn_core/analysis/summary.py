"""Tables of finished runs: plain functions over result dicts (no TensorFlow, no UI).

A *result* is ``TrainResult.to_dict()`` (or the same shape read back from the run store):
``variant``, ``status``, ``test_accuracy``, ``test_loss`` and per-epoch ``history`` lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import median
from typing import Any

import pandas as pd

from bn_core.results import HISTORY_KEYS, no_learning

BASELINE = "lenet"

SUMMARY_COLUMNS = (
    "variant",
    "status",
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "epoch_reaching_baseline_best",
    "mean_epoch_seconds",
    "images_per_second",
)


def learned_nothing(result: dict[str, Any]) -> bool:
    """``bn_core.results.no_learning`` of a result: its status, test accuracy, validation
    curve and the validation images of its config."""
    config = result.get("config") or {}
    return no_learning(
        result["status"],
        result.get("test_accuracy"),
        result.get("history", {}).get("val_accuracy", []),
        config.get("val_size") or 0,
    )


def first_epoch_reaching(values: Iterable[float | None], target: float) -> int | None:
    """1-based index of the first epoch whose value is >= target, or None if never."""
    for epoch, value in enumerate(values, start=1):
        if value is not None and value >= target:
            return epoch
    return None


def summary_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run, in the given order.

    ``epoch_reaching_baseline_best`` is the epoch at which a run's validation accuracy
    first reached the best validation accuracy of the plain ``lenet`` run (empty when no
    ``lenet`` run is among the results or the run never got there). ``images_per_second``
    is the median over epochs, so the first epoch's compilation does not skew it.
    """
    baseline = next(
        (_best(r["history"]["val_accuracy"]) for r in results if r["variant"] == BASELINE), None
    )
    rows = []
    for r in results:
        h = r["history"]
        rows.append(
            {
                "variant": r["variant"],
                "status": r["status"],
                "test_accuracy": r.get("test_accuracy"),
                "test_loss": r.get("test_loss"),
                "best_val_accuracy": _best(h["val_accuracy"]),
                "epoch_reaching_baseline_best": (
                    None if baseline is None else first_epoch_reaching(h["val_accuracy"], baseline)
                ),
                "mean_epoch_seconds": _mean(h["seconds"]),
                "images_per_second": median(h["images_per_second"])
                if h["images_per_second"]
                else None,
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def curves_frame(
    results: list[dict[str, Any]], keys: tuple[str, ...] = ("variant",)
) -> pd.DataFrame:
    """Long table of per-epoch curves: one row per (result, epoch).

    ``keys`` are carried from each result into every row (taken from the result, else from
    its config, e.g. ``("run_id", "variant", "seed")``). Missing values are NaN, not None.
    """
    rows = []
    for r in results:
        h, ids = r["history"], {k: r.get(k, r.get("config", {}).get(k)) for k in keys}
        for i in range(len(h["loss"])):
            rows.append({**ids, "epoch": i + 1, **{k: h[k][i] for k in HISTORY_KEYS}})
    frame = pd.DataFrame(rows, columns=[*keys, "epoch", *HISTORY_KEYS])
    for key in HISTORY_KEYS:
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text rendering for the terminal ("-" where there is no value)."""
    formats = {
        "test_accuracy": "{:.4f}",
        "test_loss": "{:.4f}",
        "best_val_accuracy": "{:.4f}",
        "epoch_reaching_baseline_best": "{:.0f}",
        "mean_epoch_seconds": "{:.1f}",
        "images_per_second": "{:,.0f}",
    }
    shown = table.copy()
    for col, fmt in formats.items():
        shown[col] = shown[col].map(lambda v, fmt=fmt: "-" if _missing(v) else fmt.format(v))
    return shown.to_string(index=False)


def _best(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return max(kept) if kept else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
