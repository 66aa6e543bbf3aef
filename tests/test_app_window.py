"""The Window size page (pages/window.py) driven headless with AppTest, and the TF-free helpers
behind it (bn_core.views.replay). Replays are pre-written JSON files; the page queues replay
jobs on a runner that never starts them, and the tests move the jobs on through the store as
the runner and the replay process would: nothing trains and TensorFlow is never needed here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.replays import files as replays
from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.run_store import RunStore
from bn_core.views import replay as rv
from pages import _runner
from tests.conftest import assert_runs_without_tensorflow
from tests.helpers import RecordingBackend

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "window.py")
CHOICES = ["1", "2", "5", "10", "50", "200", "epoch", "EMA"]


def make_payload(run_id: int, trained_window: int = 5, base: float = 0.80) -> dict:
    """A replay as bn_core.nn.replay writes it: 117 recorded batches, so 200 is clipped."""
    rows = []
    for i, choice in enumerate(CHOICES):
        kind = {"epoch": "epoch", "EMA": "ema"}.get(choice, "window")
        requested = int(choice) if kind == "window" else (117 if kind == "epoch" else None)
        window = min(requested, 117) if kind == "window" else 117
        rows.append(
            {
                "choice": choice,
                "kind": kind,
                "requested": requested,
                "window": window,
                "clipped": kind == "window" and requested > 117,
                "test_accuracy": base + 0.01 * i,
                "test_loss": 0.5 - 0.01 * i,
            }
        )
    return {
        "run_id": run_id,
        "variant": "lenet_fc_bn2",
        "dataset": "mnist",
        "trained_window": trained_window,
        "trained_test_accuracy": base + 0.02,
        "recorded_batches": 117,
        "epoch_batches": 117,
        "ema_momentum": 0.99,
        "ema_start_weight": 0.99**117,
        "windows": rows,
        "created": time.time(),
        "seconds": 1.0,
    }


def seed_store(store: RunStore) -> dict[str, int]:
    """An old group, then group "new": a replayed run, one with a model but no replay yet, a
    Keras-BN run, a plain LeNet, a failed run (no model) and a running one."""
    ids = {}
    runs = (
        ("old", "lenet_fc_bn2", "g-old", "completed"),
        ("replayed", "lenet_fc_bn2", "new", "completed"),
        ("fresh", "lenet_bn2", "new", "cancelled"),
        ("keras", "lenet_keras_bn", "new", "completed"),
        ("plain", "lenet", "new", "completed"),
        ("failed", "lenet_fc_bn2", "new", "failed"),
        ("running", "lenet_fc_bn2", "new", "running"),
    )
    for name, variant, group, status in runs:
        ids[name] = store.create_run(TrainConfig(variant=variant), group)
        if status != "running":
            store.transition(ids[name], ("queued",), status, test_accuracy=0.8)
        else:
            store.transition(ids[name], ("queued",), "running")
        if status in ("completed", "cancelled"):
            store.model_path(ids[name]).parent.mkdir(exist_ok=True)
            store.model_path(ids[name]).write_bytes(b"model")  # the page only checks it exists
    replays.write_replay(
        replays.replay_path(store.home, ids["replayed"]), make_payload(ids["replayed"])
    )
    return ids


@pytest.fixture
def store(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    st.cache_resource.clear()
    fake = JobRunner(RunStore(home), backend=RecordingBackend())  # never .start()ed
    monkeypatch.setattr(_runner, "get_runner", lambda: fake)
    yield fake.store
    st.cache_resource.clear()


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_traces(at: AppTest) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


# ----------------------------------------------------------------------------- the page


def test_empty_store_says_what_to_do(store):
    at = open_page()
    assert "No finished runs yet" in at.info[0].value and not at.get("plotly_chart")


def test_default_selection_chart_and_table(store):
    ids = seed_store(store)
    at = open_page()
    # The latest group's replayable runs; the Keras, plain, failed and running ones are not.
    assert sorted(at.multiselect(key="window-runs").value) == [ids["replayed"], ids["fresh"]]
    assert ids["running"] not in at.multiselect(key="window-runs").options
    assert [b.key for b in at.button] == [f"window-replay-{ids['fresh']}"]
    traces = chart_traces(at)
    assert [t["name"] for t in traces] == [
        f"#{ids['replayed']} lenet_fc_bn2 seed 0 (completed)",
        f"#{ids['replayed']} lenet_fc_bn2 seed 0 (completed): trained window",
    ]
    assert traces[0]["x"] == CHOICES and traces[1]["x"] == ["5"]
    assert traces[0]["marker"]["symbol"][5] == "circle-open"  # 200 clipped to 117
    table = at.table[0].value
    assert list(table.index) == CHOICES
    column = table.iloc[:, 0]
    assert column["5"] == "0.8200 ★" and column["200"] == "0.8500 (W = 117)"
    assert any("0.99^117" in c.value for c in at.caption)
    assert store.replay_jobs() == {}  # nothing asked for


def infos(at: AppTest) -> list[str]:
    return [i.value for i in at.info]


def progress_bars(at: AppTest) -> list[tuple[int, str]]:
    return [(bar.proto.value, bar.proto.text) for bar in at.get("progress")]


def test_replay_button_queues_a_job_that_waits_its_turn_then_shows_its_result(store):
    ids = seed_store(store)
    fresh = ids["fresh"]
    earlier = store.create_run(TrainConfig(), "other")  # a training run queued before it
    at = open_page()
    at.button(key=f"window-replay-{fresh}").click().run()
    assert {i: j.status for i, j in store.replay_jobs().items()} == {fresh: "queued"}
    [line] = [i for i in infos(at) if "queued" in i]
    assert line.startswith(f"Replay of #{fresh} ") and line.endswith("queued: 1 job(s) ahead of it")
    assert not at.button and progress_bars(at) == []  # no second start while it waits
    store.transition(earlier, ("queued",), "cancelled")
    at.run()
    assert any(i.endswith("queued: next in line") for i in infos(at)), infos(at)
    assert store.claim_replay(5, "runner") == fresh  # the runner starts it
    at.run()
    assert progress_bars(at) == [(0, f"Replay of #{fresh}: starting Python")]
    assert not any("queued" in i for i in infos(at)) and not at.button
    replays.write_replay(replays.replay_path(store.home, fresh), make_payload(fresh, 10))
    assert store.finish_replay(fresh, "done")
    at.run()
    assert not at.exception and progress_bars(at) == [] and not infos(at)
    stars = [t for t in chart_traces(at) if t["name"].endswith("trained window")]
    assert sorted(t["x"][0] for t in stars) == ["10", "5"]
    assert at.table[0].value.shape == (8, 2)


def test_a_running_replay_shows_its_stage_and_a_progress_bar(store):
    ids = seed_store(store)
    fresh = ids["fresh"]
    at = open_page()
    at.button(key=f"window-replay-{fresh}").click().run()
    store.claim_replay(5, "runner")
    at.run()
    assert progress_bars(at) == [(0, f"Replay of #{fresh}: starting Python")]  # nothing written
    path = replays.replay_progress_path(store.home, fresh)
    replays.write_progress(path, "loading the model (TensorFlow)")
    at.run()
    assert progress_bars(at) == [(0, f"Replay of #{fresh}: loading the model (TensorFlow)")]
    replays.write_progress(path, "replaying choice 3 of 8", 2, 8)
    at.run()
    assert progress_bars(at) == [(25, f"Replay of #{fresh}: replaying choice 3 of 8")]
    replays.write_replay(replays.replay_path(store.home, fresh), make_payload(fresh))
    store.finish_replay(fresh, "done")
    at.run()
    assert not at.exception and progress_bars(at) == []  # done: the chart instead
    assert len(chart_traces(at)) == 4


def test_a_failed_replay_shows_its_error_and_can_be_queued_again(store):
    ids = seed_store(store)
    fresh = ids["fresh"]
    at = open_page()
    at.button(key=f"window-replay-{fresh}").click().run()
    store.claim_replay(5, "runner")
    store.finish_replay(fresh, "failed", "mnist not found: tried ...")
    at.run()
    assert [e.value for e in at.error] == [
        f"Replay of run #{fresh} failed: mnist not found: tried ..."
    ]
    assert progress_bars(at) == [] and not any("queued" in i for i in infos(at))
    at.button(key=f"window-replay-{fresh}").click().run()
    job = store.replay_jobs([fresh])[fresh]
    assert (job.status, job.error) == ("queued", None)
    assert not at.error and any(i.endswith("queued: next in line") for i in infos(at))


def test_unreplayable_and_corrupt_runs_get_clear_messages(store):
    ids = seed_store(store)
    replays.replay_path(store.home, ids["replayed"]).write_text("{not json")
    at = open_page()
    at.multiselect(key="window-runs").set_value([ids["replayed"], ids["keras"], ids["plain"]])
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "Keras' BatchNormalization" in warnings and "nothing to replay" in warnings
    assert "not a valid replay file" in at.error[0].value
    assert [b.key for b in at.button] == [f"window-replay-{ids['replayed']}"]
    assert not at.get("plotly_chart")


def test_replay_all_queues_every_missing_replay_in_one_line(store):
    ids = seed_store(store)
    other = store.create_run(TrainConfig(variant="lenet_bn1"), "new")
    store.transition(other, ("queued",), "completed")
    store.model_path(other).write_bytes(b"model")
    at = open_page()
    at.button(key="window-replay-all").click().run()
    jobs = store.replay_jobs()
    assert sorted(jobs) == sorted([ids["fresh"], other])
    assert [jobs[i].ahead for i in sorted(jobs)] == [0, 1]
    places = {int(i.split()[2][1:]): i.split(" queued: ")[1] for i in infos(at) if "queued" in i}
    first, second = sorted(jobs)
    assert places == {first: "next in line", second: "1 job(s) ahead of it"}
    assert not at.button


def test_a_read_only_store_shows_replays_with_the_buttons_off(store, monkeypatch):
    ids = seed_store(store)
    other = store.create_run(TrainConfig(variant="lenet_bn1"), "new")
    store.transition(other, ("queued",), "completed")
    store.model_path(other).write_bytes(b"model")
    monkeypatch.setattr(store, "read_only", True)  # as RunStore finds a store it cannot write
    reason = _runner.read_only_reason(store)
    at = open_page()
    assert [w.value for w in at.warning] == [reason] and not at.error
    keys = [f"window-replay-{ids['fresh']}", f"window-replay-{other}", "window-replay-all"]
    assert [b.key for b in at.button] == keys
    assert all(b.disabled and b.help == reason for b in at.button)
    assert at.table[0].value.shape == (8, 1)  # the replay already made is still shown


def test_a_replay_the_store_cannot_take_is_one_error_at_the_top(store, monkeypatch):
    ids = seed_store(store)
    message = describe("full", store.path)

    def full(run_ids):
        raise StoreError("full", message, store.path)

    monkeypatch.setattr(store, "queue_replays", full)
    at = open_page()
    at.button(key=f"window-replay-{ids['fresh']}").click().run()
    assert not at.exception and [e.value for e in at.error] == [message]
    assert store.replay_jobs() == {}
    assert not at.button(key=f"window-replay-{ids['fresh']}").disabled  # room may come back
    at.run()
    assert not at.error  # said once, not on every rerun


def test_the_page_never_imports_tensorflow(tmp_path):
    """The page in a fresh interpreter, with a seeded store and a replay file to draw."""
    assert_runs_without_tensorflow(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        from bn_core.runs.store.run_store import RunStore
        from tests.test_app_window import seed_store
        seed_store(RunStore())
        at = AppTest.from_file({PAGE!r}, default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.get("plotly_chart"), "no chart"
        """,
        tmp_path / "home",
    )


# ----------------------------------------------------------------------------- replay_view


def test_progress_file_round_trip_and_files_that_are_not_one(tmp_path):
    path = replays.replay_progress_path(tmp_path, 3)
    assert path == tmp_path / "logs" / "replay-3.progress.json"
    assert replays.read_progress(path) is None
    replays.write_progress(path, "replaying choice 3 of 8", 2, 8)
    assert replays.read_progress(path) == (0.25, "replaying choice 3 of 8")
    replays.write_progress(path, "writing the result", 8, 8)
    assert replays.read_progress(path) == (1.0, "writing the result")
    replays.write_progress(path, "loading the test set")
    assert replays.read_progress(path) == (0.0, "loading the test set")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically
    for text in ("{", "[1]", '{"stage": 3, "done": 0, "total": 1}', '{"stage": "x"}', "\x80"):
        path.write_bytes(text.encode("latin-1"))
        assert replays.read_progress(path) is None, text


def test_the_replay_job_reports_each_stage_then_removes_its_progress_file(store, monkeypatch):
    """bn_core.runs.replays.job with its TensorFlow half stubbed: what the progress file says
    at each step, one replay call per choice, and the rows in the order of one call."""
    from bn_core.runs.replays import job as replay_job

    run_id = seed_store(store)["fresh"]  # lenet_bn2, cancelled, with a model file
    path = replays.replay_progress_path(store.home, run_id)
    seen = []

    class Layer:
        history_size = 117

        def recorded_batches(self):
            return [0.0] * 117, [1.0] * 117, [64] * 117

    def load_model(model_path):
        seen.append(("load_model", replays.read_progress(path)))
        return "model"

    def load_raw(dataset, data_dir):
        seen.append(("load_raw", replays.read_progress(path)))
        return "raw"

    def prepare(raw, val_size, train_limit):
        return type("Test", (), {"x_test": [0], "y_test": [0]})

    def replay(model, x_test, y_test, windows, ema_momentum=None):
        seen.append((tuple(windows), ema_momentum, replays.read_progress(path)))
        return make_payload(run_id)["windows"][len(seen) - 3 : len(seen) - 2]

    monkeypatch.setattr(replay_job, "load_model", load_model)
    monkeypatch.setattr(replay_job, "history_layers", lambda model: [Layer()])
    monkeypatch.setattr(replay_job.data, "load_raw", load_raw)
    monkeypatch.setattr(replay_job.data, "prepare", prepare)
    monkeypatch.setattr(replay_job, "replay", replay)
    written = replay_job.replay_run(run_id, store)

    assert seen[:2] == [
        ("load_model", (0.0, "loading the model (TensorFlow)")),
        ("load_raw", (0.0, "loading the test set")),
    ]
    windows = [(1,), (2,), (5,), (10,), (50,), (200,), ("epoch",), ()]
    assert [(w, ema) for w, ema, _ in seen[2:]] == [(w, None) for w in windows[:-1]] + [((), 0.99)]
    assert [p for _, _, p in seen[2:]] == [
        (i / 8, f"replaying choice {i + 1} of 8") for i in range(8)
    ]
    assert not path.exists()  # removed at the end
    payload = replays.load_replay(written, run_id)
    assert [row["choice"] for row in payload["windows"]] == CHOICES


def test_write_then_load_round_trips_and_refuses_non_finite_numbers(tmp_path):
    path = replays.replay_path(tmp_path, 3)
    assert path == tmp_path / "replays" / "run-3.json"
    assert replays.load_replay(path, 3) is None
    payload = make_payload(3)
    replays.write_replay(path, payload)
    assert replays.load_replay(path, 3) == payload
    bad = make_payload(3)
    bad["windows"][0]["test_loss"] = float("nan")
    with pytest.raises(ValueError):
        replays.write_replay(path, bad)
    assert replays.load_replay(path, 3)["windows"][0]["test_loss"] == 0.5  # the old file is intact
    assert [p.name for p in path.parent.iterdir()] == ["run-3.json"]


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda p: "[1, 2]", "expected an object"),
        (lambda p: json.dumps(p).replace("0.5", "NaN", 1), "NaN is not allowed"),
        (lambda p: json.dumps({**p, "run_id": 4}), "run_id should be 3"),
        (lambda p: json.dumps({**p, "windows": []}), "windows must be a non-empty list"),
        (lambda p: json.dumps({**p, "recorded_batches": "many"}), "recorded_batches is missing"),
        (
            lambda p: json.dumps({**p, "windows": [{**p["windows"][0], "test_accuracy": 7}]}),
            "wrong type or range",
        ),
        (lambda p: json.dumps({**p, "windows": [{"choice": "1"}]}), "must have the keys"),
        (lambda p: "\x80 not utf-8", "cannot be read"),
    ],
)
def test_load_replay_names_what_is_wrong(tmp_path, mutate, reason):
    path = replays.replay_path(tmp_path, 3)
    path.parent.mkdir()
    text = mutate(make_payload(3))
    path.write_bytes(text.encode("latin-1") if text.startswith("\x80") else text.encode())
    with pytest.raises(replays.ReplayFileError, match="run-3.json") as info:
        replays.load_replay(path, 3)
    assert reason in str(info.value) and len(str(info.value).splitlines()) == 1


def test_choice_order_and_describe_choice():
    assert rv.choice_order(["EMA", "200", "epoch", "1", "20", "5"]) == [
        "1",
        "5",
        "20",
        "200",
        "epoch",
        "EMA",
    ]
    frame = rv.replay_frame([make_payload(1)], {1: "run one"})
    assert frame["trained"].tolist() == [c == "5" for c in CHOICES]
    described = [rv.describe_choice(row) for _, row in frame.iterrows()]
    assert described[2] == "W = 5" and described[-1] == "EMA over 117 batches"
    assert described[5] == "W = 200 → 117 (clipped to the recorded batches)"
    figure = rv.replay_figure(frame)
    assert list(figure.layout.xaxis.categoryarray) == CHOICES
    assert figure.layout.xaxis.type == "category"
