"""The Streamlit pages, driven headless with streamlit.testing.v1.AppTest.

Every test gets a fresh run store in tmp_path and a JobRunner whose backend only records
what it would start (its scheduler thread is never started), so nothing trains here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bn_core import data
from bn_core.config import TrainConfig, field_spec
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunRecord, RunStore
from pages import _runner, _ui
from tests.conftest import assert_runs_without_tensorflow
from tests.helpers import APP, PAGES, open_page, open_with_link, seed_group


def click_and_list_runs(
    at: AppTest, runner: JobRunner, button: str = "train-start"
) -> list[RunRecord]:
    """Click ``button``, fail on any exception or error it shows, return the store's runs."""
    at.button(key=button).click().run()
    assert not at.exception and not at.error
    return runner.store.list_runs()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(runner, page):
    at = open_page(page)
    assert not at.error
    if page in ("pages/runs.py", "pages/compare.py"):
        assert "start" in at.info[0].value.lower()


def test_a_page_as_first_request_is_handed_over_to_app_py(runner, monkeypatch):
    """A fresh server's first request for /about runs pages/about.py without app.py
    (Streamlit's pages-directory mode, in which AppTest starts every run). use_navigation
    hands over once: the rerun runs app.py (which calls get_runner; the About page never
    does), then the page, once."""
    calls = []
    monkeypatch.setattr(_runner, "get_runner", lambda: calls.append("get_runner") or runner)
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page("pages/about.py").run()  # the session's first run
    assert not at.exception, [e.value for e in at.exception]
    assert calls, "app.py did not run"
    assert [t.value for t in at.title] == ["About BN Lab"]
    assert at.session_state[_ui.FRAMED]


# ----------------------------------------------------------------------------- Train


def test_train_widgets_start_at_trainconfig_defaults(runner, have):
    at = open_page("pages/train.py")  # on a machine that has MNIST
    names = (
        "dataset",
        "epochs",
        "window_size",
        "batch_size",
        "optimizer",
        "learning_rate",
        "epsilon",
        "activation",
        "seed",
        "val_size",
    )
    d = {name: field_spec(name)["default"] for name in names}
    assert at.selectbox(key="train-dataset").value == d["dataset"]
    assert at.select_slider(key="train-epochs").value == d["epochs"] == 10
    assert at.select_slider(key="train-window-size").value == d["window_size"] == 5
    assert at.select_slider(key="train-batch-size").value == d["batch_size"] == 64
    assert at.select_slider(key="train-epsilon").value == d["epsilon"] == 1e-8
    assert at.select_slider(key="train-learning-rate").value is d["learning_rate"] is None
    assert at.selectbox(key="train-optimizer").value == d["optimizer"]
    assert at.selectbox(key="train-activation").value == d["activation"]
    assert at.number_input(key="train-seed").value == d["seed"]
    assert at.number_input(key="train-val-size").value == d["val_size"]
    assert at.number_input(key="train-repeats").value == 1
    assert at.checkbox(key="train-quick").value is False
    assert at.number_input(key="train-train-limit").disabled
    assert at.multiselect(key="train-variants").value == ["lenet", "lenet_fc_bn2"]
    assert at.select_slider(key="train-epochs").options[-1] == str(field_spec("epochs")["max"])
    assert "BN at every hidden layer" in " ".join(c.value for c in at.caption)


def test_start_queues_one_run_per_variant_and_seed(runner, have):
    at = open_page("pages/train.py")
    at.multiselect(key="train-variants").set_value(["lenet", "lenet_bn1"])
    at.number_input(key="train-repeats").set_value(2)
    at.number_input(key="train-seed").set_value(7)
    at.select_slider(key="train-epsilon").set_value(1e-3)
    at.selectbox(key="train-dataset").set_value("fashion_mnist")
    at.checkbox(key="train-quick").check().run()
    runs = click_and_list_runs(at, runner)
    assert sorted((r.variant, r.seed) for r in runs) == [
        ("lenet", 7),
        ("lenet", 8),
        ("lenet_bn1", 7),
        ("lenet_bn1", 8),
    ]
    assert {r.status for r in runs} == {"queued"} and len({r.group_id for r in runs}) == 1
    config = runs[0].config
    assert (config.dataset, config.epsilon, config.data_dir) == ("fashion_mnist", 1e-3, None)
    assert config.train_limit == 5000 and config.epochs == 10
    assert "Queued 4 run(s)" in at.success[0].value
    assert at.page_link[0].proto.page == "runs"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda at: at.multiselect(key="train-variants").set_value([]), "at least one variant"),
        (
            lambda at: (
                at.checkbox(key="train-quick").check().run(),
                at.number_input(key="train-train-limit").set_value(32),
            ),
            "batch_size must be at most the 32 training images left",
        ),
        (
            lambda at: (
                at.number_input(key="train-seed").set_value(2**31 - 1),
                at.number_input(key="train-repeats").set_value(2),
            ),
            "seed must be between",
        ),
    ],
)
def test_bad_input_shows_an_error_and_queues_nothing(runner, have, setup, message):
    at = open_page("pages/train.py")
    setup(at)
    at.button(key="train-start").click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert runner.store.list_runs() == [] and not at.success


def test_a_preset_fills_the_form(runner, have):
    at = open_page("pages/train.py")
    at.selectbox(key="train-preset").set_value("original").run()
    assert at.multiselect(key="train-variants").value == [
        "lenet",
        "lenet_bn1",
        "lenet_bn2",
        "lenet_fc_bn1",
        "lenet_fc_bn2",
    ]
    assert at.number_input(key="train-repeats").value == 3
    assert at.select_slider(key="train-epochs").value == 10
    assert at.checkbox(key="train-quick").value is False
    assert "**15 runs**" in " ".join(m.value for m in at.markdown)
    at.checkbox(key="train-preset-quick").check().run()  # the quick version
    assert at.select_slider(key="train-epochs").value == 3
    assert at.number_input(key="train-repeats").value == 2
    assert at.checkbox(key="train-quick").value is True
    assert at.number_input(key="train-train-limit").value == 5000
    assert not at.number_input(key="train-train-limit").disabled
    assert at.number_input(key="train-val-size").value == 1000
    at.selectbox(key="train-preset").set_value("figure1").run()
    assert at.multiselect(key="train-variants").value == ["lenet", "lenet_fc_bn2"]
    from bn_core.constants import PROBE_EVERY_DEFAULT

    assert at.number_input(key="train-probe-every").value == PROBE_EVERY_DEFAULT
    runs = click_and_list_runs(at, runner)
    assert sorted((r.variant, r.seed) for r in runs) == [
        ("lenet", 0),
        ("lenet", 1),
        ("lenet_fc_bn2", 0),
        ("lenet_fc_bn2", 1),
    ]
    assert {(r.config.probe_every, r.config.epochs, r.config.train_limit) for r in runs} == {
        (PROBE_EVERY_DEFAULT, 3, 5000)
    }
    assert not at.get("warning") or all("Session State" not in w.value for w in at.warning)


def test_a_sweep_preset_queues_its_whole_grid(runner, have):
    at = open_page("pages/train.py")
    assert not [b for b in at.button if b.key == "train-preset-start"]
    at.selectbox(key="train-preset").set_value("lr").run()
    assert at.select_slider(key="train-learning-rate").value is None  # the x1 point
    runs = click_and_list_runs(at, runner, "train-preset-start")
    assert len(runs) == 27 and len({r.group_id for r in runs}) == 1
    assert {r.config.learning_rate for r in runs} == {None, 5e-3, 3e-2}
    assert "Queued 27 run(s)" in at.success[0].value


# ----------------------------------------------------------------------------- Train: the data


def start_is_refused(at: AppTest, runner: JobRunner, message: str) -> None:
    """Start is disabled (AppTest, like a browser, cannot click it) with ``message`` among the
    errors beside it, and nothing was queued."""
    assert at.button(key="train-start").disabled
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception and not at.success
    assert runner.store.list_runs() == []


def test_the_default_dataset_is_one_this_machine_has(runner, have):
    have("fashion_mnist")  # offline, no MNIST: TrainConfig's default cannot be used
    at = open_page("pages/train.py")
    dataset = at.selectbox(key="train-dataset")
    assert dataset.value == "fashion_mnist"
    assert dataset.options == ["mnist", "fashion_mnist"]
    assert dataset.help.endswith("On this machine: fashion_mnist; not yet: mnist.")
    assert "available locally" in " ".join(c.value for c in at.caption)
    assert not at.warning and not at.button(key="train-start").disabled
    assert len(click_and_list_runs(at, runner)) == 2


def test_an_unavailable_dataset_says_what_to_do_and_start_queues_nothing(runner, have):
    have("fashion_mnist")
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    warning = at.warning[0].value
    assert "not on this machine" in warning and "~11 MB" in warning
    assert "Data folder" in warning and "BN_DATA_DIR" in warning
    assert "--data-dir" not in warning  # the page's own words, not the command line's
    assert at.button(key="train-download").label == "Download now (~11 MB)"
    assert at.expander[0].proto.expanded  # the data folder field is in view
    start_is_refused(at, runner, "mnist is not on this machine: download it")


def test_with_no_dataset_at_all_start_queues_nothing(runner, have):
    have()
    at = open_page("pages/train.py")
    assert at.selectbox(key="train-dataset").value == field_spec("dataset")["default"]
    start_is_refused(at, runner, "is not on this machine")


def test_download_now_shows_its_progress_then_the_dataset_is_here(runner, have, monkeypatch):
    have("fashion_mnist")
    calls = []

    def fetch(dataset, *, on_progress=None):
        for done in (0, 4_000_000, 11_490_434):
            on_progress(done, 11_490_434)
        calls.append(dataset)
        have("fashion_mnist", dataset)
        return Path("/cache/mnist.npz")

    monkeypatch.setattr(data.download, "fetch", fetch)
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    at.button(key="train-download").click().run()
    assert calls == ["mnist"] and not at.exception
    assert "Downloaded mnist to /cache/mnist.npz." in at.success[0].value
    assert "available locally at /data/mnist" in " ".join(c.value for c in at.caption)
    assert not at.warning and not [b for b in at.button if b.key == "train-download"]
    runs = click_and_list_runs(at, runner)
    assert {r.config.dataset for r in runs} == {"mnist"}


def test_a_failed_download_says_why_and_queues_nothing(runner, have, monkeypatch):
    import urllib.error

    have("fashion_mnist")

    def fetch(dataset, *, on_progress=None):
        on_progress(4_000_000, 11_490_434)
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(data.download, "fetch", fetch)
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    at.button(key="train-download").click().run()
    assert not at.exception
    bar = at.get("progress")[0].proto
    assert bar.text == "mnist: 4.0 of 11.5 MB downloaded" and bar.value == 34
    error = at.error[0].value
    assert error.startswith("The download of mnist from ") and "failed (URLError:" in error
    assert "Connection refused" in error and "data folder" in error
    start_is_refused(at, runner, "mnist is not on this machine")


def test_a_data_folder_is_checked_then_given_to_the_runs(runner, have, tmp_path):
    from tests.helpers import write_npz

    have("fashion_mnist")
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    folder = at.text_input(key="train-data-dir")
    for text, message in (
        ("relative/folder", "the data folder must be an absolute path"),
        (str(tmp_path / "nope"), "the data folder does not exist or is not a folder"),
        (str(tmp_path), "the data folder holds no mnist"),
    ):
        folder.set_value(text).run()
        assert any(message in e.value for e in at.error), (text, [e.value for e in at.error])
        assert at.button(key="train-start").disabled
    write_npz(tmp_path / "mine")
    folder.set_value(str(tmp_path / "mine")).run()
    assert at.selectbox(key="train-dataset").help.endswith("machine: mnist, fashion_mnist.")
    assert f"available locally at {tmp_path / 'mine' / 'mnist.npz'}" in " ".join(
        c.value for c in at.caption
    )
    runs = click_and_list_runs(at, runner)
    assert {(r.config.dataset, r.config.data_dir) for r in runs} == {
        ("mnist", str(tmp_path / "mine"))
    }


# ----------------------------------------------------------------------------- Train: numbers


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train-seed", -5, "seed must be between 0 and 2147483647. Received: -5"),
        ("train-val-size", 99_999, "val_size must be between 0 and 59000. Received: 99999"),
        ("train-train-limit", 1, "train_limit must be between 2 and 60000. Received: 1"),
        ("train-repeats", 0, "repeats must be between 1 and 10. Received: 0"),
        ("train-repeats", 11, "repeats must be between 1 and 10. Received: 11"),
        ("train-probe-every", -16, "probe_every must be between 0 and 100000. Received: -16"),
    ],
)
def test_a_number_outside_its_limits_is_refused_not_replaced(runner, have, key, value, message):
    at = open_page("pages/train.py")
    at.checkbox(key="train-quick").check().run()  # enables the training-images field
    field = at.number_input(key=key)
    low, high = field.label.rsplit("(", 1)[1].rstrip(")").split("–")  # the label shows them
    assert not int(low.replace(",", "")) <= value <= int(high.replace(",", ""))
    field.set_value(value).run()
    assert at.number_input(key=key).value == value  # kept as typed, not clamped
    assert len([e for e in at.error if e.value == message]) == 1  # under the field
    start_is_refused(at, runner, message)  # and again beside Start


def test_limits_come_from_trainconfig():
    from bn_core.views import train_form

    assert train_form.limits_text("seed") == "0–2,147,483,647"
    assert train_form.limits_text("val_size") == "0–59,000"
    assert train_form.limits_text("repeats") == f"1–{train_form.MAX_REPEATS}"


def test_combinations_are_refused_too(runner, have):
    at = open_page("pages/train.py")
    at.number_input(key="train-val-size").set_value(59_000)
    at.select_slider(key="train-batch-size").set_value(4096).run()
    start_is_refused(at, runner, "batch_size must be at most the 1000 training images left")


def test_epochs_and_window_offer_the_steps_people_pick(runner, have):
    at = open_page("pages/train.py")
    epochs, window = at.select_slider(key="train-epochs"), at.select_slider(key="train-window-size")
    assert epochs.options == ["1", "2", "3", "5", "10", "20", "50", "100", "200"]
    assert window.options == ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000"]
    epochs.set_value(2)
    window.set_value(1).run()
    runs = click_and_list_runs(at, runner)
    assert {(r.config.epochs, r.config.window_size) for r in runs} == {(2, 1)}


# ----------------------------------------------------------------------------- Train: memory


TRAIN_WIDGETS = (
    "selectbox",
    "multiselect",
    "number_input",
    "select_slider",
    "checkbox",
    "text_input",
)


def form_values(at: AppTest) -> dict:
    """Every Train widget's value, by key."""
    return {w.key: w.value for kind in TRAIN_WIDGETS for w in at.get(kind) if w.key}


def test_the_form_survives_a_visit_to_another_page(runner, have):
    at = open_page("pages/train.py")
    at.selectbox(key="train-preset").set_value("figure1").run()
    at.selectbox(key="train-dataset").set_value("fashion_mnist")
    at.multiselect(key="train-variants").set_value(["lenet_bn1"])
    at.number_input(key="train-seed").set_value(7)
    at.select_slider(key="train-epochs").set_value(3)
    at.select_slider(key="train-learning-rate").set_value(5e-3)
    at.selectbox(key="train-activation").set_value("relu")
    at.checkbox(key="train-quick").check().run()
    at.number_input(key="train-train-limit").set_value(2000).run()
    chosen = form_values(at)
    at.switch_page("pages/runs.py").run()
    assert [t.value for t in at.title] == ["Runs"]
    at.switch_page("pages/train.py").run()
    assert not at.exception
    back = form_values(at)
    assert back == chosen and len(back) == 19  # every widget of the form
    assert back["train-seed"] == 7 and back["train-preset"] == "figure1"
    runs = click_and_list_runs(at, runner)
    assert sorted((r.variant, r.seed, r.config.epochs, r.config.train_limit) for r in runs) == [
        ("lenet_bn1", seed, 3, 2000)
        for seed in (7, 8, 9)  # figure1: 3 seeds
    ]


# ----------------------------------------------------------------------------- empty pages


@pytest.mark.parametrize(
    "page, button, preset, count",
    [
        ("pages/network.py", "network-quick-start", "figure1", 4),
        ("pages/window.py", "window-quick-start", "window", 6),
        ("pages/sweep.py", "sweep-quick-start", "lr", 9),
    ],
)
def test_an_empty_page_queues_its_quick_preset_in_one_click(
    runner, have, page, button, preset, count
):
    from bn_core.analysis import study

    have("fashion_mnist")
    at = open_page(page)
    assert "Quick version" in " ".join(c.value for c in at.caption)
    runs = click_and_list_runs(at, runner, button)
    assert [t.value for t in at.title] == ["Runs"]  # then watch them
    want = study.preset_configs(preset, quick=True, dataset="fashion_mnist")
    assert len(runs) == len(want) == count
    assert sorted(json.dumps(r.config.to_dict(), sort_keys=True) for r in runs) == sorted(
        json.dumps(c.to_dict(), sort_keys=True) for c in want
    )
    assert len({r.group_id for r in runs}) == 1
    assert runner.backend.started == []


@pytest.mark.parametrize("page", ["pages/network.py", "pages/window.py", "pages/sweep.py"])
def test_the_quick_preset_waits_for_data(runner, have, page):
    have()
    at = open_page(page)
    button = next(b for b in at.button if b.key.endswith("quick-start"))
    assert button.disabled and "is not on this machine" in button.proto.help
    assert runner.store.list_runs() == []


def test_the_quick_preset_uses_the_train_forms_dataset(runner, have):
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    at.switch_page("pages/network.py").run()
    runs = click_and_list_runs(at, runner, "network-quick-start")
    assert {r.config.dataset for r in runs} == {"mnist"}


def test_the_window_page_offers_no_second_study_while_runs_are_on_their_way(runner, have):
    runner.store.create_run(TrainConfig(), "g")
    at = open_page("pages/window.py")
    assert "1 run(s) queued or running" in " ".join(c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "window-quick-start"]


# ----------------------------------------------------------------------------- Runs


def seed_runs(store: RunStore) -> dict[str, int]:
    """A running run with metrics, a failed, a completed and a queued one."""
    ids = {}
    for name, variant in (
        ("running", "lenet"),
        ("failed", "lenet_bn1"),
        ("completed", "lenet_fc_bn2"),
        ("queued", "lenet"),
    ):
        ids[name] = store.create_run(TrainConfig(variant=variant, epochs=2), "g1")
    for name in ("running", "failed", "completed"):
        store.transition(ids[name], ("queued",), "running", started_at=1.0, pid=10**7)
        store.update(ids[name], steps_per_epoch=100, total_steps=200)
    for step in (32, 64, 96, 128):
        store.add_batch(
            ids["running"],
            {
                "step": step,
                "epoch": 1 + step // 100,
                "batch": step % 100 or 100,
                "epoch_progress": step / 100,
                "loss": 2.0 / step,
                "accuracy": 0.5,
            },
        )
    epoch = {
        "epoch": 1,
        "step": 100,
        "loss": 0.5,
        "accuracy": 0.8,
        "val_loss": 0.6,
        "val_accuracy": 0.75,
        "seconds": 2.0,
        "images_per_second": 3200.0,
    }
    store.add_epoch(ids["running"], epoch)
    store.add_epoch(ids["completed"], epoch)
    store.transition(ids["failed"], ("running",), "failed", error="dataset exploded on disk")
    store.transition(ids["completed"], ("running",), "completed", test_accuracy=0.9, test_loss=0.3)
    return ids


def test_runs_page_shows_what_trains_and_a_table_of_every_run(runner):
    ids = seed_runs(runner.store)
    at = open_page("pages/runs.py")
    texts = [p.proto.text for p in at.get("progress")]
    assert any("epoch 2/2 · batch 28/100 · 3,200 img/s" in t for t in texts), texts
    assert f"queued: #{ids['queued']}" in texts
    # Charts only for what trains (the running run's loss and accuracy) until rows are selected.
    assert len(at.get("plotly_chart")) == 2
    assert {f"cancel-{ids['running']}", "cancel-queued"} <= {b.key for b in at.button}
    table = at.dataframe[0].value
    assert list(table["run"]) == sorted(ids.values(), reverse=True)  # newest first
    status = dict(zip(table["run"], table["status"], strict=True))
    assert status == {ids[name]: name for name in ids}
    progress = dict(zip(table["run"], table["progress"], strict=True))
    assert progress[ids["running"]] == 128 / 200 and progress[ids["completed"]] == 1.0
    assert any(c.value.startswith("Runs 1–4 of 4 · page 1 of 1") for c in at.caption)


def test_runs_page_selected_runs_show_their_curves_errors_and_actions(runner):
    ids = seed_runs(runner.store)
    at = open_with_link("pages/runs.py", runs=f"{ids['failed']},{ids['completed']}")
    assert any("dataset exploded on disk" in e.value for e in at.error)
    keys = {b.key for b in at.button}
    assert {
        f"delete-{ids['failed']}",
        f"resume-{ids['failed']}",
        f"delete-{ids['completed']}",
    } <= keys
    # The running run's live pair, then the selection's overlaid loss and accuracy (one line
    # per run: the failed run has no metrics, so only the completed run's epoch markers).
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 4
    assert charts[2]["layout"]["hovermode"] == "x unified"
    at.button(key=f"delete-{ids['completed']}").click().run()
    assert runner.store.get(ids["completed"]) is None
    assert any("Deleted run" in s.value for s in at.success)
    assert not at.exception


def test_runs_page_cancel_and_rename(runner):
    ids = seed_runs(runner.store)
    at = open_page("pages/runs.py")
    at.button(key=f"cancel-{ids['running']}").click().run()
    assert runner.store.get(ids["running"]).cancel_requested
    at.button(key="cancel-queued").click().run()
    assert runner.store.get(ids["queued"]).status == "cancelled"
    at = open_with_link("pages/runs.py", runs=str(ids["failed"]))
    at.text_input(key=f"name-{ids['failed']}").input("exploding data")
    at.text_input(key=f"tags-{ids['failed']}").input("bug, disk")
    at.button(key=f"save-{ids['failed']}").click().run()
    run = runner.store.get(ids["failed"])
    assert (run.name, run.tag_list) == ("exploding data", ("bug", "disk"))
    table = at.dataframe[0].value
    assert table.loc[table["run"] == ids["failed"], "name"].item() == "exploding data"
    assert not at.exception
    assert runner.backend.started == []  # nothing was ever launched


def test_runs_page_filters_and_pages_in_the_store(runner):
    store = runner.store
    for group in ("first", "second", "third"):
        configs = [TrainConfig(variant="lenet", seed=s) for s in range(30)]
        store.create_runs(configs, group, group_name=f"{group} study")
    at = open_page("pages/runs.py")
    assert any(c.value.startswith("Runs 1–50 of 90 · page 1 of 2") for c in at.caption)
    at.number_input(key="runs-page").set_value(2).run()
    assert any(c.value.startswith("Runs 51–90 of 90 · page 2 of 2") for c in at.caption)
    assert list(at.dataframe[0].value["run"]) == list(range(40, 0, -1))
    at.text_input(key="runs-search").input("#17").run()
    assert list(at.dataframe[0].value["run"]) == [17]  # run 17 only, not 117 or 170
    at.text_input(key="runs-search").input("").run()
    at.selectbox(key="runs-group").set_value("second").run()
    assert sorted(at.dataframe[0].value["run"]) == list(range(31, 61))
    assert at.query_params["group"] == "second"  # the link holds the filter


# ----------------------------------------------------------------------------- Compare


def test_compare_page_summarises_two_variants_by_two_seeds(runner):
    seed_group(runner.store, "old", epochs=1)
    seed_group(runner.store, "study")
    at = open_page("pages/compare.py")
    selected = at.multiselect(key="compare-runs").value
    assert len(selected) == 4  # the latest group only
    table = at.table[0].value
    assert list(table.index) == ["lenet", "lenet_fc_bn2"]
    assert list(table["runs"]) == [2, 2]
    assert table["test accuracy"]["lenet"] == "0.9050 ± 0.0071"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # mean ± std and every run overlaid, of one metric
    band, overlaid = (json.loads(c.proto.spec) for c in charts[:2])
    names = [t.get("name") for t in band["data"]]
    assert "lenet (mean ± std, 2 seeds)" in names
    assert json.loads(charts[0].proto.config)["toImageButtonOptions"]["format"] == "png"
    # Every run overlaid: one legend entry each, and both charts read on one y range.
    legend = [t["name"] for t in overlaid["data"] if t.get("showlegend", True)]
    assert sorted(legend) == [
        "#5 lenet seed 0",  # the latest group: runs 5-8
        "#6 lenet seed 1",
        "#7 lenet_fc_bn2 seed 0",
        "#8 lenet_fc_bn2 seed 1",
    ]
    assert band["layout"]["yaxis"]["range"] == overlaid["layout"]["yaxis"]["range"]
    downloads = {b.key for b in at.get("download_button")}
    assert {"download-summary", "download-curves", "download-val_accuracy"} <= downloads
    at.toggle(key="compare-per-variant").set_value(True).run()
    panels = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert [a["text"] for a in panels["layout"]["annotations"]] == [
        "lenet (2 seeds)",
        "lenet_fc_bn2 (2 seeds)",
    ]


def test_compare_page_shows_statistics_over_three_seeds(runner):
    from scipy import stats as sp_stats

    seed_group(runner.store, seeds=(0, 1, 2))
    at = open_page("pages/compare.py")
    table = at.table[0].value
    assert list(table["n"]) == [3, 3]
    assert table["test accuracy"]["lenet"] == "0.9100 ± 0.0100"  # 0.90, 0.91, 0.92
    half = 4.302652729911275 * 0.01 / 3**0.5  # t_{0.975, 2} * std / sqrt(n)
    assert table["95% CI"]["lenet"] == f"[{0.91 - half:.4f}, {0.91 + half:.4f}]"
    assert table["Δ vs lenet"]["lenet_fc_bn2"] == "+0.0600"
    assert table["Δ vs lenet"]["lenet"] == "–" and table["p (Welch)"]["lenet"] == "–"
    p = sp_stats.ttest_ind([0.96, 0.97, 0.98], [0.90, 0.91, 0.92], equal_var=False).pvalue
    assert table["p (Welch)"]["lenet_fc_bn2"] == f"{p:.3g}"
    # lenet's mean val curve 0.83, 0.86, 0.89: best at epoch 3 (300 steps); lenet_fc_bn2's
    # 0.89, 0.92, 0.95 reaches 0.89 at epoch 1 (100 steps): x3.
    assert table["steps to lenet's best"].tolist() == ["300", "100"]
    assert table["speed-up"].tolist() == ["×1.00", "×3.00"]
    assert any("epoch-level resolution" in c.value for c in at.caption)
    charts = at.get("plotly_chart")
    figure = json.loads(charts[0].proto.spec)
    assert figure["layout"]["title"]["text"] == "Validation accuracy (3 seeds per variant)"
    assert len(figure["data"]) == 6  # two variants: band (2 traces) + mean
    at.selectbox(key="compare-metric").set_value("loss").run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["title"]["text"] == "Training loss (3 seeds per variant)"
    assert at.query_params["metric"] == "loss"  # the link holds it
    at.selectbox(key="compare-metric").set_value("val_accuracy").run()
    at.toggle(key="compare-seeds").set_value(True).run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t["name"] for t in figure["data"]]
    assert len(names) == 12 and sum(" seed " in n for n in names) == 6
    assert "download-report" in {b.key for b in at.get("download_button")}


def test_compare_page_after_deleting_a_selected_run(runner):
    seed_group(runner.store)
    at = open_page("pages/compare.py")
    first = at.multiselect(key="compare-runs").value[0]
    runner.store.delete(first)
    at.run()
    assert not at.exception
    assert first not in at.multiselect(key="compare-runs").value


# ----------------------------------------------------------------------------- About


def test_about_page_shows_the_formulas_and_variants(runner):
    at = open_page("pages/about.py")
    latex = " ".join(x.value for x in at.latex)
    assert r"\frac{m}{m-1}" in latex and r"\mu_\mathcal{B}" in latex
    assert len(at.dataframe[0].value) == 6


# ----------------------------------------------------------------------------- no TensorFlow


def test_the_ui_process_never_imports_tensorflow(tmp_path):
    """Every page runs (real cached runner, a store with finished runs) in a fresh interpreter;
    neither TensorFlow nor Keras ends up in sys.modules."""
    assert_runs_without_tensorflow(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        from bn_core.runs.store.run_store import RunRecord, RunStore
        from tests.helpers import seed_group
        seed_group(RunStore())  # finished runs only: the real runner must not start anything
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        for page in {list(PAGES[1:])!r}:
            at.switch_page(page).run()
            assert not at.exception, (page, [e.value for e in at.exception])
        """,
        tmp_path / "home",
    )
