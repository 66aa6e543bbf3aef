"""Tests for bn_core.runs.store.catalog, cleanup and names: group and run names, tags, the group
list, pages of runs, deleting and pruning, on a store of 60 runs in 4 groups and on one of
5,000 runs.

Pure Python and SQLite (no TensorFlow, no processes)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from bn_core.config import TrainConfig
from bn_core.runs.store.catalog import SORTS, GroupRecord
from bn_core.runs.store.names import MAX_NAME, MAX_TAGS, clean_name, clean_tags, default_group_name
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import ACTIVE, FINISHED

VARIANTS = ("lenet", "lenet_bn1", "lenet_bn2")
# group id -> (name given at creation or None, the statuses of its 15 runs), oldest first.
GROUPS = {
    "g-old": (None, ["completed"] * 15),
    "g-mixed": ("Learning rates", ["completed"] * 12 + ["failed"] * 3),
    "g-study": ("Original study", ["completed"] * 10 + ["diverged"] * 5),
    "g-new": ("Cancelled sweep", ["cancelled"] * 12 + ["queued", "running", "starting"]),
}
DAY = 86400.0


def _configs(n: int) -> list[TrainConfig]:
    """n configs: the variants in turn, seeds 0.. for each."""
    return [TrainConfig(variant=VARIANTS[i % 3], seed=i // 3) for i in range(n)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    """A store with the runs of GROUPS (15 each, created in order) and 0 to 3 batch rows per
    run; each group's runs were created 40, 30, 20, 10 days ago. Built once (a few seconds of
    writes), copied for each test. Returns (its folder, {group: run ids})."""
    home = tmp_path_factory.mktemp("catalog") / "home"
    store = RunStore(home)
    ids = {}
    for age, (group, (name, statuses)) in zip((40, 30, 20, 10), GROUPS.items(), strict=True):
        ids[group] = store.create_runs(_configs(len(statuses)), group, group_name=name)
        for i, (run_id, status) in enumerate(zip(ids[group], statuses, strict=True)):
            store.update(run_id, created_at=time.time() - age * DAY)
            if status != "queued":
                accuracy = 0.9 + i / 1000 if status == "completed" else None
                assert store.transition(run_id, ("queued",), status, test_accuracy=accuracy)
            for step in range(1, 1 + i % 4):
                store.add_batch(run_id, {"step": step, "epoch": 1, "batch": step,
                                         "epoch_progress": step / 10, "loss": 1.0,
                                         "accuracy": 0.5})  # fmt: skip
    return home, ids


@pytest.fixture
def filled(built, tmp_path) -> tuple[RunStore, dict[str, list[int]]]:
    """A fresh copy of ``built``'s store: (the store, {group: run ids})."""
    home, ids = built
    shutil.copytree(home, tmp_path / "home")
    return RunStore(tmp_path / "home"), ids


# -- names and tags -------------------------------------------------------------------------------


def test_clean_name_trims_and_refuses_empty_long_and_multiline_names():
    assert clean_name("  Original study \t") == "Original study"
    assert clean_name("x" * MAX_NAME) == "x" * MAX_NAME
    assert clean_name("Étude · 12-01") == "Étude · 12-01"
    for bad, words in [
        ("   ", "1 to 80 characters"),
        ("x" * (MAX_NAME + 1), "Received: 81 characters"),
        ("two\nlines", "control characters"),
        ("bell\x07", "control characters"),
        (None, "must be text"),
    ]:
        with pytest.raises(ValueError) as caught:
            clean_name(bad)
        message = str(caught.value)
        assert words in message and "\n" not in message and message.startswith("group name")


def test_clean_tags_dedupes_in_order_and_refuses_bad_tags():
    assert clean_tags([" lr ", "baseline", "lr", "ok"]) == ("lr", "baseline", "ok")
    assert clean_tags([]) == ()
    for bad, words in [
        (["a,b"], "comma"),
        (["x" * 33], "1 to 32 characters"),
        ([""], "1 to 32 characters"),
        ([f"t{i}" for i in range(MAX_TAGS + 1)], f"at most {MAX_TAGS} tags"),
        ("single", "a list of tags"),
    ]:
        with pytest.raises(ValueError, match=words):
            clean_tags(bad)


# Every bidirectional control: the embeddings and overrides, the isolates, the three marks.
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_names_and_tags_refuse_bidi_controls_naming_the_code_point(char):
    """ "invoice\u202etxt.exe" displays as "invoiceexe.txt": a name would read as something
    other than what it holds. The error names the character by its code point, in one line."""
    code = f"U+{ord(char):04X}"
    for clean, what in (
        (lambda: clean_name(f"invoice{char}txt.exe"), "group name"),
        (lambda: clean_name(f"{char}x", "run name"), "run name"),
        (lambda: clean_tags(["ok", f"lr{char}"]), "a tag"),
    ):
        with pytest.raises(ValueError) as caught:
            clean()
        message = str(caught.value)
        assert message.startswith(f"{what} must not contain {code} ") and "\n" not in message
        assert char not in message  # shown escaped: the error line itself is not reordered


def test_names_keep_right_to_left_letters_and_joiners():
    """Only the controls are refused: Hebrew or Arabic letters, and the zero-width joiner of
    emoji sequences, are text."""
    assert clean_name("מחקר BN") == "מחקר BN"
    assert clean_name("دراسة") == "دراسة"
    assert clean_tags(["👩\u200d🔬"]) == ("👩\u200d🔬",)


def test_default_group_name_lists_variants_in_order_then_seeds_and_time():
    when = time.mktime((2026, 12, 1, 11, 26, 0, 0, 0, -1))  # local time
    configs = [TrainConfig(variant=v, seed=s) for s in range(3) for v in ("lenet", "lenet_bn1")]
    assert default_group_name(configs, when) == "lenet, lenet_bn1 · 3 seeds · 12-01 11:26"
    assert default_group_name([TrainConfig()], when) == "lenet · 1 seed · 12-01 11:26"
    order = ("lenet_bn2", "lenet", "lenet_fc_bn1", "lenet", "lenet_bn1", "lenet_fc_bn2")
    five = [TrainConfig(variant=v) for v in order]
    assert default_group_name(five, when) == (
        "lenet_bn2, lenet, lenet_fc_bn1 +2 more · 1 seed · 12-01 11:26"
    )


def test_a_group_keeps_its_first_name_and_unnamed_groups_get_a_default(tmp_path):
    store = RunStore(tmp_path / "home")
    store.create_runs(_configs(2), "sweep", group_name="  My sweep ")
    store.create_runs(_configs(1), "sweep", group_name="Another name")  # appended to it
    store.create_runs(_configs(4), "plain")
    assert store.group("sweep").name == "My sweep" and store.group("sweep").runs == 3
    plain = store.group("plain")
    assert plain.name == default_group_name(_configs(4), plain.created_at)
    first = plain.first_run
    assert plain.label == f"{plain.name} · 4 runs (#{first}–{first + 3}) · 4 active"  # one date
    with pytest.raises(ValueError, match="group name"):
        store.create_runs(_configs(1), "bad", group_name="a\nb")
    assert store.group("bad") is None  # nothing queued on a bad name


def test_rename_and_tag_runs_and_groups(filled):
    store, ids = filled
    first = ids["g-old"][0]
    store.rename_run(first, "  baseline ")
    assert store.get(first).name == "baseline" and store.get(first).display_name == "baseline"
    store.rename_run(first, "")
    assert store.get(first).name is None and store.get(first).display_name == "lenet seed 0"
    assert store.set_tags(first, ["lr", "bn", "lr"]) == ("lr", "bn")
    assert store.get(first).tags == "lr,bn" and store.get(first).tag_list == ("lr", "bn")
    assert store.set_tags(first, []) == () and store.get(first).tags is None
    with pytest.raises(ValueError, match="comma"):
        store.set_tags(first, ["a,b"])
    with pytest.raises(ValueError, match="run name must be 1 to 80"):
        store.rename_run(first, "x" * 81)
    with pytest.raises(ValueError, match="no run #9999"):
        store.rename_run(9999, "ghost")
    with pytest.raises(ValueError, match="no run #9999"):
        store.set_tags(9999, ["x"])

    assert store.rename_group("g-old", "  First try ") == "First try"
    assert store.group("g-old").name == "First try"
    with pytest.raises(ValueError, match="no group 'nope'"):
        store.rename_group("nope", "x")
    with pytest.raises(ValueError, match="group name"):
        store.rename_group("g-old", "")


def test_writes_to_a_read_only_store_raise_store_errors(filled):
    from bn_core.runs.store.errors import StoreError

    store, ids = filled
    name = store.group("g-old").name
    store.read_only = True  # as RunStore sets it for a file it cannot write
    for write in (
        lambda: store.rename_run(ids["g-old"][0], "x"),
        lambda: store.set_tags(ids["g-old"][0], ["x"]),
        lambda: store.rename_group("g-old", "x"),
        lambda: store.delete_runs(ids["g-old"]),
    ):
        with pytest.raises(StoreError) as caught:
            write()
        assert caught.value.kind == "readonly"
    assert len(store.list_groups()) == 4  # reading goes on
    assert store.group("g-old").name == name and store.get(ids["g-old"][0]).name is None


# -- the group list -------------------------------------------------------------------------------


def test_list_groups_newest_first_with_counts_variants_and_labels(filled):
    store, ids = filled
    groups = store.list_groups()
    assert [g.id for g in groups] == ["g-new", "g-study", "g-mixed", "g-old"]
    assert [(g.runs, g.active, g.completed) for g in groups] == [
        (15, 3, 0),
        (15, 0, 10),
        (15, 0, 12),
        (15, 0, 15),
    ]
    assert [g.newest_run for g in groups] == [max(ids[g.id]) for g in groups]
    assert [g.queued for g in groups] == [1, 0, 0, 0]
    assert all(g.variants == VARIANTS for g in groups)
    study = groups[1]
    assert study.name == "Original study"
    day = time.strftime("%Y-%m-%d", time.localtime(study.created_at))
    assert study.label.startswith(f"Original study · {day} ")
    study_ids = f"#{min(ids['g-study'])}–{max(ids['g-study'])}"
    assert study.label.endswith(f" · 15 runs ({study_ids}) · 10 completed")
    assert groups[0].label.endswith(" · 3 active") and " · 15 runs (#" in groups[0].label
    assert groups[3].label.endswith(" · all completed")
    assert groups[3].name.startswith("lenet, lenet_bn1, lenet_bn2 · 5 seeds · ")
    assert store.list_groups(limit=2) == groups[:2]
    assert store.group("g-study") == study and store.group("nope") is None


def test_variants_are_listed_in_the_order_they_were_first_queued(tmp_path):
    store = RunStore(tmp_path / "home")
    order = ["lenet_bn2", "lenet", "lenet_bn2", "lenet_bn1", "lenet"]
    store.create_runs([TrainConfig(variant=v) for v in order], "g")
    assert store.group("g").variants == ("lenet_bn2", "lenet", "lenet_bn1")


def test_list_groups_search_matches_names_and_ids_ignoring_case(filled):
    store, _ = filled
    assert [g.id for g in store.list_groups("ORIGINAL")] == ["g-study"]
    assert [g.id for g in store.list_groups("g-m")] == ["g-mixed"]
    assert [g.id for g in store.list_groups("  study  original ")] == ["g-study"]  # all words
    assert [g.id for g in store.list_groups("g-")] == ["g-new", "g-study", "g-mixed", "g-old"]
    assert store.list_groups("nothing like it") == []
    store.rename_group("g-old", "Étude")
    assert [g.id for g in store.list_groups("étude")] == ["g-old"]  # beyond ASCII
    with pytest.raises(ValueError, match="limit"):
        store.list_groups(limit=0)


def test_latest_finished_group_skips_a_newer_group_without_completed_runs(filled):
    store, _ = filled
    assert store.latest_group() == "g-new"  # cancelled and active runs only
    assert store.latest_finished_group() == "g-study"
    assert RunStore(store.home.parent / "empty").latest_finished_group() is None


# -- pages of runs --------------------------------------------------------------------------------


def test_runs_page_pages_through_every_run_once_with_the_total(filled):
    store, ids = filled
    every = sorted(i for group in ids.values() for i in group)
    seen = []
    for offset in range(0, 60, 25):
        page, total = store.runs_page(offset=offset, limit=25)
        assert total == 60
        seen += [r.id for r in page]
    assert seen == every[::-1]  # newest first by default
    page, total = store.runs_page(sort="id", descending=False, offset=55, limit=25)
    assert [r.id for r in page] == every[55:] and total == 60


def test_runs_page_filters_by_status_and_group(filled):
    store, ids = filled
    page, total = store.runs_page(statuses=ACTIVE)
    assert total == 3 and {r.id for r in page} == set(ids["g-new"][12:])
    page, total = store.runs_page(statuses=("failed", "diverged"), limit=4)
    assert total == 8 and len(page) == 4
    page, total = store.runs_page(group_id="g-mixed", statuses=("completed",))
    assert total == 12 and {r.id for r in page} == set(ids["g-mixed"][:12])


def test_runs_page_sorts_by_accuracy_with_empty_values_last_either_way(filled):
    store, _ = filled
    for descending in (True, False):
        page, total = store.runs_page(sort="accuracy", descending=descending, limit=60)
        values = [r.test_accuracy for r in page]
        known = [v for v in values if v is not None]
        assert total == 60 and len(known) == 37
        assert values[:37] == sorted(known, reverse=descending)  # then the runs without one
        assert values[37:] == [None] * 23


@pytest.mark.parametrize("sort", sorted(SORTS))
def test_every_sort_orders_the_whole_store(filled, sort):
    store, _ = filled
    page, total = store.runs_page(sort=sort, descending=False, limit=60)
    assert total == 60 and len({r.id for r in page}) == 60
    key = {
        "id": lambda r: r.id,
        "name": lambda r: r.display_name.lower(),
        "group": lambda r: store.group(r.group_id).name.lower(),
        "variant": lambda r: r.variant,
        "seed": lambda r: r.seed,
        "status": lambda r: r.status,
        "accuracy": lambda r: (r.test_accuracy is None, r.test_accuracy or 0),
        "created": lambda r: r.created_at,
        "node": lambda r: (r.node is None, r.node or ""),
    }[sort]
    assert [key(r) for r in page] == sorted(key(r) for r in page)


def test_runs_page_search_by_run_id_is_exact(filled):
    store, _ = filled
    for text in ("#12", "12", " #12 "):
        page, total = store.runs_page(search=text)
        assert total == 1 and [r.id for r in page] == [12], text
    assert store.runs_page(search="#510")[1] == 0  # not "ids containing 510"
    assert store.runs_page(search="#99999999999999999999999")[1] == 0


def test_runs_page_search_words_must_all_match_names_tags_groups_and_nodes(filled):
    store, ids = filled
    # 5 per group, and all of g-old: its default name lists the variants
    assert store.runs_page(search="lenet_bn2")[1] == 5 * 3 + 15
    assert store.runs_page(search="ORIGINAL study")[1] == 15  # the group's name
    assert store.runs_page(search="original lenet_bn2")[1] == 5  # both words
    assert store.runs_page(search="g-mixed")[1] == 15  # the group's id
    run = ids["g-old"][4]
    store.rename_run(run, "Baseline Ω")
    store.set_tags(run, ["lr-0.1", "keep"])
    store.update(run, node="gpu-box-7")
    for text in ("baseline ω", "KEEP", "gpu-box", "lr-0.1 baseline"):
        page, total = store.runs_page(search=text)
        assert total == 1 and page[0].id == run, text
    assert store.runs_page(search="keep original")[1] == 0
    assert store.runs_page(search="#12 g-old")[1] == 1  # run 12 is in g-old
    assert store.runs_page(search="#12 g-mixed")[1] == 0


def test_runs_page_refuses_unknown_sorts_and_bad_paging(filled):
    store, _ = filled
    for kwargs, words in [
        ({"sort": "loss"}, "sort must be one of id, name"),
        ({"offset": -1}, "offset"),
        ({"limit": 0}, "limit"),
        ({"statuses": ("done",)}, "'done' is not a run status"),
        ({"statuses": "failed"}, "a collection of run statuses"),  # not its letters
    ]:
        with pytest.raises(ValueError, match=words) as caught:
            store.runs_page(**kwargs)
        assert "\n" not in str(caught.value)


def test_steps_done_is_the_last_batch_step_of_each_run(filled):
    store, ids = filled
    group = ids["g-old"]
    assert store.steps_done(group[:5]) == {group[1]: 1, group[2]: 2, group[3]: 3}
    assert store.steps_done([]) == {}


# -- deleting and pruning -------------------------------------------------------------------------


def test_delete_runs_deletes_finished_runs_and_refuses_active_ones(filled):
    store, ids = filled
    new = ids["g-new"]
    for run_id in new[:3]:
        store.model_path(run_id).parent.mkdir(parents=True, exist_ok=True)
        store.model_path(run_id).write_text("model")
    assert store.delete_runs([*new, 9999]) == new[:12]  # the 3 active ones stay
    assert [r.id for r in store.list_runs(group_id="g-new")] == new[12:]
    assert not any(store.model_path(i).exists() for i in new[:3])
    assert store.group("g-new").runs == 3 and store.group("g-new").name == "Cancelled sweep"
    assert store.delete_runs(new) == []


def test_delete_runs_takes_metrics_and_an_emptied_groups_name(filled):
    store, ids = filled
    old = ids["g-old"]
    assert store.steps_done(old) != {}
    assert store.delete_runs(old) == old
    assert store.steps_done(old) == {} and store.group("g-old") is None
    db = sqlite3.connect(store.path)
    try:
        assert db.execute("SELECT COUNT(*) FROM groups WHERE id = 'g-old'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM groups").fetchone()[0] == 3
    finally:
        db.close()
    assert store.delete(ids["g-mixed"][0]) and not store.delete(ids["g-new"][-1])  # one at a time


def test_prune_candidates_by_groups_kept_age_and_status(filled):
    store, ids = filled
    finished_new = ids["g-new"][:12]
    assert store.prune_candidates(keep_groups=2) == ids["g-old"] + ids["g-mixed"]
    assert store.prune_candidates(keep_groups=0) == sorted(
        [*ids["g-old"], *ids["g-mixed"], *ids["g-study"], *finished_new]
    )  # never an active run
    assert store.prune_candidates(keep_groups=4) == []
    assert store.prune_candidates(older_than_days=25) == ids["g-old"] + ids["g-mixed"]
    assert store.prune_candidates(older_than_days=35) == ids["g-old"]
    assert store.prune_candidates(keep_groups=1, older_than_days=35) == ids["g-old"]  # both
    assert store.prune_candidates(keep_groups=0, statuses=("failed",)) == ids["g-mixed"][12:]
    for kwargs, words in [
        ({}, "say what to prune"),
        ({"keep_groups": -1}, "keep_groups"),
        ({"older_than_days": 0}, "older_than_days"),
        ({"keep_groups": 1, "statuses": ("queued",)}, "never pruned"),
    ]:
        with pytest.raises(ValueError, match=words):
            store.prune_candidates(**kwargs)


# -- at scale -------------------------------------------------------------------------------------


def test_a_5000_run_store_lists_groups_and_pages_with_the_right_counts(tmp_path):
    """The shape of bench/synthetic_store.py's stores: groups of 15 finished runs. Built with one
    executemany; checks the aggregate and paged queries count right (no timing here)."""
    store = RunStore(tmp_path / "home")
    config = {v: json.dumps(TrainConfig(variant=v).to_dict()) for v in VARIANTS}
    rows = []
    for i in range(5000):
        group, status = f"g{i // 15:04d}", "completed" if i % 5 else "diverged"
        variant = VARIANTS[i % 3]
        rows.append((group, variant, i % 5, config[variant], status, 1000.0 + i, 0.9))
    db = sqlite3.connect(store.path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at,"
            " test_accuracy) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    finally:
        db.close()

    groups = store.list_groups()
    assert len(groups) == 334 and groups[0].id == "g0333" and groups[0].runs == 5
    assert sum(g.runs for g in groups) == 5000 and sum(g.completed for g in groups) == 4000
    assert groups[1].variants == VARIANTS and groups[1].label.endswith(
        "15 runs (#4981–4995) · 12 completed"
    )
    assert [g.id for g in store.list_groups("g012")] == [f"g012{i}" for i in range(9, -1, -1)]
    page, total = store.runs_page(statuses=("diverged",), sort="created", offset=990, limit=50)
    assert total == 1000 and [r.id for r in page] == list(range(46, 0, -5))  # the last page
    page, total = store.runs_page(search="lenet_bn1", limit=50)
    assert total == 1667 and len(page) == 50 and page[0].id == 5000
    assert store.latest_finished_group() == "g0333"
    assert len(store.prune_candidates(keep_groups=10)) == 5000 - 5 - 9 * 15


def test_group_record_label_counts():
    def label(runs, active, completed):
        when = time.mktime((2026, 12, 1, 11, 26, 0, 0, 0, -1))
        record = GroupRecord("g", "Study", when, runs, active, completed, ("lenet",), runs + 9)
        return dataclasses.replace(record, first_run=10).label

    assert label(15, 3, 12) == (
        "Study · 2026-12-01 11:26 · 15 runs (#10–24) · 3 active · 12 completed"
    )
    assert label(1, 0, 1) == "Study · 2026-12-01 11:26 · 1 run (#10) · all completed"
    assert label(4, 0, 0) == "Study · 2026-12-01 11:26 · 4 runs (#10–13) · none completed"
    assert FINISHED[0] == "completed"


# -- nodes ----------------------------------------------------------------------------------------


def test_a_run_records_the_node_that_runs_it(tmp_path, monkeypatch):
    """The worker writes its host as it claims the run (the same write that makes it running);
    a run created owned (``study``) is running here from its first moment."""
    from bn_core.runs.execution import worker
    from bn_core.runs.execution.recording import Outcome
    from bn_core.runs.store import owner

    store = RunStore(tmp_path / "home")
    (run_id,) = store.create_runs([TrainConfig()], "g")
    assert store.get(run_id).node is None  # queued: no machine yet
    seen = {}

    def train(store, run_id, stop):  # what the worker sees once it has claimed the run
        seen["run"] = store.get(run_id)
        return Outcome("completed", test_accuracy=0.5)

    monkeypatch.setattr(worker, "_train", train)
    previous = signal.getsignal(signal.SIGTERM)  # run_worker sets its own
    try:
        assert worker.run_worker(run_id, store) == "completed"
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen["run"].status == "running" and seen["run"].node == socket.gethostname()
    assert store.get(run_id).node == socket.gethostname()
    owned = store.create_run(TrainConfig(), "study", owner=owner.current(), group_name="Study")
    assert store.get(owned).node == socket.gethostname() and store.group("study").name == "Study"
