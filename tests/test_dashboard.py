"""Unit tests of bn_core.views.dashboard: the pages' data shaping, with hand-computed values.

No Streamlit and no TensorFlow: the file runs in about a second.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from bn_core import data
from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.config import TrainConfig, field_spec
from bn_core.constants import DATASETS
from bn_core.data import DatasetError
from bn_core.views import comparison as cv
from bn_core.views import datasets, train_form
from bn_core.views import runs as live
from bn_core.views import runs_table as table
from tests import helpers
from tests.helpers import record


def result(variant, seed, val_acc, test_acc=None, **kwargs):
    """``tests.helpers.result`` with this file's numbers: loss 1/epoch, val_loss 2.0, 2 seconds
    and 1000 images/s an epoch, steps per epoch unknown."""
    n = len(val_acc)
    numbers = {
        "loss": [1.0 / (i + 1) for i in range(n)],
        "val_loss": [2.0] * n,
        "seconds": [2.0] * n,
        "images_per_second": [1000.0] * n,
    }
    return helpers.result(
        variant, seed, val_acc, test_acc, steps_per_epoch=None, history=numbers, **kwargs
    )


# ----------------------------------------------------------------------------- form choices


def test_batch_sizes_are_the_powers_of_two_within_the_limits():
    assert train_form.batch_size_choices() == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert field_spec("batch_size")["default"] in train_form.batch_size_choices()


def test_learning_rates_start_with_the_optimizer_default_then_a_log_scale():
    choices = train_form.learning_rate_choices()
    assert choices[0] is None and field_spec("learning_rate")["default"] is None
    rates = choices[1:]
    assert rates == sorted(rates) and rates[0] == 1e-4 and rates[-1] == 1e-1
    assert 5e-3 in rates and 3e-2 in rates and 1e-3 in rates  # 1e-3 x5 and x30
    assert train_form.format_learning_rate(None, "sgd") == "default (0.01)"
    assert train_form.format_learning_rate(3e-2) == "0.03"


def test_epsilons_are_the_decades_within_the_limits():
    assert train_form.epsilon_choices() == [float(f"1e{e}") for e in range(-12, 0)]
    assert 1e-8 in train_form.epsilon_choices() and len(train_form.epsilon_choices()) == 12


def test_steps_people_pick_for_epochs_and_window():
    assert train_form.step_choices("epochs") == [1, 2, 3, 5, 10, 20, 50, 100, 200]
    assert train_form.step_choices("window_size") == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert train_form.step_choices("epochs", 7, None) == [1, 2, 3, 5, 7, 10, 20, 50, 100, 200]
    # every preset's value is among them (quick versions and swept windows too)
    for p in study.PRESETS.values():
        for quick in (False, True):
            assert p.base_config(quick).epochs in train_form.step_choices("epochs")
        assert set(p.window_sizes) <= set(train_form.step_choices("window_size"))


def test_limits_and_field_errors_are_trainconfigs():
    assert train_form.limits("seed") == (0, 2**31 - 1)
    assert train_form.limits_text("val_size") == "0–59,000"
    assert train_form.field_error("seed", 0) is None
    assert train_form.field_error("seed", -5) == (
        "seed must be between 0 and 2147483647. Received: -5"
    )
    assert train_form.field_error("val_size", 99_999) == (
        "val_size must be between 0 and 59000. Received: 99999"
    )
    assert train_form.field_error("train_limit", 0) == (
        "train_limit must be between 2 and 60000. Received: 0"
    )
    # A field's own limits only: 32 images are too few for the default batch of 64, which
    # the form reports beside Start (train_configs), not under a field the user did not touch.
    assert train_form.field_error("train_limit", 32) is None
    assert train_form.field_error("seed", None) == "seed is required. Received: None"
    assert train_form.field_error("repeats", 10) is None
    assert train_form.field_error("repeats", 11) == "repeats must be between 1 and 10. Received: 11"


def test_seed_list():
    assert train_form.seed_list(7, 3) == [7, 8, 9]
    assert train_form.seed_list(0, 1) == [0]
    assert train_form.seed_list(0, 0) == train_form.seed_list(0, 11) == []
    assert train_form.seed_list(None, 2) == []


# ----------------------------------------------------------------------------- datasets


@pytest.fixture
def here(monkeypatch):
    """Pretend this machine holds exactly the datasets in the returned set (no data folder);
    a data folder is still searched for real."""
    real, present = data.locate, set(DATASETS)

    def locate(dataset, data_dir=None):
        if data_dir is not None:
            return real(dataset, data_dir)
        return f"/data/{dataset}" if dataset in present else None

    monkeypatch.setattr(data, "locate", locate)
    real_problem = data.search.header_problem  # the made-up /data/... folders are sound
    monkeypatch.setattr(
        data.search,
        "header_problem",
        lambda hit: None if str(hit).startswith("/data/") else real_problem(hit),
    )
    return present


def test_dataset_status(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "locate", lambda d, data_dir=None: "/data/mnist.npz")
    monkeypatch.setattr(data.search, "header_problem", lambda hit: None)  # a sound file
    assert datasets.dataset_status("mnist") == ("local", "available locally at /data/mnist.npz")
    monkeypatch.setattr(data, "locate", lambda d, data_dir=None: None)
    kind, text = datasets.dataset_status("mnist")
    assert kind == "download" and "~11 MB" in text and "BN_DATA_DIR" in text
    assert "--data-dir" not in text and "Data folder" in text  # the page's words

    def broken(d, data_dir=None):
        raise DatasetError("BN_DATA_DIR /nope does not exist")

    monkeypatch.setattr(data, "locate", broken)
    assert datasets.dataset_status("mnist") == ("error", "BN_DATA_DIR /nope does not exist")
    assert "BN_DATA_DIR /nope does not exist" in datasets.data_problem("mnist")


def test_an_error_without_a_message_is_named_not_raised(monkeypatch, tmp_path):
    """An ``OSError()`` (no message at all) from looking for the data is said by its name,
    in the status line and in a folder check alike; neither raises."""

    def silent(d, data_dir=None):
        raise OSError()

    monkeypatch.setattr(data, "locate", silent)
    assert datasets.dataset_status("mnist") == ("error", "OSError")
    assert datasets.check_folder(str(tmp_path), "mnist") == (None, "OSError")


def test_the_default_dataset_is_one_this_machine_has(here):
    assert datasets.default_dataset() == "mnist" == field_spec("dataset")["default"]
    here.discard("mnist")
    assert datasets.default_dataset() == "fashion_mnist"
    assert datasets.availability_help().endswith("On this machine: fashion_mnist; not yet: mnist.")
    here.clear()
    assert datasets.default_dataset() == "mnist"  # shown as unavailable
    assert datasets.availability_help().endswith(
        "On this machine: none; not yet: mnist, fashion_mnist."
    )
    assert train_form.initial_form_state()["train-dataset"] == "mnist"


def test_a_data_folder_must_hold_the_dataset_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    helpers.write_npz(tmp_path / "keras" / "datasets")  # found in the Keras cache...
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    helpers.write_npz(tmp_path / "mine")
    idx = tmp_path / "parent" / "mnist"  # IDX files in the usual subfolder (only looked at)
    idx.mkdir(parents=True)
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (idx / f"{name}-ubyte.gz").write_bytes(b"")
    assert datasets.check_folder("", "mnist") == (None, None)
    assert datasets.check_folder("  ", "mnist") == (None, None)
    for text, message in [
        ("mine", "must be an absolute path"),
        (str(tmp_path / "nope"), "does not exist or is not a folder"),
        (str(tmp_path / "file"), "does not exist or is not a folder"),
        (str(tmp_path / "empty"), "the data folder holds no mnist"),  # ...but not in it
        (str(tmp_path / "mine"), "the data folder holds no fashion_mnist"),
    ]:
        dataset = "fashion_mnist" if "fashion" in message else "mnist"
        folder, error = datasets.check_folder(text, dataset)
        assert folder is None and message in error and repr(text) in error, error
    assert datasets.check_folder(str(tmp_path / "mine"), "mnist") == (str(tmp_path / "mine"), None)
    assert datasets.check_folder(f" {tmp_path / 'mine'}/ ", "mnist")[0] == str(tmp_path / "mine")
    assert datasets.check_folder(str(tmp_path / "parent"), "mnist") == (
        str(tmp_path / "parent"),
        None,
    )


def test_download_reports_progress_or_why_it_failed(monkeypatch):
    seen = []

    def fetch(dataset, *, on_progress=None):
        on_progress(5, 10)
        return "/cache/mnist.npz"

    monkeypatch.setattr(data.download, "fetch", fetch)
    assert datasets.download("mnist", lambda d, t: seen.append((d, t))) == (
        "/cache/mnist.npz",
        None,
    )
    assert seen == [(5, 10)]

    def offline(dataset, *, on_progress=None):
        raise TimeoutError("timed out")

    monkeypatch.setattr(data.download, "fetch", offline)
    monkeypatch.setenv("BN_DATA_MIRROR", "http://127.0.0.1:9/")
    path, error = datasets.download("fashion_mnist")
    assert path is None
    assert error.startswith("The download of fashion_mnist from http://127.0.0.1:9/ failed")
    assert "(TimeoutError: timed out)" in error and "apt-get install dataset-fashion-mnist" in error
    assert datasets.progress_text("mnist", 4_000_000, 11_490_434) == (
        "mnist: 4.0 of 11.5 MB downloaded"
    )


# ----------------------------------------------------------------------------- train_configs

FORM = {k: field_spec(k)["default"] for k in train_form.FORM_FIELDS}


def test_train_configs_one_per_variant_and_seed(here):
    configs, errors = train_form.train_configs(FORM, ["lenet", "lenet_bn1"], [3, 4])
    assert errors == []
    assert [(c.variant, c.seed) for c in configs] == [
        ("lenet", 3),
        ("lenet", 4),
        ("lenet_bn1", 3),
        ("lenet_bn1", 4),
    ]
    assert all(c.data_dir is None and c.epochs == 10 for c in configs)


@pytest.mark.parametrize(
    "changes, variants, seeds, message",
    [
        ({}, [], [0], "at least one variant"),
        ({"epochs": 0}, ["lenet"], [0], "epochs must be between 1 and 200"),
        ({}, ["lenet"], [2**31 - 1, 2**31], "seed must be between"),
        ({"seed": -5}, ["lenet"], [-5], "seed must be between 0 and 2147483647. Received: -5"),
        ({}, ["lenet"], list(range(11)), "repeats must be between 1 and 10. Received: 11"),
        ({"train_limit": 32, "batch_size": 64}, ["lenet"], [0], "at most the 32 training"),
        ({"val_size": 59000, "batch_size": 4096}, ["lenet"], [0], "at most the 1000 training"),
        ({"data_dir": "/etc"}, ["lenet"], [0], "unknown settings: data_dir"),
    ],
)
def test_train_configs_refuses_bad_input(here, changes, variants, seeds, message):
    form = {**FORM, **{k: v for k, v in changes.items() if k != "seed"}}
    configs, errors = train_form.train_configs(form, variants, seeds)
    assert configs == []
    assert any(message in e for e in errors), errors


def test_train_configs_never_queue_runs_that_cannot_find_their_data(here, tmp_path):
    here.discard("mnist")
    configs, errors = train_form.train_configs(FORM, ["lenet"], [0])
    assert configs == [] and errors == [
        "mnist is not on this machine: download it or enter a data folder holding it "
        "(Train page, under Dataset) before Start."
    ]
    configs, errors = train_form.train_configs(FORM, ["lenet"], [0], data_dir="/etc")
    assert configs == [] and "the data folder holds no mnist" in errors[0]
    helpers.write_npz(tmp_path)
    configs, errors = train_form.train_configs(FORM, ["lenet"], [0], data_dir=str(tmp_path))
    assert errors == [] and configs[0].data_dir == str(tmp_path)
    fashion = {**FORM, "dataset": "fashion_mnist"}
    assert train_form.train_configs(fashion, ["lenet"], [0])[1] == []
    grid, errors = train_form.preset_grid("lr", True, "mnist")
    assert grid == [] and "mnist is not on this machine" in errors[0]
    grid, errors = train_form.preset_grid("lr", True, "mnist", str(tmp_path))
    assert errors == [] and len(grid) == 9 and {c.data_dir for c in grid} == {str(tmp_path)}


def test_quick_start_runs_the_quick_preset_on_data_this_machine_has(here):
    start = train_form.quick_start("figure1", {"train-dataset": "mnist"})
    assert start.problem is None and start.configs == study.preset_configs("figure1", True)
    assert "4 runs on mnist, 3 epochs on 5,000 training images" in start.caption
    assert start.label == "Queue the quick “Paper Figure 1” preset"
    here.discard("mnist")  # the form's dataset is gone: fall back to one that is here
    start = train_form.quick_start("figure1", {"train-dataset": "mnist"})
    assert {c.dataset for c in start.configs} == {"fashion_mnist"} and start.problem is None
    here.clear()
    start = train_form.quick_start("window", {})
    assert start.configs == [] and "is not on this machine" in start.problem


def test_the_sweep_form_starts_from_the_train_forms_choices(here):
    state = train_form.sweep_form_state({})
    assert state["sweep-dataset"] == "mnist" and state["sweep-epochs"] == 10
    assert state["sweep-variants"] == list(study.ROBUSTNESS_VARIANTS)
    train = {"train-dataset": "fashion_mnist", "train-epochs": 3, "train-quick": True}
    state = train_form.sweep_form_state(train)
    assert (state["sweep-dataset"], state["sweep-epochs"], state["sweep-quick"]) == (
        "fashion_mnist",
        3,
        True,
    )


# ----------------------------------------------------------------------------- runs


def test_run_label_and_grouping():
    runs = [record(1, group="a"), record(2, group="b"), record(3, group="a", variant="lenet_bn1")]
    assert live.run_label(runs[2]) == "#3 lenet_bn1 seed 0 (running)"
    groups = live.group_runs(runs)
    assert [(g, [r.id for r in rs]) for g, rs in groups] == [("a", [1, 3]), ("b", [2])]
    rows = [{"run_id": 2, "x": 1}, {"run_id": 1, "x": 2}, {"run_id": 2, "x": 3}]
    assert live.rows_by_run(rows) == {
        2: [{"run_id": 2, "x": 1}, {"run_id": 2, "x": 3}],
        1: [{"run_id": 1, "x": 2}],
    }


def test_format_duration():
    assert live.format_duration(42.4) == "42 s"
    assert live.format_duration(185) == "3 min 05 s"
    assert live.format_duration(3720) == "1 h 02 min"
    assert live.format_duration(None) == "?"


def batch(step, t, epoch=1):
    return {
        "step": step,
        "epoch": epoch,
        "batch": step - 100 * (epoch - 1),
        "epoch_progress": step / 100,
        "loss": 1.0,
        "accuracy": 0.5,
        "t": t,
    }


def test_progress_eta_from_batch_timestamps():
    # 2 epochs x 100 steps, batch 64. Steps 32 -> 96 in 16 s: 4 steps/s = 256 images/s.
    run = record(status="running", epochs=2, batch_size=64)
    info = live.progress_info(run, [batch(32, 100.0), batch(64, 108.0), batch(96, 116.0)], [])
    assert info["fraction"] == pytest.approx(96 / 200)
    assert info["eta_seconds"] == pytest.approx((200 - 96) / 4)  # 26 s
    assert info["images_per_second"] == pytest.approx(256)
    assert info["text"] == "epoch 1/2 · batch 96/100 · 256 img/s · ETA 26 s"


def test_progress_prefers_the_last_epoch_throughput():
    run = record(status="running", epochs=2)
    epochs = [{"epoch": 1, "step": 100, "images_per_second": 5000.0}]
    info = live.progress_info(run, [batch(32, 0.0), batch(128, 12.0, epoch=2)], epochs)
    assert info["images_per_second"] == 5000.0
    assert info["eta_seconds"] == pytest.approx(72 / 8)  # 96 steps in 12 s: 8 steps/s


def test_progress_text_never_shows_a_batch_beyond_the_epoch():
    # 31 steps per epoch, but the last event of a 32-step chunk reports batch 32
    run = dataclasses.replace(
        record(status="running", epochs=1), steps_per_epoch=31, total_steps=31
    )
    info = live.progress_info(run, [batch(32, 1.0)], [])
    assert info["text"].startswith("epoch 1/1 · batch 31/31") and info["fraction"] == 1.0
    # 46 steps per epoch, events at chunk ends: (epoch 1, batch 32), (1, 64 -> 46), (2, 32)
    run = dataclasses.replace(
        record(status="running", epochs=3), steps_per_epoch=46, total_steps=138
    )
    rows = [
        {**batch(32, 0.0), "batch": 32, "epoch_progress": 32 / 46},
        {**batch(64, 5.0), "batch": 64, "epoch_progress": 64 / 46},
        {**batch(78, 10.0, epoch=2), "batch": 32, "epoch_progress": 1 + 32 / 46},
    ]
    info = live.progress_info(run, rows, [])
    assert info["fraction"] == pytest.approx(78 / 138)
    assert info["eta_seconds"] == pytest.approx((138 - 78) / (46 / 10))
    fig = live.live_figure(rows, [], "loss")
    assert list(fig.data[0].x) == pytest.approx([32 / 46, 1.0, 1 + 32 / 46])


def test_progress_of_queued_and_finished_runs():
    queued = live.progress_info(record(status="queued"), [], [])
    assert queued == {
        "fraction": 0.0,
        "text": "queued",
        "eta_seconds": None,
        "images_per_second": None,
    }
    done = record(status="completed", epochs=1)
    info = live.progress_info(
        done, [batch(96, 1.0)], [{"epoch": 1, "step": 96, "images_per_second": 900.0}]
    )
    assert info["fraction"] == 1.0 and info["eta_seconds"] is None
    assert info["text"].startswith("completed after 1/1 epochs")
    failed = live.progress_info(record(status="failed", epochs=4), [batch(50, 1.0)], [])
    assert failed["fraction"] == pytest.approx(50 / 400) and "failed after 0/4" in failed["text"]


def test_progress_names_the_stage_while_a_run_waits_for_its_first_point():
    starting = live.progress_info(record(status="starting"), [], [])
    assert starting["text"] == "starting Python/TensorFlow" and starting["fraction"] == 0.0
    for stage in ("starting Python/TensorFlow", "loading data", "compiling"):
        info = live.progress_info(dataclasses.replace(record(), stage=stage), [], [])
        assert info["text"] == stage and info["eta_seconds"] is None
    # A store older than the stage column, or a worker that has not written one yet.
    assert live.progress_info(record(), [], [])["text"] == "starting Python/TensorFlow"
    # Once batches come, the progress line is about them, whatever the stage says.
    run = dataclasses.replace(record(epochs=2), stage="training")
    info = live.progress_info(run, [batch(32, 0.0), batch(64, 8.0)], [])
    assert info["text"] == "epoch 1/2 · batch 64/100 · 256 img/s · ETA 34 s"


def test_progress_shows_the_stage_not_eta_0_once_every_step_is_done():
    # 1 epoch x 100 steps, all done: the test set is being evaluated.
    run = dataclasses.replace(record(epochs=1), stage="evaluating on the test set")
    rows, epochs = [batch(32, 100.0), batch(100, 108.5)], [{"epoch": 1, "images_per_second": 900.0}]
    info = live.progress_info(run, rows, epochs)
    assert info["fraction"] == 1.0 and info["eta_seconds"] is None
    assert info["text"] == "epoch 1/1 · batch 100/100 · 900 img/s · evaluating on the test set"
    saving = live.progress_info(dataclasses.replace(run, stage="saving the model"), rows, epochs)
    assert saving["text"].endswith(" · saving the model") and "ETA" not in saving["text"]
    # Mid-run validation keeps its ETA: the step rate already includes validation pauses.
    run = dataclasses.replace(record(epochs=2), stage="validating")
    info = live.progress_info(run, [batch(32, 0.0), batch(100, 17.0)], [])
    assert info["eta_seconds"] == pytest.approx(100 / 4) and info["text"].endswith("ETA 25 s")
    # A run asked to stop has no ETA either: it is cancelling.
    stopping = dataclasses.replace(run, stage="training", cancel_requested=True)
    info = live.progress_info(stopping, [batch(32, 0.0), batch(64, 8.0)], [])
    assert info["eta_seconds"] is None and info["text"].endswith(" · cancelling")


def test_live_figure_has_batch_line_and_epoch_markers():
    batches = [batch(50, 0.0), batch(100, 1.0)]
    epochs = [{"epoch": 1, "loss": 0.9, "accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.7}]
    fig = live.live_figure(batches, epochs, "accuracy")
    names = [t.name for t in fig.data]
    assert names == ["train (batches)", "train (epoch)", "validation"]
    assert list(fig.data[0].x) == [0.5, 1.0] and fig.data[0].mode == "lines+markers"
    assert list(fig.data[2].x) == [1] and list(fig.data[2].y) == [0.7]
    assert fig.data[2].mode == "markers"
    assert len(live.live_figure([], [], "loss").data) == 0


# ----------------------------------------------------------------------------- compare


def test_group_curves_mean_and_sample_std():
    results = [
        result("lenet", 0, [0.80, 0.90]),
        result("lenet", 1, [0.90, 0.94]),
        result("lenet_bn1", 0, [0.95]),
    ]
    g = cmp.group_curves(results)
    lenet = g[(g["variant"] == "lenet") & (g["metric"] == "val_accuracy")]
    assert list(lenet["epoch"]) == [1, 2]
    assert list(lenet["mean"]) == pytest.approx([0.85, 0.92])
    assert list(lenet["std"]) == pytest.approx([math.sqrt(0.005), math.sqrt(0.0008)])
    assert list(lenet["n"]) == [2, 2]
    bn = g[(g["variant"] == "lenet_bn1") & (g["metric"] == "val_accuracy")]
    assert bn["mean"].tolist() == [0.95] and bn["std"].isna().all() and bn["n"].tolist() == [1]
    assert cmp.group_curves([]).empty


def two_lenets_one_bn1() -> list[dict]:
    """Runs 1-2: lenet seeds 0 and 1; run 3: lenet_bn1 seed 0. Two epochs each."""
    return [
        result("lenet", 0, [0.8, 0.9], run_id=1),
        result("lenet", 1, [0.9, 0.94], run_id=2),
        result("lenet_bn1", 0, [0.95, 0.96], run_id=3),
    ]


def test_band_figure_draws_a_band_only_for_several_seeds():
    fig = cv.band_figure(cmp.group_curves(two_lenets_one_bn1()), "val_accuracy")
    names = [t.name for t in fig.data]
    assert names == [
        "lenet -1 std",
        "lenet +1 std",
        "lenet (mean ± std, 2 seeds)",
        "lenet_bn1 (1 seed)",
    ]
    assert list(fig.data[1].y) == pytest.approx([0.85 + math.sqrt(0.005), 0.92 + math.sqrt(8e-4)])
    assert fig.data[1].fill == "tonexty"
    assert fig.layout.title.text == "Validation accuracy (1–2 seeds per variant)"


def test_band_figure_overlays_each_seed_on_request():
    curves = cmp.run_curves(two_lenets_one_bn1())
    fig = cv.band_figure(cmp.group_curves(curves), "val_accuracy", curves=curves)
    names = [t.name for t in fig.data]
    # A single seed is its own mean line: no thin duplicate of it.
    assert names == [
        "lenet -1 std",
        "lenet +1 std",
        "lenet #1 seed 0",
        "lenet #2 seed 1",
        "lenet (mean ± std, 2 seeds)",
        "lenet_bn1 (1 seed)",
    ]
    assert list(fig.data[3].y) == [0.9, 0.94] and fig.data[3].line.width == 1
    assert not fig.data[3].showlegend


def test_seeds_text():
    assert cmp.seeds_text([3, 3]) == "3 seeds per variant"
    assert cmp.seeds_text([1]) == "1 seed per variant"
    assert cmp.seeds_text([1, 3]) == "1–3 seeds per variant"
    assert cmp.seeds_text([]) == "no runs"


def test_small_multiples_one_panel_per_variant():
    fig = cv.small_multiples(cmp.run_curves(two_lenets_one_bn1()))
    assert [a.text for a in fig.layout.annotations] == ["lenet (2 seeds)", "lenet_bn1 (1 seed)"]
    # lenet: two seeds and a mean; lenet_bn1: one seed, no mean line
    assert [t.xaxis for t in fig.data] == ["x", "x", "x", "x2"]
    assert list(fig.data[2].y) == pytest.approx([0.85, 0.92])


def test_config_differences():
    a = TrainConfig(variant="lenet", seed=0)
    b = TrainConfig(variant="lenet_bn1", seed=1, epsilon=1e-3)
    c = TrainConfig(variant="lenet", seed=0, batch_size=128, epsilon=1e-3)
    assert cmp.config_differences([a, b, c]) == ["variant", "batch_size", "epsilon", "seed"]
    assert cmp.config_differences([a, b, c], ignore=cmp.BY_DESIGN) == ["batch_size", "epsilon"]
    assert cmp.config_differences([a.to_dict(), a.to_dict()]) == []
    assert cmp.config_differences([]) == []


def test_variant_summary_aggregates_seeds():
    results = [
        result("lenet_bn1", 0, [0.90, 0.95], test_acc=0.94, epsilon=1e-3),
        result("lenet", 0, [0.80, 0.90], test_acc=0.88),
        result("lenet", 1, [0.90, 0.94], test_acc=0.92),
        result("lenet_bn1", 1, [0.93, 0.96], test_acc=0.96, epsilon=1e-3),
    ]
    s = cmp.variant_summary(results).set_index("variant")
    assert list(s.index) == ["lenet", "lenet_bn1"]  # study order
    assert s.loc["lenet", "runs"] == 2 and s.loc["lenet", "seeds"] == "0, 1"
    assert s.loc["lenet", "test_accuracy_mean"] == pytest.approx(0.90)
    assert s.loc["lenet", "test_accuracy_std"] == pytest.approx(math.sqrt(0.0008))
    assert s.loc["lenet", "best_val_accuracy"] == pytest.approx((0.90 + 0.94) / 2)
    # lenet's mean curve: 0.85, 0.92 (best 0.92); lenet_bn1's: 0.915, 0.955 -> epoch 2
    assert s.loc["lenet", "epoch_reaching_baseline_best"] == 2
    assert s.loc["lenet_bn1", "epoch_reaching_baseline_best"] == 2
    assert s.loc["lenet", "mean_epoch_seconds"] == 2.0
    assert s.loc["lenet", "images_per_second"] == 1000.0
    assert s.loc["lenet", "config"] == "epsilon=1e-08"
    assert s.loc["lenet_bn1", "config"] == "epsilon=0.001"
    shown = cv.summary_display(cmp.variant_summary(results))
    assert shown.loc[0, "test accuracy"] == f"0.9000 ± {math.sqrt(0.0008):.4f}"


def test_variant_summary_without_baseline_or_test_accuracy():
    s = cmp.variant_summary([result("lenet_bn1", 0, [0.5], status="running")])
    assert s.loc[0, "completed"] == 0
    assert pd.isna(s.loc[0, "test_accuracy_mean"]) and pd.isna(s.loc[0, "test_accuracy_std"])
    assert pd.isna(s.loc[0, "epoch_reaching_baseline_best"]) and s.loc[0, "config"] == ""
    assert cv.summary_display(s).loc[0, "test accuracy"] == "–"


def test_result_dicts_from_the_store_feed_run_curves(tmp_path):
    from bn_core.runs.store.run_store import RunStore

    store = RunStore(tmp_path)
    first = store.create_run(TrainConfig(), "g")
    store.create_run(TrainConfig(variant="lenet_bn1", seed=3), "g")
    store.add_epoch(
        first,
        {
            "epoch": 1,
            "step": 100,
            "loss": 1.0,
            "accuracy": 0.5,
            "val_loss": 0.9,
            "val_accuracy": 0.6,
            "seconds": 3.0,
            "images_per_second": 2000.0,
        },
    )
    out = store.result_dicts(store.list_runs())
    pairs = [(r["run_id"], r["variant"], r["seed"]) for r in out]
    assert pairs == [(1, "lenet", 0), (2, "lenet_bn1", 3)]
    assert out[0]["history"]["val_accuracy"] == [0.6] and out[1]["history"]["loss"] == []
    curves = cmp.run_curves(out)
    assert curves[["run_id", "epoch", "val_accuracy"]].values.tolist() == [[1, 1, 0.6]]


@pytest.mark.parametrize(
    ("total", "size", "page", "expected"),
    [
        (0, 50, 1, (1, 1, 0)),  # no rows: still one page
        (120, 50, 1, (1, 3, 0)),
        (120, 50, 3, (3, 3, 100)),
        (120, 50, 7, (3, 3, 100)),  # past the last page (fewer rows than before): the last
        (120, 50, 0, (1, 3, 0)),
        (100, 50, 2, (2, 2, 50)),  # exactly full pages
    ],
)
def test_paging_clamps_the_page_and_counts_rows(total, size, page, expected):
    paging = table.paging(total, size, page)
    assert (paging.page, paging.pages, paging.offset) == expected


def test_the_line_under_the_table_says_which_rows_these_are():
    assert table.paging(1234, 50, 2).caption(50) == (
        "Runs 51–100 of 1,234 · page 2 of 25. Select rows to see their curves and actions."
    )
    assert table.paging(0, 50, 1).caption(0) == "No runs match these filters · page 1 of 1."


def test_a_new_query_is_a_new_table_key():
    query = {"search": None, "statuses": None, "group_id": "g1"}
    key = table.table_key(query, "newest first", 1, 50)
    assert key == table.table_key(dict(query), "newest first", 1, 50)
    assert key.startswith("runs-table-")
    others = [
        table.table_key({**query, "group_id": "g2"}, "newest first", 1, 50),
        table.table_key(query, "oldest first", 1, 50),
        table.table_key(query, "newest first", 2, 50),
        table.table_key(query, "newest first", 1, 25),
    ]
    assert key not in others and len(set(others)) == 4


def test_the_queue_line_names_the_first_twelve():
    assert table.queued_line([record(i, status="queued") for i in (4, 5)]) == "queued: #4, #5"
    many = [record(i, status="queued") for i in range(1, 15)]
    line = table.queued_line(many)
    assert line.startswith("queued: #1, #2") and line.endswith("#12 …") and "#13" not in line


def test_the_note_under_a_selected_run_says_how_it_ended():
    failed = dataclasses.replace(record(status="failed"), error="ValueError: bad shape")
    assert table.ended_note(failed) == ("error", "Run failed: ValueError: bad shape")
    assert table.ended_note(record(status="diverged")) == (
        "error",
        "Run diverged: no message recorded",
    )
    cancelled = dataclasses.replace(record(status="cancelled"), error="cancelled by its user")
    assert table.ended_note(cancelled) == ("info", "Cancelled by its user.")
    assert table.ended_note(record(status="cancelled")) == ("info", "Cancelled.")
    done = dataclasses.replace(record(status="completed"), test_accuracy=0.98765, test_loss=0.05)
    assert table.ended_note(done) == ("caption", "Test accuracy **0.9877** · test loss 0.0500")
    no_loss = dataclasses.replace(done, test_loss=None)
    assert table.ended_note(no_loss) == ("caption", "Test accuracy **0.9877**")
    assert table.ended_note(record(status="completed")) is None  # no test numbers
    assert table.ended_note(record(status="running")) is None


def test_tags_are_split_at_commas_and_trimmed():
    assert table.split_tags(" wide, lr 0.1 ,,  ") == ["wide", "lr 0.1"]
    assert table.split_tags("") == table.split_tags(None) == []


def test_every_sort_and_page_size_is_one_the_store_takes(tmp_path):
    from bn_core.runs.store.run_store import RunStore

    store = RunStore(tmp_path / "home")
    for key, descending in table.SORTS.values():
        assert store.runs_page(sort=key, descending=descending, limit=1) == ([], 0)
    assert table.PAGE_SIZES == tuple(sorted(table.PAGE_SIZES))
