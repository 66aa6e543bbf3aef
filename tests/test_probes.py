"""Tests for bn_core.nn.probes (the measurements) and the probe tables of
bn_core.runs.store.run_store.

Models are LeNet-5 on the tiny synthetic splits of conftest.py. The training runs use
steps_per_execution=8 so that Keras calls back every 8 steps and several probes fire in
4 epochs of 32 steps (k = 36: TrainConfig refuses a k below PROBE_EVERY_MIN = 32).
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_core.config import TrainConfig
from bn_core.nn import probes
from bn_core.nn.batchnorm import BatchNorm
from bn_core.nn.model import build_model
from bn_core.nn.probes import GRAD_LAYERS, PERCENTILES, Probe, probe_data
from bn_core.nn.training import EngineOptions, train
from bn_core.runs.store.run_store import RunStore
from bn_core.variants import SITES
from bn_core.vocabulary import ENGINE_EVENTS
from tests.conftest import f32_atol, f32_rtol, make_splits
from tests.helpers import Recorder

RUN = dict(batch_size=8, epochs=4, activation="relu")  # 32 steps per epoch
K = 36  # probe_every of the probed runs: not a multiple of the 8-step callbacks
OPTIONS = EngineOptions(steps_per_execution=8)
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
PROBE_TABLES = ("probe_steps", "probe_percentiles", "grad_norms", "mode_gap")


def _bn_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BatchNorm)]


def _state(model) -> list[np.ndarray]:
    return [v.numpy().copy() for v in model.variables]


@contextlib.contextmanager
def _batch_statistics(model):
    """Ordinary training-mode calls for a reference, without side effects that outlive it:
    our BatchNorm records nothing, and every variable (Keras BN's moving statistics) is
    restored afterwards."""
    saved = _state(model)
    for layer in _bn_layers(model):
        layer.record = False
    try:
        yield
    finally:
        for layer in _bn_layers(model):
            layer.record = True
        for variable, value in zip(model.variables, saved, strict=True):
            variable.assign(value)


def _fresh_model(variant: str, splits) -> keras.Model:
    """A model whose BN buffers and moving statistics are no longer at their initial values
    (a probe that reset them would otherwise go unnoticed): a few training-mode calls."""
    keras.utils.set_random_seed(3)
    model = build_model(variant, activation="relu", history_size=4)
    for start in range(0, 48, 16):
        model(splits.x_train[start : start + 16], training=True)
    return model


@pytest.fixture(scope="module")
def probe_splits():
    # 300 validation images: the probe batch takes the first 256 (PROBE_SIZE), conv sites
    # the first 32 of those (CONV_PROBE_SIZE).
    return make_splits(n_train=64, n_val=300, n_test=16, seed=5)


@pytest.fixture(scope="module", params=["lenet", "lenet_fc_bn2", "lenet_keras_bn"])
def probed(request, probe_splits):
    """A model, its Probe (m = 16), the variables before probing, two probes and two mode
    gaps (the second call of each runs the already-traced function), the variables after."""
    model = _fresh_model(request.param, probe_splits)
    probe = Probe(model, probe_splits.x_val, probe_splits.y_val, batch_size=16)
    before = _state(model)
    results = [probe.measure() for _ in range(2)]
    gaps = [probe.mode_gap() for _ in range(2)]
    return {
        "variant": request.param,
        "model": model,
        "probe": probe,
        "results": results,
        "gaps": gaps,
        "before": before,
        "after": _state(model),
    }


# ----------------------------------------------------------------------------- measurements


def test_percentiles_are_numpys_of_the_activation_inputs(probed, probe_splits):
    model, probe, result = probed["model"], probed["probe"], probed["results"][0]
    assert probed["results"][1] == result  # same weights, same probe batch: same numbers
    x = probe_splits.x_val[: probes.PROBE_SIZE]
    acts = probe.activations()
    assert [a.shape for a in acts] == [(256, 28, 28, 6), (256, 10, 10, 16), (256, 120), (256, 84)]
    for site, a in zip(SITES, acts, strict=True):
        # Exactly numpy's percentiles of the probe's own activations (conv: first 32 images).
        a = a[: probes.CONV_PROBE_SIZE] if a.ndim == 4 else a
        assert result["sites"][site]["layer"] == list(np.percentile(a, PERCENTILES))
        assert result["sites"][site]["unit"] == list(np.percentile(a[..., 0], PERCENTILES))
        # And they are the inputs of the activation: independently, the output of the layer
        # feeding it, BN where the variant has it, else the linear op.
        feeding = site if probed["variant"] == "lenet" else f"{site}_bn"
        reference = keras.Model(model.inputs, model.get_layer(feeding).output)
        values = reference.predict(x, verbose=0)[: len(a)]
        np.testing.assert_allclose(a, values, rtol=0, atol=_site_atol(model, site, feeding, x))
        low, mid, high = result["sites"][site]["layer"]
        assert low < mid < high
    logits = model.predict(x, verbose=0)
    expected = np.mean(np.argmax(logits, axis=1) == probe_splits.y_val[:256])
    assert result["probe_accuracy"] == expected  # a count / 256 on both sides: exact


def _site_atol(model, site: str, feeding: str, x) -> float:
    """float32 tolerance of a site's activation input computed twice: the linear op sums
    ``fan_in`` products of up to max|linear output| each; an inference-mode BN after it scales
    that error by max|gamma / sqrt(Var + eps)| and adds its own rounding of the output."""
    linear = model.get_layer(site)
    fan_in = int(np.prod(linear.kernel.shape[:-1]))  # 5*5*C_in for a conv, inputs for a dense
    out = keras.Model(model.inputs, linear.output).predict(x, verbose=0)
    magnitude = float(np.abs(out).max())
    if feeding != site:
        bn = model.get_layer(feeding)
        if isinstance(bn, BatchNorm):
            variance = np.asarray(bn.population_moments()[1])
        else:  # Keras' BatchNormalization (the reference variant)
            variance = np.asarray(bn.moving_variance)
        scale = np.abs(np.asarray(bn.gamma) / np.sqrt(variance + bn.epsilon)).max()
        magnitude = magnitude * float(scale) + float(np.abs(np.asarray(bn.beta)).max())
    return f32_atol(magnitude, fan_in)


def test_grad_norms_equal_a_direct_gradient_tape(probed, probe_splits):
    model, norms = probed["model"], probed["results"][0]["grad_norms"]
    assert list(norms) == list(GRAD_LAYERS)
    assert all(math.isfinite(n) and n > 0 for n in norms.values())

    # The reference: an ordinary training-mode call on the first m = 16 probe images.
    x, y = probe_splits.x_val[:16], probe_splits.y_val[:16]
    kernels = [model.get_layer(name).kernel for name in GRAD_LAYERS]

    def norms_of(training: bool) -> list[float]:
        with _batch_statistics(model), tf.GradientTape() as tape:
            logits = model(x, training=training)
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
        return [float(tf.norm(g)) for g in tape.gradient(loss, kernels)]

    expected = norms_of(training=True)
    rtol = f32_rtol(_pass_length(model, len(x)))
    np.testing.assert_allclose(list(norms.values()), expected, rtol=rtol)
    # Inference mode gives other norms where there is BN, by more than rounding can: the
    # probe really used batch statistics (lenet has no BN, so both modes agree there).
    differs = not np.allclose(norms_of(training=False), expected, rtol=rtol, atol=0)
    assert differs == (probed["variant"] != "lenet")


def _pass_length(model, m: int) -> int:
    """Terms reduced along a training-mode forward and backward pass on m images, to bound
    the relative error of a gradient norm (a norm sums squares of one sign): each linear layer
    sums fan_in products per output, and its m*H*W output positions are reduced by BN's
    statistics (forward and backward) and by the kernel gradient. C1 dominates: 16*28*28."""
    length = 0
    for name in GRAD_LAYERS:
        layer = model.get_layer(name)
        fan_in = int(np.prod(layer.kernel.shape[:-1]))  # 5*5*C_in for a conv, inputs for a dense
        positions = m * int(np.prod(layer.output.shape[1:-1]))  # (N, H, W, C) -> N*H*W; dense: N
        length += fan_in + positions
    return length


def test_a_probe_changes_no_weight_and_no_bn_buffer(probed, probe_splits):
    model = probed["model"]
    names = [v.path for v in model.variables]
    if probed["variant"] != "lenet":
        assert any("mean_window" in n or "moving_mean" in n for n in names)
    for name, a, b in zip(names, probed["before"], probed["after"], strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert all(layer.record for layer in _bn_layers(model))  # restored after tracing
    if probed["variant"] != "lenet":
        # The test can fail: an ordinary training-mode call does change BN's state.
        model(probe_splits.x_val[:8], training=True)
        changed = [
            not np.array_equal(a, v.numpy())
            for a, v in zip(probed["after"], model.variables, strict=True)
        ]
        for variable, value in zip(model.variables, probed["after"], strict=True):
            variable.assign(value)
        assert any(changed)


def test_mode_gap_values(probed):
    inference, batch_stats = probed["gaps"][0]
    assert probed["gaps"][1] == probed["gaps"][0]
    assert probed["probe"].gap_x.shape == (18, 16, 32, 32, 1)  # 300 images: 18 batches of 16
    assert 0 <= inference <= 1 and 0 <= batch_stats <= 1


def test_the_mode_gap_uses_whole_batches_only(probed, probe_splits):
    x, y = probe_splits.x_val, probe_splits.y_val
    probe = Probe(probed["model"], x[:70], y[:70], batch_size=32)
    assert probe.gap_x.shape == (2, 32, 32, 32, 1)  # 70 images: two whole batches of 32
    assert Probe(probed["model"], x[:20], y[:20], batch_size=32).mode_gap() == (None, None)


def test_non_finite_values_become_none_and_stay_json_safe(probe_splits):
    model = _fresh_model("lenet", probe_splits)
    probe = Probe(model, probe_splits.x_val, probe_splits.y_val, batch_size=8)
    c1, output = model.get_layer("C1").kernel, model.get_layer("output").kernel
    finite_c1 = c1.numpy()
    c1.assign(np.full(c1.shape, np.nan, dtype="float32"))  # NaN everywhere downstream
    result = probe.measure()
    assert all(
        values == [None] * 3 for scopes in result["sites"].values() for values in scopes.values()
    )
    json.dumps(result, allow_nan=False)
    c1.assign(finite_c1)
    output.assign(np.full(output.shape, np.nan, dtype="float32"))  # NaN logits and loss
    result = probe.measure()
    assert result["grad_norms"] == dict.fromkeys(GRAD_LAYERS)  # every norm None
    assert all(v is not None for s in result["sites"].values() for v in s["layer"])
    json.dumps(result, allow_nan=False)


def test_probe_data_falls_back_to_test_images_without_validation():
    splits = make_splits(n_train=32, n_val=0, n_test=20)
    x, y = probe_data(splits)
    assert x is splits.x_test and y is splits.y_test
    with_val = make_splits(n_train=32, n_val=10, n_test=20)
    assert probe_data(with_val)[0] is with_val.x_val


# ----------------------------------------------------------------------------- in training


@pytest.fixture(scope="module")
def runs(tiny_splits):
    """For both BN implementations: the same config trained with probes off and on."""
    out = {}
    for variant in ("lenet_fc_bn2", "lenet_keras_bn"):
        for every in (0, K):
            rec = Recorder()
            config = TrainConfig(**RUN, variant=variant, probe_every=every)
            result = train(config, rec, splits=tiny_splits, options=OPTIONS)
            assert result.status == "completed", result.error
            out[variant, every] = result, rec
    return out


@pytest.mark.parametrize("variant", ["lenet_fc_bn2", "lenet_keras_bn"])
def test_probes_do_not_change_training(runs, variant):
    (off, off_events), (on, on_events) = runs[variant, 0], runs[variant, K]
    assert not off_events.of_type("probe") and len(on_events.of_type("probe")) == 4
    for key in METRICS:
        assert on.history[key] == off.history[key], key
    assert on.test_loss == off.test_loss and on.test_accuracy == off.test_accuracy
    # Every weight and BN buffer ends bit-identical.
    for a, b in zip(off.model.variables, on.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert on_events.of_type("batch") == off_events.of_type("batch")
    for a, b in zip(on_events.of_type("epoch"), off_events.of_type("epoch"), strict=True):
        assert [a[k] for k in METRICS] == [b[k] for k in METRICS]


def test_probes_fire_at_the_first_boundary_at_or_after_each_multiple(runs):
    _, rec = runs["lenet_fc_bn2", K]
    # Callbacks every 8 steps (8, 16, ..., 128); multiples of 36: 36, 72, 108.
    found = rec.of_type("probe")
    assert [p["step"] for p in found] == [0, 40, 72, 112]
    assert [p["epoch_progress"] for p in found] == [0.0, 1.25, 2.25, 3.5]
    accuracy = [p["probe_accuracy"] for p in found]
    assert accuracy[-1] > accuracy[0] + 0.3  # the toy problem is learnt (chance is 0.1)


def test_probe_and_mode_gap_events_schema(runs):
    _, rec = runs["lenet_keras_bn", K]
    assert {"probe", "mode_gap"} <= set(ENGINE_EVENTS)
    for event in rec.of_type("probe"):
        assert set(event) == {
            "type",
            "step",
            "epoch_progress",
            "probe_accuracy",
            "sites",
            "grad_norms",
        }
        assert list(event["sites"]) == list(SITES)
        for scopes in event["sites"].values():
            assert set(scopes) == {"layer", "unit"}
            for values in scopes.values():
                assert len(values) == 3 and values == sorted(values)
        assert list(event["grad_norms"]) == list(GRAD_LAYERS)
        assert all(n > 0 for n in event["grad_norms"].values())
    for event in rec.events:
        json.dumps(event, allow_nan=False)


@pytest.mark.parametrize("variant", ["lenet_fc_bn2", "lenet_keras_bn"])
def test_one_mode_gap_event_per_epoch(runs, tiny_splits, variant):
    result, rec = runs[variant, K]
    gaps = rec.of_type("mode_gap")
    assert [g["epoch"] for g in gaps] == [1, 2, 3, 4]
    # Each comes before its epoch's event, and (64 validation images, whole batches of 8)
    # its inference accuracy is the one Keras' validation pass measured.
    kinds = [e["type"] for e in rec.events if e["type"] in ("mode_gap", "epoch")]
    assert kinds == ["mode_gap", "epoch"] * 4
    for gap, epoch in zip(gaps, rec.of_type("epoch"), strict=True):
        # Both are a count / 64, exact in float32: a different count is off by 1/64.
        assert gap["val_accuracy_inference"] == epoch["val_accuracy"]
    # Batch statistics, recomputed by hand on the trained model (no step after the last epoch).
    model, hits = result.model, 0
    with _batch_statistics(model):
        for start in range(0, 64, 8):
            logits = model(tiny_splits.x_val[start : start + 8], training=True)
            hits += int(np.sum(np.argmax(logits, axis=1) == tiny_splits.y_val[start : start + 8]))
    assert gaps[-1]["val_accuracy_batch_stats"] == hits / 64  # a count / 64: exact


# ----------------------------------------------------------------------------- the store


def _probe_event(step: int, scale: float = 1.0) -> dict:
    return {
        "type": "probe",
        "step": step,
        "epoch_progress": step / 32,
        "probe_accuracy": 0.5,
        "sites": {
            s: {"layer": [-scale, 0.0, scale], "unit": [-2 * scale, None, 2 * scale]} for s in SITES
        },
        "grad_norms": {name: scale * (i + 1) for i, name in enumerate(GRAD_LAYERS)},
    }


def test_store_round_trip_and_cascade_delete(tmp_path):
    store = RunStore(tmp_path)
    a = store.create_run(TrainConfig(probe_every=32), "g")
    b = store.create_run(TrainConfig(probe_every=32, variant="lenet_fc_bn2"), "g")
    for run_id, scale in ((a, 1.0), (b, 3.0)):
        store.add_probe(run_id, _probe_event(0, scale))
        store.add_probe(run_id, _probe_event(32, scale))
        store.add_mode_gap(
            run_id,
            {
                "type": "mode_gap",
                "epoch": 1,
                "val_accuracy_inference": 0.9,
                "val_accuracy_batch_stats": None,
            },
        )
    assert store.probed_run_ids() == {a, b}

    rows = store.probe_rows([a, b])
    assert len(rows) == 2 * 2 * len(SITES) * 2  # runs x steps x sites x scopes
    first = rows[0]
    assert first == {
        "run_id": a,
        "step": 0,
        "epoch_progress": 0.0,
        "accuracy": 0.5,
        "site": "C1",
        "scope": "layer",
        "p15": -1.0,
        "p50": 0.0,
        "p85": 1.0,
    }
    unit = next(r for r in rows if r["run_id"] == b and r["scope"] == "unit")
    assert (unit["p15"], unit["p50"], unit["p85"]) == (-6.0, None, 6.0)

    norms = store.grad_norm_rows([b])
    assert len(norms) == 2 * len(GRAD_LAYERS)
    assert {(r["layer"], r["norm"]) for r in norms if r["step"] == 32} == {
        (name, 3.0 * (i + 1)) for i, name in enumerate(GRAD_LAYERS)
    }
    assert store.mode_gap_rows([a, b]) == [
        {"run_id": a, "epoch": 1, "inference": 0.9, "batch_stats": None},
        {"run_id": b, "epoch": 1, "inference": 0.9, "batch_stats": None},
    ]
    assert store.probe_rows([]) == store.grad_norm_rows([]) == store.mode_gap_rows([]) == []

    store.transition(a, ("queued",), "cancelled")
    assert store.delete(a)
    assert store.probe_rows([a]) == store.grad_norm_rows([a]) == store.mode_gap_rows([a]) == []
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        for table in PROBE_TABLES:
            count = db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (a,)).fetchone()
            assert count == (0,), table
    assert len(store.probe_rows([b])) == 2 * len(SITES) * 2  # the other run is untouched


def test_a_half_written_probe_is_rolled_back(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(), "g")
    bad = _probe_event(8)
    bad["sites"]["C3"]["layer"] = [1.0, 2.0]  # one value short: the insert fails mid-probe
    with pytest.raises(sqlite3.Error):
        store.add_probe(run_id, bad)
    assert store.probe_rows([run_id]) == [] and store.grad_norm_rows([run_id]) == []


def test_an_older_store_gains_the_probe_tables(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(), "g")
    with contextlib.closing(sqlite3.connect(store.path)) as db:  # a store from before probes
        for table in PROBE_TABLES:
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 0")  # stores had no schema version then
        db.commit()
    reopened = RunStore(tmp_path)
    reopened.add_probe(run_id, _probe_event(0))
    assert reopened.get(run_id).variant == "lenet"
    assert len(reopened.probe_rows([run_id])) == len(SITES) * 2


def test_the_worker_stores_probe_and_mode_gap_events(tmp_path, monkeypatch):
    from bn_core.nn import training
    from bn_core.results import TrainResult
    from bn_core.runs.execution import worker

    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(probe_every=32), "g")

    def fake_train(config, on_event, should_stop, **engine_options):
        on_event(_probe_event(32))
        on_event(
            {
                "type": "mode_gap",
                "epoch": 1,
                "val_accuracy_inference": 0.8,
                "val_accuracy_batch_stats": 0.85,
            }
        )
        return TrainResult(status="completed", config=config)

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)  # leave pytest's SIGTERM
    assert worker.run_worker(run_id, store) == "completed"
    assert {r["step"] for r in store.probe_rows([run_id])} == {32}
    assert len(store.grad_norm_rows([run_id])) == len(GRAD_LAYERS)
    assert store.mode_gap_rows([run_id]) == [
        {"run_id": run_id, "epoch": 1, "inference": 0.8, "batch_stats": 0.85}
    ]
