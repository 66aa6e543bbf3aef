"""Presets, sweep grids, sweep tables and the comparison summary's statistics and speed-ups,
checked against hand-computed values. No TensorFlow, no Streamlit: runs in about a second."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sp_stats

from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.config import ConfigError, TrainConfig
from bn_core.constants import PROBE_EVERY_DEFAULT
from bn_core.variants import VARIANT_NAMES
from bn_core.views import comparison as cv
from bn_core.views.sweep import sweep_figure
from tests.helpers import lr_sweep_results, result

STUDY_FIVE = ["lenet", "lenet_bn1", "lenet_bn2", "lenet_fc_bn1", "lenet_fc_bn2"]


# ----------------------------------------------------------------------------- presets


def test_the_presets():
    assert list(study.PRESETS) == ["original", "figure1", "window", "lr", "batch-size"]
    titles = [p.title for p in study.PRESETS.values()]
    assert titles == [
        "Original study",
        "Paper Figure 1",
        "Window size",
        "Learning-rate robustness",
        "Batch-size robustness",
    ]
    for preset in study.PRESETS.values():
        assert set(preset.variants) <= set(VARIANT_NAMES) and preset.description
        assert 0 < preset.quick_minutes <= 5


def test_original_is_five_variants_by_three_seeds_by_ten_epochs():
    configs = study.preset_configs("original")
    assert len(configs) == 15
    assert sorted({c.variant for c in configs}) == sorted(STUDY_FIVE)
    assert sorted((c.variant, c.seed) for c in configs) == sorted(
        (v, s) for v in STUDY_FIVE for s in (0, 1, 2)
    )
    assert {c.epochs for c in configs} == {10}
    assert {(c.train_limit, c.val_size, c.dataset, c.batch_size) for c in configs} == {
        (None, 9000, "mnist", 64)
    }
    # Seed-major: a study stopped after five runs has every variant of seed 0.
    assert [(c.variant, c.seed) for c in configs[:5]] == [(v, 0) for v in STUDY_FIVE]


def test_figure1_probes_every_k_steps():
    """The preset probes at the default k that bench/bench_probes.py measured (one constant,
    read by the presets, the Train page and the probes' benchmark alike)."""
    configs = study.preset_configs("figure1")
    assert sorted({c.variant for c in configs}) == ["lenet", "lenet_fc_bn2"]
    assert {c.probe_every for c in configs} == {PROBE_EVERY_DEFAULT}
    assert PROBE_EVERY_DEFAULT > 0


def test_window_lr_and_batch_size_grids():
    window = study.preset_configs("window")
    assert {c.variant for c in window} == {"lenet_fc_bn2"}
    assert sorted({c.window_size for c in window}) == [1, 5, 50] and len(window) == 9
    lr = study.preset_configs("lr")
    assert len(lr) == 3 * 3 * 3  # variants x multipliers x seeds
    assert {c.variant for c in lr} == {"lenet", "lenet_fc_bn2", "lenet_keras_bn"}
    assert {c.learning_rate for c in lr} == {None, 5e-3, 3e-2}  # adam's 1e-3 x1, x5, x30
    assert sorted({study.lr_multiplier(c) for c in lr}) == [1, 5, 30]
    batch = study.preset_configs("batch-size")
    assert sorted({c.batch_size for c in batch}) == [4, 16, 64, 256] and len(batch) == 36


@pytest.mark.parametrize("name", list(study.PRESETS))
def test_quick_versions_are_smaller(name):
    full, quick = study.preset_configs(name), study.preset_configs(name, quick=True)
    assert len(quick) < len(full)
    assert {c.train_limit for c in quick} == {5000} and {c.val_size for c in quick} == {1000}
    assert max(c.epochs for c in quick) == 3 < min(c.epochs for c in full)
    # The same grid, fewer seeds.
    point = lambda c: (c.variant, c.learning_rate, c.batch_size, c.window_size)  # noqa: E731
    assert {point(c) for c in quick} == {point(c) for c in full}


def test_preset_configs_takes_dataset_folder_and_seeds():
    configs = study.preset_configs("window", dataset="fashion_mnist", data_dir="/d", seeds=1)
    assert len(configs) == 3
    assert {(c.dataset, c.data_dir, c.seed) for c in configs} == {("fashion_mnist", "/d", 0)}
    with pytest.raises(
        ConfigError,
        match="preset must be one of original, figure1, window, lr, batch-size. Received: 'bogus'",
    ):
        study.preset_configs("bogus")
    with pytest.raises(ConfigError, match="seeds must be a whole number of at least 1"):
        study.preset_configs("lr", seeds=0)
    with pytest.raises(ConfigError, match="dataset must be one of"):
        study.preset_configs("lr", dataset="cifar")


# ----------------------------------------------------------------------------- sweep grid


def test_sweep_grid_size_and_values():
    base = TrainConfig(epochs=2)
    configs = study.sweep_configs(base, ["lenet", "lenet_bn1"], (1, 5), (16, 64), seeds=(0, 1))
    assert len(configs) == 2 * 2 * 2 * 2
    assert len(set(configs)) == len(configs)
    assert {(c.learning_rate, c.batch_size) for c in configs} == {
        (None, 16),
        (None, 64),
        (5e-3, 16),
        (5e-3, 64),
    }
    assert {c.epochs for c in configs} == {2}


def test_lr_multipliers_apply_to_the_optimizers_default():
    sgd = study.sweep_configs(TrainConfig(optimizer="sgd"), ["lenet"], (1, 5, 30))
    assert [c.learning_rate for c in sgd] == [None, 0.05, 0.3]  # sgd's default is 1e-2
    assert [c.effective_learning_rate for c in sgd] == pytest.approx([0.01, 0.05, 0.3])
    assert [study.lr_multiplier(c.to_dict()) for c in sgd] == [1, 5, 30]
    # A learning rate set on the base is replaced: multiples are of the optimizer's default.
    base = TrainConfig(learning_rate=0.5)
    assert [c.learning_rate for c in study.sweep_configs(base, ["lenet"], (1, 2))] == [None, 2e-3]


def test_sweep_grid_drops_duplicates():
    configs = study.sweep_configs(TrainConfig(), ["lenet", "lenet"], (1, 1.0, 5), (64, 64), (0, 0))
    assert [(c.variant, c.learning_rate, c.seed) for c in configs] == [
        ("lenet", None, 0),
        ("lenet", 5e-3, 0),
    ]


@pytest.mark.parametrize(
    ("variants", "multipliers", "batches", "seeds", "message"),
    [
        ([], (1,), (), (0,), "pick at least one variant"),
        (["lenet"], (), (), (0,), "pick at least one learning-rate multiplier"),
        (["lenet"], (1, -5, math.nan), (), (0,), "must be positive numbers. Received: [-5, nan]"),
        (["lenet"], (1,), (), (), "pick at least one seed"),
        (["lenet"], (20000,), (), (0,), "learning_rate must be between 1e-06 and 10"),
        (["lenet"], (1,), (1,), (0,), "batch_size must be between 2 and 4096. Received: 1"),
        (["bogus"], (1,), (), (0,), "variant must be one of"),
    ],
)
def test_sweep_grid_validation(variants, multipliers, batches, seeds, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        study.sweep_configs(TrainConfig(), variants, multipliers, batches, seeds)


def test_is_sweep_and_group_ids():
    plain = [TrainConfig(variant=v) for v in ("lenet", "lenet_bn1")]
    assert not study.is_sweep(plain)
    assert study.is_sweep([*plain, TrainConfig(learning_rate=5e-3)])
    assert study.is_sweep([TrainConfig(window_size=1), TrainConfig(window_size=50)])
    assert study.sweep_group_id().startswith("sweep-")


# ----------------------------------------------------------------------------- sweep table


def test_sweep_table_marks_diverged_runs_and_keeps_them():
    table = study.sweep_table(lr_sweep_results())
    assert len(table) == 8
    assert study.swept_parameters(table) == ["lr_multiplier"]
    diverged = table[table["status"] == "diverged"]
    assert diverged[["variant", "lr_multiplier", "seed"]].values.tolist() == [["lenet", 30, 1]]
    assert diverged["test_accuracy"].tolist() == [None]  # not 0, not NaN-as-number, not dropped
    # A cancelled run's accuracy is not a final accuracy either.
    cancelled = result("lenet", 2, [0.5], 0.4, status="cancelled")
    assert study.sweep_table([cancelled])["test_accuracy"].tolist() == [None]

    points = study.sweep_points(table).set_index(["variant", "lr_multiplier"])
    assert points.loc[("lenet", 30), "runs"] == 2 and points.loc[("lenet", 30), "diverged"] == 1
    assert points.loc[("lenet", 30), "mean"] == pytest.approx(0.50)  # the completed seed only
    assert points.loc[("lenet", 30), "std"] is None or math.isnan(points.loc[("lenet", 30), "std"])
    assert points.loc[("lenet_fc_bn2", 1), "mean"] == pytest.approx(0.96)
    assert points.loc[("lenet_fc_bn2", 1), "std"] == pytest.approx(math.sqrt(2e-4))


def test_sweep_figure_draws_diverged_runs_as_x_markers_above_the_data():
    fig = sweep_figure(study.sweep_table(lr_sweep_results()))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["lenet (2 seeds)", "lenet_fc_bn2 (2 seeds)"]
    assert list(lines[0].x) == [1, 30] and list(lines[0].y) == pytest.approx([0.91, 0.50])
    assert 0 not in list(lines[0].y)
    (crosses,) = [t for t in fig.data if t.mode == "markers"]
    assert crosses.marker.symbol == "x" and list(crosses.x) == [30]
    assert crosses.hovertext == ("lenet seed 1: diverged",)
    assert crosses.y[0] > 0.97  # above every mean, inside the plot
    assert "diverged (1 run)" in fig.layout.title.text and fig.layout.xaxis.type == "log"


# ----------------------------------------------------------------------------- speed-up, stats


def test_speedup_by_hand():
    results = [
        # lenet's mean curve: 0.50, 0.70, 0.80, 0.81 -> best 0.81 at epoch 4 = 400 steps
        result("lenet", 0, [0.50, 0.70, 0.80, 0.80], 0.80),
        result("lenet", 1, [0.50, 0.70, 0.80, 0.82], 0.82),
        # mean 0.70, 0.82, ... -> reaches 0.81 at epoch 2 = 200 steps: x2
        result("lenet_fc_bn2", 0, [0.69, 0.81, 0.85, 0.86], 0.86),
        result("lenet_fc_bn2", 1, [0.71, 0.83, 0.85, 0.86], 0.88),
        # 50 steps per epoch (batch 128): epoch 3 = 150 steps: 400 / 150
        result("lenet_bn2", 0, [0.6, 0.7, 0.9, 0.9], 0.9, steps_per_epoch=50),
        # never reaches 0.81: no steps, no speed-up (not 0)
        result("lenet_bn1", 0, [0.5, 0.6, 0.7, 0.8], 0.8),
        # its two runs disagree on steps per epoch: steps undefined
        result("lenet_fc_bn1", 0, [0.9] * 4, 0.9, steps_per_epoch=100),
        result("lenet_fc_bn1", 1, [0.9] * 4, 0.9, steps_per_epoch=50),
    ]
    s = cmp.variant_summary(results).set_index("variant")
    assert list(s.index) == STUDY_FIVE
    assert s.loc["lenet", "steps_to_baseline_best"] == 400 and s.loc["lenet", "speedup"] == 1.0
    assert s.loc["lenet_fc_bn2", "epoch_reaching_baseline_best"] == 2
    assert s.loc["lenet_fc_bn2", "steps_to_baseline_best"] == 200
    assert s.loc["lenet_fc_bn2", "speedup"] == pytest.approx(2.0)
    assert s.loc["lenet_bn2", "steps_to_baseline_best"] == 150
    assert s.loc["lenet_bn2", "speedup"] == pytest.approx(400 / 150)
    assert s.loc["lenet_bn1", "steps_to_baseline_best"] is None
    assert s.loc["lenet_bn1", "speedup"] is None
    assert s.loc["lenet_fc_bn1", "epoch_reaching_baseline_best"] == 1
    assert s.loc["lenet_fc_bn1", "steps_to_baseline_best"] is None
    shown = cv.summary_display(cmp.variant_summary(results)).set_index("variant")
    assert shown.loc["lenet_fc_bn2", "speed-up"] == "×2.00"
    assert shown.loc["lenet_bn1", "speed-up"] == "–"
    assert shown.loc["lenet_fc_bn2", "steps to lenet's best"] == "200"


def test_summary_statistics_by_hand():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.71, 0.72]
    results = [result("lenet_fc_bn2", i, [0.9], x) for i, x in enumerate(a)]
    results += [result("lenet", i, [0.8], x) for i, x in enumerate(b)]
    s = cmp.variant_summary(results).set_index("variant")
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2}
    row = s.loc["lenet_fc_bn2"]
    assert row["n"] == 3 and row["test_accuracy_mean"] == pytest.approx(0.82)
    assert row["test_accuracy_std"] == pytest.approx(0.02)
    assert (row["test_accuracy_ci95_low"], row["test_accuracy_ci95_high"]) == pytest.approx(
        (0.82 - half, 0.82 + half)
    )
    assert row["diff_vs_baseline"] == pytest.approx(0.11)
    assert row["p_value"] == pytest.approx(sp_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert s.loc["lenet", "diff_vs_baseline"] is None and s.loc["lenet", "p_value"] is None
    shown = cv.summary_display(cmp.variant_summary(results)).set_index("variant")
    assert shown.loc["lenet_fc_bn2", "95% CI"] == f"[{0.82 - half:.4f}, {0.82 + half:.4f}]"
    assert shown.loc["lenet_fc_bn2", "Δ vs lenet"] == "+0.1100"
    assert shown.loc["lenet", "p (Welch)"] == "–" and shown.loc["lenet", "n"] == 3


def test_a_sweep_is_summarised_per_arm_against_lenet_with_the_same_settings():
    s = cmp.variant_summary(lr_sweep_results()).set_index("variant")
    assert list(s.index) == [
        "lenet · learning_rate=default",
        "lenet · learning_rate=0.03",
        "lenet_fc_bn2 · learning_rate=default",
        "lenet_fc_bn2 · learning_rate=0.03",
    ]
    assert s["runs"].tolist() == [2, 2, 2, 2] and s["n"].tolist() == [2, 1, 2, 2]
    # x30: lenet_fc_bn2 (0.93, 0.91) against lenet x30 (0.50; its other seed diverged)
    assert s.loc["lenet_fc_bn2 · learning_rate=0.03", "diff_vs_baseline"] == pytest.approx(0.42)
    assert s.loc["lenet_fc_bn2 · learning_rate=0.03", "p_value"] is None  # lenet x30 has n=1
    p = sp_stats.ttest_ind([0.95, 0.97], [0.90, 0.92], equal_var=False).pvalue
    assert s.loc["lenet_fc_bn2 · learning_rate=default", "p_value"] == pytest.approx(p)
    labelled = cmp.label_arms(lr_sweep_results())
    assert {r["base_variant"] for r in labelled} == {"lenet", "lenet_fc_bn2"}
    assert cmp.label_arms(labelled) == labelled  # idempotent
    plain = [result("lenet", 0, [0.5]), result("lenet_bn1", 0, [0.6], epsilon=1e-3)]
    assert cmp.label_arms(plain) == plain  # settings that differ only between variants
