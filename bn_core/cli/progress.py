"""Terminal progress for the CLI: a tqdm bar over the run's steps, fed by training events."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from bn_core.config import TrainConfig
from bn_core.results import NO_LEARNING_NOTE
from bn_core.vocabulary import Event


class Progress:
    """``on_event`` sink that draws one bar per run on stderr (a line per epoch when piped)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.bar: tqdm | None = None
        self.interactive = sys.stderr.isatty()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == Event.START:
            self.bar = tqdm(
                total=event["total_steps"],
                desc=f"{self.config.variant} epoch 1/{self.config.epochs}",
                unit="step",
                file=sys.stderr,
                disable=not self.interactive,
                leave=False,
                dynamic_ncols=True,
            )
        elif kind == Event.BATCH and self.bar is not None:
            self.bar.set_description(
                f"{self.config.variant} epoch {event['epoch']}/{self.config.epochs}"
            )
            self.bar.update(event["step"] - self.bar.n)
            if event.get("loss") is not None:  # a study's bars follow the store: steps only
                self.bar.set_postfix(loss=_fmt(event["loss"]), acc=_fmt(event["accuracy"]))
        elif kind == Event.EPOCH:
            line = (
                f"{self.config.variant} epoch {event['epoch']}/{self.config.epochs}: "
                f"loss {_fmt(event['loss'])} acc {_fmt(event['accuracy'])} "
                f"val_loss {_fmt(event['val_loss'])} val_acc {_fmt(event['val_accuracy'])} "
                f"{event['images_per_second'] or 0:,.0f} img/s"
            )
            if self.bar is not None and self.interactive:
                self.bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)


def result_line(summary: dict[str, Any]) -> str:
    """One human line for a finished run."""
    text = f"{summary['variant']}: {summary['status']}"
    if summary["test_accuracy"] is not None:
        text += (
            f", test accuracy {summary['test_accuracy']:.4f}, test loss {summary['test_loss']:.4f}"
        )
    if summary.get("no_learning"):
        text += f", {NO_LEARNING_NOTE}"
    if summary["error"]:
        text += f" ({summary['error']})"
    return text


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"
