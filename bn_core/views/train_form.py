"""The Train (and Sweep) form: widget choices, form state from presets, and the configs one
click queues, with every problem found before anything is queued.

No Streamlit and no TensorFlow here (the UI process must never load TF): the pages are thin
scripts of widgets -> these functions -> ``st.*`` calls, unit-tested without a browser.
Widget choices (batch sizes, learning rates, epsilons) are derived from ``TrainConfig``'s
field metadata, so a default or a limit lives in ``bn_core.config`` only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from bn_core.config import DEFAULT_LEARNING_RATES, TrainConfig, field_spec
from bn_core.constants import TRAIN_ROWS
from bn_core.data import DatasetError, locate

# UI-only choices (not hyperparameters of a run, so they do not live in TrainConfig).
DEFAULT_VARIANTS: tuple[str, ...] = ("lenet", "lenet_fc_bn2")
MAX_REPEATS = 10  # seeds per variant in one click
QUICK_TRAIN_LIMIT = 5000  # training images in quick mode, until the user changes it
# The settings the Train form provides; variant and seed come from the selection/repeats, and
# data_dir is never taken from the UI (the worker finds data itself, or via $BN_DATA_DIR).
FORM_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("variant", "seed", "data_dir")
)
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
    "epochs",
    "batch_size",
    "learning_rate",
    "window_size",
    "val_size",
    "probe_every",
    "seed",
)


def train_form_state(preset: str | None = None, quick: bool = False) -> dict[str, Any]:
    """Starting values of the Train form's widgets, by widget key: TrainConfig's defaults and
    the UI's (two variants, one repeat, quick mode off), or preset ``preset``'s shared
    settings (its quick version with ``quick``), variants and seeds. For a sweep preset this
    is one point of its grid (x1 learning rate, the default batch size and window)."""
    from bn_core.analysis.study import get_preset

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


# ----------------------------------------------------------------------------- compare
