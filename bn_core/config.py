"""TrainConfig: every hyperparameter of a run, with its default, limits and help in one place.

The CLI flags, the dashboard widgets and the docs are all generated from the field metadata
below, so a default or a limit is changed here and nowhere else. No TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bn_core.constants import DATASETS, TRAIN_ROWS
from bn_core.variants import VARIANT_NAMES

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "rmsprop")
# Keras' own defaults; ``learning_rate=None`` means "the optimizer's default".
DEFAULT_LEARNING_RATES: dict[str, float] = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3}
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")
OUTPUT_SIZE = 10  # both datasets have ten classes; the model's output layer width
# The smallest k > 0 of probe_every. The engine calls back every 32 steps (its default
# steps_per_execution), so a smaller k would give no more probes, only a false promise; and
# with finer executions it would let the store grow by a probe (~820 bytes: 14 rows, measured)
# every few steps. At k = 32 a default run (10 epochs of 51,000 images at batch 64: 7,960
# steps) stores ~250 probes, about 0.2 MB.
PROBE_EVERY_MIN = 32
# How a number is written wherever text becomes one (flags, links): ASCII digits only. Python's
# int() and float() also take any Unicode digit ("１", "٣"), underscores ("1_0") and spaces
# around it, so "--epochs １" would queue a run nobody can read back as typed.
_WHOLE = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)",
    re.IGNORECASE,  # nan and inf parse, so that the limits can name them
)


class ConfigError(ValueError):
    """An invalid hyperparameter. ``str(e)`` is one line naming the value and the fix."""


def _param(default: Any, help: str, *, min=None, max=None, choices=None, log=False):
    """A dataclass field carrying its limits and help text as metadata."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "log": log}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults reproduce the original study (batch 64, 10 epochs, Adam)."""

    variant: str = _param("lenet", "LeNet-5 variant (where BN goes)", choices=VARIANT_NAMES)
    dataset: str = _param("mnist", "dataset to train on", choices=DATASETS)
    data_dir: str | None = _param(
        None, "folder holding mnist.npz or the four IDX files (default: search the usual places)"
    )
    epochs: int = _param(10, "passes over the training set", min=1, max=200)
    batch_size: int = _param(
        64, "mini-batch size m (BN statistics are taken over it)", min=2, max=4096
    )
    optimizer: str = _param("adam", "optimizer", choices=OPTIMIZERS)
    learning_rate: float | None = _param(
        None,
        "learning rate (default: the optimizer's own: adam 1e-3, sgd 1e-2, rmsprop 1e-3)",
        min=1e-6,
        max=10.0,
        log=True,
    )
    epsilon: float = _param(1e-8, "BN epsilon added to the variance", min=1e-12, max=1e-1, log=True)
    window_size: int = _param(
        5, "training batches whose statistics BN averages for inference", min=1, max=1000
    )
    activation: str = _param("sigmoid", "hidden-layer activation", choices=ACTIVATIONS)
    seed: int = _param(0, "random seed (weights, split, shuffling)", min=0, max=2**31 - 1)
    val_size: int = _param(
        9000, "validation images split off the training set (0: none)", min=0, max=59000
    )
    train_limit: int | None = _param(
        None,
        "use only this many training images, for quick runs (default: all)",
        min=2,  # the smallest batch: one image can never fill a batch
        max=60000,
    )
    probe_every: int = _param(
        0,
        "every k training steps, record BN-site activation percentiles and gradient norms "
        f"on a fixed validation batch (0: off; else at least {PROBE_EVERY_MIN}: each probe "
        "stores ~820 bytes, ~0.2 MB for a default 10-epoch run at k=32)",
        min=0,
        max=100000,
    )

    # -- validation -------------------------------------------------------------------------

    def errors(self) -> list[str]:
        """Every problem with this config, each a one-line message; empty when valid: each
        field's own (``field_errors``), then those of fields together (a batch larger than
        the training images left)."""
        problems = self.field_errors()
        if not problems:
            problems += self._batch_errors()
        return problems

    def field_errors(self) -> list[str]:
        """Each field's own problems (type, limits, choices), each a one-line message."""
        problems = []
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None:
                if f.default is not None:
                    problems.append(f"{f.name} is required. Received: None")
                continue
            choices = meta.get("choices")
            if choices is not None:
                if value not in choices:
                    problems.append(
                        f"{f.name} must be one of {', '.join(choices)}. Received: {value!r}"
                    )
                continue
            if f.name == "data_dir":
                if not isinstance(value, str) or not value.strip():
                    problems.append(f"data_dir must be a folder path. Received: {value!r}")
                continue
            numeric = _is_int(value) if _int_field(f) else _is_real(value)
            if not numeric:
                kind = "an integer" if _int_field(f) else "a number"
                problems.append(f"{f.name} must be {kind}. Received: {value!r}")
            elif not meta["min"] <= value <= meta["max"]:
                problems.append(
                    f"{f.name} must be between {format_number(meta['min'])} and "
                    f"{format_number(meta['max'])}. Received: {value!r}"
                )
            elif f.name == "probe_every" and 0 < value < PROBE_EVERY_MIN:
                problems.append(
                    f"probe_every must be 0 (off) or at least {PROBE_EVERY_MIN}: training "
                    f"reports every {PROBE_EVERY_MIN} steps, a smaller k gives no more probes. "
                    f"Received: {value!r}"
                )
        return problems

    def _batch_errors(self) -> list[str]:
        """An epoch needs one whole batch: the engine drops the incomplete last one."""
        images = training_images(self.val_size, self.train_limit)
        if self.batch_size <= images:
            return []
        cut = f", cut to train_limit {self.train_limit}" if images == self.train_limit else ""
        fix = "raise train_limit" if cut else "val_size"
        return [
            f"batch_size must be at most the {images} training images left ({TRAIN_ROWS} "
            f"minus val_size {self.val_size}{cut}): lower batch_size or {fix}. "
            f"Received: {self.batch_size}"
        ]

    def validate(self) -> TrainConfig:
        """Return self, or raise ConfigError with every problem on one line."""
        problems = self.errors()
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    # -- conversions ------------------------------------------------------------------------

    @property
    def effective_learning_rate(self) -> float:
        """The learning rate actually used (the optimizer's default when unset)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build and validate a config from plain values (JSON, a form), refusing unknown keys."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"a config must be a mapping. Received: {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown config keys: {', '.join(unknown)}. Valid keys: {', '.join(sorted(known))}"
            )
        return cls(**values).validate()

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def training_images(val_size: int, train_limit: int | None, rows: int = TRAIN_ROWS) -> int:
    """The training images ``bn_core.data.prepare`` keeps of ``rows``: the rows after the
    validation split, cut to ``train_limit`` (all of them when it is None or larger)."""
    left = max(rows - val_size, 0)
    return left if train_limit is None else min(train_limit, left)


def field_spec(name: str) -> dict[str, Any]:
    """Default, limits, choices and help of one TrainConfig field (for CLI and UI builders)."""
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    return {"default": f.default, "type": _base_type(f), **f.metadata}


def parse_number(text: str, kind: type = int) -> int | float:
    """``text`` as an ``int`` (``kind=int``: digits with an optional sign) or a ``float``
    (``kind=float``: also a point, an exponent, nan or inf), written with the ASCII digits 0-9
    only; ValueError in one line otherwise, naming the first character that is not ASCII by
    its code point ("invalid int value: '１' (U+FF11 FULLWIDTH DIGIT ONE is not one of the
    digits 0-9)"). The limits are the caller's: ``TrainConfig.validate`` checks them."""
    word = text.strip() if isinstance(text, str) else ""
    # (Over 4,300 digits int() refuses too, with a message about its own limit: ours is shorter.)
    if len(word) > 400 or not (_WHOLE if kind is int else _REAL).fullmatch(word):
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
        raise ValueError(f"invalid {kind.__name__} value: {shown}{odd_character(text)}")
    return kind(word)


def odd_character(text: object) -> str:
    """ " (U+FF11 FULLWIDTH DIGIT ONE is not one of the digits 0-9)" for the first character
    of ``text`` that is not ASCII; "" when every one is."""
    odd = next((c for c in text if not c.isascii()), None) if isinstance(text, str) else None
    if odd is None:
        return ""
    name = unicodedata.name(odd, "")
    return f" (U+{ord(odd):04X}{' ' + name if name else ''} is not one of the digits 0-9)"


def format_number(value: float) -> str:
    """A limit as people write it: integers exactly, floats short (1e-08, 0.1, 10)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _base_type(f: dataclasses.Field) -> type:
    text = str(f.type)
    return int if text.startswith("int") else float if text.startswith("float") else str


def _int_field(f: dataclasses.Field) -> bool:
    return _base_type(f) is int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
