"""BatchNorm against Keras' own layer (training) and against numpy's Algorithm 2 (inference)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_core.nn.batchnorm import BatchNorm
from tests.conftest import f32_atol, f32_rtol, f64_atol

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


def _per_channel(x) -> np.ndarray:
    """(N, F) or (N, H, W, C) -> (m, C) in float64: a column per channel, its m values."""
    x = np.asarray(x, np.float64)
    return x.reshape(-1, x.shape[-1])


def _mean_size(x) -> float:
    """Max over channels of mean|x| / std: the magnitude of the terms of BN's batch mean, in
    units of the normalised output."""
    cols = _per_channel(x)  # (N, ..., C) -> (m, C)
    return float(np.max(np.abs(cols).mean(axis=0) / cols.std(axis=0)))


def _bn_size(x) -> float:
    """What the errors of BN's training output scale with, in units of each channel's std:
    the mean's terms (mean|x| / std) plus the largest normalised value max|x_hat|, which the
    variance's relative error multiplies. Max over channels."""
    cols = _per_channel(x)  # (N, ..., C) -> (m, C)
    std = cols.std(axis=0)
    x_hat = np.abs(cols - cols.mean(axis=0)) / std
    return float(np.max(np.abs(cols).mean(axis=0) / std + x_hat.max(axis=0)))


def _inference_size(layer, x) -> float:
    """What the errors of the inference map scale with: it computes x * scale + shift with
    scale = gamma / sqrt(Var[x] + eps) and shift = beta - E[x] * scale, so every value on
    the way is at most max|scale| * (max|x| + max|E[x]|) + max|beta|."""
    mean, var = (np.asarray(t, np.float64) for t in layer.population_moments())
    scale = np.abs(np.asarray(layer.gamma, np.float64)) / np.sqrt(var + layer.epsilon)
    beta = np.abs(np.asarray(layer.beta, np.float64)).max()
    return float(scale.max() * (np.abs(x).max() + np.abs(mean).max()) + beta)


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
    # Two float64 computations in other orders. Each channel's statistics reduce m values,
    # N (dense) or N*H*W (conv); the magnitudes follow y = gamma * x_hat + beta and
    # dL/dx = gamma / sigma * (g - mean(g) - x_hat * mean(g * x_hat)) for upstream g.
    m = int(np.prod(shape[:-1]))
    size = _bn_size(x)
    g = np.abs(_per_channel(upstream))  # (m, C)
    g_sum = float(g.sum(axis=0).max())  # the largest channel's sum of |g| over its m values
    sigma = float(_per_channel(x).std(axis=0).min())
    magnitudes = {
        "output": np.abs(gamma).max() * size + np.abs(beta).max(),
        "dL/dx": np.abs(gamma).max() / sigma * g.max() * (1 + size) ** 2,
        "dL/dgamma": 2 * size * g_sum,  # sum of m terms g * x_hat, and x_hat's own error
        "dL/dbeta": g_sum,  # sum of m terms g
    }
    for name, a, b in zip(magnitudes, got, want, strict=True):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=f64_atol(magnitudes[name], m), err_msg=name)


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_training_output_is_normalised_per_feature(shape):
    layer = BatchNorm()
    x = _inputs(shape, dtype="float32")
    y = _per_channel(layer(x, training=True))  # (N, ..., C) -> (m, C), checked in float64
    m = len(y)
    # mean(y) = (mean(x) - mu) / sigma: the error of TF's mean over m values, in output units.
    np.testing.assert_allclose(y.mean(axis=0), 0.0, rtol=0, atol=f32_atol(_mean_size(x), m))
    # var(y) = var(x) / sigma2: TF's mean of m squares of one sign has a relative error, and
    # the std half of it.
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=0, atol=f32_rtol(m) / 2)
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
    # float64 in TF and in numpy, in other orders: a mean over k batches of means over up to
    # m values each (mean |x|); the variances are means of terms of one sign (Var[x] itself).
    m, k = int(np.prod(shape[:-1])), min(window, steps)
    mean_size = max(np.abs(_per_channel(b)).mean(axis=0).max() for b in batches[-k:])
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=f64_atol(mean_size, m + k))
    np.testing.assert_allclose(got_var, var, rtol=0, atol=f64_atol(var.max(), m + k))

    layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
    layer.beta.assign(np.linspace(-1, 1, shape[-1]))
    x = _inputs(shape, seed=99)
    expected = np.asarray(layer.gamma) * (x - mean) / np.sqrt(var + eps) + np.asarray(layer.beta)
    atol = f64_atol(_inference_size(layer, x), m + k)  # the errors of E[x] and Var[x], mapped
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), expected, rtol=0, atol=atol)
    assert int(layer.steps) == steps


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_output_does_not_depend_on_the_rest_of_the_batch(shape):
    layer = BatchNorm(window_size=2)
    for seed in range(3):
        layer(_inputs(shape, seed=seed, dtype="float32"), training=True)
    x = _inputs(shape, seed=50, dtype="float32")
    together = np.asarray(layer(x, training=False))
    # The population moments are the same numbers in every call; each output is then one
    # product and one sum (no reduction), whatever kernel another batch shape gets.
    atol = f32_atol(_inference_size(layer, x), 1)
    alone = np.concatenate([np.asarray(layer(x[i : i + 1], training=False)) for i in range(len(x))])
    np.testing.assert_allclose(alone, together, rtol=0, atol=atol)
    shuffled = np.asarray(layer(x[::-1], training=False))[::-1]
    np.testing.assert_allclose(shuffled, together, rtol=0, atol=atol)


def test_before_training_inference_is_the_documented_affine_map():
    layer = BatchNorm(epsilon=1e-2)
    x = _inputs((4, 3), dtype="float32")
    # No reduction: each output is x * gamma / sqrt(1 + eps), a few roundings of its own size.
    np.testing.assert_allclose(
        np.asarray(layer(x, training=False)), x / np.sqrt(1 + 1e-2), rtol=f32_rtol(1)
    )
    assert int(layer.steps) == 0  # inference never touches the window


def test_frozen_layer_uses_population_statistics_even_in_training_mode():
    layer = BatchNorm(window_size=2)
    layer(_inputs((16, 4), dtype="float32"), training=True)
    layer.trainable = False
    x = _inputs((16, 4), seed=3, dtype="float32")
    # The same branch of call() on the same input, in the same process: the same bits.
    np.testing.assert_array_equal(
        np.asarray(layer(x, training=True)), np.asarray(layer(x, training=False))
    )
    assert int(layer.steps) == 1


def test_window_updates_inside_an_xla_compiled_function():
    layer = BatchNorm(window_size=3)
    layer.build((16, 4))
    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    batches = [_inputs((16, 4), seed=s, dtype="float32") for s in range(5)]
    for b in batches:
        step(tf.constant(b))
    mean, var = _algorithm2([b.astype(np.float64) for b in batches], 3)  # reference in float64
    got_mean, got_var = (np.asarray(t) for t in layer.population_moments())
    # float32 under XLA: a mean over 3 batches of means over 16 values (mean |x| each); the
    # variances are means of terms of one sign (Var[x] itself).
    mean_size = max(np.abs(b).mean(axis=0).max() for b in batches[-3:])
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=f32_atol(mean_size, 16 + 3))
    np.testing.assert_allclose(got_var, var, rtol=0, atol=f32_atol(var.max(), 16 + 3))


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
    # The moments reduce the window's 4 slots, then each output is one product and one sum.
    atol = f32_atol(_inference_size(before, x), before.window_size)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=atol
    )


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
    # float64 in TF and in numpy: means over up to n = 10 values (mean |x| each), variances
    # over n squares of one sign (the variance itself).
    n = max(len(b) for b in kept)
    mean_size = max(np.abs(b).mean(axis=0).max() for b in kept)
    want_var = np.array([b.var(axis=0) for b in kept])
    np.testing.assert_allclose(
        means, [b.mean(axis=0) for b in kept], rtol=0, atol=f64_atol(mean_size, n)
    )
    np.testing.assert_allclose(variances, want_var, rtol=0, atol=f64_atol(want_var.max(), n))
    np.testing.assert_array_equal(counts, [len(b) for b in kept])
    # The window (2) is unaffected by the longer history: a mean over 2 of those means.
    mean, _ = _algorithm2(batches, 2)
    np.testing.assert_allclose(
        np.asarray(layer.population_moments()[0]), mean, rtol=0, atol=f64_atol(mean_size, n + 2)
    )


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
    y = _per_channel(layer(x, training=True))  # float64 for the check
    # Batch statistics were used: TF's mean over 16 values, in output units (as above).
    np.testing.assert_allclose(y.mean(axis=0), 0.0, rtol=0, atol=f32_atol(_mean_size(x), 16))
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
    # Stored in float32, then a mean over the window's 4 slots (all holding the same values).
    window = layer.window_size
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=f32_atol(np.abs(mean).max(), window))
    np.testing.assert_allclose(got_var, var, rtol=0, atol=f32_atol(var.max(), window))
    x = _inputs((5, 3), seed=9, dtype="float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, training=False)),
        (x - mean) / np.sqrt(var + 1e-3),
        rtol=0,
        atol=f32_atol(_inference_size(layer, x), window),
    )
