"""BatchNorm against Keras' own layer (training) and against numpy's Algorithm 2 (inference)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_core.nn.batchnorm import BatchNorm

SHAPES = [(32, 7), (8, 6, 5, 3)]  # (N, F) dense features and (N, H, W, C) conv features


def _inputs(shape, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 3.0 + 1.5).astype(dtype)


def _forward_and_grads(layer, x, upstream):
    """Output and d(sum(y * upstream))/d(x, gamma, beta) in training mode."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        objective = tf.reduce_sum(y * upstream)  # a non-trivial upstream gradient
    gamma, beta = layer.trainable_weights  # both layers create gamma before beta
    grads = tape.gradient(objective, [x, gamma.value, beta.value])
    return [np.asarray(t) for t in [y, *grads]]


def _assert_rel_close(actual, expected, rtol=1e-5):
    scale = np.max(np.abs(expected)) + 1e-12
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_and_gradients_match_keras(shape):
    eps = 1e-3
    x = _inputs(shape)
    upstream = tf.constant(_inputs(shape, seed=1))
    ours = BatchNorm(epsilon=eps, dtype="float64")
    ref = keras.layers.BatchNormalization(epsilon=eps, dtype="float64")
    ours.build(shape)
    ref.build(shape)
    rng = np.random.default_rng(2)
    gamma, beta = rng.uniform(0.5, 2.0, size=shape[-1]), rng.normal(size=shape[-1])
    for layer in (ours, ref):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)

    got = _forward_and_grads(ours, x, upstream)
    want = _forward_and_grads(ref, x, upstream)
    for name, a, b in zip(("output", "dL/dx", "dL/dgamma", "dL/dbeta"), got, want, strict=True):
        assert a.shape == b.shape, name
        _assert_rel_close(a, b)


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_training_output_is_normalised_per_feature(shape):
    layer = BatchNorm()
    y = np.asarray(layer(_inputs(shape, dtype="float32"), training=True))
    axes = tuple(range(len(shape) - 1))  # (N, ..., C) -> (C,)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=axes), 1.0, atol=1e-4)
    assert layer.gamma.shape == (shape[-1],) and layer.beta.shape == (shape[-1],)


def _algorithm2(batches, window):
    """Independent numpy Algorithm 2 over the last ``window`` batches, per feature."""
    kept = batches[-window:]
    axes = tuple(range(kept[0].ndim - 1))
    means = [b.mean(axis=axes) for b in kept]
    counts = [b.size // b.shape[-1] for b in kept]
    unbiased = [b.var(axis=axes) * m / (m - 1) for b, m in zip(kept, counts, strict=True)]
    return np.mean(means, axis=0), np.mean(unbiased, axis=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("window,steps", [(3, 7), (5, 2), (1, 4)])
def test_inference_is_algorithm2_over_the_window(shape, window, steps):
    eps = 1e-5
    layer = BatchNorm(epsilon=eps, window_size=window, dtype="float64")
    # Batch sizes vary (a short last batch) so the per-batch m/(m-1) correction matters.
    batches = [_inputs((shape[0] - (i % 3),) + shape[1:], seed=10 + i) for i in range(steps)]
    for b in batches:
        layer(b, training=True)
    mean, var = _algorithm2(batches, window)
    got_mean, got_var = (np.asarray(t) for t in layer.population_moments())
    np.testing.assert_allclose(got_mean, mean, rtol=1e-10)
    np.testing.assert_allclose(got_var, var, rtol=1e-10)

    layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
    layer.beta.assign(np.linspace(-1, 1, shape[-1]))
    x = _inputs(shape, seed=99)
    expected = np.asarray(layer.gamma) * (x - mean) / np.sqrt(var + eps) + np.asarray(layer.beta)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), expected, rtol=1e-10)
    assert int(layer.steps) == steps


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_output_does_not_depend_on_the_rest_of_the_batch(shape):
    layer = BatchNorm(window_size=2)
    for seed in range(3):
        layer(_inputs(shape, seed=seed, dtype="float32"), training=True)
    x = _inputs(shape, seed=50, dtype="float32")
    together = np.asarray(layer(x, training=False))
    alone = np.concatenate([np.asarray(layer(x[i : i + 1], training=False)) for i in range(len(x))])
    np.testing.assert_allclose(alone, together, rtol=1e-6, atol=1e-6)
    shuffled = np.asarray(layer(x[::-1], training=False))[::-1]
    np.testing.assert_allclose(shuffled, together, rtol=1e-6, atol=1e-6)


def test_before_training_inference_is_the_documented_affine_map():
    layer = BatchNorm(epsilon=1e-2)
    x = _inputs((4, 3), dtype="float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, training=False)), x / np.sqrt(1 + 1e-2), rtol=1e-6
    )
    assert int(layer.steps) == 0  # inference never touches the window


def test_frozen_layer_uses_population_statistics_even_in_training_mode():
    layer = BatchNorm(window_size=2)
    layer(_inputs((16, 4), dtype="float32"), training=True)
    layer.trainable = False
    x = _inputs((16, 4), seed=3, dtype="float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, training=True)), np.asarray(layer(x, training=False)), rtol=1e-6
    )
    assert int(layer.steps) == 1


def test_window_updates_inside_an_xla_compiled_function():
    layer = BatchNorm(window_size=3)
    layer.build((16, 4))
    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    batches = [_inputs((16, 4), seed=s, dtype="float32") for s in range(5)]
    for b in batches:
        step(tf.constant(b))
    mean, var = _algorithm2(batches, 3)
    got_mean, got_var = (np.asarray(t) for t in layer.population_moments())
    np.testing.assert_allclose(got_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(got_var, var, rtol=1e-5)


def test_config_round_trip():
    layer = BatchNorm(epsilon=1e-4, window_size=7, name="bn")
    clone = BatchNorm.from_config(layer.get_config())
    assert (clone.epsilon, clone.window_size, clone.name) == (1e-4, 7, "bn")


def test_keras_file_round_trip_keeps_the_window(tmp_path):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, BatchNorm(window_size=4, name="bn")(inputs))
    for seed in range(6):
        model(_inputs((10, 5), seed=seed, dtype="float32"), training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    before, after = model.get_layer("bn"), loaded.get_layer("bn")
    assert isinstance(after, BatchNorm) and after.window_size == 4
    for name in ("mean_window", "var_window", "count_window", "steps"):
        np.testing.assert_array_equal(getattr(after, name).numpy(), getattr(before, name).numpy())
    x = _inputs((3, 5), seed=77, dtype="float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [({"epsilon": 0}, "epsilon must be positive"), ({"window_size": 0}, "window_size must be")],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(**kwargs)


def test_unsupported_rank_is_refused():
    with pytest.raises(ValueError, match="expects \\(N, F\\) or \\(N, H, W, C\\)"):
        BatchNorm()(np.zeros((2, 3, 4), "float32"))


def test_history_keeps_the_last_batches_in_order():
    layer = BatchNorm(window_size=2, history_size=3, dtype="float64")
    batches = [_inputs((6 + i, 4), seed=i) for i in range(5)]
    for b in batches:
        layer(b, training=True)
    means, variances, counts = layer.recorded_batches()
    kept = batches[-3:]
    np.testing.assert_allclose(means, [b.mean(axis=0) for b in kept], rtol=1e-12)
    np.testing.assert_allclose(variances, [b.var(axis=0) for b in kept], rtol=1e-12)
    np.testing.assert_array_equal(counts, [len(b) for b in kept])
    # The window (2) is unaffected by the longer history.
    mean, _ = _algorithm2(batches, 2)
    np.testing.assert_allclose(np.asarray(layer.population_moments()[0]), mean, rtol=1e-12)


def test_history_before_it_is_full_and_without_history():
    layer = BatchNorm(history_size=10)
    layer(_inputs((4, 3), dtype="float32"), training=True)
    means, _, counts = layer.recorded_batches()
    assert means.shape == (1, 3) and counts.tolist() == [4]
    plain = BatchNorm()
    plain(_inputs((4, 3), dtype="float32"), training=True)
    with pytest.raises(ValueError, match="keeps no history"):
        plain.recorded_batches()


def test_record_false_normalises_with_batch_statistics_without_side_effects():
    layer = BatchNorm(window_size=3, history_size=3)
    layer(_inputs((16, 4), dtype="float32"), training=True)
    before = [w.numpy().copy() for w in layer.non_trainable_weights]
    layer.record = False
    x = _inputs((16, 4), seed=5, dtype="float32")
    y = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)  # batch statistics were used
    for old, new in zip(before, layer.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())


def test_history_size_round_trips_and_is_validated():
    assert BatchNorm.from_config(BatchNorm(history_size=7).get_config()).history_size == 7
    with pytest.raises(ValueError, match="history_size must be"):
        BatchNorm(history_size=-1)


def test_set_population_is_used_as_is():
    layer = BatchNorm(epsilon=1e-3, window_size=4)
    layer(_inputs((8, 3), dtype="float32"), training=True)
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0])
    layer.set_population(mean, var)
    got_mean, got_var = (np.asarray(t) for t in layer.population_moments())
    np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(got_var, var, rtol=1e-6)
    x = _inputs((5, 3), seed=9, dtype="float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, training=False)), (x - mean) / np.sqrt(var + 1e-3), rtol=1e-5
    )
