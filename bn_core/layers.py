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

    Args:
        epsilon: small positive constant added to the variance for numerical stability.
        window_size: number of most recent training batches averaged for inference.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, epsilon: float = 1e-8, window_size: int = 5, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon}")
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(
                f"window_size must be an integer >= 1. Received: window_size={window_size}"
            )
        self.epsilon = float(epsilon)
        self.window_size = int(window_size)
        self.gamma = None
        self.beta = None
        self.mean_window = None
        self.var_window = None
        self.count_window = None
        self.steps = None

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
        config.update({"epsilon": self.epsilon, "window_size": self.window_size})
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
        self._push(ops.stop_gradient(mean), ops.stop_gradient(variance), count)
        return y

    def _push(self, mean, variance, count):
        """Overwrite the oldest slot of the ring buffer with this batch's statistics."""
        slot = ops.mod(self.steps, self.window_size)
        onehot = ops.one_hot(slot, self.window_size, dtype=self.mean_window.dtype)  # (W,)
        keep = 1.0 - onehot
        self.mean_window.assign(self.mean_window * keep[:, None] + onehot[:, None] * mean[None, :])
        self.var_window.assign(
            self.var_window * keep[:, None] + onehot[:, None] * variance[None, :]
        )
        self.count_window.assign(self.count_window * keep + onehot * count)
        self.steps.assign(self.steps + 1)

    def population_moments(self):
        """(E[x], Var[x]) of Algorithm 2 over the filled slots; (0, 1) before any training."""
        dtype = self.mean_window.dtype
        filled = ops.cast(
            ops.arange(self.window_size, dtype="int64") < self.steps, dtype
        )  # (W,) 1 where a slot holds a batch
        k = ops.sum(filled)
        denom = ops.maximum(k, 1.0)
        mean = ops.sum(filled[:, None] * self.mean_window, axis=0) / denom  # (W, C) -> (C,)
        # m/(m-1) per slot; max(m-1, 1) keeps an empty slot (m=0) or m=1 finite.
        unbias = self.count_window / ops.maximum(self.count_window - 1.0, 1.0)  # (W,)
        variance = ops.sum((filled * unbias)[:, None] * self.var_window, axis=0) / denom
        empty = k < 0.5
        mean = ops.where(empty, ops.zeros_like(mean), mean)
        variance = ops.where(empty, ops.ones_like(variance), variance)
        return mean, variance
