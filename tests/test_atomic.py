"""bn_core.atomic.atomic_path: the one way every room writes a file (all or nothing)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from bn_core.atomic import atomic_path, remove_partials
from bn_core.runs.store import artifacts


def test_a_finished_write_replaces_the_file_readable_by_others(tmp_path):
    target = tmp_path / "sub" / "result.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".result.json.")
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the end
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras")
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_artifacts_write_text_and_save_model_go_through_it(tmp_path):
    artifacts.write_text(tmp_path / "a.txt", "héllo")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"

    class Model:  # what save_model needs of a Keras model: save(path) to a .keras name
        def save(self, path):
            assert str(path).endswith(".keras")
            path.write_bytes(b"zip")

    artifacts.save_model(Model(), tmp_path / "m.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m.keras"]


# A writer SIGKILLed inside atomic_path: what a kill during a model save leaves behind.
KILLED_MID_WRITE = """
import os, signal, sys
from bn_core.atomic import atomic_path
with atomic_path(sys.argv[1], suffix=".keras") as tmp:
    tmp.write_bytes(b"half a model")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_remove_partials_deletes_only_files_of_dead_writers(tmp_path):
    target = tmp_path / "models" / "run-7.keras"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(target)], capture_output=True, timeout=60
    )
    assert child.returncode == -9, child.stderr[-2000:]
    (left,) = [p for p in target.parent.iterdir()]  # the partial file stayed behind
    assert left.name.startswith(".run-7.keras.") and not target.exists()
    mine = target.parent / f".run-8.keras.{os.getpid()}.abc123.tmp.keras"  # a live writer's
    mine.write_bytes(b"being written")
    other = target.parent / "notes.tmp"  # not ours
    other.write_text("keep")

    assert remove_partials(target.parent, min_age=3600) == []  # too recent: maybe still renaming
    assert remove_partials(target.parent, min_age=0) == [left]
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([mine.name, other.name])
    assert remove_partials(tmp_path / "missing") == []


def test_remove_partials_also_removes_old_style_partials_after_an_hour(tmp_path):
    old_style = tmp_path / ".run-3.keras.k2j3h4.tmp.keras"  # before the pid was in the name
    old_style.write_bytes(b"half")
    assert remove_partials(tmp_path, min_age=0) == []  # it may still be written: wait an hour
    hour_ago = time.time() - 3700
    os.utime(old_style, (hour_ago, hour_ago))
    assert remove_partials(tmp_path, min_age=0) == [old_style]
    assert list(tmp_path.iterdir()) == []
