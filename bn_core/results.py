"""What a run produces: ``TrainResult`` and its JSON-safe form, and whether a finished run
learned anything at all (``no_learning``). No TensorFlow import."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bn_core.config import OUTPUT_SIZE, TrainConfig
from bn_core.vocabulary import LEARNING, RunStatus

# Per-epoch history: training-set running means, then the validation pass in inference mode,
# then wall seconds of the training part of the epoch and its throughput.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second")

CHANCE = 1 / OUTPUT_SIZE  # the accuracy of guessing among ten balanced classes
TEST_IMAGES = 10000  # the test set of both MNIST and Fashion-MNIST
# The smallest margin over chance, whatever the number of images: a network that answers one
# class for every image scores that class's share, up to 11.35% on MNIST's test set (1,135
# ones in 10,000) and 11.24% of its training images; 0.10 + 0.03 clears both.
MIN_CHANCE_MARGIN = 0.03
NO_LEARNING_NOTE = "no learning: ended at chance"  # how the CLI says ``no_learning``


@dataclass
class TrainResult:
    """Everything a run measured. ``history`` holds one entry per *completed* epoch;
    ``status`` is one of ``bn_core.vocabulary.ENGINE_ENDS`` once the engine returns it."""

    status: RunStatus
    config: TrainConfig
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    test_loss: float | None = None
    test_accuracy: float | None = None
    error: str | None = None
    steps: int = 0  # training steps (batches) done
    seconds: float = 0.0  # wall time of the run, data loading excluded
    model: Any = field(default=None, repr=False)  # the trained keras.Model, if any
    resumed_steps: int = 0  # of ``steps``, those a checkpoint restored (not this process's)

    def __post_init__(self):
        self.status = RunStatus.parse(self.status)  # ValueError for one that is no status

    @property
    def images_per_second(self) -> float | None:
        """Training images per second of this process's part of the run (compiling and the
        test-set evaluation included: what a user waits for), None before any step."""
        done = self.steps - self.resumed_steps
        if self.seconds <= 0 or done <= 0:
            return None
        return done * self.config.batch_size / self.seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: non-finite numbers become None (JSON has no NaN)."""
        return {
            "variant": self.config.variant,
            "status": self.status,
            "test_accuracy": finite(self.test_accuracy),
            "test_loss": finite(self.test_loss),
            "error": self.error,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "history": {k: [finite(v) for v in vals] for k, vals in self.history.items()},
            "config": self.config.to_dict(),
        }


def finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def chance_margin(n_images: int) -> float:
    """How far above chance an accuracy on ``n_images`` must be to show learning:
    max(3 sqrt(p (1 - p) / n), MIN_CHANCE_MARGIN) with p = CHANCE, i.e. three binomial
    standard deviations of a guesser's accuracy (0.009 on the 10,000 test images, 0.01 on
    9,000 validation images, 0.09 on 100), and never less than 0.03."""
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1. Received: {n_images}")
    return max(3 * math.sqrt(CHANCE * (1 - CHANCE) / n_images), MIN_CHANCE_MARGIN)


def final_accuracy(
    test_accuracy: float | None, val_accuracy: Sequence[float | None], val_size: int
) -> tuple[float | None, int]:
    """(the run's final accuracy, the images it was measured on): the test accuracy on the
    TEST_IMAGES, else the last finite validation accuracy on ``val_size`` images, else
    (None, 0)."""
    if finite(test_accuracy) is not None:
        return float(test_accuracy), TEST_IMAGES
    measured = [v for v in val_accuracy if finite(v) is not None]
    if measured and val_size > 0:
        return float(measured[-1]), val_size
    return None, 0


def no_learning(
    status: str,
    test_accuracy: float | None,
    val_accuracy: Sequence[float | None] = (),
    val_size: int = 0,
) -> bool:
    """Whether a run in ``bn_core.vocabulary.LEARNING`` ended at chance: its
    ``final_accuracy`` is at most CHANCE + ``chance_margin`` of the images it was measured on.
    False while a run is active, for diverged or failed runs, and when there is no final
    accuracy to judge.

    Plain LeNet with Adam at 30x its default rate (0.03) is the example: on Fashion-MNIST its
    loss stays at ln(10) and it completes at 10.00% test accuracy. (Adam at rate 10 makes the
    loss explode, to hundreds: that run is ``diverged``, ``bn_core.nn.training.EXPLODED_LOSS``.)"""
    if status not in LEARNING:
        return False
    accuracy, n = final_accuracy(test_accuracy, val_accuracy, val_size)
    return accuracy is not None and accuracy <= CHANCE + chance_margin(n)
