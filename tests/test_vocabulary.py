"""A run's vocabulary (``bn_core.vocabulary``) is the only spelling of its statuses: the store
refuses any other (with ``ValueError``, also under ``python -O``, which removes ``assert``s),
every group is made of statuses, and no module of the code spells a status as a bare string.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bn_core import vocabulary
from bn_core.config import TrainConfig
from bn_core.results import TrainResult
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import (
    ACTIVE,
    FINISHED,
    STATUSES,
    ReplayStatus,
    RunStatus,
    Stage,
    parse_statuses,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


# -- parsing ----------------------------------------------------------------------------------


def test_parse_returns_members_and_refuses_anything_else():
    assert RunStatus.parse("completed") is RunStatus.COMPLETED
    assert RunStatus.parse(RunStatus.QUEUED) is RunStatus.QUEUED
    for bogus in ("bogus", "Completed", "", None, 3):
        with pytest.raises(ValueError, match="is not a run status"):
            RunStatus.parse(bogus)
    with pytest.raises(ValueError, match="'done' is not a run status"):
        RunStatus.parse("done")  # a replay job's end, not a run's
    assert ReplayStatus.parse("done") is ReplayStatus.DONE
    with pytest.raises(ValueError, match="'completed' is not a replay status"):
        ReplayStatus.parse("completed")


def test_parse_statuses_refuses_a_lone_string():
    assert parse_statuses(["queued", "failed"]) == (RunStatus.QUEUED, RunStatus.FAILED)
    with pytest.raises(ValueError, match="a collection of run statuses"):
        parse_statuses("queued")  # would be read letter by letter


def test_the_store_refuses_statuses_that_are_not_ones(store):
    run_id = store.create_run(TrainConfig(), "g")
    with pytest.raises(ValueError, match="'bogus' is not a run status"):
        store.transition(run_id, ("queued",), "bogus")
    with pytest.raises(ValueError, match="'bogus' is not a run status"):
        store.transition(run_id, ("bogus",), "running")
    with pytest.raises(ValueError, match="is not a run status"):
        store.list_runs(("bogus",))
    with pytest.raises(ValueError, match="a collection of run statuses"):
        store.count_runs("queued")
    with pytest.raises(ValueError, match="transition"):
        store.update(run_id, status="completed")  # a status changes by transition only
    with pytest.raises(ValueError, match="is not a run status"):
        store.prune_candidates(keep_groups=0, statuses=("bogus",))
    with pytest.raises(ValueError, match="is not a run status"):
        TrainResult("bogus", TrainConfig())
    run = store.get(run_id)
    with pytest.raises(ValueError, match="is not a run status"):
        dataclasses.replace(run, status="bogus")  # a RunRecord made in code
    assert run.status is RunStatus.QUEUED  # untouched


def test_the_checks_hold_under_python_O(tmp_path):
    """``python -O`` removes asserts: the checks are real ``ValueError``s."""
    script = textwrap.dedent(
        """
        import sys
        from bn_core.config import TrainConfig
        from bn_core.runs.store.run_store import RunStore
        from bn_core.vocabulary import RunStatus

        assert False, "python -O was not in effect"
        store = RunStore(sys.argv[1])
        run_id = store.create_run(TrainConfig(), "g")
        checks = {
            "parse": lambda: RunStatus.parse("bogus"),
            "transition": lambda: store.transition(run_id, ("queued",), "bogus"),
        }
        for name, check in checks.items():
            try:
                check()
            except ValueError:
                print(name, "refused")
        print("status", store.get(run_id).status)
        """
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", script, str(tmp_path / "home")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [
        "parse refused",
        "transition refused",
        "status queued",
        "",
    ]


# -- what the store holds -----------------------------------------------------------------------


def test_every_group_is_made_of_statuses():
    groups = {
        name: value
        for name, value in vars(vocabulary).items()
        if name.isupper() and isinstance(value, tuple) and value and isinstance(value[0], RunStatus)
    }
    assert {"ACTIVE", "FINISHED", "STATUSES", "RESUMABLE", "REPLAYABLE", "LEARNING"} <= set(groups)
    for name, group in groups.items():
        assert set(group) <= set(STATUSES), name
        assert len(set(group)) == len(group), name
    assert set(ACTIVE) | set(FINISHED) == set(STATUSES) == set(RunStatus)
    assert not set(ACTIVE) & set(FINISHED)
    assert set(vocabulary.ENGINE_STAGES) <= set(Stage)
    assert set(vocabulary.METRIC_EVENTS) <= set(vocabulary.ENGINE_EVENTS) <= set(vocabulary.Event)


def test_every_status_the_store_holds_is_a_run_status(store):
    """Each status a run can reach is read back as its member; a row whose status is none (a
    file edited by hand) is damaged: skipped and listed, never a run with a made-up status."""
    ids = {status: store.create_run(TrainConfig(), "g") for status in STATUSES}
    for status, run_id in ids.items():
        assert store.transition(run_id, ("queued",), status)
    runs = store.list_runs()
    assert [run.status for run in runs] == list(STATUSES)
    assert all(type(run.status) is RunStatus for run in runs)
    page, _ = store.runs_page(statuses=FINISHED)
    assert all(type(run.status) is RunStatus for run in page)

    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET status = 'exploded' WHERE id = ?", (ids["queued"],))
    assert store.get(ids["queued"]) is None
    assert len(store.list_runs()) == len(STATUSES) - 1
    [(damaged, reason)] = store.damaged_runs()
    assert damaged == ids["queued"] and reason == "its status is 'exploded', not a run status"


# -- one spelling ---------------------------------------------------------------------------

# Every status and stage, as its value: code names them by their members instead.
SPELLED = {member.value for member in (*RunStatus, *Stage)}
# A status quoted inside SQL text (``status = 'queued'``): it goes in as a parameter instead.
SQL_STATUS = re.compile("'({})'".format("|".join(status.value for status in RunStatus)))
# The schema's history: a migration's DDL stays as it ran (its CHECK lists replay statuses).
SQL_ALLOWED = {"bn_core/runs/store/migrations.py"}


def bare_statuses(source: str, rel: str) -> list[str]:
    """'file:line: text' for each string constant of ``source`` that spells a status or a
    stage, or quotes a status in SQL. Docstrings, the text parts of f-strings and subscript
    keys (``row["completed"]``: a column named after a status) are prose, not statuses."""
    tree = ast.parse(source)
    prose = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                prose.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.JoinedStr):
            prose.update(id(part) for part in node.values)
        if isinstance(node, ast.Subscript):
            prose.add(id(node.slice))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in prose:
            continue
        if node.value in SPELLED or (rel not in SQL_ALLOWED and SQL_STATUS.search(node.value)):
            found.append(f"{rel}:{node.lineno}: {node.value[:60]!r}")
    return found


def code_files() -> list[Path]:
    files = sorted((ROOT / "bn_core").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    return [f for f in [*files, ROOT / "app.py"] if f.name != "vocabulary.py"]


def test_no_module_spells_a_status_as_a_string():
    found = []
    for path in code_files():
        rel = path.relative_to(ROOT).as_posix()
        found += bare_statuses(path.read_text("utf-8"), rel)
    assert found == [], "use bn_core.vocabulary's members instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "spellings"),
    [
        ('if run.status == "completed":\n    pass\n', 1),
        ('done = status in ("queued", "running")\n', 2),
        ('store.transition(run_id, ("starting",), status="failed")\n', 2),
        ('COLORS = {"diverged": "red"}\n', 1),
        ("sql = \"UPDATE runs SET status = 'queued' WHERE id = ?\"\n", 1),
        ('stage = "saving the model"\n', 1),
    ],
)
def test_the_scan_finds_each_kind_of_spelling(source, spellings):
    assert len(bare_statuses(source, "bn_core/x.py")) == spellings


@pytest.mark.parametrize(
    "source",
    [
        '"""A run ends completed, cancelled or failed."""\n',
        'def f():\n    """queued"""\n',
        'line = f"{run.id} completed after {n} epochs"\n',
        'n = row["completed"]\n',
        'if status == RunStatus.COMPLETED:\n    note = "it completed"\n',
    ],
)
def test_the_scan_leaves_prose_alone(source):
    assert bare_statuses(source, "bn_core/x.py") == []
