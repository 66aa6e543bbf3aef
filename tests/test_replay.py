"""Window replay (bn_core.nn.replay, bn_core.runs.replays.job): the statistics against
independent numpy and Keras references, the replay of a trained LeNet against its own test
accuracy, and the command line on a run stored in a temporary $BN_LAB_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_core import data
from bn_core.config import TrainConfig
from bn_core.nn.batchnorm import BatchNorm
from bn_core.nn.model import build_model
from bn_core.nn.replay import (
    ReplayError,
    ema_population,
    history_layers,
    population_for_window,
    replay,
)
from bn_core.nn.training import EngineOptions, train
from bn_core.runs.execution.runner import JobRunner, LocalProcessBackend
from bn_core.runs.replays import files as replays
from bn_core.runs.replays.job import main
from bn_core.runs.store.run_store import RunStore
from tests.conftest import f32_atol, f64_atol
from tests.helpers import write_npz

ROOT = Path(__file__).resolve().parent.parent


def _recorded(k=7, channels=4, seed=0):
    """Recorded-looking statistics: means, biased variances (k, C) and sizes m, one short."""
    rng = np.random.default_rng(seed)
    counts = np.full(k, 16.0)
    counts[2] = 5.0  # a short batch: the m/(m-1) correction differs per batch
    return rng.normal(size=(k, channels)), rng.uniform(0.5, 2.0, size=(k, channels)), counts


# ----------------------------------------------------------------------------- the statistics


@pytest.mark.parametrize("w", [1, 3, 7])
def test_population_for_window_is_algorithm2_over_the_last_w(w):
    means, variances, counts = _recorded()
    expected_mean, expected_var = np.zeros(4), np.zeros(4)
    for j in range(len(means) - w, len(means)):  # a plain loop, batch by batch
        expected_mean += means[j] / w
        expected_var += counts[j] / (counts[j] - 1) * variances[j] / w
    mean, var = population_for_window(means, variances, counts, w)
    # numpy float64 on both sides (no TensorFlow), w <= 7 terms: a few roundings of 1e-16.
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(var, expected_var, rtol=1e-12)


@pytest.mark.parametrize("w", [0, 8])
def test_population_for_window_refuses_a_window_outside_the_history(w):
    with pytest.raises(ValueError, match="between 1 and the 7 recorded batches. Received"):
        population_for_window(*_recorded(), w)


def test_ema_population_is_the_keras_recursion():
    means, variances, _ = _recorded(k=30)
    moving_mean, moving_var = np.zeros(4), np.ones(4)
    for mu, var in zip(means, variances, strict=True):
        moving_mean = 0.99 * moving_mean + 0.01 * mu
        moving_var = 0.99 * moving_var + 0.01 * var
    mean, var = ema_population(means, variances, 0.99)
    # numpy float64 on both sides (no TensorFlow): 30 steps of a few roundings of 1e-16.
    np.testing.assert_allclose(mean, moving_mean, rtol=1e-12)
    np.testing.assert_allclose(var, moving_var, rtol=1e-12)
    with pytest.raises(ValueError, match="momentum must be in"):
        ema_population(means, variances, 1.0)


def test_ema_of_our_recorded_batches_equals_keras_moving_statistics():
    """The same batches through our BatchNorm (recording) and Keras' BatchNormalization
    (training): the EMA of what we recorded is Keras' moving mean and variance."""
    ours = BatchNorm(history_size=12, dtype="float64")
    ref = keras.layers.BatchNormalization(momentum=0.99, dtype="float64")
    rng = np.random.default_rng(3)
    batches = [rng.normal(2.0, 3.0, size=(16 - s % 3, 5, 5, 3)) for s in range(12)]  # N varies
    for x in batches:
        ours(x, training=True)
        ref(x, training=True)
    means, variances, _ = ours.recorded_batches()
    mean, var = ema_population(means, variances, 0.99)
    # float64 in both layers, in other orders: batch moments over m = N*5*5 <= 400 values, then
    # 12 EMA steps. The mean's terms are of size mean|x|; the variance's are squares of one
    # sign (the batch variances, or the start value 1, bound them).
    cols = [x.reshape(-1, 3) for x in batches]  # (N, 5, 5, 3) -> (N*25, 3)
    length = max(len(c) for c in cols) + len(batches)
    mean_size = max(np.abs(c).mean(axis=0).max() for c in cols)
    var_size = max(1.0, *(c.var(axis=0).max() for c in cols))
    np.testing.assert_allclose(
        mean, ref.moving_mean.numpy(), rtol=0, atol=f64_atol(mean_size, length)
    )
    np.testing.assert_allclose(
        var, ref.moving_variance.numpy(), rtol=0, atol=f64_atol(var_size, length)
    )


# ----------------------------------------------------------------------------- a tiny model


@pytest.fixture(scope="module")
def tiny():
    """Dense(5) -> BatchNorm(window 2, history 5) -> sigmoid -> Dense(3), trained 7 SGD steps
    on batches of varying size. Returns the model, the BN layer, the pre-BN activations of
    every step as (z, size) (numpy float64, from the kernel *before* the step: z = x @ kernel
    and size = |x| @ |kernel|), and a test set."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    z = keras.layers.Dense(5, use_bias=False, name="lin")(inputs)
    h = BatchNorm(window_size=2, history_size=5, name="bn")(z)
    logits = keras.layers.Dense(3)(keras.layers.Activation("sigmoid")(h))
    model = keras.Model(inputs, logits)
    optimizer = keras.optimizers.SGD(0.5)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(1)
    activations = []
    for step in range(7):
        x = rng.normal(size=(24 - 3 * (step % 3), 6)).astype("float32")
        y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
        kernel = model.get_layer("lin").kernel.numpy().astype(np.float64)
        z = x.astype(np.float64) @ kernel  # (N, 6) @ (6, 5) -> (N, 5)
        size = np.abs(x.astype(np.float64)) @ np.abs(kernel)  # z if none of its terms cancelled
        activations.append((z, size))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights, strict=True))
    x_test = rng.normal(size=(200, 6)).astype("float32")
    y_test = ((x_test[:, 0] > 0).astype("int32") + (x_test[:, 1] > 1)).astype("int32")
    return model, model.get_layer("bn"), activations, x_test, y_test


def _numpy_population(batches):
    """Algorithm 2 from the activations themselves: mean of the batch means, mean of the
    unbiased batch variances (np.var with ddof=1)."""
    return (
        np.mean([z.mean(axis=0) for z, _ in batches], axis=0),
        np.mean([z.var(axis=0, ddof=1) for z, _ in batches], axis=0),
    )


FAN_IN = 6  # the Dense layer "lin" before the BN of `tiny`


def _recorded_atols(batches) -> tuple[float, float]:
    """(mean, variance) tolerances of Algorithm 2 over statistics TF recorded in float32,
    against numpy's float64 of the same batches. Per batch, TF summed FAN_IN products into
    each z (of size `size` if none cancelled), then n values z for the mean and n squares
    (z - mu)^2 for the variance, which z's own error moves by up to 2 |z - mu| size. The
    average over batches is no worse than its worst batch."""
    mean_atol = var_atol = 0.0
    for z, size in batches:
        n = len(z)
        centred = np.abs(z - z.mean(axis=0))
        var_size = ((centred + size) ** 2).sum(axis=0).max() / (n - 1)  # unbiased, as Var[x]
        mean_atol = max(mean_atol, f32_atol(size.mean(axis=0).max(), FAN_IN + n))
        var_atol = max(var_atol, f32_atol(var_size, FAN_IN + n))
    return mean_atol, var_atol


def test_whole_history_equals_algorithm2_over_the_same_training_batches(tiny):
    model, layer, activations, _, _ = tiny
    means, variances, counts = layer.recorded_batches()
    assert len(means) == 5 and counts.tolist() == [len(z) for z, _ in activations[-5:]]
    mean, var = population_for_window(means, variances, counts, len(means))
    want_mean, want_var = _numpy_population(activations[-5:])  # the history keeps the last 5
    mean_atol, var_atol = _recorded_atols(activations[-5:])
    np.testing.assert_allclose(mean, want_mean, rtol=0, atol=mean_atol)
    np.testing.assert_allclose(var, want_var, rtol=0, atol=var_atol)


def test_window_of_the_trained_size_is_the_layers_own_inference(tiny):
    model, layer, activations, x_test, _ = tiny
    means, variances, counts = layer.recorded_batches()
    w = layer.window_size
    mean, var = population_for_window(means, variances, counts, w)
    own_mean, own_var = (np.asarray(t) for t in layer.population_moments())
    # The same float32 records, averaged over the window's w batches by numpy in float64 and
    # by the layer in float32: terms of size mean |mu_j|, and unbiased variances of one sign.
    mean_size = np.abs(means[-w:]).mean(axis=0).max()
    np.testing.assert_allclose(mean, own_mean, rtol=0, atol=f32_atol(mean_size, w))
    np.testing.assert_allclose(var, own_var, rtol=0, atol=f32_atol(var.max(), w))
    want_mean = _numpy_population(activations[-w:])[0]
    np.testing.assert_allclose(mean, want_mean, rtol=0, atol=_recorded_atols(activations[-w:])[0])


def test_replay_clips_windows_and_restores_the_layer(tiny):
    model, layer, _, x_test, y_test = tiny
    before = [w.numpy().copy() for w in layer.non_trainable_weights]
    own = model.predict(x_test, verbose=0)
    rows = replay(model, x_test, y_test, windows=(1, 2, 5, 10, "epoch"))
    assert [r["choice"] for r in rows] == ["1", "2", "5", "10", "epoch", "EMA"]
    assert [r["window"] for r in rows] == [1, 2, 5, 5, 5, 5]
    assert [r["clipped"] for r in rows] == [False, False, False, True, False, False]
    assert rows[3]["requested"] == 10 and rows[4]["requested"] == 5  # epoch = history_size
    assert rows[3]["test_accuracy"] == rows[2]["test_accuracy"] == rows[4]["test_accuracy"]
    assert rows[0]["test_loss"] != rows[2]["test_loss"]  # the choice does change the model
    for old, new in zip(before, layer.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    np.testing.assert_array_equal(model.predict(x_test, verbose=0), own)


def test_replay_of_the_epoch_choice_uses_exactly_those_statistics(tiny):
    """The model under W = all computes gamma (z - E) / sqrt(Var + eps) + beta with the
    numpy population of the recorded batches."""
    model, layer, activations, x_test, y_test = tiny
    mean, var = _numpy_population(activations[-5:])
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.get_layer("bn").set_population(mean, var)
    rows = replay(model, x_test, y_test, windows=("epoch",), ema_momentum=None)
    logits = clone.predict(x_test, verbose=0).astype(np.float64)
    assert rows[0]["test_accuracy"] == np.mean(np.argmax(logits, axis=1) == y_test)


def test_epoch_is_marked_clipped_when_the_history_is_not_full():
    layer = BatchNorm(history_size=10, name="bn")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    for seed in range(4):
        model(np.random.default_rng(seed).normal(size=(8, 3)).astype("float32"), training=True)
    x, y = np.zeros((4, 3), "float32"), np.zeros(4, "int32")
    rows = replay(model, x, y, windows=(2, "epoch"))
    assert [(r["choice"], r["window"], r["clipped"]) for r in rows] == [
        ("2", 2, False),
        ("epoch", 4, True),
        ("EMA", 4, False),
    ]
    with pytest.raises(ValueError, match="windows must hold integers >= 1"):
        replay(model, x, y, windows=(0,))


@pytest.mark.parametrize(
    "variant, history, message",
    [
        ("lenet", 4, "no Batch Normalization"),
        ("lenet_keras_bn", 4, "Keras' BatchNormalization"),
        ("lenet_fc_bn2", 0, "keep no recorded batches"),
    ],
)
def test_models_without_history_are_refused(variant, history, message):
    with pytest.raises(ReplayError, match=message):
        history_layers(build_model(variant, history_size=history))


# ----------------------------------------------------------------------------- a stored run


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A completed lenet_fc_bn2 run (2 epochs of 8 batches, window 5) in a fresh store, its
    model saved where the worker saves it. Returns (home, run id, TrainResult)."""
    root = tmp_path_factory.mktemp("replay")
    write_npz(root / "data", n_train=400, n_test=200)
    store = RunStore(root / "home")
    config = TrainConfig(
        variant="lenet_fc_bn2",
        data_dir=str(root / "data"),
        epochs=2,
        batch_size=32,
        val_size=100,
        train_limit=256,
        activation="relu",
        window_size=5,
    )
    run_id = store.create_run(config, "g")
    result = train(config, options=EngineOptions(jit_compile=False))
    assert result.status == "completed"
    store.model_path(run_id).parent.mkdir(parents=True)
    result.model.save(store.model_path(run_id))
    store.transition(
        run_id,
        ("queued",),
        "completed",
        test_accuracy=result.test_accuracy,
        test_loss=result.test_loss,
        steps_per_epoch=8,
    )
    return root / "home", run_id, result


def test_replay_reproduces_the_trained_models_test_accuracy_at_its_own_window(stored):
    home, run_id, result = stored
    model = keras.saving.load_model(RunStore(home).model_path(run_id), compile=False)
    test = data.load("mnist", result.config.data_dir, val_size=100)
    rows = replay(model, test.x_test, test.y_test, windows=(5,), ema_momentum=None)
    assert rows[0]["test_accuracy"] == result.test_accuracy
    # Keras measured the mean cross-entropy in float32; replay measures it in float64 from
    # logits whose BN sites each re-estimated their population from the window's batches in
    # another order: a relative error over sites * window terms, carried to the logits (up to
    # max|z|). |d loss_i / d z| <= 2 (1 - p_y) <= 2 loss_i, so the mean loss moves by at most
    # 2 * loss times that; Keras' log-sum-exp over the classes and mean over the images add theirs.
    logits = model.predict(test.x_test, verbose=0)  # (n, classes), the model's own window
    z, loss = float(np.abs(logits).max()), result.test_loss
    sites = len(history_layers(model))
    atol = (
        2 * loss * f32_atol(z, sites * result.config.window_size)
        + f32_atol(z, logits.shape[1])
        + f32_atol(loss, len(logits))
    )
    assert rows[0]["test_loss"] == pytest.approx(loss, rel=0, abs=atol)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BN_LAB_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "bn_core", "replay", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_line_writes_a_valid_replay_file(stored):
    home, run_id, result = stored
    done = _cli(home, str(run_id))
    assert done.returncode == 0, done.stderr[-2000:]
    path = replays.replay_path(home, run_id)
    assert f"replay written to {path}" in done.stdout
    payload = replays.load_replay(path, run_id)
    assert payload["trained_window"] == 5 and payload["recorded_batches"] == 8
    assert payload["trained_test_accuracy"] == result.test_accuracy
    assert payload["ema_start_weight"] == pytest.approx(0.99**8)  # float64 both, no TF
    rows = {r["choice"]: r for r in payload["windows"]}
    assert list(rows) == ["1", "2", "5", "10", "50", "200", "epoch", "EMA"]
    assert rows["5"]["test_accuracy"] == result.test_accuracy
    assert [rows[c]["clipped"] for c in ("5", "10", "200", "epoch")] == [False, True, True, False]
    assert rows["200"]["window"] == rows["epoch"]["window"] == 8
    assert not list(path.parent.glob(".*tmp"))  # the temporary file was renamed away
    json.loads(path.read_text())  # strict JSON


def test_a_replay_queued_on_the_job_runner_runs_in_its_own_process(stored):
    """The Window page's path: JobRunner.replay queues, the runner starts ``python -m
    bn_core.runs.replays.job`` on the local backend, the process holds the job and ends it."""
    home, run_id, result = stored
    store = RunStore(home)
    path = replays.replay_path(home, run_id)
    path.unlink(missing_ok=True)  # written by the command line test, if it ran first
    backend = LocalProcessBackend(store, standby=False)
    runner = JobRunner(store, backend, max_concurrent=1, poll_interval=0.2)
    assert runner.replay([run_id]) == [run_id]
    runner.start()
    try:
        end = time.monotonic() + 300
        while store.replay_jobs([run_id])[run_id].status in ("queued", "running"):
            assert time.monotonic() < end, replays.replay_log_path(home, run_id).read_text()
            time.sleep(0.2)
    finally:
        runner.stop()
        for child in backend._children.values():
            child.kill()
            child.wait(timeout=30)
    job = store.replay_jobs([run_id])[run_id]
    log = replays.replay_log_path(home, run_id)
    assert job.status == "done", log.read_text()[-2000:]
    assert job.error is None and job.pid not in (None, os.getpid())
    assert job.created_at < job.started_at < job.finished_at
    rows = {r["choice"]: r for r in replays.load_replay(path, run_id)["windows"]}
    assert rows["5"]["test_accuracy"] == result.test_accuracy
    assert replays.last_log_line(log) == f"run {run_id}: replay written to {path}"


def _seed_error_runs(home: Path) -> dict[str, int]:
    store = RunStore(home)
    ids = {}
    for name, variant in (
        ("no-model", "lenet_fc_bn2"),
        ("keras", "lenet_keras_bn"),
        ("plain", "lenet"),
    ):
        ids[name] = store.create_run(TrainConfig(variant=variant), "g")
        store.transition(ids[name], ("queued",), "completed", test_accuracy=0.5)
        store.model_path(ids[name]).parent.mkdir(exist_ok=True)
        if name != "no-model":  # even with a model file, these variants have no history
            store.model_path(ids[name]).write_bytes(b"not read")
    return ids


@pytest.mark.parametrize(
    "name, message",
    [
        ("no-model", "has no saved model"),
        ("keras", "Keras' BatchNormalization"),
        ("plain", "no BN, nothing to replay"),
    ],
)
def test_command_line_errors_are_one_line_and_exit_1(tmp_path, name, message):
    ids = _seed_error_runs(tmp_path / "home")
    done = _cli(tmp_path / "home", str(ids.get(name, 99)))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: ") and message in lines[0], lines
    assert not (tmp_path / "home" / "replays").exists()


def test_command_line_missing_run_is_a_bad_value_exit_2(tmp_path):
    """No such run is a bad RUN_ID (exit 2, one line, as for resume), not a failed replay."""
    _seed_error_runs(tmp_path / "home")
    done = _cli(tmp_path / "home", "99")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: there is no run #99 in " in lines[0], lines
    assert not (tmp_path / "home" / "replays").exists()


def test_a_model_without_history_and_a_bad_argument(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "home")
    run_id = store.create_run(TrainConfig(variant="lenet_bn1"), "g")
    store.transition(run_id, ("queued",), "completed")
    store.model_path(run_id).parent.mkdir()
    build_model("lenet_bn1", history_size=0).save(store.model_path(run_id))
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "home"))
    assert main([str(run_id)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"replay: run #{run_id}: the model's BN layers keep no recorded batches "
        "(history_size=0, or never trained): train the run again to replay it"
    ]
    for bad in ("x", "\u0661", str(2**63), "9" * 5000):  # the job's own check, too
        assert main([bad]) == 2
        assert "usage: python -m bn_core replay RUN_ID" in capsys.readouterr().err
