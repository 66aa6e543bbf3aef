"""Builders shared by several test files: result dicts (one run's, a learning-rate sweep's),
run records, an MNIST-shaped npz, an event sink, the dashboard in AppTest (its pages, a backend
that starts nothing, a finished group)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import Backend
from bn_core.runs.store.run_store import RunRecord, RunStore


def result(
    variant: str,
    seed: int,
    val_acc: list[float],
    test_acc: float | None = None,
    *,
    run_id: int | None = None,
    status: str = "completed",
    steps_per_epoch: int | None = 100,
    history: dict[str, list[float]] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """One run's result dict, as ``store.result_dicts`` and the CLI's results.json hold it.

    One epoch per ``val_acc`` entry, each with loss 1.0, accuracy 0.5, val_loss 1.0, 1 second
    and 100 images/s; ``history`` replaces any of those per-epoch lists. ``config`` holds
    TrainConfig fields besides variant and seed.
    """
    n = len(val_acc)
    return {
        "run_id": run_id,
        "variant": variant,
        "seed": seed,
        "status": status,
        "test_accuracy": test_acc,
        "test_loss": None,
        "steps_per_epoch": steps_per_epoch,
        "history": {
            "loss": [1.0] * n,
            "accuracy": [0.5] * n,
            "val_loss": [1.0] * n,
            "val_accuracy": list(val_acc),
            "seconds": [1.0] * n,
            "images_per_second": [100.0] * n,
            **(history or {}),
        },
        "config": TrainConfig(variant=variant, seed=seed, **config).to_dict(),
    }


def record(run_id=1, status="running", group="g1", **config) -> RunRecord:
    """A run record with ``config`` (TrainConfig fields), 100 steps per epoch, started at 0."""
    cfg = TrainConfig(**config)
    return RunRecord(
        id=run_id,
        group_id=group,
        variant=cfg.variant,
        seed=cfg.seed,
        config=cfg,
        status=status,
        created_at=0.0,
        started_at=0.0,
        finished_at=None,
        heartbeat=None,
        pid=None,
        cancel_requested=False,
        error=None,
        data_source=None,
        steps_per_epoch=100,
        total_steps=100 * cfg.epochs,
        test_loss=None,
        test_accuracy=None,
    )


def lr_sweep_results():
    """lenet and lenet_fc_bn2 at x1 and x30 (2 seeds); lenet seed 1 diverged at x30."""
    out, run_id = [], 0
    for variant, accs in (
        ("lenet", {1: (0.90, 0.92), 30: (0.50, None)}),
        ("lenet_fc_bn2", {1: (0.95, 0.97), 30: (0.93, 0.91)}),
    ):
        for m, pair in accs.items():
            for seed, acc in enumerate(pair):
                run_id += 1
                status = "completed" if acc is not None else "diverged"
                lr = None if m == 1 else 3e-2
                out.append(
                    result(
                        variant,
                        seed,
                        [0.5, acc or 0.1],
                        acc,
                        run_id=run_id,
                        status=status,
                        learning_rate=lr,
                    )
                )
    return out


# Debian's dataset-fashion-mnist (scripts/test.sh installs it): the real data a few tests read.
REAL_FASHION = "/usr/share/datasets/fashion-mnist"


def real_fashion() -> str:
    """REAL_FASHION, or a failure that says how to install it: a test of the real data fails
    where the data is missing (as tests/test_integration.py does), it never skips."""
    assert os.path.isdir(REAL_FASHION), (
        f"{REAL_FASHION} not installed: apt-get install dataset-fashion-mnist "
        "(scripts/test.sh does)"
    )
    return REAL_FASHION


def write_npz(folder: Path, n_train: int = 600, n_test: int = 100, seed: int = 0) -> Path:
    """A learnable MNIST-shaped ``folder/mnist.npz``: uint8 (N, 28, 28) noise, plus a bright
    2-row band whose position is the class. Returns the file's path."""
    rng = np.random.default_rng(seed)

    def part(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 * label + 4 : 2 * label + 6, 3:25] += 180
        return x, y

    x_train, y_train = part(n_train)
    x_test, y_test = part(n_test)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


class Recorder:
    """An ``on_event`` sink that keeps every event."""

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, event):
        self.events.append(event)

    def of_type(self, kind):
        return [e for e in self.events if e["type"] == kind]


def run_footprint(store, run_id: int) -> dict[str, Any]:
    """What a finished run left behind, as shapes to compare runs made different ways (a local
    worker, ``bn-lab study``, a Ray task): the run's columns that are filled, its last stage,
    how many metric rows of each kind, and which of its files exist. The columns that say
    where it ran (``backend``) and how many times it was resumed are left out."""
    import dataclasses

    run = store.get(run_id)
    columns = {
        name: value
        for name, value in dataclasses.asdict(run).items()
        if name not in ("config", "backend", "resumes", "cancel_requested")
    }
    return {
        "status": run.status,
        "filled": sorted(name for name, value in columns.items() if value is not None),
        "stage": run.stage,
        "batch_rows": len(store.batch_metrics([run_id])),
        "epoch_rows": len(store.epoch_metrics([run_id])),
        "probe_rows": len(store.probe_rows([run_id])),
        "model_file": store.model_path(run_id).is_file(),
        "checkpoint_file": store.checkpoint_path(run_id).is_file(),
    }


# ----------------------------------------------------------------------------- AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = (
    "pages/train.py",
    "pages/runs.py",
    "pages/cluster.py",
    "pages/compare.py",
    "pages/network.py",
    "pages/window.py",
    "pages/sweep.py",
    "pages/about.py",
)


class RecordingBackend(Backend):
    """A Backend that starts nothing and remembers what it was asked to start."""

    def __init__(self):
        self.started: list[int] = []

    def start(self, run_id, store):
        self.started.append(run_id)
        return 10**7 + run_id

    def alive(self, handle):
        return True

    def terminate(self, handle):
        pass

    def kill(self, handle):
        pass


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_with_link(page: str, **params: str) -> AppTest:
    """``page`` opened from a link whose query string is ``params``."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.run().switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def seed_group(store: RunStore, group="study", epochs=3, seeds=(0, 1)):
    for variant, base in (("lenet", 0.80), ("lenet_fc_bn2", 0.86)):
        for seed in seeds:
            rid = store.create_run(TrainConfig(variant=variant, seed=seed, epochs=epochs), group)
            store.transition(rid, ("queued",), "running", started_at=1.0)
            store.update(rid, steps_per_epoch=100, total_steps=100 * epochs)
            for e in range(1, epochs + 1):
                acc = base + 0.03 * e + 0.01 * seed
                store.add_epoch(
                    rid,
                    {
                        "epoch": e,
                        "step": 100 * e,
                        "loss": 1 / e,
                        "accuracy": acc,
                        "val_loss": 1.1 / e,
                        "val_accuracy": acc - 0.01,
                        "seconds": 2.0,
                        "images_per_second": 3000.0,
                    },
                )
            store.transition(
                rid,
                ("running",),
                "completed",
                test_accuracy=base + 0.1 + 0.01 * seed,
                test_loss=0.3,
            )
