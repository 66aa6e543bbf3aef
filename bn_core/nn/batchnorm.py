"""Batch Normalization written from scratch, with windowed population statistics."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bn_core")
class BatchNorm(keras.layers.Layer):
    """Batch Normalization (Ioffe & Szegedy, 2015, arXiv:1502.03167, Algorithms 1 and 2).

    Normalises each feature of a (N, F) input, or each channel of a (N, H, W, C) input, and
    then scales and shifts it with learned ``gamma`` and ``beta`` of shape (F,) or (C,).
    For a convolutional input the statistics of a channel are taken over all N*H*W values
    (the paper's "effective mini-batch" m' = m*p*q), so the layer stays convolutional.

    Training (Algorithm 1), for a mini-batch B = {x_1..x_m} of one feature:

        mu_B      = 1/m * sum_i x_i
        sigma2_B  = 1/m * sum_i (x_i - mu_B)^2            (biased variance)
        x_hat_i   = (x_i - mu_B) / sqrt(sigma2_B + epsilon)
        y_i       = gamma * x_hat_i + beta

    Gradients flow through mu_B and sigma2_B (they are ordinary ops of the batch). Each
    training step then pushes (mu_B, sigma2_B, m) into a ring buffer that holds the last
    ``window_size`` batches. The buffer lives in non-trainable weights, so it works inside
    ``tf.function``/XLA and is saved with the model.

    Inference (Algorithm 2, over a finite window of the last k <= window_size batches):

        E[x]   = 1/k * sum_j mu_j
        Var[x] = 1/k * sum_j m_j / (m_j - 1) * sigma2_j    (unbiased, per buffered batch)
        y      = gamma / sqrt(Var[x] + epsilon) * x + (beta - gamma * E[x] / sqrt(Var[x] + epsilon))

    i.e. a fixed affine transform, so a sample's output never depends on the other samples
    of its batch. (The paper writes m/(m-1) * E[sigma2]; applying the correction per batch is
    the same for equal batch sizes and stays correct when the last batch of an epoch is short.)

    Before any training step the buffer is empty and inference uses E[x] = 0 and Var[x] = 1,
    the same starting point as Keras' moving statistics: the layer is then the affine map
    gamma * x / sqrt(1 + epsilon) + beta (the identity at initialisation).

    Unlike Keras' ``BatchNormalization``, which keeps an exponential moving average
    (momentum 0.99, i.e. an effective memory of ~100 batches, all weighted differently),
    this layer weights the last ``window_size`` batches equally and forgets older ones.

    For studies the layer can also keep a longer *history* of the last ``history_size``
    batches' (mu_B, sigma2_B, m) (never used by inference itself), from which
    ``bn_core.nn.replay`` re-estimates the population statistics for other window sizes after
    training. Setting ``record = False`` (read when a function is traced) normalises with batch
    statistics without recording them, to measure training-mode outputs without side effects.

    Args:
        epsilon: small positive constant added to the variance for numerical stability.
        window_size: number of most recent training batches averaged for inference.
        history_size: number of most recent training batches kept for replay (0: none).
        **kwargs: base layer arguments (``name``, ``dtype``, ...).
    """

    def __init__(
        self, epsilon: float = 1e-8, window_size: int = 5, history_size: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon}")
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(
                f"window_size must be an integer >= 1. Received: window_size={window_size}"
            )
        if int(history_size) != history_size or history_size < 0:
            raise ValueError(
                f"history_size must be an integer >= 0. Received: history_size={history_size}"
            )
        self.epsilon = float(epsilon)
        self.window_size = int(window_size)
        self.history_size = int(history_size)
        self.record = True
        self.gamma = None
        self.beta = None
        self.mean_window = None
        self.var_window = None
        self.count_window = None
        self.steps = None
        self.history = None  # (mean, var, count) buffers of history_size slots, if any

    def build(self, input_shape):
        if len(input_shape) not in (2, 4) or input_shape[-1] is None:
            raise ValueError(
                "BatchNorm expects (N, F) or (N, H, W, C) inputs with a known last axis. "
                f"Received: input_shape={input_shape}"
            )
        dim = input_shape[-1]
        # Every axis but the feature/channel axis is reduced: (N, F) -> (F,), (N, H, W, C) -> (C,).
        self._reduction_axes = tuple(range(len(input_shape) - 1))
        self.gamma = self.add_weight(shape=(dim,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(dim,), initializer="zeros", name="beta")
        window = (self.window_size, dim)
        self.mean_window = self.add_weight(
            shape=window, initializer="zeros", trainable=False, name="mean_window"
        )
        self.var_window = self.add_weight(
            shape=window, initializer="zeros", trainable=False, name="var_window"
        )
        # m of each buffered batch (N, or N*H*W for conv), for the m/(m-1) correction.
        self.count_window = self.add_weight(
            shape=(self.window_size,), initializer="zeros", trainable=False, name="count_window"
        )
        # Training steps seen so far; the next batch goes to slot steps % window_size.
        self.steps = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="steps"
        )
        if self.history_size:
            self.history = tuple(
                self.add_weight(shape=shape, initializer="zeros", trainable=False, name=name)
                for name, shape in (
                    ("history_mean", (self.history_size, dim)),
                    ("history_var", (self.history_size, dim)),
                    ("history_count", (self.history_size,)),
                )
            )
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={-1: dim})

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=False):
        # Like Keras' layer: a frozen BN (trainable=False) always uses population statistics.
        if training and self.trainable:
            return self._normalize_batch(inputs)
        mean, variance = self.population_moments()
        scale = self.gamma * ops.rsqrt(variance + self.epsilon)  # (C,)
        shift = self.beta - mean * scale  # (C,)
        return inputs * ops.cast(scale, inputs.dtype) + ops.cast(shift, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "window_size": self.window_size,
                "history_size": self.history_size,
            }
        )
        return config

    # -- helpers ----------------------------------------------------------------------------

    def _normalize_batch(self, x):
        """Algorithm 1 on this batch, then record its statistics in the window."""
        mean = ops.mean(x, axis=self._reduction_axes)  # (N, ..., C) -> (C,)
        centered = x - mean
        variance = ops.mean(ops.square(centered), axis=self._reduction_axes)  # biased, (C,)
        y = self.gamma * (centered * ops.rsqrt(variance + self.epsilon)) + self.beta
        count = ops.cast(ops.size(x), self.count_window.dtype) / ops.cast(
            ops.shape(x)[-1], self.count_window.dtype
        )
        if self.record:
            self._push(ops.stop_gradient(mean), ops.stop_gradient(variance), count)
        return y

    def _push(self, mean, variance, count):
        """Overwrite the oldest slot of each ring buffer with this batch's statistics."""
        buffers = [(self.mean_window, self.var_window, self.count_window, self.window_size)]
        if self.history is not None:
            buffers.append((*self.history, self.history_size))
        for means, variances, counts, size in buffers:
            slot = ops.cast(ops.mod(self.steps, size), "int32")
            # slice_update writes one row: O(C) per step, whatever the buffer's length.
            means.assign(ops.slice_update(means, [slot, 0], mean[None, :]))
            variances.assign(ops.slice_update(variances, [slot, 0], variance[None, :]))
            counts.assign(ops.slice_update(counts, [slot], ops.reshape(count, (1,))))
        self.steps.assign(self.steps + 1)

    def set_population(self, mean, variance) -> None:
        """Make inference use exactly E[x] = ``mean`` and Var[x] = ``variance`` (already
        unbiased), e.g. statistics re-estimated by ``bn_core.nn.replay``: every window slot gets
        them with m = 0, which the m/(m-1) correction leaves as they are."""
        shape = (self.window_size, self.mean_window.shape[-1])
        self.mean_window.assign(
            ops.broadcast_to(ops.convert_to_tensor(mean, self.mean_window.dtype), shape)
        )
        self.var_window.assign(
            ops.broadcast_to(ops.convert_to_tensor(variance, self.var_window.dtype), shape)
        )
        self.count_window.assign(ops.zeros((self.window_size,), self.count_window.dtype))
        self.steps.assign(max(int(self.steps.numpy()), self.window_size))

    def recorded_batches(self):
        """The history as numpy arrays, oldest first: means (k, C), variances (k, C), m (k,),
        with k = min(steps, history_size)."""
        if self.history is None:
            raise ValueError("this BatchNorm keeps no history; build it with history_size > 0")
        steps, size = int(self.steps.numpy()), self.history_size
        k = min(steps, size)
        order = [(steps - k + i) % size for i in range(k)]  # oldest -> newest slot
        return tuple(buffer.numpy()[order] for buffer in self.history)

    def population_moments(self):
        """(E[x], Var[x]) of Algorithm 2 over the filled slots; (0, 1) before any training."""
        dtype = self.mean_window.dtype
        filled = ops.cast(
            ops.arange(self.window_size, dtype="int64") < self.steps, dtype
        )  # (W,) 1 where a slot holds a batch
        k = ops.sum(filled)
        denom = ops.maximum(k, 1.0)
        mean = ops.sum(filled[:, None] * self.mean_window, axis=0) / denom  # (W, C) -> (C,)
        # m/(m-1) per slot; a slot with m <= 1 (see set_population) is taken as it is.
        counts = self.count_window
        unbias = ops.where(counts > 1.0, counts / ops.maximum(counts - 1.0, 1.0), 1.0)  # (W,)
        variance = ops.sum((filled * unbias)[:, None] * self.var_window, axis=0) / denom
        empty = k < 0.5
        mean = ops.where(empty, ops.zeros_like(mean), mean)
        variance = ops.where(empty, ops.ones_like(variance), variance)
        return mean, variance
