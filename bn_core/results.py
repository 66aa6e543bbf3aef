"""What a run produces: ``TrainResult`` and its JSON-safe form (no TensorFlow import)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bn_core.config import TrainConfig

STATUSES = ("completed", "cancelled", "diverged", "failed")
# Per-epoch history: training-set running means, then the validation pass in inference mode,
# then wall seconds of the training part of the epoch and its throughput.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second")


@dataclass
class TrainResult:
    """Everything a run measured. ``history`` holds one entry per *completed* epoch."""

    status: str
    config: TrainConfig
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    test_loss: float | None = None
    test_accuracy: float | None = None
    error: str | None = None
    steps: int = 0  # training steps (batches) done
    seconds: float = 0.0  # wall time of the run, data loading excluded
    model: Any = field(default=None, repr=False)  # the trained keras.Model, if any

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
