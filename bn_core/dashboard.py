"""Data shaping for the dashboard pages: plain values, run records and DataFrames in; values,
DataFrames and plotly figures out.

No Streamlit and no TensorFlow here (the UI process must never load TF): the pages are thin
scripts of widgets -> these functions -> ``st.*`` calls, and everything below is unit-tested
without a browser. Widget choices (batch sizes, learning rates, epsilons) are derived from
``TrainConfig``'s field metadata, so a default or a limit lives in ``bn_core.config`` only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from bn_core.charts import METRIC_TITLES
from bn_core.config import DEFAULT_LEARNING_RATES, TrainConfig, field_spec
from bn_core.data import DatasetError, locate
from bn_core.store import RunRecord

# UI-only choices (not hyperparameters of a run, so they do not live in TrainConfig).
DEFAULT_VARIANTS: tuple[str, ...] = ("lenet", "lenet_fc_bn2")
MAX_REPEATS = 10  # seeds per variant in one click
QUICK_TRAIN_LIMIT = 5000  # training images in quick mode, until the user changes it
TRAIN_ROWS = 60000  # training images of both MNIST and Fashion-MNIST, before the val split
# The settings the Train form provides; variant and seed come from the selection/repeats, and
# data_dir is never taken from the UI (the worker finds data itself, or via $BN_DATA_DIR).
FORM_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("variant", "seed", "data_dir")
)
ERROR_STATUSES: tuple[str, ...] = ("failed", "diverged", "interrupted")
STATUS_COLORS: dict[str, str] = {
    "queued": "gray",
    "starting": "blue",
    "running": "blue",
    "completed": "green",
    "cancelled": "orange",
    "diverged": "red",
    "failed": "red",
    "interrupted": "violet",
}
DOWNLOAD_HINTS: dict[str, str] = {
    "mnist": (
        "will be downloaded at first use (~11 MB); offline? put mnist.npz or the IDX files in a "
        "folder and set BN_DATA_DIR, or pick Fashion-MNIST (apt-get install dataset-fashion-mnist)"
    ),
    "fashion_mnist": (
        "will be downloaded at first use (~30 MB); offline? apt-get install "
        "dataset-fashion-mnist, or put fashion_mnist.npz or the IDX files in a folder and set "
        "BN_DATA_DIR"
    ),
}

# ----------------------------------------------------------------------------- the Train form


def batch_size_choices() -> list[int]:
    """Powers of two within batch_size's limits, plus its default."""
    spec = field_spec("batch_size")
    values = {2**k for k in range(64) if spec["min"] <= 2**k <= spec["max"]}
    return sorted(values | {spec["default"]})


def learning_rate_choices() -> list[float | None]:
    """``None`` (the optimizer's default) first, then a log scale 1e-4..1e-1 (1-2-5 steps,
    plus 3e-2 = 30x Adam's default), clipped to learning_rate's limits."""
    spec = field_spec("learning_rate")
    values = {float(f"{m}e{e}") for e in (-4, -3, -2) for m in (1, 2, 5)} | {3e-2, 1e-1}
    values = {v for v in values if spec["min"] <= v <= spec["max"]}
    if spec["default"] is not None:
        values.add(spec["default"])
        return sorted(values)
    return [None, *sorted(values)]


def epsilon_choices() -> list[float]:
    """Every power of ten within epsilon's limits, plus its default."""
    spec = field_spec("epsilon")
    low = math.ceil(math.log10(spec["min"]) - 1e-9)
    high = math.floor(math.log10(spec["max"]) + 1e-9)
    return sorted({float(f"1e{e}") for e in range(low, high + 1)} | {spec["default"]})


def format_learning_rate(value: float | None, optimizer: str | None = None) -> str:
    if value is None:
        default = DEFAULT_LEARNING_RATES.get(optimizer or "")
        return "default" if default is None else f"default ({default:g})"
    return f"{value:g}"


def seed_list(seed: int, repeats: int) -> list[int]:
    """The seeds of ``repeats`` runs per variant: seed, seed+1, ..."""
    return [seed + i for i in range(repeats)]


def dataset_status(dataset: str) -> tuple[str, str]:
    """("local", "available locally at PATH"), ("download", hint) or ("error", message).

    Never downloads and never raises: a bad $BN_DATA_DIR comes back as ("error", its message).
    """
    try:
        path = locate(dataset)
    except (DatasetError, OSError) as e:
        return "error", str(e).splitlines()[0] if str(e) else type(e).__name__
    if path is not None:
        return "local", f"available locally at {path}"
    return "download", DOWNLOAD_HINTS.get(dataset, "will be downloaded at first use")


def train_configs(
    form: dict[str, Any], variants: Sequence[str], seeds: Sequence[int]
) -> tuple[list[TrainConfig], list[str]]:
    """One TrainConfig per (variant, seed), variant-major, and every problem found.

    ``form`` holds values of FORM_FIELDS only (anything else, a path included, is refused).
    When the error list is not empty the config list is empty: nothing may be queued.
    """
    errors: list[str] = []
    if not variants:
        errors.append("Pick at least one variant.")
    if not seeds:
        errors.append("Pick at least one seed (repeats must be at least 1).")
    unknown = sorted(set(form) - set(FORM_FIELDS))
    if unknown:
        return [], [*errors, f"unknown settings: {', '.join(unknown)}"]
    configs = []
    for variant in variants:
        for seed in seeds:
            config = TrainConfig(**form, variant=variant, seed=seed)
            errors += [e for e in config.errors() if e not in errors]
            configs.append(config)
    if not errors:
        errors += _batch_errors(form)
    return ([] if errors else configs), errors


# Train-form widgets whose starting value a preset sets, by TrainConfig field (widget keys are
# "train-" + the field name with dashes).
PRESET_FIELDS: tuple[str, ...] = (
    "epochs", "batch_size", "learning_rate", "window_size", "val_size", "probe_every", "seed",
)  # fmt: skip


def train_form_state(preset: str | None = None, quick: bool = False) -> dict[str, Any]:
    """Starting values of the Train form's widgets, by widget key: TrainConfig's defaults and
    the UI's (two variants, one repeat, quick mode off), or preset ``preset``'s shared
    settings (its quick version with ``quick``), variants and seeds. For a sweep preset this
    is one point of its grid (x1 learning rate, the default batch size and window)."""
    from bn_core.study import get_preset

    if preset is None:
        config, variants, repeats = TrainConfig(), list(DEFAULT_VARIANTS), 1
    else:
        p = get_preset(preset)
        config, variants = p.base_config(quick), list(p.variants)
        repeats = p.quick_seeds if quick else p.seeds
    state = {f"train-{name.replace('_', '-')}": getattr(config, name) for name in PRESET_FIELDS}
    state.update(
        {
            "train-variants": variants,
            "train-repeats": repeats,
            "train-quick": config.train_limit is not None,
            "train-train-limit": config.train_limit or QUICK_TRAIN_LIMIT,
        }
    )
    return state


def _batch_errors(form: dict[str, Any]) -> list[str]:
    """An epoch needs at least one full batch (the trainer drops the incomplete last one)."""
    spec = {name: field_spec(name)["default"] for name in ("batch_size", "val_size")}
    batch = form.get("batch_size", spec["batch_size"])
    val_size = form.get("val_size", spec["val_size"])
    limit = form.get("train_limit")
    images = TRAIN_ROWS - val_size if limit is None else min(limit, TRAIN_ROWS - val_size)
    if images < batch:
        return [
            f"only {images} training images (train_limit {limit}, val_size {val_size}) for a "
            f"batch size of {batch}: raise the train limit or lower the batch size"
        ]
    return []


# ----------------------------------------------------------------------------- runs (live view)


def run_label(run: RunRecord) -> str:
    """'#12 lenet_fc_bn2 seed 0 (completed)'."""
    return f"#{run.id} {run.variant} seed {run.seed} ({run.status})"


def config_caption(config: TrainConfig) -> str:
    """The settings of a run on one line."""
    limit = f" · {config.train_limit:,} train images" if config.train_limit else ""
    return (
        f"{config.dataset} · {config.epochs} epoch{'s' * (config.epochs != 1)} · "
        f"batch {config.batch_size} · "
        f"{config.optimizer} lr {format_learning_rate(config.learning_rate, config.optimizer)} · "
        f"ε {config.epsilon:g} · window {config.window_size} · {config.activation}{limit}"
    )


def group_runs(runs: Iterable[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """Runs grouped by group_id: newest group first, each group in queue (id) order."""
    groups: dict[str, list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        groups.setdefault(run.group_id, []).append(run)
    return sorted(groups.items(), key=lambda item: -max(r.id for r in item[1]))


def rows_by_run(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Metric rows of several runs (one store query) split per run, order kept."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["run_id"], []).append(row)
    return out


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def progress_info(
    run: RunRecord, batches: Sequence[dict[str, Any]], epochs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Progress of one run from its metric rows (store order: by step / by epoch).

    ``fraction`` = steps done / total steps (1.0 once completed). ``images_per_second`` is
    the last finished epoch's throughput, else (mid first epoch) the rate between the first
    and last batch events. ``eta_seconds`` (running runs only) extrapolates the step rate
    between the first and last batch events, validation pauses included.

    Steps are counted as (epoch - 1) * steps_per_epoch + batch with the batch capped at
    steps_per_epoch: the event that closes an epoch may report the end of a whole
    steps_per_execution chunk, past the epoch's real last step.
    """
    config = run.config
    per_epoch = run.steps_per_epoch
    total = run.total_steps or (per_epoch * config.epochs if per_epoch else None)
    epochs_done = epochs[-1]["epoch"] if epochs else 0

    def steps(row: dict[str, Any]) -> int:
        if not per_epoch:
            return row["step"]
        return (row["epoch"] - 1) * per_epoch + min(row["batch"], per_epoch)

    first, last = (batches[0], batches[-1]) if batches else (None, None)
    step = max(steps(last) if last else 0, epochs_done * (per_epoch or 0))
    fraction = min(step / total, 1.0) if total else 0.0
    if run.status == "completed":
        fraction = 1.0

    images_per_second = epochs[-1].get("images_per_second") if epochs else None
    step_rate = None
    if first is not None and last["t"] > first["t"] and steps(last) > steps(first):
        step_rate = (steps(last) - steps(first)) / (last["t"] - first["t"])
        if images_per_second is None:
            images_per_second = step_rate * config.batch_size
    eta = None
    if run.status == "running" and total and step_rate:
        eta = max(total - step, 0) / step_rate

    if run.status == "queued":
        text = "queued"
    elif run.status == "starting" or (run.status == "running" and not batches):
        text = "starting: loading data and compiling"
    else:
        parts = []
        if run.active and last is not None:
            parts.append(f"epoch {min(last['epoch'], config.epochs)}/{config.epochs}")
            if per_epoch:  # the last event of an epoch can overshoot (steps_per_execution)
                parts.append(f"batch {min(last['batch'], per_epoch)}/{per_epoch}")
        else:
            parts.append(f"{run.status} after {epochs_done}/{config.epochs} epochs")
        if images_per_second:
            parts.append(f"{images_per_second:,.0f} img/s")
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        text = " · ".join(parts)
    return {
        "fraction": fraction,
        "text": text,
        "eta_seconds": eta,
        "images_per_second": images_per_second,
    }


def live_figure(
    batches: Sequence[dict[str, Any]] | pd.DataFrame,
    epochs: Sequence[dict[str, Any]] | pd.DataFrame,
    metric: str,
    *,
    uirevision: Any = None,
    height: int = 280,
) -> go.Figure:
    """``metric`` ("loss" or "accuracy") of one run against epochs: batch-level training
    values as a line at x = epoch_progress, epoch means (training, validation) as markers."""
    b = batches if isinstance(batches, pd.DataFrame) else pd.DataFrame(list(batches))
    e = epochs if isinstance(epochs, pd.DataFrame) else pd.DataFrame(list(epochs))
    fig = go.Figure()
    if not b.empty:
        # An epoch's closing event can overshoot (a whole steps_per_execution chunk): its x
        # is capped at the end of its epoch.
        b = b.assign(epoch_progress=b["epoch_progress"].clip(upper=b["epoch"]))
        fig.add_trace(
            go.Scatter(
                x=b["epoch_progress"], y=b[metric], name="train (batches)",
                mode="lines" if len(b) > 20 else "lines+markers",
                line={"width": 1.5, "color": "#9aa5c4"}, marker={"size": 4},
            )
        )  # fmt: skip
    if not e.empty:
        fig.add_trace(
            go.Scatter(
                x=e["epoch"], y=e[metric], mode="markers", name="train (epoch)",
                marker={"size": 8, "color": "#636EFA"},
            )
        )  # fmt: skip
        val = e[f"val_{metric}"]
        if val.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=e["epoch"], y=val, mode="markers", name="validation",
                    marker={"size": 9, "symbol": "diamond", "color": "#EF553B"},
                )
            )  # fmt: skip
    fig.update_layout(
        title=METRIC_TITLES.get(metric, metric).replace("Training ", "").capitalize(),
        xaxis_title="epoch",
        yaxis_title=metric,
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        uirevision=uirevision,
    )
    fig.update_xaxes(rangemode="tozero")
    return fig


# ----------------------------------------------------------------------------- compare
