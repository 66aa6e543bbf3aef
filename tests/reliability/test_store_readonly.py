"""Read-only run stores that SQLite alone would get wrong, on real file systems.

- A read-only folder whose store still has commits in its ``-wal`` file (its writer was still
  connected, or died): SQLite can neither create the ``-shm`` index nor replay the WAL in
  place, and would read the main file alone (immutable), without those runs. BN Lab reads a
  copy of the file and its WAL instead, and lists every run.
- A read-only *file* in a writable folder: SQLite opens it without a word, and at the latest
  version nothing is written on opening, so only a write probe tells. Root is not stopped by
  file modes, so the store is opened by an unprivileged user (``nobody``) in a forked child.
- A read-only folder with no store yet: nothing to view, so the folder is the problem
  (``home``), not a read-only store.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from bn_core.config import TrainConfig
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.migrations import LATEST
from bn_core.runs.store.run_store import RunStore
from tests.store_helpers import (
    UNVERSIONED_SCHEMA,
    cli,
    digest,
    finished_run,
    old_store,
    read_only_folder,
)

pytestmark = pytest.mark.reliability

IN_WAL = 10  # runs committed to the -wal file only


def runs_in_main_file(path: Path) -> int:
    """The runs SQLite sees in ``path`` alone, ignoring its -wal (what immutable=1 reads)."""
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        db.close()


def store_with_wal(source: Path, target: Path, version: str) -> None:
    """A store with 2 runs in its main file and ``IN_WAL`` more committed to its -wal only,
    copied (the file and its -wal, not the -shm) into ``target`` while its writer is still
    connected: what a folder holds when it turns read-only under a live writer."""
    if version == "latest":
        store = RunStore(source)
        for seed in (0, 1):
            finished_run(store, seed)
    else:
        old_store(source, UNVERSIONED_SCHEMA, runs=2)
    path = source / "runs.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")  # the commits stay in the -wal
        for seed in range(100, 100 + IN_WAL):
            writer.execute(
                "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at)"
                " VALUES ('wal', 'lenet', ?, ?, 'completed', 5.0)",
                (seed, json.dumps(TrainConfig(seed=seed).to_dict())),
            )
        wal = source / "runs.sqlite-wal"
        assert wal.stat().st_size > 0
        target.mkdir(parents=True)
        shutil.copyfile(path, target / "runs.sqlite")
        shutil.copyfile(wal, target / "runs.sqlite-wal")
    finally:
        writer.close()


@pytest.mark.parametrize("version", ["latest", "v0"])
def test_commits_in_the_wal_of_a_read_only_folder_are_listed(tmp_path, version):
    home = tmp_path / "ro" / "home"
    with read_only_folder(tmp_path / "ro") as freeze:
        store_with_wal(tmp_path / "source", home, version)
        freeze()
        path, wal = home / "runs.sqlite", home / "runs.sqlite-wal"
        before = (digest(path), digest(wal))
        assert runs_in_main_file(path) == 2  # what an immutable read would list

        store = RunStore(home)
        assert store.read_only
        seeds = [r.seed for r in store.list_runs()]
        assert seeds == [0, 1, *range(100, 100 + IN_WAL)]
        with pytest.raises(StoreError) as caught:
            store.create_run(TrainConfig(), "g")
        assert caught.value.kind == "readonly"
        assert f"the run store {path} is read-only" in str(caught.value)  # not the copy
        assert (digest(path), digest(wal)) == before
        assert sorted(p.name for p in home.iterdir()) == ["runs.sqlite", "runs.sqlite-wal"]
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:  # the older store was migrated in its copy only
            assert db.execute("PRAGMA user_version").fetchone()[0] == (
                LATEST if version == "latest" else 0
            )
        finally:
            db.close()


def test_a_read_only_folder_with_no_store_is_an_unusable_home(tmp_path, monkeypatch, capsys):
    with read_only_folder(tmp_path / "ro") as freeze:
        freeze()
        home = tmp_path / "ro"
        with pytest.raises(StoreError) as caught:
            RunStore(home)
        assert caught.value.kind == "home" and caught.value.path == home
        message = str(caught.value)
        assert message.startswith(f"BN_LAB_HOME {home} cannot be used")
        assert "it cannot hold a new run store" in message and "history" not in message
        monkeypatch.setenv("BN_LAB_HOME", str(home))
        code, out, err = cli(capsys, "runs")
        assert code == 4 and not out and err.count("\n") == 1 and message in err


def open_as_nobody(home: Path) -> dict:
    """``RunStore(home)`` opened in a forked child that runs as ``nobody`` when we are root
    (file modes do not stop root); what it saw, as a dict."""
    if os.geteuid() == 0:
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("as root file modes do not stop writes, and there is no user nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        seen: dict = {}
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            store = RunStore(home)
            seen = {"read_only": store.read_only, "seeds": [r.seed for r in store.list_runs()]}
            try:
                store.create_run(TrainConfig(), "g")
            except StoreError as exc:
                seen["error"] = [exc.kind, str(exc)]
        except BaseException as exc:  # said to the parent, which fails the test with it
            seen = {"crash": repr(exc)}
        finally:
            os.write(write, json.dumps(seen).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seen = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    return seen


def test_a_read_only_file_in_a_writable_folder_is_read_only(tmp_path):
    # Not under tmp_path: its parents are private to us, and nobody must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="bn-lab-rofile-"))
    try:
        folder.chmod(0o777)
        home = folder / "home"
        store = RunStore(home)
        for seed in (0, 1):
            finished_run(store, seed)
        home.chmod(0o777)  # writable by anyone: only the file says no
        path = home / "runs.sqlite"
        path.chmod(0o444)
        before = digest(path)

        seen = open_as_nobody(home)
        assert "crash" not in seen, seen["crash"]
        assert seen["read_only"] is True and seen["seeds"] == [0, 1]
        kind, message = seen["error"]
        assert kind == "readonly" and f"the run store {path} is read-only" in message
        assert digest(path) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)
