"""The Train (and Sweep) form: widget choices and limits, form state from presets, and the
configs one click queues, with every problem found before anything is queued.

No Streamlit and no TensorFlow here (the UI process must never load TF): the pages are thin
scripts of widgets -> these functions -> ``st.*`` calls, unit-tested without a browser.
Widget choices (batch sizes, learning rates, epsilons, epochs, windows) and each field's
limits and error message are derived from ``TrainConfig``'s field metadata, so a default or a
limit lives in ``bn_core.config`` only. Whether the data is here is ``views.datasets``' job.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from bn_core.analysis import study
from bn_core.config import DEFAULT_LEARNING_RATES, TrainConfig, field_spec
from bn_core.constants import DATASETS
from bn_core.views import datasets

# UI-only choices (not hyperparameters of a run, so they do not live in TrainConfig).
DEFAULT_VARIANTS: tuple[str, ...] = ("lenet", "lenet_fc_bn2")
MAX_REPEATS = 10  # seeds per variant in one click
QUICK_TRAIN_LIMIT = 5000  # training images in quick mode, until the user changes it
# The settings the Train form provides; variant and seed come from the selection/repeats, and
# data_dir is a separate argument, checked by datasets.check_folder (never taken as is).
FORM_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("variant", "seed", "data_dir")
)
SWEEP_KINDS: tuple[str, ...] = ("learning rate", "batch size", "both")
# Sweep widgets that are one choice with the Train form's (widget key suffixes): the Sweep
# page starts from the Train form's last choice and hands its own back.
SHARED_FIELDS: tuple[str, ...] = ("dataset", "epochs", "quick")

# ----------------------------------------------------------------------------- widget choices


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


def step_choices(name: str, *extra: int | None) -> list[int]:
    """The values people pick for integer field ``name``, for a select_slider: 1-2-5 steps
    (1, 2, 5, 10, 20, ...) within its limits, its limits and default, every preset's value
    (quick versions and swept values too) and ``extra`` (the widget's current value)."""
    spec = field_spec(name)
    low, high = spec["min"], spec["max"]
    values = {m * 10**e for e in range(len(str(high))) for m in (1, 2, 5)}
    values = {v for v in values | _preset_values(name) if low <= v <= high}
    return sorted(values | {low, high, spec["default"], *(v for v in extra if v is not None)})


def _preset_values(name: str) -> set[int]:
    values = set()
    for p in study.PRESETS.values():
        values |= {getattr(p.base_config(quick), name) for quick in (False, True)}
        values |= set({"window_size": p.window_sizes, "batch_size": p.batch_sizes}.get(name, ()))
    return values


def format_learning_rate(value: float | None, optimizer: str | None = None) -> str:
    if value is None:
        default = DEFAULT_LEARNING_RATES.get(optimizer or "")
        return "default" if default is None else f"default ({default:g})"
    return f"{value:g}"


def limits(name: str) -> tuple[int, int]:
    """(min, max) of a number field: a TrainConfig field's, or the form's own for repeats."""
    if name == "repeats":
        return 1, MAX_REPEATS
    spec = field_spec(name)
    return spec["min"], spec["max"]


def limits_text(name: str) -> str:
    """A number field's limits as its label shows them: ``0–59,000``."""
    return "–".join(f"{v:,}" for v in limits(name))


def field_error(name: str, value: Any) -> str | None:
    """Why ``value`` is refused for number field ``name`` (TrainConfig's message, e.g.
    ``seed must be between 0 and 2147483647. Received: -5``), or None when it is valid."""
    if name == "repeats":
        low, high = limits(name)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if whole and low <= value <= high:
            return None
        return f"repeats must be between {low} and {high}. Received: {value!r}"
    errors = TrainConfig(**{name: value}).field_errors()  # its own limits, not the others'
    return errors[0] if errors else None


def seed_list(seed: int | None, repeats: int | None) -> list[int]:
    """The seeds of ``repeats`` runs per variant: seed, seed+1, ... (none for an empty or
    out-of-range repeats, which the form reports)."""
    if seed is None or field_error("repeats", repeats):
        return []
    return [seed + i for i in range(repeats)]


# ----------------------------------------------------------------------------- what Start queues


def data_errors(dataset: str, data_dir: str | None) -> tuple[str | None, list[str]]:
    """(the checked data folder or None, why runs on ``dataset`` would not find their data).
    ``data_dir`` is the form's folder field: empty, or checked by ``datasets.check_folder``."""
    if dataset not in DATASETS:
        return None, []  # TrainConfig names the valid datasets
    folder, error = datasets.check_folder(data_dir, dataset)
    error = error or datasets.data_problem(dataset, folder)
    return folder, [error] if error else []


def train_configs(
    form: dict[str, Any],
    variants: Sequence[str],
    seeds: Sequence[int],
    data_dir: str | None = None,
) -> tuple[list[TrainConfig], list[str]]:
    """One TrainConfig per (variant, seed), variant-major, and every problem found.

    ``form`` holds values of FORM_FIELDS only (anything else, a path included, is refused);
    ``data_dir`` is the form's data folder field (see ``data_errors``). When the error list
    is not empty the config list is empty: nothing may be queued, and runs are never queued
    on a dataset this machine does not have.
    """
    errors: list[str] = []
    if not variants:
        errors.append("Pick at least one variant.")
    if not seeds:
        errors.append(f"Pick at least one seed: repeats must be between 1 and {MAX_REPEATS}.")
    elif len(seeds) > MAX_REPEATS:
        return [], [*errors, field_error("repeats", len(seeds))]
    unknown = sorted(set(form) - set(FORM_FIELDS))
    if unknown:
        return [], [*errors, f"unknown settings: {', '.join(unknown)}"]
    folder, problems = data_errors(form.get("dataset", field_spec("dataset")["default"]), data_dir)
    configs = []
    for variant in variants:
        for seed in seeds:
            config = TrainConfig(**form, variant=variant, seed=seed, data_dir=folder)
            errors += [e for e in config.errors() if e not in errors]
            configs.append(config)
    errors += problems
    return ([] if errors else configs), errors


def preset_grid(
    name: str, quick: bool, dataset: str, data_dir: str | None = None
) -> tuple[list[TrainConfig], list[str]]:
    """Every run of preset ``name`` on ``dataset`` (``data_dir``: the form's folder field), or
    no runs and why not."""
    folder, errors = data_errors(dataset, data_dir)
    if errors:
        return [], errors
    return study.preset_configs(name, quick, dataset=dataset, data_dir=folder), []


@dataclasses.dataclass(frozen=True)
class QuickStart:
    """A one-click quick preset for an empty page: its runs, or why there are none."""

    configs: list[TrainConfig]
    label: str  # the button's
    caption: str  # what the click does
    problem: str | None  # why the button is disabled


def quick_start(name: str, state: Mapping[str, Any]) -> QuickStart:
    """Preset ``name``'s quick version on the Train form's dataset and data folder (from
    ``state``, the session's widget values) when runs would find it there, else on
    ``datasets.default_dataset()``."""
    preset = study.get_preset(name)
    dataset, folder_text = state.get("train-dataset"), state.get("train-data-dir")
    if dataset is None or data_errors(dataset, folder_text)[1]:
        dataset, folder_text = datasets.default_dataset(), None
    configs, errors = preset_grid(name, True, dataset, folder_text)
    quick = preset.base_config(True)
    caption = (
        f"{preset.description} Quick version: {len(configs)} runs on {dataset}, "
        f"{quick.epochs} epochs on {quick.train_limit:,} training images each, about "
        f"{preset.quick_minutes:g} min on 2 cores; then watch them on the Runs page."
    )
    label = f"Queue the quick “{preset.title}” preset"
    return QuickStart(configs, label, caption, errors[0] if errors else None)


# ----------------------------------------------------------------------------- form state

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
    """Starting values of the Train form's widgets that a preset sets, by widget key:
    TrainConfig's defaults and the UI's (two variants, one repeat, quick mode off), or preset
    ``preset``'s shared settings (its quick version with ``quick``), variants and seeds. For a
    sweep preset this is one point of its grid (x1 learning rate, the default batch size and
    window). The dataset, data folder, optimizer, activation and epsilon are left as chosen."""
    if preset is None:
        config, variants, repeats = TrainConfig(), list(DEFAULT_VARIANTS), 1
    else:
        p = study.get_preset(preset)
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


def initial_form_state() -> dict[str, Any]:
    """Every Train widget's first value in a session, by key: ``train_form_state()``, no
    preset, a dataset this machine has (``datasets.default_dataset``), no data folder, and
    TrainConfig's optimizer, activation and epsilon."""
    state = {f"train-{n}": field_spec(n)["default"] for n in ("optimizer", "activation", "epsilon")}
    state.update(
        {
            "train-preset": None,
            "train-preset-quick": False,
            "train-dataset": datasets.default_dataset(),
            "train-data-dir": "",
        }
    )
    return {**state, **train_form_state()}


def sweep_form_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The Sweep form's first values: its own defaults (the robustness variants, the paper's
    learning-rate multipliers and batch sizes, one seed), and for SHARED_FIELDS the Train
    form's last choices in ``state`` (or the Train form's first values)."""
    train = {k: state[k] for k in (f"train-{n}" for n in SHARED_FIELDS) if k in state}
    train = {**initial_form_state(), **train} if len(train) < len(SHARED_FIELDS) else train
    return {
        "sweep-variants": list(study.ROBUSTNESS_VARIANTS),
        "sweep-kind": SWEEP_KINDS[0],
        "sweep-lr": list(study.LR_MULTIPLIERS),
        "sweep-batch": list(study.BATCH_SIZES),
        "sweep-seeds": 1,
        **{f"sweep-{n}": train[f"train-{n}"] for n in SHARED_FIELDS},
    }
