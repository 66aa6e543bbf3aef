"""Unit tests of bn_core.views.overlay (runs overlaid in one chart) and the shared y ranges of
bn_core.views.charts: hand-computed values and independent references (pandas' ewm, Keras'
running means rebuilt from per-step values). No Streamlit, no TensorFlow."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from bn_core.views import overlay as ov
from bn_core.views.charts import share_y, y_extent
from bn_core.views.comparison import variant_color
from tests.helpers import record


def run(run_id: int, variant: str = "lenet", seed: int = 0, steps_per_epoch: int | None = 10):
    return dataclasses.replace(
        record(run_id, status="completed", variant=variant, seed=seed),
        steps_per_epoch=steps_per_epoch,
    )


def keras_rows(losses: np.ndarray, per_execution: int, t0: float = 0.0) -> list[dict]:
    """The batch rows the engine would store for per-step ``losses`` (epochs, steps): at the
    end of every ``per_execution`` steps the running mean of the epoch so far. The closing
    event of an epoch reports the end of its whole chunk (the overshoot progress_info caps);
    accuracy is 1 - loss."""
    epochs, steps = losses.shape
    rows = []
    for e in range(epochs):
        for end in range(per_execution, steps + per_execution, per_execution):
            mean = float(losses[e, : min(end, steps)].mean())
            rows.append(
                {
                    "epoch": e + 1,
                    "batch": end,
                    "step": e * steps + end,
                    "epoch_progress": e + end / steps,
                    "loss": mean,
                    "accuracy": 1.0 - mean,
                    "t": t0 + e * steps + end,
                }
            )
    return rows


# ----------------------------------------------------------------------------- ema


def test_ema_by_hand_and_weight_zero_is_raw():
    # s1 = 0.5 -> 0.5 / 0.5; s2 = 0.25 + 1 -> 1.25 / 0.75; s3 = 0.625 + 1.5 -> 2.125 / 0.875
    np.testing.assert_allclose(ov.ema([1.0, 2.0, 3.0], 0.5), [1.0, 5 / 3, 2.125 / 0.875])
    np.testing.assert_array_equal(ov.ema([3.0, -1.0, 7.0], 0.0), [3.0, -1.0, 7.0])
    assert ov.ema([], 0.9).shape == (0,)


def test_ema_skips_non_finite_points_without_poisoning_later_ones():
    out = ov.ema([1.0, math.nan, math.inf, 2.0, None], 0.5)
    assert math.isnan(out[1]) and math.isnan(out[2]) and math.isnan(out[4])
    np.testing.assert_allclose(out[[0, 3]], [1.0, 5 / 3])  # as if the gaps were not there


def test_ema_equals_pandas_adjusted_ewm():
    # pandas' adjust=True mean is sum(w^i y_(k-i)) / sum(w^i): the debiased EMA, written apart.
    y = np.random.default_rng(0).normal(size=200)
    y[[5, 50, 51]] = np.nan
    for weight in (0.3, 0.6, 0.95):
        ref = pd.Series(y).ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean().to_numpy()
        out = ov.ema(y, weight)
        finite = np.isfinite(y)
        np.testing.assert_allclose(out[finite], ref[finite], rtol=1e-12)
        assert np.isnan(out[~finite]).all()


@pytest.mark.parametrize("weight", [1.0, -0.1, 1.5])
def test_ema_refuses_a_weight_outside_0_1(weight):
    with pytest.raises(ValueError, match=r"smoothing weight must be in \[0, 1\). Received"):
        ov.ema([1.0], weight)


# ----------------------------------------------------------------------------- chunk_means


def test_chunk_means_by_hand():
    rows = [
        {"epoch": 1, "batch": 4, "step": 4, "epoch_progress": 0.4, "loss": 2.0, "accuracy": 0.5},
        {"epoch": 1, "batch": 8, "step": 8, "epoch_progress": 0.8, "loss": 3.0, "accuracy": 0.25},
        {"epoch": 2, "batch": 4, "step": 14, "epoch_progress": 1.4, "loss": 1.0, "accuracy": 1.0},
    ]
    rows = [{**r, "t": float(r["step"])} for r in rows]
    frame = ov.chunk_means(rows)
    assert list(frame.columns) == ["step", "epoch", "epoch_progress", "t", "loss", "accuracy"]
    np.testing.assert_allclose(frame["loss"], [2.0, (8 * 3 - 4 * 2) / 4, 1.0])  # 2, 4, 1
    np.testing.assert_allclose(frame["accuracy"], [0.5, (8 * 0.25 - 4 * 0.5) / 4, 1.0])
    np.testing.assert_array_equal(frame["step"], [4, 8, 14])  # no cap: as reported
    np.testing.assert_array_equal(frame["t"], [4.0, 8.0, 14.0])


def test_chunk_means_recover_the_per_step_means_of_keras_running_means():
    # 3 epochs of 10 steps every 4 steps: chunks 1-4, 5-8 and 9-10, the last reported at 12.
    losses = np.random.default_rng(1).uniform(0.1, 2.0, size=(3, 10))
    frame = ov.chunk_means(keras_rows(losses, 4), steps_per_epoch=10)
    expected = [losses[e, a:b].mean() for e in range(3) for a, b in ((0, 4), (4, 8), (8, 10))]
    np.testing.assert_allclose(frame["loss"], expected, rtol=1e-12)
    np.testing.assert_allclose(frame["accuracy"], 1.0 - np.asarray(expected), rtol=1e-12)
    # The overshooting closing events are capped at the epoch's end: 12 -> 10.
    np.testing.assert_array_equal(frame["step"], [4, 8, 10, 14, 18, 20, 24, 28, 30])
    np.testing.assert_allclose(frame["epoch_progress"][:3], [0.4, 0.8, 1.0])
    np.testing.assert_array_equal(frame["epoch"], [1, 1, 1, 2, 2, 2, 3, 3, 3])


def test_a_missing_mean_blanks_its_chunk_and_the_next_only():
    losses = np.ones((2, 12))
    rows = keras_rows(losses, 4)
    rows[1]["loss"] = None  # stored as NULL: it was not finite
    frame = ov.chunk_means(rows, steps_per_epoch=12)
    assert np.isnan(frame["loss"][1]) and np.isnan(frame["loss"][2])
    np.testing.assert_allclose(frame["loss"][[0, 3, 4, 5]], 1.0)  # the next epoch starts afresh
    np.testing.assert_allclose(frame["accuracy"], 0.0)


def test_chunk_means_of_no_rows_is_an_empty_frame():
    frame = ov.chunk_means([])
    assert frame.empty and list(frame.columns) == ov.CHUNK_COLUMNS


# ----------------------------------------------------------------------------- overlay_figure


@pytest.fixture
def group():
    """Two variants x two seeds, 2 epochs of 10 steps reported every 5, 2 s per step."""
    runs = [run(1, "lenet", 0), run(2, "lenet", 1), run(3, "lenet_fc_bn2", 0)]
    runs.append(run(4, "lenet_fc_bn2", 1))
    rng = np.random.default_rng(2)
    batches, epochs = {}, {}
    for r in runs:
        rows = keras_rows(rng.uniform(0.5, 1.5, size=(2, 10)), 5, t0=1000.0 + r.id)
        batches[r.id] = [{**row, "t": 1000.0 + r.id + 2 * row["step"]} for row in rows]
        epochs[r.id] = [
            {"epoch": e, "step": 10 * e, "val_loss": 1.0 / e, "val_accuracy": 0.5 + 0.1 * e}
            | {"t": 1000.0 + r.id + 20 * e + 1}
            for e in (1, 2)
        ]
    return runs, batches, epochs


def named(fig: go.Figure) -> list:
    return [t for t in fig.data if t.showlegend is not False]


def test_one_smoothed_line_per_run_over_its_faint_raw_points(group):
    runs, batches, epochs = group
    fig = ov.overlay_figure(runs, batches, epochs, "loss", smoothing=0.6)
    assert len(fig.data) == 8
    for raw, smooth, r in zip(fig.data[::2], fig.data[1::2], runs, strict=True):
        chunks = ov.chunk_means(batches[r.id], steps_per_epoch=10)
        np.testing.assert_allclose(raw.y, chunks["loss"])
        np.testing.assert_allclose(smooth.y, ov.ema(chunks["loss"], 0.6))
        np.testing.assert_array_equal(raw.x, [5, 10, 15, 20])
        assert raw.opacity == ov.RAW_OPACITY and raw.showlegend is False
        assert raw.hoverinfo == "skip" and raw.legendgroup == smooth.legendgroup == str(r.id)
        assert raw.line.color == smooth.line.color == variant_color(r.variant)
        assert smooth.name == f"#{r.id} {r.variant} s{r.seed}"
        assert smooth.hovertemplate == "%{fullData.name}: %{y:.4f}<extra></extra>"
    # Colour per variant, dash per seed.
    lines = named(fig)
    assert lines[0].line.color == lines[1].line.color != lines[2].line.color
    assert [t.line.dash for t in lines] == ["solid", "dash", "solid", "dash"]
    assert fig.layout.hovermode == "x unified"
    assert fig.layout.yaxis.title.text == "Training loss"
    assert fig.layout.xaxis.title.text == "training step"


def test_no_smoothing_draws_the_raw_line_alone_with_the_given_labels(group):
    runs, batches, epochs = group
    labels = {r.id: f"run {r.id}" for r in runs}
    fig = ov.overlay_figure(runs, batches, epochs, "accuracy", smoothing=0.0, labels=labels)
    assert [t.name for t in fig.data] == ["run 1", "run 2", "run 3", "run 4"]
    chunks = ov.chunk_means(batches[1], steps_per_epoch=10)
    np.testing.assert_allclose(fig.data[0].y, chunks["accuracy"])


def test_validation_metrics_come_from_the_epoch_rows_on_every_x_axis(group):
    runs, batches, epochs = group
    by_step = ov.overlay_figure(runs, batches, epochs, "val_loss", smoothing=0.0)
    np.testing.assert_array_equal(by_step.data[0].x, [10, 20])
    np.testing.assert_allclose(by_step.data[0].y, [1.0, 0.5])
    by_epoch = ov.overlay_figure(runs, batches, epochs, "val_accuracy", x="epoch", smoothing=0)
    np.testing.assert_array_equal(by_epoch.data[0].x, [1, 2])
    np.testing.assert_allclose(by_epoch.data[0].y, [0.6, 0.7])
    # Time counts from the run's first row (its first batch row, at step 5: t0 + 10).
    by_time = ov.overlay_figure(runs, batches, epochs, "val_loss", x="time", smoothing=0)
    np.testing.assert_allclose(by_time.data[0].x, [21 - 10, 41 - 10])
    assert by_time.layout.xaxis.title.text == "wall-clock time (s)"


def test_training_metrics_against_epochs_use_the_capped_epoch_progress(group):
    runs, batches, epochs = group
    fig = ov.overlay_figure(runs, batches, epochs, "loss", x="epoch", smoothing=0)
    np.testing.assert_allclose(fig.data[0].x, [0.5, 1.0, 1.5, 2.0])


def test_a_long_time_axis_counts_minutes(group):
    runs, batches, epochs = group
    slow = {i: [{**row, "t": row["step"] * 60.0} for row in rows] for i, rows in batches.items()}
    fig = ov.overlay_figure(runs, slow, epochs, "loss", x="time", smoothing=0)
    assert fig.layout.xaxis.title.text == "wall-clock time (min)"
    np.testing.assert_allclose(fig.data[0].x, [0.0, 5.0, 10.0, 15.0])  # steps 5..20, 1 min each


def test_log_y_and_a_given_y_range(group):
    runs, batches, epochs = group
    fig = ov.overlay_figure(runs, batches, epochs, "loss", log_y=True, y_range=(-1.0, 0.5))
    assert fig.layout.yaxis.type == "log"
    assert tuple(fig.layout.yaxis.range) == (-1.0, 0.5)
    assert ov.overlay_figure(runs, batches, epochs, "loss").layout.yaxis.type is None


def test_no_points_yet_is_a_figure_with_a_note(group):
    runs, _, _ = group
    fig = ov.overlay_figure(runs, {}, {}, "val_accuracy")
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["no points yet"]
    assert ov.overlay_figure([], {}, {}, "loss").layout.annotations[0].text == "no points yet"
    # A run with points and one without: only the first is drawn, and no note.
    fig = ov.overlay_figure(runs[:2], {1: group[1][1]}, {}, "loss", smoothing=0)
    assert len(fig.data) == 1 and not fig.layout.annotations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "lr"}, "metric must be one of"),
        ({"metric": "loss", "x": "wall"}, "x must be one of"),
        ({"metric": "loss", "smoothing": 1.0}, "smoothing weight must be in"),
    ],
)
def test_bad_arguments_raise_one_line_errors(group, kwargs, message):
    runs, batches, epochs = group
    with pytest.raises(ValueError, match=message):
        ov.overlay_figure(runs, batches, epochs, **kwargs)


# ----------------------------------------------------------------------------- shared y


def figure(*ys, visible=True) -> go.Figure:
    return go.Figure([go.Scatter(y=y, visible=visible) for y in ys])


def test_y_extent_pads_five_percent_over_every_visible_finite_value():
    figs = [figure([1.0, None, 3.0]), figure([2.0, math.inf, 5.0]), figure([100.0], visible=False)]
    assert y_extent(figs) == pytest.approx((1.0 - 0.2, 5.0 + 0.2))
    assert y_extent([figure([2.0, 2.0])]) == pytest.approx((1.9, 2.1))  # flat: still a band
    assert y_extent([go.Figure(), figure([None])]) is None


def test_y_extent_on_a_log_axis_is_in_log10_units_of_the_positive_values():
    low, high = y_extent([figure([0.0, -1.0, 0.01]), figure([10.0])], log=True)
    assert (low, high) == pytest.approx((-2.0 - 0.15, 1.0 + 0.15))
    assert y_extent([figure([0.0, -3.0])], log=True) is None


def test_share_y_puts_one_range_on_every_figure():
    figs = [figure([0.0, 1.0]), figure([-2.0, 0.5])]
    share_y(figs)
    for fig in figs:
        assert tuple(fig.layout.yaxis.range) == pytest.approx((-2.15, 1.15))
    empty = [go.Figure()]
    share_y(empty)
    assert empty[0].layout.yaxis.range is None
