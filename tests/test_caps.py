"""Caps on what one submission and the queue may hold (bn_core.runs.execution.caps), as
JobRunner.submit,
the CLI (``submit``, ``study --seeds``) and the Train and Sweep pages apply them.

The pages run headless in AppTest with test_app's runner, whose backend starts nothing."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from bn_core import cli
from bn_core.analysis.study import MAX_SEEDS, preset_configs
from bn_core.config import ConfigError, TrainConfig
from bn_core.runs.execution import caps
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore
from bn_core.settings import SettingError
from tests.helpers import RecordingBackend, open_page, write_npz

PROG = "python -m bn_core"


@pytest.fixture(autouse=True)
def default_caps(monkeypatch):
    """Each test starts from the defaults, whatever the environment running the tests says."""
    monkeypatch.delenv(caps.SUBMIT_ENV, raising=False)
    monkeypatch.delenv(caps.QUEUED_ENV, raising=False)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


# ----------------------------------------------------------------------------- the policy


def test_defaults():
    assert caps.max_runs_per_submit() == 200 == caps.DEFAULT_MAX_RUNS_PER_SUBMIT
    assert caps.max_queued() == 1000 == caps.DEFAULT_MAX_QUEUED


def test_the_environment_sets_the_caps(monkeypatch):
    monkeypatch.setenv(caps.SUBMIT_ENV, "5")
    monkeypatch.setenv(caps.QUEUED_ENV, " 7 ")
    assert (caps.max_runs_per_submit(), caps.max_queued()) == (5, 7)


@pytest.mark.parametrize("value", ["0", "-5", "lots", "2.5", "1e3", "٣"])  # last: Arabic 3
def test_an_invalid_value_is_a_setting_error_naming_it(monkeypatch, capsys, value):
    """Not a fallback: a typo must neither lift a cap nor pass unnoticed (bn_core.settings)."""
    monkeypatch.setenv(caps.SUBMIT_ENV, value)
    for _ in range(2):  # every read, not only the first
        with pytest.raises(SettingError) as caught:
            caps.max_runs_per_submit()
        assert str(caught.value) == (
            f"{caps.SUBMIT_ENV}={value!r} is not a whole number from 1 to 100000: fix or unset it"
        )
    with pytest.raises(SettingError):  # also where a submission asks
        caps.submit_problem(1, 0)
    assert capsys.readouterr().err == ""  # raised, never printed on the side


def test_an_empty_value_is_the_default_without_a_note(monkeypatch, capsys):
    monkeypatch.setenv(caps.QUEUED_ENV, "")
    assert caps.max_queued() == 1000
    assert capsys.readouterr().err == ""


def test_submit_problem_at_and_over_the_per_submission_cap(monkeypatch):
    monkeypatch.setenv(caps.SUBMIT_ENV, "10")
    assert caps.submit_problem(10, 0) is None
    assert caps.submit_problem(11, 0) == (
        "11 runs in one submission are more than the limit of 10 (BN_LAB_MAX_RUNS_PER_SUBMIT): "
        "queue them in parts of at most 10 (fewer seeds, variants or swept values each), or "
        "raise BN_LAB_MAX_RUNS_PER_SUBMIT"
    )


def test_submit_problem_at_and_over_the_queue_cap(monkeypatch):
    monkeypatch.setenv(caps.QUEUED_ENV, "1000")
    assert caps.submit_problem(150, 850) is None
    assert caps.submit_problem(151, 850) == (
        "151 more runs would put 1,001 in the queue, over its limit of 1,000 "
        "(BN_LAB_MAX_QUEUED): queue at most 150 now and the rest as queued runs start, "
        "cancel queued runs, or raise BN_LAB_MAX_QUEUED"
    )
    # A queue already over the cap (the cap was lowered) offers no room, never a negative one.
    assert "queue at most 0 now" in caps.submit_problem(1, 1200)


def test_check_submit_raises_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv(caps.SUBMIT_ENV, "3")
    caps.check_submit(3, 0)
    with pytest.raises(caps.CapError) as info:
        caps.check_submit(4, 0)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == caps.submit_problem(4, 0) and "\n" not in str(info.value)


def test_submit_note_states_both_caps():
    assert caps.submit_note(1, 0) == (
        "Queues 1 run (at most 200 per submission); 0 of at most 1,000 runs are queued now."
    )
    assert caps.submit_note(1234, 5).startswith("Queues 1,234 runs (")


# ----------------------------------------------------------------------------- the store and runner


def test_count_runs_counts_the_given_statuses(store):
    ids = [store.create_run(TrainConfig(seed=i), "g") for i in range(4)]
    assert store.count_runs(("queued",)) == 4
    store.transition(ids[0], ("queued",), "running")
    store.transition(ids[1], ("queued",), "cancelled")
    assert store.count_runs(("queued",)) == 2
    assert store.count_runs(("queued", "running")) == 3
    assert store.count_runs(("failed",)) == 0


def test_runner_submit_refuses_more_than_the_per_submission_cap(monkeypatch, store):
    monkeypatch.setenv(caps.SUBMIT_ENV, "3")
    jobs = JobRunner(store, backend=RecordingBackend())
    with pytest.raises(caps.CapError, match="limit of 3 .BN_LAB_MAX_RUNS_PER_SUBMIT"):
        jobs.submit([TrainConfig(seed=i) for i in range(4)])
    assert store.list_runs() == []  # nothing queued
    assert len(jobs.submit([TrainConfig(seed=i) for i in range(3)])) == 3


def test_runner_submit_refuses_to_fill_the_queue_past_its_cap(monkeypatch, store):
    monkeypatch.setenv(caps.QUEUED_ENV, "5")
    jobs = JobRunner(store, backend=RecordingBackend())
    first = jobs.submit([TrainConfig(seed=i) for i in range(3)])
    with pytest.raises(caps.CapError, match="put 6 in the queue, over its limit of 5"):
        jobs.submit([TrainConfig(seed=i) for i in range(3)])
    assert store.count_runs(("queued",)) == 3
    # Runs that left the queue make room again.
    store.transition(first[0], ("queued",), "running")
    assert len(jobs.submit([TrainConfig(seed=i) for i in range(3)])) == 3
    assert store.count_runs(("queued",)) == 5


# ----------------------------------------------------------------------------- the CLI


def test_cli_submit_over_the_queue_cap_exits_2_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(caps.QUEUED_ENV, "1")
    RunStore(tmp_path / "home").create_run(TrainConfig(), "earlier")
    with pytest.raises(SystemExit) as info:
        cli.main(["submit", "--epochs", "1"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"{PROG}: error: 1 more runs would put 2 in the queue")
    assert captured.out == "" and len(RunStore(tmp_path / "home").list_runs()) == 1


def test_study_seeds_have_an_upper_limit(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(preset_configs("window", seeds=MAX_SEEDS)) == 3 * MAX_SEEDS
    with pytest.raises(SystemExit) as info:
        cli.main(["study", "window", "--seeds", str(MAX_SEEDS + 1), "--out", "x"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line == (
        f"{PROG}: error: seeds must be at most {MAX_SEEDS} per grid point (101 seeds of preset "
        "window would be 303 runs); use fewer seeds. Received: 101 (see --help)"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "cap, argv, runs",
    [
        ("5", [], 10),  # with the cap at 5, a 10-run study started all 10
        (None, ["--seeds", "41"], 205),  # on the default cap of 200, 205 runs started
    ],
)
def test_study_is_bound_by_the_per_submission_cap_before_out_is_made(
    capsys, tmp_path, monkeypatch, cap, argv, runs
):
    """``study`` queues through JobRunner.submit, which applies the caps; the per-submission
    one is checked first, before --out, the study's store or the data are touched."""
    monkeypatch.chdir(tmp_path)
    if cap is not None:
        monkeypatch.setenv(caps.SUBMIT_ENV, cap)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_npz(data_dir)
    limit = int(cap or caps.DEFAULT_MAX_RUNS_PER_SUBMIT)
    with pytest.raises(SystemExit) as info:
        cli.main(
            ["study", "original", "--quick", *argv, "--data-dir", str(data_dir), "--out", "res"]
        )
    assert info.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line == (
        f"{PROG}: error: {runs} runs in one submission are more than the limit of {limit} "
        f"(BN_LAB_MAX_RUNS_PER_SUBMIT): queue them in parts of at most {limit} (fewer seeds, "
        "variants or swept values each), or raise BN_LAB_MAX_RUNS_PER_SUBMIT (see --help)"
    )
    assert captured.out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# ----------------------------------------------------------------------------- the pages


def sweep_page() -> AppTest:
    at = open_page("pages/train.py")
    at.switch_page("pages/sweep.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_sweep_page_says_the_cap_and_disables_start_above_it(runner, have, monkeypatch):  # noqa: F811
    monkeypatch.setenv(caps.SUBMIT_ENV, "5")
    at = sweep_page()
    # Its defaults: 3 variants x 3 learning rates x 1 seed.
    assert any("Queues 9 runs (at most 5 per submission)" in c.value for c in at.caption)
    (error,) = [e.value for e in at.error]
    assert error == caps.submit_problem(9, 0)
    assert at.button(key="sweep-start").disabled  # AppTest, like a browser, cannot click it
    monkeypatch.setenv(caps.SUBMIT_ENV, "9")
    at.run()
    assert not at.error and not at.button(key="sweep-start").disabled


def test_sweep_page_shows_a_cap_error_at_the_click_instead_of_raising(runner, have, monkeypatch):  # noqa: F811
    """The queue filled up between drawing the page and the click: the runner's own check."""
    at = sweep_page()
    assert not at.button(key="sweep-start").disabled

    def full(n_new, n_queued):
        raise caps.CapError("the queue is full (test)")

    monkeypatch.setattr(caps, "check_submit", full)
    at.button(key="sweep-start").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["the queue is full (test)"]
    assert runner.store.list_runs() == []


def test_train_page_disables_start_when_the_queue_is_full(runner, have, monkeypatch):  # noqa: F811
    monkeypatch.setenv(caps.QUEUED_ENV, "3")
    for seed in range(2):
        runner.store.create_run(TrainConfig(seed=seed), "earlier")
    at = open_page("pages/train.py")  # two variants x one seed: 2 + 2 > 3
    assert any("2 of at most 3 runs are queued now" in c.value for c in at.caption)
    assert [e.value for e in at.error] == [caps.submit_problem(2, 2)]
    assert at.button(key="train-start").disabled
    at.multiselect(key="train-variants").set_value(["lenet"]).run()
    assert not at.error and not at.button(key="train-start").disabled
    at.button(key="train-start").click().run()
    assert runner.store.count_runs(("queued",)) == 3
