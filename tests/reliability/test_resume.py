"""Resume, end to end with real workers: kill -9 a training worker at random moments, resume
the run until it completes, and compare its history with an uninterrupted run of the same seed.

What must hold after every kill: the run ends ``interrupted`` (its metrics kept), ``resume``
re-queues it in the same record, and once completed its per-epoch loss and validation
accuracy equal the uninterrupted run's within 1e-4 (same CPU), each epoch recorded exactly
once, the checkpoint removed and the model saved. ``RESUME_TRIALS`` kills run by default; the
``slow`` trials bring it to more than 20 (CI runs both).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bn_core.config import ConfigError, TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore
from tests.helpers import write_npz

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 4
RESUME_TRIALS = 3  # in the default run
SLOW_TRIALS = 18  # more, under the slow marker


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store, its data, and the reference: the same config trained without interruption."""
    root = tmp_path_factory.mktemp("resume")
    data_dir = root / "data"
    write_npz(data_dir, n_train=2200, n_test=200)
    home = root / "home"
    env = {"BN_LAB_HOME": str(home), "BN_LAB_STANDBY": "0", "KERAS_HOME": str(root / "keras")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    store = RunStore(home)
    config = TrainConfig(
        data_dir=str(data_dir),
        epochs=EPOCHS,
        val_size=200,
        batch_size=32,
        variant="lenet_fc_bn2",
        probe_every=32,
        seed=7,
    )
    runner = JobRunner(store, max_concurrent=1, poll_interval=0.1, stale_after=60)
    (reference,) = runner.wait(runner.submit([config]))
    runner.stop()
    assert reference.status == "completed", reference.error
    yield store, config, reference
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _history(store: RunStore, run_id: int) -> list[dict]:
    return store.epoch_metrics([run_id])


def _kill_at(store: RunStore, run_id: int, step: int, delay: float) -> bool:
    """SIGKILL the run's worker once it has recorded training step ``step`` (0: ``delay``
    seconds after it claimed the run, while it imports, loads or compiles); False if the run
    ended first."""
    deadline = time.monotonic() + 300
    while (run := store.get(run_id)).status != "running" or run.pid is None:
        if not run.active:
            return False
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    if step == 0:
        time.sleep(delay)
    else:
        while not any(r["step"] >= step for r in store.batch_metrics([run_id])):
            if not store.get(run_id).active:
                return False
            assert time.monotonic() < deadline, f"the run never reached step {step}"
            time.sleep(0.02)
    try:
        os.kill(run.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _trial(lab, seed: int) -> dict:
    """One run killed at random moments (up to 3 times), resumed until it completes."""
    store, config, reference = lab
    rng = random.Random(seed)
    total = reference.total_steps
    runner = JobRunner(store, max_concurrent=1, poll_interval=0.1, stale_after=60).start()
    kills, messages = 0, []
    try:
        (run_id,) = runner.submit([config])
        while True:
            # Anywhere from the worker's first seconds (imports, data, compiling: step 0) to
            # late in its training; a step the attempt starts past (resumed) kills at once.
            step = rng.choice([0, rng.randint(1, int(0.85 * total))])
            killed = kills < 3 and _kill_at(store, run_id, step, rng.uniform(0.0, 3.0))
            (run,) = runner.wait([run_id], poll=0.1)
            if run.status == "completed":
                break
            assert killed and run.status == "interrupted", (run.status, run.error)
            kills += 1
            messages.append(runner.resume(run_id))
    finally:
        runner.stop()
    run = store.get(run_id)
    got, want = _history(store, run_id), _history(store, reference.id)
    assert [r["epoch"] for r in got] == list(range(1, EPOCHS + 1))  # each epoch exactly once
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    gap = max(abs(a[k] - b[k]) for a, b in zip(got, want, strict=True) for k in keys)
    assert gap <= 1e-4, (gap, got, want, messages)
    assert abs(run.test_accuracy - reference.test_accuracy) <= 1e-4
    steps = [r["step"] for r in store.batch_metrics([run_id])]
    assert steps == [r["step"] for r in store.batch_metrics([reference.id])]  # none left over
    assert run.resumes == kills >= 1  # (a trial whose kill came too late would prove nothing)
    assert not store.checkpoint_path(run_id).exists() and store.model_path(run_id).is_file()
    print(f"trial {seed}: {kills} kill(s), then completed; largest difference {gap:.3g}")
    return {"kills": kills, "messages": messages}


@pytest.mark.parametrize("trial", range(RESUME_TRIALS))
def test_kill_9_at_a_random_moment_then_resume_matches_an_uninterrupted_run(lab, trial):
    _trial(lab, seed=trial)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(RESUME_TRIALS, RESUME_TRIALS + SLOW_TRIALS))
def test_kill_9_trials_slow(lab, trial):
    _trial(lab, seed=trial)


def test_a_run_killed_after_epoch_2_continues_after_it(lab):
    store, config, _ = lab
    runner = JobRunner(store, max_concurrent=1, poll_interval=0.1).start()
    try:
        (run_id,) = runner.submit([config])
        deadline = time.monotonic() + 300
        while store.checkpoint_epoch(run_id) != 2:
            assert time.monotonic() < deadline and store.get(run_id).active
            time.sleep(0.02)
        os.kill(store.get(run_id).pid, signal.SIGKILL)
        (run,) = runner.wait([run_id])
        assert run.status == "interrupted" and "metrics up to then are kept" in run.error
        message = runner.resume(run_id)
        assert (
            message
            == f"run #{run_id} queued again: it continues after epoch 2 of 4 (its checkpoint)"
        )
        (run,) = runner.wait([run_id])
    finally:
        runner.stop()
    assert run.status == "completed" and run.resumes == 1
    got, want = _history(store, run_id), _history(store, lab[2].id)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4]
    gaps = [abs(a["val_accuracy"] - b["val_accuracy"]) for a, b in zip(got, want, strict=True)]
    assert max(gaps) <= 1e-4


def test_resume_refuses_what_cannot_be_resumed(lab):
    store, _, reference = lab
    with pytest.raises(ConfigError, match="is completed: only interrupted, cancelled, failed"):
        JobRunner(store).resume(reference.id)
    with pytest.raises(ConfigError, match="there is no run #9999"):
        JobRunner(store).resume(9999)


def test_cli_resume_of_a_cancelled_run_without_checkpoint_starts_over(lab, tmp_path):
    store, config, reference = lab
    run_id = store.create_run(config, "cli")
    store.transition(run_id, ("queued",), "cancelled", finished_at=time.time())
    done = subprocess.run(
        [sys.executable, "-m", "bn_core", "resume", str(run_id), "--wait", "--json"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"run #{run_id} queued again: it has no checkpoint yet, so it starts over" in done.stderr
    row = json.loads(done.stdout)
    assert row["status"] == "completed" and row["id"] == run_id
    assert abs(row["test_accuracy"] - reference.test_accuracy) <= 1e-4
