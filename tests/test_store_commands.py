"""``bn-lab store check`` and ``bn-lab store backup PATH`` (bn_core.cli.store).

check: one line, exit 0 when sound, 4 naming each problem and what to do (and the advice
works). backup: SQLite's online backup API; a consistent single-file copy even while a worker
writes; refuses to overwrite; leaves no half copy on a full disk.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bn_core.cli import main
from bn_core.config import TrainConfig
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.migrations import LATEST
from bn_core.runs.store.run_store import RunStore
from tests.store_helpers import UNVERSIONED_SCHEMA, cli, dump, old_store, version


def batch(step: int) -> dict:
    return {
        "step": step,
        "epoch": 1,
        "batch": step,
        "epoch_progress": step / 1e6,
        "loss": 1.0,
        "accuracy": 0.5,
    }


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    return home


# ----------------------------------------------------------------------------- check


def test_check_a_sound_store(home, capsys):
    store = RunStore(home)
    for seed in range(2):
        store.create_run(TrainConfig(seed=seed), "g")
    code, out, err = cli(capsys, "store", "check")
    path = home / "runs.sqlite"
    assert (code, err) == (0, "")
    latest = f"schema version {LATEST}"
    assert out == f"store check: {path} is sound: 2 run(s), {latest}, integrity_check ok\n"
    code, out, _ = cli(capsys, "store", "check", "--quick")
    assert code == 0 and out.endswith("quick_check ok\n")


def test_check_without_a_store_has_nothing_to_check(home, capsys):
    code, out, _ = cli(capsys, "store", "check")
    assert code == 0 and "no run store at" in out and not home.exists()  # nothing was made


def test_check_names_damaged_runs_and_its_advice_mends_the_store(home, capsys):
    store = RunStore(home)
    ids = [store.create_run(TrainConfig(seed=seed), "g") for seed in range(4)]
    db = sqlite3.connect(store.path)
    db.execute("UPDATE runs SET config_json = '[]' WHERE id = ?", (ids[1],))
    db.execute("UPDATE runs SET seed = 'x' WHERE id = ?", (ids[3],))
    db.commit()
    db.close()

    code, out, _ = cli(capsys, "store", "check")
    assert code == 4 and out.count("\n") == 1
    assert "2 problem(s)" in out
    assert f"run #{ids[1]} is damaged (its config_json is an array, not a JSON object)" in out
    assert f"run #{ids[3]} is damaged (its seed is 'x', not an integer)" in out
    command = re.search(r"`sqlite3 (\S+) '([^']+)'`", out)
    assert command and command[1] == str(store.path)
    db = sqlite3.connect(command[1])  # do what it says
    db.execute(command[2])
    db.commit()
    db.close()
    code, out, _ = cli(capsys, "store", "check")
    assert code == 0 and "2 run(s)" in out
    assert [r.id for r in RunStore(home).list_runs()] == [ids[0], ids[2]]


def test_check_finds_garbage_pages_that_sqlite_opens_without_a_word(home, capsys):
    store = RunStore(home)
    run_id = store.create_run(TrainConfig(), "g")
    for step in range(1, 2000):
        store.add_batch(run_id, batch(step))
    data = store.path.read_bytes()
    middle = len(data) // 4096 // 2 * 4096
    store.path.write_bytes(data[:middle] + os.urandom(8192) + data[middle + 8192 :])
    db = sqlite3.connect(store.path)  # SQLite reads the header and the table list: no word
    assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0
    db.close()
    with pytest.raises(StoreError) as caught:  # but opening a RunStore checks the pages
        RunStore(home)
    assert caught.value.kind == "damaged"
    code, out, _ = cli(capsys, "store", "check")
    assert code == 4 and out.count("\n") == 1 and "SQLite found damaged pages" in out
    assert ".recover" in out and f"mv {store.path} {store.path}.damaged" in out


def test_check_a_file_that_is_no_database(home, capsys):
    home.mkdir()
    (home / "runs.sqlite").write_bytes(os.urandom(8192))
    code, out, _ = cli(capsys, "store", "check")
    assert code == 4 and "is not a SQLite database (file is not a database)" in out


def test_check_a_store_from_a_newer_bn_lab(home, capsys):
    path = RunStore(home).path
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()
    code, out, _ = cli(capsys, "store", "check")
    assert code == 4 and "schema version 7: written by a newer BN Lab" in out
    assert version(path) == 7


# ----------------------------------------------------------------------------- backup


def test_backup_copies_without_migrating_and_refuses_to_overwrite(home, tmp_path, capsys):
    path = old_store(home, UNVERSIONED_SCHEMA, runs=3)  # version 0: backup must not migrate it
    before = dump(path)
    target = tmp_path / "copies" / "one.sqlite"
    target.parent.mkdir()  # backup makes no folders
    code, out, _ = cli(capsys, "store", "backup", str(target))
    assert code == 0
    assert out == f"store backup: 3 run(s) copied from {path} to {target} (" + out.split("(")[-1]
    assert version(path) == 0 and not (home / "backups").exists()
    assert dump(target) == before and version(target) == 0
    db = sqlite3.connect(target)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file, no -wal
    db.close()

    target.write_bytes(b"precious")
    with pytest.raises(SystemExit) as caught:
        main(["store", "backup", str(target)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; pass --force" in err
    assert target.read_bytes() == b"precious"
    code, _, _ = cli(capsys, "store", "backup", str(target), "--force")
    assert code == 0 and dump(target) == before


@pytest.mark.parametrize(
    "target, message",
    [
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "home" / "runs.sqlite", "is inside the run store's folder"),
        (lambda tmp: tmp / "a-file" / "copy.sqlite", "a-file is not a folder"),
    ],
)
def test_backup_refuses_a_bad_path_in_one_line(home, tmp_path, capsys, target, message):
    RunStore(home).create_run(TrainConfig(), "g")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SystemExit) as caught:
        main(["store", "backup", str(target(tmp_path))])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1 and message in err


def test_backup_into_a_folder_that_does_not_exist_makes_none(home, tmp_path, capsys):
    """It created the missing folders (``/nonexistent/d/x.sqlite`` made ``/nonexistent/d``):
    a typo in PATH left a tree of folders behind. Now it says so, in one line."""
    RunStore(home).create_run(TrainConfig(), "g")
    target = tmp_path / "no" / "such" / "copy.sqlite"
    with pytest.raises(SystemExit) as caught:
        main(["store", "backup", str(target), "--force"])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1
    assert f"the folder {target.parent} does not exist; create it first" in err
    assert not (tmp_path / "no").exists()


STORE_FILES = [
    "runs.sqlite",
    "runs.sqlite-wal",  # overwritten with --force: the next open replays a stranger's pages
    "runs.sqlite-shm",
    "runs.sqlite-journal",
    "backups/runs-v1-20260101-000000-1.sqlite",  # the migrations' own copies
    "models/run-1.keras",
    "copy.sqlite",  # a new file, still in the store's folder
]


@pytest.mark.parametrize("name", STORE_FILES)
def test_backup_refuses_the_stores_own_files_even_with_force(home, tmp_path, capsys, name):
    store = RunStore(home)
    store.create_run(TrainConfig(), "g")
    (home / "backups").mkdir()
    (home / "models").mkdir()
    writer = sqlite3.connect(store.path)  # holds the store open: its -wal and -shm exist
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("UPDATE runs SET name = 'kept' WHERE id = 1")
        writer.commit()
        files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
        for target in (home / name, tmp_path / "link" / name):
            (tmp_path / "link").unlink(missing_ok=True)
            (tmp_path / "link").symlink_to(home)  # the same folder by another path
            with pytest.raises(SystemExit) as caught:
                main(["store", "backup", str(target), "--force"])
            err = capsys.readouterr().err
            assert caught.value.code == 2 and err.count("\n") == 1
            assert f"is inside the run store's folder {home}" in err
            assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == files
    finally:
        writer.close()
    assert RunStore(home).get(1).name == "kept"


def test_backup_refuses_a_hard_link_to_the_store(home, tmp_path, capsys):
    store = RunStore(home)
    store.create_run(TrainConfig(), "g")
    os.link(store.path, tmp_path / "same.sqlite")
    before = store.path.read_bytes()
    with pytest.raises(SystemExit) as caught:
        main(["store", "backup", str(tmp_path / "same.sqlite"), "--force"])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1
    assert f"is another name (a hard link) of the run store's file {store.path}" in err
    assert store.path.read_bytes() == before


def test_backup_without_a_store(home, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["store", "backup", str(tmp_path / "copy.sqlite")])
    assert caught.value.code == 2 and "there is no run store at" in capsys.readouterr().err


def test_backup_while_a_worker_writes_is_a_consistent_copy(home, tmp_path, capsys):
    """The copy is the store at one moment: the writer's rows 1..k, none missing, while the
    writer went on writing before and after it."""
    store = RunStore(home)
    run_id = store.create_run(TrainConfig(), "g")
    for step in range(1, 20_001):  # a store big enough for the copy to take a while
        if step % 1000 == 1:
            with store.connect() as db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO batch_metrics VALUES (?, ?, 1, ?, ?, 1.0, 0.5, 0.0)",
                    [(run_id, s, s, s / 1e6) for s in range(step, step + 1000)],
                )
                db.execute("COMMIT")
    written, stop = [20_000], threading.Event()

    def worker() -> None:
        step = 20_001
        while not stop.is_set():
            store.add_batch(run_id, batch(step))
            written.append(step)
            step += 1

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        while len(written) < 50:  # it is writing
            time.sleep(0.01)
        before = written[-1]
        code, out, _ = cli(capsys, "store", "backup", str(tmp_path / "copy.sqlite"))
        after = written[-1]
    finally:
        stop.set()
        thread.join()
    assert code == 0 and "1 run(s)" in out
    db = sqlite3.connect(tmp_path / "copy.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        steps = [s for (s,) in db.execute("SELECT step FROM batch_metrics ORDER BY step")]
    finally:
        db.close()
    assert steps == list(range(1, len(steps) + 1))  # a prefix: nothing torn, nothing missing
    assert before <= len(steps) <= after + 1 and after > before  # it ran during the copy


def test_backup_onto_a_full_disk_leaves_no_half_copy(home, tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: no full disk to test on")
    store = RunStore(home)
    run_id = store.create_run(TrainConfig(), "g")
    for step in range(1, 10_001):
        if step % 1000 == 1:
            with store.connect() as db:
                db.executemany(
                    "INSERT INTO batch_metrics VALUES (?, ?, 1, ?, ?, 1.0, 0.5, 0.0)",
                    [(run_id, s, s, s / 1e6) for s in range(step, step + 1000)],
                )
    small = tmp_path / "small"
    small.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here ({done.stderr.strip()})")
    try:
        assert store.path.stat().st_size > 64 * 1024
        with pytest.raises(SystemExit) as caught:
            main(["store", "backup", str(small / "copy.sqlite")])
        err = capsys.readouterr().err
        assert caught.value.code == 2 and err.count("\n") == 1
        assert "cannot be written (database or disk is full)" in err
        assert list(small.iterdir()) == []  # no copy, no half of one
    finally:
        subprocess.run(["umount", str(small)], check=True)
