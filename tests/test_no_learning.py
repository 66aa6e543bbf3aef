"""The "no learning" flag: a finished run whose final accuracy stayed at chance (plain LeNet
with Adam at 30x its default rate completes on Fashion-MNIST at 10% accuracy, its loss stuck
at ln(10); Adam at learning rate 10, whose loss explodes, is "diverged"). The rule
(bn_core.results), result dicts (analysis), and where the Runs, Compare and Sweep pages show
it: their view functions, then the pages themselves in AppTest."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats as sp_stats

from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.analysis.summary import learned_nothing
from bn_core.config import TrainConfig
from bn_core.results import (
    CHANCE,
    MIN_CHANCE_MARGIN,
    TEST_IMAGES,
    chance_margin,
    final_accuracy,
    no_learning,
)
from bn_core.runs.store.run_store import RunStore
from bn_core.views import comparison as cv
from bn_core.views import runs as live
from bn_core.views.sweep import sweep_figure
from tests.helpers import open_page, open_with_link, result

# MNIST's test set holds 1,135 ones in 10,000: a network answering "1" to every image.
CONSTANT_ONE = 0.1135

# ----------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("n", [1, 10, 100, 1000, 9000, 10000, 60000])
def test_chance_margin_is_three_binomial_stds_but_at_least_the_floor(n):
    three_sd = 3 * sp_stats.binom(n, CHANCE).std() / n  # an independent reference
    assert chance_margin(n) == pytest.approx(max(three_sd, MIN_CHANCE_MARGIN), rel=1e-12)
    # Small samples: the binomial noise decides; large ones: the floor.
    assert (chance_margin(n) > MIN_CHANCE_MARGIN) == (n < 900)  # 3 sqrt(0.09 / 900) = 0.03


def test_chance_margin_refuses_an_empty_sample():
    with pytest.raises(ValueError, match="n_images must be at least 1. Received: 0"):
        chance_margin(0)


def test_final_accuracy_prefers_the_test_set_then_the_last_validation_value():
    assert final_accuracy(0.5, [0.2, 0.3], 9000) == (0.5, TEST_IMAGES)
    assert final_accuracy(None, [0.2, 0.3], 9000) == (0.3, 9000)
    assert final_accuracy(math.nan, [0.2, 0.3, None, math.nan], 9000) == (0.3, 9000)
    assert final_accuracy(None, [], 9000) == (None, 0)
    assert final_accuracy(None, [0.3], 0) == (None, 0)  # no validation images: no value


@pytest.mark.parametrize(
    ("status", "test", "val", "val_size", "expected"),
    [
        ("completed", CONSTANT_ONE, [], 9000, True),  # a constant answer beats chance a bit
        ("completed", 0.13, [], 9000, True),  # 0.10 + 0.03: the margin is inclusive
        ("completed", 0.1301, [], 9000, False),
        ("completed", 0.05, [], 9000, True),  # below chance is no learning either
        ("completed", 0.98, [0.1], 9000, False),  # the test accuracy decides
        ("completed", None, [0.9, 0.11], 9000, True),  # no test accuracy: the last val
        ("cancelled", None, [0.11], 9000, True),  # it learned nothing before it stopped
        ("interrupted", None, [0.5], 9000, False),
        ("cancelled", None, [], 9000, False),  # no epoch: nothing to judge
        ("completed", None, [0.18], 100, True),  # 100 images: 0.10 + 0.09
        ("completed", None, [0.20], 100, False),
        ("diverged", None, [0.1], 9000, False),  # its own status says what went wrong
        ("failed", 0.1, [0.1], 9000, False),
        ("running", None, [0.1], 9000, False),
        ("queued", None, [], 9000, False),
    ],
)
def test_no_learning(status, test, val, val_size, expected):
    assert no_learning(status, test, val, val_size) is expected


def test_learned_nothing_reads_a_result_dict():
    stuck = result("lenet", 0, [0.11, 0.1], test_acc=CONSTANT_ONE)
    assert learned_nothing(stuck)
    assert not learned_nothing(result("lenet", 0, [0.11, 0.9], test_acc=0.95))
    # A cancelled run: its validation curve, on its config's validation images.
    assert learned_nothing(result("lenet", 0, [0.16], status="cancelled", val_size=100))
    assert not learned_nothing(result("lenet", 0, [0.16], status="cancelled", val_size=9000))


# ----------------------------------------------------------------------------- views


def test_compare_summary_counts_and_marks_runs_that_learned_nothing():
    results = [
        result("lenet", 0, [0.9], test_acc=0.95),
        result("lenet", 1, [0.9], test_acc=0.96),
        result("lenet_fc_bn2", 0, [0.1], test_acc=CONSTANT_ONE),
        result("lenet_fc_bn2", 1, [0.9], test_acc=0.97),
    ]
    summary = cmp.variant_summary(results).set_index("variant")
    assert summary["no_learning"].to_dict() == {"lenet": 0, "lenet_fc_bn2": 1}
    shown = cv.summary_display(cmp.variant_summary(results)).set_index("variant")
    assert shown["no learning"].to_dict() == {"lenet": "–", "lenet_fc_bn2": "⚠ 1 of 2"}
    assert "No learning: runs that ended at chance" in cmp.STATS_NOTE


def lr_results() -> list[dict]:
    """lenet at x1 (two good seeds) and x30 (seed 0 stuck at chance, seed 1 diverged)."""
    return [
        result("lenet", 0, [0.9], 0.95, run_id=1),
        result("lenet", 1, [0.9], 0.96, run_id=2),
        result("lenet", 0, [0.1], CONSTANT_ONE, run_id=3, learning_rate=3e-2),
        result("lenet", 1, [0.1], None, run_id=4, status="diverged", learning_rate=3e-2),
    ]


def test_sweep_table_and_points_mark_runs_that_learned_nothing():
    table = study.sweep_table(lr_results())
    assert table["no_learning"].tolist() == [False, False, True, False]
    points = study.sweep_points(table).set_index("lr_multiplier")
    assert points["no_learning"].to_dict() == {1: 0, 30: 1}
    assert points.loc[30, "mean"] == pytest.approx(CONSTANT_ONE)  # kept in the mean, marked
    assert points.loc[30, "diverged"] == 1


def test_sweep_figure_circles_each_run_that_learned_nothing():
    fig = sweep_figure(study.sweep_table(lr_results()))
    (circles,) = [t for t in fig.data if t.marker.symbol == "circle-open"]
    assert list(circles.x) == [30] and list(circles.y) == [CONSTANT_ONE]
    assert circles.hovertext == ("lenet seed 0: no learning (test accuracy 0.1135, chance 0.1)",)
    assert "○ = no learning (1 run)" in fig.layout.title.text
    assert "✕ = diverged (1 run)" in fig.layout.title.text
    plain = sweep_figure(study.sweep_table(lr_results()[:2] + lr_results()[3:]))
    assert not [t for t in plain.data if t.marker.symbol == "circle-open"]
    assert "no learning" not in plain.layout.title.text


def finished(store: RunStore, test_accuracy: float | None, status: str = "completed", **config):
    """A run with one epoch (validation accuracy 0.1) that ended with ``status``."""
    run_id = store.create_run(TrainConfig(**config), "g")
    store.transition(run_id, ("queued",), "running", started_at=1.0)
    store.update(run_id, steps_per_epoch=100, total_steps=100)
    epoch = {"epoch": 1, "step": 100, "loss": 2.31, "accuracy": 0.1, "val_loss": 2.31}
    epoch |= {"val_accuracy": 0.1, "seconds": 1.0, "images_per_second": 1000.0}
    store.add_epoch(run_id, epoch)
    store.transition(run_id, ("running",), status, test_accuracy=test_accuracy, test_loss=2.31)
    return run_id


def test_runs_view_notes_a_run_that_learned_nothing(tmp_path):
    store = RunStore(tmp_path)
    stuck = store.get(finished(store, CONSTANT_ONE))
    good = store.get(finished(store, 0.97))
    cancelled = store.get(finished(store, None, status="cancelled", seed=1))
    rows = live.rows_by_run(store.epoch_metrics([stuck.id, good.id, cancelled.id]))
    assert live.no_learning_note(stuck, rows[stuck.id]) == (
        "No learning: final test accuracy 0.1135 is within chance (0.1 + 0.030 on 10,000 "
        "images); the run learned nothing (a lower learning rate usually helps)."
    )
    assert live.no_learning_note(good, rows[good.id]) is None
    note = live.no_learning_note(cancelled, rows[cancelled.id])
    assert note.startswith("No learning: final validation accuracy 0.1000 is within chance")
    assert "on 9,000 images" in note


# ----------------------------------------------------------------------------- pages


def badges(at) -> list[str]:
    """The text of every st.badge on the page (Streamlit draws them as markdown)."""
    return [m.value for m in at.markdown if "-badge[" in m.value]


def test_runs_page_shows_the_no_learning_badge_and_why(runner):  # noqa: F811
    stuck = finished(runner.store, CONSTANT_ONE, learning_rate=0.03)
    finished(runner.store, 0.97, seed=1)
    at = open_page("pages/runs.py")
    status = dict(zip(at.dataframe[0].value["run"], at.dataframe[0].value["status"], strict=True))
    assert status[stuck] == "completed · no learning" and status[stuck + 1] == "completed"
    at = open_with_link("pages/runs.py", runs=f"{stuck},{stuck + 1}")  # both selected
    flagged = [b for b in badges(at) if "no learning" in b]
    assert len(flagged) == 1 and "orange" in flagged[0]
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("No learning: final test accuracy 0.1135")
    assert at.container(key=f"selected-{stuck}") is not None


def test_compare_page_has_a_no_learning_column(runner):  # noqa: F811
    finished(runner.store, CONSTANT_ONE)
    finished(runner.store, 0.97, seed=1)
    finished(runner.store, 0.98, variant="lenet_fc_bn2")
    at = open_page("pages/compare.py")
    table = at.table[0].value
    assert table["no learning"].to_dict() == {"lenet": "⚠ 1 of 2", "lenet_fc_bn2": "–"}


def test_sweep_page_circles_runs_that_learned_nothing(runner):  # noqa: F811
    for lr, accuracy in ((None, 0.97), (3e-2, CONSTANT_ONE)):
        run_id = runner.store.create_run(TrainConfig(learning_rate=lr), "sweep-x")
        runner.store.transition(run_id, ("queued",), "running", started_at=1.0)
        runner.store.transition(run_id, ("running",), "completed", test_accuracy=accuracy)
    at = open_page("pages/train.py")
    at.switch_page("pages/sweep.py").run()
    assert not at.exception, [e.value for e in at.exception]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    (circles,) = [t for t in figure["data"] if t.get("marker", {}).get("symbol") == "circle-open"]
    assert circles["hovertext"] == ["lenet seed 0: no learning (test accuracy 0.1135, chance 0.1)"]
    table = at.table[0].value
    assert table.set_index("lr_multiplier")["no_learning"].to_dict() == {1: 0, 30: 1}
