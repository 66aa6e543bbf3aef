"""The CLI's run store management (bn_core.cli.manage): ``runs delete``, ``runs prune``,
``runs rename``, ``runs tag``, ``groups`` and ``groups rename``, driven in-process; and what
``runs`` now lists (names, tags, nodes, group names). Bad input is one line and exit 2; a
store that cannot be written is one line and exit 4."""

from __future__ import annotations

import json
import time

import pytest

from bn_core.cli import main
from bn_core.config import TrainConfig
from bn_core.runs.store import run_store as store_module
from bn_core.runs.store.run_store import RunStore

DAY = 86400.0


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    """$BN_LAB_HOME's store: group "old" (runs 1-3: completed, failed, completed; 40 days
    old), group "mid" (runs 4-5: completed, cancelled; 20 days old), group "new" (runs 6-7:
    completed, running; named "Fresh study")."""
    home = tmp_path / "home"
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    store = RunStore(home)
    layout = [
        ("old", None, 40, ["completed", "failed", "completed"]),
        ("mid", None, 20, ["completed", "cancelled"]),
        ("new", "Fresh study", 0, ["completed", "running"]),
    ]
    for group, name, age, statuses in layout:
        ids = store.create_runs(
            [TrainConfig(seed=s) for s in range(len(statuses))], group, group_name=name
        )
        for run_id, status in zip(ids, statuses, strict=True):
            store.update(run_id, created_at=time.time() - age * DAY)
            store.transition(run_id, ("queued",), status, test_accuracy=0.9)
    return store


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``bn-lab argv`` in this process: (exit code, stdout, stderr). argparse's own
    errors exit through SystemExit; their code is returned the same way."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def ids_of(store: RunStore) -> list[int]:
    return [r.id for r in store.list_runs()]


# -- runs (the listing) ---------------------------------------------------------------------------


def test_runs_lists_names_tags_nodes_and_group_names(store, capsys):
    store.rename_run(1, "baseline")
    store.set_tags(1, ["lr", "keep"])
    store.update(1, node="gpu-7")
    code, out, _ = cli(capsys, "runs")
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == [f"#{i}" for i in range(1, 8)]
    assert lines[0].startswith("#1 lenet seed=0 completed test_accuracy=0.9000 ")
    assert 'name="baseline" tags=lr,keep node=gpu-7 group="lenet · 3 seeds · ' in lines[0]
    assert lines[6].endswith('running test_accuracy=0.9000 group="Fresh study"')
    code, out, _ = cli(capsys, "runs", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["name"] == "baseline" and rows[0]["tags"] == ["lr", "keep"]
    assert rows[0]["node"] == "gpu-7" and rows[0]["group"] == "old"
    assert rows[6]["group_name"] == "Fresh study" and rows[6]["name"] is None
    assert rows[6]["tags"] == [] and rows[6]["node"] is None


# -- delete ---------------------------------------------------------------------------------------


def test_delete_deletes_finished_runs_and_says_which(store, capsys):
    code, out, err = cli(capsys, "runs", "delete", "1", "#2")
    assert (code, out, err) == (0, "deleted 2 runs (#1, #2)\n", "")
    assert ids_of(store) == [3, 4, 5, 6, 7]


def test_delete_refuses_active_and_unknown_runs_with_a_reason_each(store, capsys):
    code, out, err = cli(capsys, "runs", "delete", "7", "99")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert "run #7 is running: cancel it first; not deleted" in lines[0]
    assert "run #99 does not exist" in lines[1]
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7]

    code, out, err = cli(capsys, "runs", "delete", "6", "7")  # one goes, one is refused
    assert code == 0 and out == "deleted 1 run (#6)\n" and "run #7 is running" in err
    assert ids_of(store) == [1, 2, 3, 4, 5, 7]


def test_delete_a_group_and_dry_run(store, capsys):
    code, out, err = cli(capsys, "runs", "delete", "--group", "old", "4", "--dry-run")
    assert (code, out, err) == (0, "would delete 4 runs (#1, #2, #3, #4)\n", "")
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7]  # nothing went
    code, out, err = cli(capsys, "runs", "delete", "--group", "new")
    assert code == 0 and out == "deleted 1 run (#6)\n" and "run #7 is running" in err
    code, out, err = cli(capsys, "runs", "delete", "--group", "old")
    assert code == 0 and ids_of(store) == [4, 5, 7]
    assert [g.id for g in store.list_groups()] == ["new", "mid"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["runs", "delete"], ["needs run ids or --group"]),
        (["runs", "delete", "abc"], ["a run id is a whole number", "'abc'"]),
        (["runs", "delete", "0"], ["a run id is a whole number"]),
        (["runs", "delete", "--group", "nope"], ["there is no group 'nope'"]),
    ],
)
def test_delete_bad_input_is_one_line_exit_2(store, capsys, argv, words):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    one_line_error(err, *words)
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7]


# -- prune ----------------------------------------------------------------------------------------


def test_prune_by_groups_kept_and_by_age(store, capsys):
    code, out, _ = cli(capsys, "runs", "prune", "--keep-groups", "1", "--dry-run")
    assert (code, out) == (0, "would delete 5 runs (#1, #2, #3, #4, #5)\n")
    code, out, _ = cli(capsys, "runs", "prune", "--older-than", "30", "--status", "failed")
    assert (code, out) == (0, "deleted 1 run (#2)\n")
    code, out, _ = cli(capsys, "runs", "prune", "--older-than", "10", "--keep-groups", "2")
    assert (code, out) == (0, "deleted 2 runs (#1, #3)\n")  # old enough, and outside 2 groups
    code, out, _ = cli(capsys, "runs", "prune", "--keep-groups", "0")
    assert (code, out) == (0, "deleted 3 runs (#4, #5, #6)\n")  # never the running one
    code, out, _ = cli(capsys, "runs", "prune", "--keep-groups", "0")
    assert (code, out) == (0, "nothing to prune\n") and ids_of(store) == [7]


def test_prune_lists_at_most_20_ids(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "home"))
    store = RunStore(tmp_path / "home")
    for run_id in store.create_runs([TrainConfig(seed=s) for s in range(25)], "g"):
        store.transition(run_id, ("queued",), "completed")
    code, out, _ = cli(capsys, "runs", "prune", "--keep-groups", "0")
    assert code == 0 and out.startswith("deleted 25 runs (#1, #2, ")
    assert out.endswith(", #20 and 5 more)\n") and ids_of(store) == []


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], ["--keep-groups N and/or --older-than DAYS"]),
        (["--keep-groups", "-1"], ["N must be a whole number >= 0", "'-1'"]),
        (["--keep-groups", "two"], ["N must be a whole number"]),
        (["--older-than", "0"], ["DAYS must be a number above 0"]),
        (["--older-than", "nan"], ["DAYS must be a number above 0"]),
        (["--older-than", "soon"], ["DAYS must be a number above 0"]),
        # float("１") is 1.0, and 1e308 days is past time.time(): -inf, so nothing was old
        (["--older-than", "\uff11"], ["DAYS must be a number above 0", "'\uff11'"]),
        (["--older-than", "1e308"], ["DAYS must be a number above 0", "'1e308'"]),
        (["--keep-groups", "\uff11"], ["N must be a whole number >= 0"]),
        # past SQLite's integers: the LIMIT raised OverflowError (a traceback)
        (["--keep-groups", "99999999999999999999"], ["N must be a whole number >= 0"]),
        (["--keep-groups", "1", "--status", "running"], ["invalid choice: 'running'"]),
    ],
)
def test_prune_bad_input_is_one_line_exit_2(store, capsys, argv, words):
    code, out, err = cli(capsys, "runs", "prune", *argv)
    assert code == 2 and out == ""
    one_line_error(err, *words)
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7]


# -- rename and tag -------------------------------------------------------------------------------


def test_rename_a_run_and_clear_its_name(store, capsys):
    code, out, _ = cli(capsys, "runs", "rename", "#3", "  Baseline, take 2 ")
    assert (code, out) == (0, 'run #3 is now named "Baseline, take 2"\n')
    assert store.get(3).name == "Baseline, take 2"
    code, out, _ = cli(capsys, "runs", "rename", "3", "")
    assert (code, out) == (0, "run #3: no name\n") and store.get(3).name is None


def test_tag_adds_tags_and_clear_replaces_them(store, capsys):
    assert cli(capsys, "runs", "tag", "2", "lr", "bad-seed")[:2] == (
        0,
        "run #2 tags: lr, bad-seed\n",
    )
    assert cli(capsys, "runs", "tag", "2", "lr", "keep")[:2] == (
        0,
        "run #2 tags: lr, bad-seed, keep\n",
    )
    assert cli(capsys, "runs", "tag", "2", "x", "--clear")[:2] == (0, "run #2 tags: x\n")
    assert cli(capsys, "runs", "tag", "--clear", "2", "y")[:2] == (0, "run #2 tags: y\n")
    assert cli(capsys, "runs", "tag", "2", "--clear")[:2] == (0, "run #2: no tags\n")
    assert store.get(2).tags is None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["runs", "rename", "3", "x" * 81], ["run name must be 1 to 80 characters"]),
        (["runs", "rename", "99", "ghost"], ["there is no run #99"]),
        (["runs", "rename", "x1", "name"], ["a run id is a whole number"]),
        (["runs", "tag", "2"], ["give tags to add, or --clear"]),
        (["runs", "tag", "2", "a,b"], ["must not contain a comma"]),
        (["runs", "tag", "99", "x"], ["there is no run #99"]),
        (["groups", "rename", "nope", "Name"], ["there is no group 'nope'"]),
        (["groups", "rename", "old", " "], ["group name must be 1 to 80 characters"]),
        # a right-to-left override makes "invoice\u202etxt.exe" display as "invoiceexe.txt"
        (
            ["runs", "rename", "3", "invoice\u202etxt.exe"],
            ["run name must not contain U+202E RIGHT-TO-LEFT OVERRIDE (character 8)"],
        ),
        (["runs", "tag", "2", "ok", "lr\u2066"], ["a tag must not contain U+2066"]),
        (["groups", "rename", "old", "x\u200f"], ["group name must not contain U+200F"]),
    ],
)
def test_rename_and_tag_bad_input_is_one_line_exit_2(store, capsys, argv, words):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    one_line_error(err, *words)
    assert store.get(3).name is None and store.get(2).tags is None


# -- run ids, in every command that takes one ----------------------------------------------------

ID_COMMANDS = [
    ["resume", "{}"],
    ["replay", "{}"],
    ["runs", "rename", "{}", "name"],
    ["runs", "tag", "{}", "t"],
    ["runs", "delete", "{}"],
]


@pytest.mark.parametrize("argv", ID_COMMANDS, ids=lambda argv: " ".join(argv[:2]))
@pytest.mark.parametrize(
    "text",
    [
        "9999999999999999999999999",  # resume: OverflowError's traceback; replay: exit 1
        str(2**63),  # one past SQLite's largest integer
        "0",
        "-4",
        "\u0661\u0662",  # Arabic-Indic 12: int() reads it as run 12
        "\uff13",
        "1_2",
    ],
)
def test_run_ids_are_ascii_whole_numbers_below_2_63_in_every_command(store, capsys, argv, text):
    code, out, err = cli(capsys, *[a.format(text) for a in argv])
    assert code == 2 and out == ""
    one_line_error(err, "a run id is a whole number from 1 to 9223372036854775807", repr(text))
    if not text.isascii():
        assert "is not one of the digits 0-9" in err
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7] and store.get(3).name is None
    assert [store.get(i).status for i in (2, 5)] == ["failed", "cancelled"]  # nothing resumed


def test_the_largest_run_id_is_looked_up_and_missing(store, capsys):
    code, _, err = cli(capsys, "runs", "rename", str(2**63 - 1), "x")
    assert code == 2
    one_line_error(err, f"there is no run #{2**63 - 1}")


@pytest.mark.parametrize(
    "argv",
    [["resume", "99"], ["replay", "99"], ["runs", "rename", "99", "x"], ["runs", "tag", "99", "t"]],
)
def test_a_missing_run_is_one_line_exit_2(store, capsys, argv):
    """As the README's exit codes say: a run id that names no run is a bad value (replay
    said it in its own words and exited 1)."""
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    one_line_error(err, "there is no run #99", "runs`")
    assert not (store.home / "replays").exists()


# -- groups ---------------------------------------------------------------------------------------


def test_groups_lists_newest_first_and_renames(store, capsys):
    code, out, _ = cli(capsys, "groups")
    lines = out.splitlines()
    assert code == 0 and [line.split("  ")[0] for line in lines] == ["new", "mid", "old"]
    assert lines[0].startswith("new  Fresh study · ") and lines[0].endswith(
        " · 2 runs (#6–7) · 1 active · 1 completed"
    )
    assert lines[2].endswith(" · 3 runs (#1–3) · 2 completed")
    code, out, _ = cli(capsys, "groups", "rename", "old", " First try ")
    assert (code, out) == (0, 'group old is now named "First try"\n')
    code, out, _ = cli(capsys, "groups", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["id"], r["name"], r["runs"]) for r in rows] == [
        ("new", "Fresh study", 2),
        ("mid", rows[1]["name"], 2),
        ("old", "First try", 3),
    ]
    assert rows[2]["label"].startswith("First try · ") and rows[0]["variants"] == ["lenet"]


def test_groups_on_an_empty_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "home"))
    assert cli(capsys, "groups") == (0, "no groups yet\n", "")


# -- a store that cannot be written ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "delete", "1"],
        ["runs", "prune", "--keep-groups", "0"],
        ["runs", "rename", "1", "x"],
        ["runs", "tag", "1", "x"],
        ["groups", "rename", "old", "x"],
    ],
)
def test_writes_to_a_read_only_store_exit_4_with_one_line(store, capsys, monkeypatch, argv):
    """As RunStore opens a file it cannot write (see bn_core.runs.store.schema.open_store): listing
    works, every write is a one-line StoreError."""
    monkeypatch.setattr(store_module, "open_store", lambda home, path: (path, True))
    code, out, err = cli(capsys, *argv)
    assert code == 4 and out == ""
    one_line_error(err, str(store.path))
    assert ids_of(store) == [1, 2, 3, 4, 5, 6, 7] and store.get(1).name is None
    assert cli(capsys, "groups")[0] == 0
