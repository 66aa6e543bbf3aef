"""No command writes into a damaged run store.

Garbage in the middle of ``runs.sqlite`` leaves a file that SQLite opens without a word: only
a statement that reads a garbage page fails. ``bn-lab runs`` and ``bn-lab store check`` said
"damaged" (exit 4), but ``submit`` used to succeed and add a row whenever its few pages (the
``runs`` table's last leaf, its indexes, the groups) were not among the garbage ones: in 3 of
7 random placements. Opening a store now runs SQLite's ``quick_check`` first (what
``store check --quick`` runs), so every command that writes (submit, resume, runs
delete/prune/rename/tag, groups rename, study, runner) and the dashboard refuse it with the
one line ``runs`` says, exit 4, and the file is left byte for byte as it was.

The placements are 8 KB of seeded random bytes at seeded random offsets past the first page
of a 44-page store. Before the check, every one of the 7 let ``submit``, ``resume``, ``runs
prune/rename/tag`` and ``groups rename`` write (exit 0), ``runs delete`` 2 of 7 (its cascade
reads the metric pages), and ``bn-lab runner`` started and ran until stopped.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st

from bn_core.config import TrainConfig
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import RunStatus
from pages import _runner
from tests.helpers import open_page, write_npz
from tests.store_helpers import cli, digest, finished_run

pytestmark = pytest.mark.reliability

GARBAGE = 8 * 1024
RESUMABLE = 11
SEEDS = range(7)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sound_store(tmp_path_factory) -> Path:
    """A sound store of 10 finished runs in one group "g", with ~2,000 batch rows (43 pages of
    4 KB), and run #11, cancelled before it started (so resumable), everything checkpointed
    into the main file (no -wal)."""
    home = tmp_path_factory.mktemp("sound") / "home"
    store = RunStore(home)
    for seed in range(10):
        run_id = finished_run(store, seed)
        with store.connect() as db:
            db.executemany(
                "INSERT INTO batch_metrics VALUES (?, ?, 1, ?, 1.0, 1.0, 0.5, 0.0)",
                [(run_id, step, step) for step in range(3, 200)],
            )
    cancelled = store.create_run(TrainConfig(seed=10, epochs=1), "g")
    assert cancelled == RESUMABLE
    assert store.transition(cancelled, (RunStatus.QUEUED,), RunStatus.CANCELLED)
    with store.connect() as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store.path


def damaged_copy(sound: Path, home: Path, seed: int) -> Path:
    """``home/runs.sqlite``: a copy of ``sound`` with 8 KB of garbage at a random offset past
    the first page (the header and the table list), both drawn from ``seed``."""
    rng = random.Random(seed)
    data = sound.read_bytes()
    at = rng.randrange(4096, len(data) - GARBAGE)
    home.mkdir(parents=True)
    path = home / "runs.sqlite"
    path.write_bytes(data[:at] + rng.randbytes(GARBAGE) + data[at + GARBAGE :])
    return path


WRITES = [
    ("submit", "--epochs", "1"),
    ("resume", str(RESUMABLE)),
    ("runs", "delete", "1"),
    ("runs", "prune", "--keep-groups", "1"),
    ("runs", "rename", "1", "renamed"),
    ("runs", "tag", "1", "tagged"),
    ("groups", "rename", "g", "renamed"),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_writing_command_refuses_a_damaged_store(
    tmp_path, monkeypatch, capsys, sound_store, seed
):
    home = tmp_path / "home"
    path = damaged_copy(sound_store, home, seed)
    before = digest(path)
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    code, out, _ = cli(capsys, "store", "check", "--quick")
    assert code == 4 and "damaged pages" in out  # the premise: this placement is damage
    code, _, said = cli(capsys, "runs")
    assert code == 4 and said.count("\n") == 1 and f"the run store {path} is damaged (" in said

    for command in WRITES:
        code, out, err = cli(capsys, *command)
        assert (code, out, err) == (4, "", said), command
    assert digest(path) == before  # nothing written, not even a migration or a probe
    wal = path.with_name("runs.sqlite-wal")  # a read-only look may leave an empty one
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize("seed", [0, 3])
def test_the_runner_study_and_dashboard_refuse_a_damaged_store(
    tmp_path, monkeypatch, capsys, sound_store, seed
):
    """The long-lived writers: ``bn-lab runner`` and ``study`` (in processes of their own, so
    that one that did start is stopped by the timeout) and the dashboard's runner."""
    home = tmp_path / "home"
    path = damaged_copy(sound_store, home, seed)
    study_store = damaged_copy(sound_store, tmp_path / "out" / "store", seed)
    before, study_before = digest(path), digest(study_store)
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    code, _, said = cli(capsys, "runs")
    assert code == 4

    env = {**os.environ, "BN_LAB_HOME": str(home), "BN_LAB_STANDBY": "0"}
    bn_lab = [sys.executable, "-m", "bn_core"]
    done = subprocess.run(
        [*bn_lab, "runner"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (4, "", said)
    data = tmp_path / "data"
    write_npz(data)
    study = [*bn_lab, "study", "figure1", "--quick", "--data-dir", str(data)]
    done = subprocess.run(
        [*study, "--out", str(tmp_path / "out")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and f"the run store {study_store} is damaged (" in (
        done.stderr
    )
    assert digest(study_store) == study_before

    st.cache_resource.clear()
    try:
        with pytest.raises(StoreError) as caught:
            _runner._runner_for(str(home.resolve()))
        assert caught.value.kind == "damaged" and said.endswith(f": {caught.value}\n")
        at = open_page("pages/train.py")
        assert [e.value for e in at.error] == [str(caught.value)]
        assert not at.button  # no Start: nothing can be written from the page
    finally:
        st.cache_resource.clear()
    assert digest(path) == before
