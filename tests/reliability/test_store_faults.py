"""A run store in trouble, for real where the machine allows: damaged rows, a read-only file
system, a file that is not (or no longer) a database, an unusable BN_LAB_HOME, a full disk.

In each case the CLI answers in one line (exit 4 where the store cannot be used), every page
renders (one banner, or one st.error when nothing can be shown), and no traceback escapes.

- Damaged rows: skipped by ``list_runs``, listed by ``damaged_runs``, named once by the CLI
  and the pages.
- Read-only: a tmpfs mounted and remounted read-only (as root), else ``chmod -w``; a store at
  the latest version and an older one (read through a migrated copy, the file untouched).
- Damaged files: random bytes, a truncated file, a valid file with garbage pages in the middle.
- A full disk: the store's writes raise ``StoreError("full")`` (monkeypatched; the real full
  disk is tested end to end elsewhere): the runner backs off and says why, Start says it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import streamlit as st

from bn_core.cli import main
from bn_core.config import TrainConfig
from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.migrations import LATEST
from bn_core.runs.store.run_store import RunStore
from bn_core.views.runs import run_label
from pages import _runner
from tests.helpers import PAGES, open_page, open_with_link
from tests.store_helpers import (
    UNVERSIONED_SCHEMA,
    cli,
    digest,
    finished_run,
    old_store,
    read_only_folder,
)

pytestmark = pytest.mark.reliability

TRAIN, RUNS, COMPARE, SWEEP, ABOUT = (
    "pages/train.py",
    "pages/runs.py",
    "pages/compare.py",
    "pages/sweep.py",
    "pages/about.py",
)
BANNER_PAGES = (TRAIN, RUNS, COMPARE, SWEEP, ABOUT)  # every page calls _ui.store_banner


@pytest.fixture
def fresh_cache():
    """No runner cached by an earlier test leaks in, none of ours leaks out."""
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


# ----------------------------------------------------------------------------- damaged rows

BAD_ROWS = [
    ("config_json", "{not json", "its config_json is not JSON: Expecting property name"),
    ("config_json", "[1, 2]", "its config_json is an array, not a JSON object"),
    ("config_json", '"lenet"', "its config_json is a string, not a JSON object"),
    ("config_json", '{"epochs": "ten"}', "its config's epochs is 'ten', not an integer"),
    ("config_json", '{"variant": "resnet"}', "its config's variant is 'resnet', not one of"),
    ("config_json", '{"learning_rate": NaN}', "its config's learning_rate is nan, not a finite"),
    ("config_json", '{"epochs": true}', "its config's epochs is True, not an integer"),
    ("config_json", 42, "its config_json is a number, not a JSON object"),  # TEXT affinity: '42'
    ("config_json", b"{}", "its config_json is b'{}', not JSON text"),  # a BLOB stays one
    ("test_accuracy", "high", "its test_accuracy is 'high', not a number"),
    ("seed", "zero", "its seed is 'zero', not an integer"),
]


def damage_row(path: Path, run_id: int, column: str, value) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("column, value, reason", BAD_ROWS)
def test_a_damaged_row_is_skipped_and_named_never_raised(tmp_path, column, value, reason):
    store = RunStore(tmp_path / "home")
    first, bad, last = (finished_run(store, seed) for seed in range(3))
    damage_row(store.path, bad, column, value)

    store = RunStore(store.home)  # a new process' view: nothing remembered yet
    (found,) = store.damaged_runs()  # lists every run once to know
    assert found[0] == bad and found[1].startswith(reason) and "\n" not in found[1]
    assert [r.id for r in store.list_runs()] == [first, last]
    assert [r.id for r in store.list_runs(("completed",))] == [first, last]
    assert store.get(bad) is None and store.get(first).seed == 0
    results = store.result_dicts(store.list_runs())
    assert [r["run_id"] for r in results] == [first, last]

    mended = {"config_json": json.dumps(TrainConfig(seed=1).to_dict()), "test_accuracy": 0.9}
    for name, good in {**mended, "seed": 1}.items():
        damage_row(store.path, bad, name, good)
    assert store.get(bad).seed == 1  # mended: read again, and no longer listed as damaged
    assert store.damaged_runs() == []


def test_runs_cli_names_a_damaged_run_once_and_lists_the_others(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    store = RunStore(home)
    ids = [finished_run(store, seed) for seed in range(3)]
    damage_row(store.path, ids[1], "config_json", "{not json")
    monkeypatch.setenv("BN_LAB_HOME", str(home))

    code, out, err = cli(capsys, "runs")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [f"#{ids[0]}", f"#{ids[2]}"]
    assert err.count("\n") == 1 and f"run #{ids[1]} is damaged (its config_json is not JSON" in err
    assert err.rstrip().endswith("and is skipped")
    code, out, err = cli(capsys, "runs", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [ids[0], ids[2]]
    assert err.count(f"run #{ids[1]} is damaged") == 1


def test_pages_name_a_damaged_run_once_and_show_the_others(runner, have):
    ids = [finished_run(runner.store, seed) for seed in range(3)]
    damage_row(runner.store.path, ids[1], "config_json", '{"epochs": "ten"}')
    note = f"run #{ids[1]} is damaged (its config's epochs is 'ten', not an integer)"

    for page in (RUNS, TRAIN, SWEEP):
        at = open_page(page)
        warnings = [w.value for w in at.warning if "damaged" in w.value]
        assert warnings == [f"{note} and is skipped"], (page, warnings)
    at = open_page(RUNS)
    assert sorted(at.dataframe[0].value["run"]) == [ids[0], ids[2]]  # the table skips it
    at = open_page(COMPARE)  # no banner of its own (yet): it must at least not crash
    assert not at.exception and not at.error
    labels = [run_label(r) for r in reversed(runner.store.list_runs())]
    assert at.multiselect(key="compare-runs").options == labels and len(labels) == 2
    assert len(at.table) == 1  # the summary of the two readable runs


def test_a_runs_table_with_a_column_from_a_newer_tool_is_read(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    store = RunStore(home)
    run_id = finished_run(store, 4)
    db = sqlite3.connect(store.path)
    db.execute("ALTER TABLE runs ADD COLUMN priority INTEGER DEFAULT 7")
    db.commit()
    db.close()
    assert RunStore(home).get(run_id).seed == 4 and RunStore(home).damaged_runs() == []
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    code, out, err = cli(capsys, "runs")
    assert code == 0 and out.startswith(f"#{run_id} lenet seed=4 completed") and not err


# ----------------------------------------------------------------------------- read-only


@pytest.fixture(params=["latest", "v0"])
def frozen_home(request, tmp_path, fresh_cache):
    """(home, its version): a store holding two finished runs on a read-only file system, at
    the latest version or unversioned (version 0: it cannot be migrated where it is)."""
    home = tmp_path / "ro" / "home"
    with read_only_folder(tmp_path / "ro") as freeze:
        if request.param == "latest":
            store = RunStore(home)
            for seed in (0, 1):
                finished_run(store, seed)
        else:
            old_store(home, UNVERSIONED_SCHEMA, runs=2)
        freeze()
        yield home, LATEST if request.param == "latest" else 0


def test_a_read_only_store_is_viewed_never_written(frozen_home, monkeypatch, capsys):
    frozen_home, version = frozen_home
    path = frozen_home / "runs.sqlite"
    before = digest(path)
    store = RunStore(frozen_home)
    assert store.read_only and [r.seed for r in store.list_runs()] == [0, 1]
    ids = [r.id for r in store.list_runs()]
    assert len(store.epoch_metrics(ids)) == 2 and store.get(ids[0]).status == "completed"
    with pytest.raises(StoreError) as caught:
        store.create_run(TrainConfig(), "g")
    assert caught.value.kind == "readonly" and "\n" not in str(caught.value)
    assert f"the run store {path} is read-only" in str(caught.value)  # not a temporary copy
    with pytest.raises(StoreError):
        store.delete(ids[0])

    monkeypatch.setenv("BN_LAB_HOME", str(frozen_home))
    code, out, err = cli(capsys, "runs")
    assert code == 0 and len(out.splitlines()) == 2 and not err
    code, out, _ = cli(capsys, "store", "check")
    assert code == 0 and "is sound: 2 run(s)" in out
    code, out, _ = cli(capsys, "runner")
    assert code == 4
    assert digest(path) == before and not (frozen_home / "backups").exists()
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:  # the older store was read through a migrated copy, and stays at its version
        assert db.execute("PRAGMA user_version").fetchone()[0] == version
    finally:
        db.close()


def test_a_read_only_store_shows_its_history_with_start_off(frozen_home, monkeypatch, have):
    frozen_home, _ = frozen_home
    monkeypatch.setenv("BN_LAB_HOME", str(frozen_home))
    reason = describe("readonly", frozen_home / "runs.sqlite", "it cannot be written")
    for page in PAGES:
        at = open_page(page)  # no exception
        assert not at.error, (page, [e.value for e in at.error])
        banners = [w.value for w in at.warning if "read-only" in w.value]
        assert banners == [reason], page  # every page calls _ui.store_banner
    at = open_page(TRAIN)
    assert at.button(key="train-start").disabled and at.button(key="train-start").help == reason
    at = open_page(SWEEP)
    assert at.button(key="sweep-start").disabled and at.button(key="sweep-start").help == reason
    at = open_with_link(RUNS, runs="1,2")  # both selected: their cards and curves
    assert {"**#1 lenet seed 0**", "**#2 lenet seed 1**"} <= {m.value for m in at.markdown}
    assert at.button(key="delete-1").disabled and len(at.get("plotly_chart")) == 2
    at = open_page(COMPARE)
    assert len(at.table) == 1 and list(at.table[0].value["runs"]) == [2]
    runner = _runner._runner_for(str(frozen_home.resolve()))
    assert runner.store.read_only and runner._thread is None  # never started: nothing to do


# ----------------------------------------------------------------------------- damaged files


def damage_file(path: Path, how: str) -> None:
    data = path.read_bytes()
    pages = len(data) // 4096
    assert pages >= 16, "too small a store to damage in the middle"
    if how == "random bytes":
        path.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # garbage pages in the middle; the first page (the header, the table list) intact
        middle = pages // 2 * 4096
        path.write_bytes(data[:middle] + os.urandom(3 * 4096) + data[middle + 3 * 4096 :])


@pytest.fixture(params=["random bytes", "truncated", "garbage pages"])
def damaged_home(request, tmp_path, fresh_cache):
    home = tmp_path / "home"
    store = RunStore(home)
    for seed in range(10):
        run_id = finished_run(store, seed)
        with store.connect() as db:  # ~2,000 batch rows: pages enough to damage the middle
            db.executemany(
                "INSERT INTO batch_metrics VALUES (?, ?, 1, ?, 1.0, 1.0, 0.5, 0.0)",
                [(run_id, step, step) for step in range(3, 200)],
            )
    damage_file(store.path, request.param)
    return home


def test_a_damaged_store_file_is_one_line_in_the_cli(damaged_home, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(damaged_home))
    path = damaged_home / "runs.sqlite"
    code, out, err = cli(capsys, "runs")
    assert code == 4 and not out and err.count("\n") == 1
    assert f"the run store {path} is damaged (" in err and f"mv {path} {path}.damaged" in err
    code, out, err = cli(capsys, "store", "check")
    assert code == 4 and out.count("\n") == 1 and str(path) in out and not err
    assert "mv " in out  # what to do


def test_a_damaged_store_file_is_one_error_on_every_page(damaged_home, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(damaged_home))
    main(["runs"])
    message = capsys.readouterr().err.strip().split(": ", 1)[1]  # without the program's name
    for page in PAGES:
        at = open_page(page)
        if page == ABOUT:  # it reads no store
            continue
        assert [e.value for e in at.error] == [message], page
        assert not at.warning and not at.button and not at.get("plotly_chart"), page


@pytest.mark.parametrize("inside", [False, True])
def test_bn_lab_home_on_a_file_is_one_line(tmp_path, monkeypatch, capsys, fresh_cache, inside):
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    home = file / "home" if inside else file
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    code, out, err = cli(capsys, "runs")
    assert code == 4 and not out and err.count("\n") == 1
    assert f"BN_LAB_HOME {home if not inside else file / 'home'}" in err
    assert "Error" not in err and "Traceback" not in err
    message = err.strip().split(": ", 1)[1]
    at = open_page(TRAIN)
    assert [e.value for e in at.error] == [message]


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_is_one_banner_and_start_says_it(runner, have, monkeypatch):
    kept = finished_run(runner.store, 0)
    message = describe("full", runner.store.path)

    def full(*args, **kwargs):
        raise StoreError("full", message, runner.store.path)

    writes = ("create_run", "create_runs", "delete", "register_runner", "runner_heartbeat")
    for write in (*writes, "transition"):
        monkeypatch.setattr(runner.store, write, full)
    runner.start()  # its first pass cannot write its heartbeat: it backs off and says why
    try:
        for _ in range(100):
            if runner.problem:
                break
            time.sleep(0.05)
        assert runner.problem == message

        for page in BANNER_PAGES:
            at = open_page(page)
            assert [w.value for w in at.warning] == [message], page
            assert not at.error, page
        at = open_page(TRAIN)
        assert not at.button(key="train-start").disabled  # the disk may have room by now
        at.button(key="train-start").click().run()
        assert [e.value for e in at.error] == [message] and not at.success and not at.exception
        at = open_page(SWEEP)
        at.button(key="sweep-start").click().run()
        assert [e.value for e in at.error] == [message] and not at.exception
        at = open_with_link(RUNS, runs=str(kept))
        at.button(key=f"delete-{kept}").click().run()
        assert [e.value for e in at.error] == [message] and not at.exception
        assert [r.id for r in runner.store.list_runs()] == [kept]  # viewing goes on
    finally:
        runner.stop()
