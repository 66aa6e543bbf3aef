"""Studies as data: the paper's experiments as presets, sweep grids, and sweep tables.
(Over 300 lines: a preset and the table of its results are one subject, read together.)

A *preset* is a named grid of TrainConfigs (variants x swept values x seeds over shared
settings), with a quick version that finishes in a few minutes on two cores. A *sweep* varies
the learning rate (as multiples of the optimizer's default, the paper's BN-x5/BN-x30), the
batch size or BN's inference window; ``sweep_table`` reads back the final test accuracy per
run, with diverged runs kept and marked (their accuracy is None: never plotted as zero) and
runs that learned nothing marked. No TensorFlow, Streamlit or figures here (the sweep chart is
``bn_core.views.sweep``).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bn_core.analysis.summary import learned_nothing
from bn_core.config import DEFAULT_LEARNING_RATES, ConfigError, TrainConfig, field_spec
from bn_core.constants import PROBE_EVERY_DEFAULT
from bn_core.variants import VARIANT_NAMES
from bn_core.vocabulary import RunStatus

if TYPE_CHECKING:  # pandas and scipy load on first use: the CLI's --help stays quick
    import pandas as pd

STUDY_VARIANTS: tuple[str, ...] = VARIANT_NAMES[:5]  # the original study (no Keras reference)
ROBUSTNESS_VARIANTS: tuple[str, ...] = ("lenet", "lenet_fc_bn2", "lenet_keras_bn")
LR_MULTIPLIERS: tuple[float, ...] = (1, 5, 30)  # the paper's BN-x5 and BN-x30
LR_MULTIPLIER_CHOICES: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 100)
BATCH_SIZES: tuple[int, ...] = (4, 16, 64, 256)
WINDOW_SIZES: tuple[int, ...] = (1, 5, 50)
# Quick versions: 5,000 training and 1,000 validation images, 3 epochs, the test set whole.
# Enough steps (~230 at batch 64) for sigmoid LeNet to leave chance level in its 2nd epoch.
QUICK = MappingProxyType({"epochs": 3, "train_limit": 5000, "val_size": 1000})
SWEEP_GROUP_PREFIX = "sweep-"
# Seeds per grid point of a preset (`bn-lab study --seeds`). 100 seeds already narrow the 95% CI
# of a mean to about ±0.2 seed standard deviations; at 100, the largest preset (batch-size: 12
# runs a seed) is 1,200 runs, days of training in one process, one run after another.
MAX_SEEDS = 100
# Sweep table columns that can be swept, with their axis titles.
SWEEP_PARAMETERS: dict[str, str] = {
    "lr_multiplier": "learning rate (× the optimizer's default)",
    "batch_size": "batch size",
    "window_size": "BN inference window (batches)",
}
RESULT_COLUMNS = ("status", "test_accuracy", "no_learning")
SWEEP_COLUMNS = ("run_id", "variant", "seed", *SWEEP_PARAMETERS, *RESULT_COLUMNS)


@dataclass(frozen=True)
class Preset:
    """One study: its variants, shared settings, swept values and seeds; and a quick version."""

    name: str
    title: str
    description: str
    variants: tuple[str, ...]
    overrides: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig fields of all runs
    seeds: int = 3
    lr_multipliers: tuple[float, ...] = (1,)
    batch_sizes: tuple[int, ...] = ()  # () = overrides' (or TrainConfig's) batch size
    window_sizes: tuple[int, ...] = ()
    quick: Mapping[str, Any] = field(default_factory=lambda: QUICK)  # on top, for --quick
    quick_seeds: int = 2
    quick_minutes: float = 3.0  # expected wall time of the quick version on 2 cores

    @property
    def sweeps(self) -> bool:
        return len(self.lr_multipliers) > 1 or len(self.batch_sizes) > 1 or self.window_sizes != ()

    def base_config(self, quick: bool = False, **settings: Any) -> TrainConfig:
        """The settings every run of the preset shares (variant and seed left at defaults)."""
        return TrainConfig(**{**self.overrides, **(self.quick if quick else {}), **settings})


def _presets(*presets: Preset) -> dict[str, Preset]:
    return {p.name: p for p in presets}


# quick_minutes: `study NAME --quick --dataset fashion_mnist`, measured on 2 cores shared with
# other jobs (load 1.5-6): original 88 s, figure1 32 s, window 92 s, lr 167-214 s, batch-size
# 178 s; each run costs ~5-10 s of model compilation besides its 234 training steps.
PRESETS: dict[str, Preset] = _presets(
    Preset(
        "original",
        "Original study",
        "The five study variants (BN at 0 to 4 sites), 10 epochs, 3 seeds each.",
        STUDY_VARIANTS,
        MappingProxyType({"epochs": 10}),
        quick_minutes=1.5,
    ),
    Preset(
        "figure1",
        "Paper Figure 1",
        "Plain LeNet against BN at every hidden layer, with probes of the activations every "
        "k steps (the paper's Figure 1: test accuracy and the input distribution over training).",
        ("lenet", "lenet_fc_bn2"),
        MappingProxyType({"probe_every": PROBE_EVERY_DEFAULT}),
        quick_minutes=1.0,
    ),
    Preset(
        "window",
        "Window size",
        "BN at every hidden layer, inference statistics averaged over the last 1, 5 or 50 "
        "training batches.",
        ("lenet_fc_bn2",),
        window_sizes=WINDOW_SIZES,
        quick_minutes=1.5,
    ),
    Preset(
        "lr",
        "Learning-rate robustness",
        "Learning rate x1, x5 and x30 the optimizer's default (the paper's BN-x5, BN-x30): "
        "plain LeNet, our BN and Keras' BN.",
        ROBUSTNESS_VARIANTS,
        lr_multipliers=LR_MULTIPLIERS,
        quick_seeds=1,
        quick_minutes=3.0,
    ),
    Preset(
        "batch-size",
        "Batch-size robustness",
        "Batch sizes 4, 16, 64 and 256: plain LeNet, our BN and Keras' BN (BN's statistics "
        "get noisy with small batches).",
        ROBUSTNESS_VARIANTS,
        batch_sizes=BATCH_SIZES,
        quick_seeds=1,
        quick_minutes=3.0,
    ),
)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}. Received: {name!r}")
    return PRESETS[name]


def preset_configs(
    name: str,
    quick: bool = False,
    dataset: str = field_spec("dataset")["default"],
    data_dir: str | None = None,
    seeds: int | None = None,
) -> list[TrainConfig]:
    """Every run of preset ``name``: ``seeds`` seeds (0, 1, ...; default the preset's) per
    point of its grid, in ``sweep_configs`` order."""
    preset = get_preset(name)
    n = (preset.quick_seeds if quick else preset.seeds) if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"seeds must be a whole number of at least 1. Received: {n!r}")
    if n > MAX_SEEDS:
        raise ConfigError(
            f"seeds must be at most {MAX_SEEDS} per grid point ({n:,} seeds of preset {name} "
            f"would be {n * len(preset_configs(name, quick, seeds=1)):,} runs); use fewer "
            f"seeds. Received: {n}"
        )
    base = preset.base_config(quick, dataset=dataset, data_dir=data_dir)
    return sweep_configs(
        base,
        preset.variants,
        lr_multipliers=preset.lr_multipliers,
        batch_sizes=preset.batch_sizes,
        window_sizes=preset.window_sizes,
        seeds=range(n),
    )


def sweep_configs(
    base: TrainConfig,
    variants: Sequence[str],
    lr_multipliers: Iterable[float] = LR_MULTIPLIERS,
    batch_sizes: Iterable[int] = (),
    seeds: Iterable[int] = (0,),
    window_sizes: Iterable[int] = (),
) -> list[TrainConfig]:
    """The grid seeds x learning-rate multipliers x batch sizes x windows x variants over
    ``base``, seed-major (a stopped study has every variant of its first seeds), validated,
    without duplicates. A multiplier m sets learning_rate = m x the optimizer's default (x1
    keeps the default, None); empty ``batch_sizes``/``window_sizes`` keep base's value.
    Raises ConfigError naming every problem."""
    multipliers, seeds = list(lr_multipliers), list(seeds)
    problems = []
    if not variants:
        problems.append("pick at least one variant")
    if not multipliers:
        problems.append("pick at least one learning-rate multiplier")
    bad = [m for m in multipliers if not _positive(m)]
    if bad:
        problems.append(f"learning-rate multipliers must be positive numbers. Received: {bad}")
    if not seeds:
        problems.append("pick at least one seed")
    if problems:
        raise ConfigError("; ".join(problems))
    configs = []
    for seed in seeds:
        for m in multipliers:
            for batch in list(batch_sizes) or [base.batch_size]:
                for window in list(window_sizes) or [base.window_size]:
                    for variant in variants:
                        configs.append(
                            base.replace(
                                variant=variant,
                                seed=seed,
                                batch_size=batch,
                                window_size=window,
                                learning_rate=_scaled_learning_rate(base.optimizer, m),
                            )
                        )
    for config in configs:
        problems += [e for e in config.errors() if e not in problems]
    if problems:
        raise ConfigError("; ".join(problems))
    return list(dict.fromkeys(configs))


def _positive(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def _scaled_learning_rate(optimizer: str, multiplier: float) -> float | None:
    if multiplier == 1:
        return None
    return float(f"{DEFAULT_LEARNING_RATES[optimizer] * multiplier:.10g}")


def lr_multiplier(config: TrainConfig | Mapping[str, Any]) -> float:
    """A config's learning rate as a multiple of its optimizer's default."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    return float(f"{cfg.effective_learning_rate / DEFAULT_LEARNING_RATES[cfg.optimizer]:.6g}")


def is_sweep(runs: Iterable[Any]) -> bool:
    """Whether runs (RunRecords or TrainConfigs) differ in a learning-rate multiplier, batch
    size or window size: a sweep, whatever page or command queued it."""
    configs = [getattr(r, "config", r) for r in runs]
    points = {(lr_multiplier(c), c.batch_size, c.window_size) for c in configs}
    return any(len({p[i] for p in points}) > 1 for i in range(3))


def sweep_group_id() -> str:
    """A run-store group id that marks runs queued together as one sweep."""
    return SWEEP_GROUP_PREFIX + time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


# ----------------------------------------------------------------------------- sweep results


def sweep_table(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: run_id, variant, seed, lr_multiplier, batch_size, window_size, status,
    the final test accuracy, which is None unless the run completed (a diverged run stays
    in the table, marked by its status), and ``no_learning`` (``learned_nothing``: it ended
    at chance accuracy; such a run's accuracy stays in the mean, marked)."""
    import pandas as pd

    rows = []
    for r in results:
        config = r["config"]
        completed = r["status"] == RunStatus.COMPLETED
        rows.append(
            {
                "run_id": r.get("run_id"),
                "variant": r.get("base_variant", r["variant"]),
                "seed": r.get("seed", config.get("seed")),
                "lr_multiplier": lr_multiplier(config),
                "batch_size": config["batch_size"],
                "window_size": config["window_size"],
                "status": r["status"],
                "test_accuracy": r.get("test_accuracy") if completed else None,
                "no_learning": learned_nothing(r),
            }
        )
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    accuracy = table["test_accuracy"].astype(object)
    table["test_accuracy"] = accuracy.where(accuracy.notna(), None)
    return table


def swept_parameters(table: pd.DataFrame) -> list[str]:
    """The SWEEP_PARAMETERS columns of a sweep table that take more than one value."""
    return [p for p in SWEEP_PARAMETERS if p in table and table[p].nunique() > 1]


def sweep_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, swept values): n completed runs, their test accuracy's mean and
    sample std, how many runs diverged or ended otherwise (failed, cancelled, ...), and how
    many learned nothing (``no_learning``; those that completed are in the mean)."""
    import pandas as pd

    keys = ["variant", *(swept_parameters(table) or list(SWEEP_PARAMETERS)[:1])]
    # the columns of the counts of runs in these statuses, named by them
    completed, diverged = RunStatus.COMPLETED.value, RunStatus.DIVERGED.value
    columns = [*keys, "runs", completed, "mean", "std", diverged, "other", "no_learning"]
    rows = []
    for values, g in table.groupby(keys, sort=False):
        accuracy = pd.to_numeric(g["test_accuracy"], errors="coerce").dropna()
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "runs": len(g),
                completed: int((g["status"] == completed).sum()),
                "mean": float(accuracy.mean()) if len(accuracy) else None,
                "std": float(accuracy.std()) if len(accuracy) > 1 else None,
                diverged: int((g["status"] == diverged).sum()),
                "other": int((~g["status"].isin([completed, diverged])).sum()),
                "no_learning": int(g["no_learning"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=columns)
