"""Probes: what happens inside LeNet-5 while it trains (Ioffe & Szegedy 2015, Figure 1).

Every ``probe_every`` training steps the ``ProbeCallback`` measures, on a fixed probe batch
(the first ``PROBE_SIZE`` validation images, or test images when there is no validation
split), with the weights of that moment:

- for each BN site (C1, C3, F5, F6) the 15th, 50th and 85th percentiles of the *input to the
  activation* (after BN where there is one, else the linear op's output), in inference mode,
  over the whole layer and over one tracked unit (channel 0 of a conv site over all positions
  and images; unit 0 of a dense site). The paper's Figure 1(b, c): without BN these
  distributions drift while the network trains (internal covariate shift); with BN they stay
  put. Conv sites use the first ``CONV_PROBE_SIZE`` images (still tens of thousands of
  values), which keeps numpy's percentile pass cheap.
- the probe batch's accuracy (Figure 1(a), accuracy against steps);
- the L2 norm of d(loss)/d(kernel) of every linear layer (C1, C3, F5, F6, output) on the
  first ``batch_size`` images of the probe batch with BN in training mode: the gradient a
  training step of this run would take there, i.e. how well gradients reach each depth.

At the end of every epoch it also measures the accuracy on the first ``MODE_GAP_SIZE``
validation images (whole batches only) in inference mode and in training mode (batch
statistics over batches of ``batch_size``, in a fixed order), on the same images: the gap is
what BN's population estimate (Algorithm 2) costs, or gains, over the batch statistics the
network was trained with.

A probe never changes training: it reads weights and writes nothing (our ``BatchNorm`` runs
with ``record = False``, every layer's state updates are discarded through
``Model.stateless_call``), takes no optimizer step and draws no random numbers. Keras calls
callbacks only between executions (``steps_per_execution`` steps), so a probe is taken at the
first boundary at or after each multiple of ``probe_every``, and the event carries that
actual step. One probe also runs before the first step (step 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bn_core.constants import (
    CONV_PROBE_SIZE,
    GRAD_LAYERS,
    MODE_GAP_SIZE,
    PERCENTILES,
    PROBE_SIZE,
)
from bn_core.data import Splits
from bn_core.nn.batchnorm import BatchNorm
from bn_core.results import finite
from bn_core.variants import SITES
from bn_core.vocabulary import Event


def probe_data(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels probes measure on: validation, or test without a validation
    split. Fixed for the whole run, so every probe sees the same inputs."""
    if len(splits.x_val):
        return splits.x_val, splits.y_val
    return splits.x_test, splits.y_test


def percentiles(values: np.ndarray) -> list[float | None]:
    """The ``PERCENTILES`` of every value of ``values`` (numpy's linear interpolation)."""
    return [finite(v) for v in np.percentile(values, PERCENTILES)]


class Probe:
    """Compiled measurements of one model on a fixed probe batch (see the module doc).

    Builds, once: an auxiliary model whose outputs are the inputs of every ``{site}_act``
    layer plus the logits, and ``tf.function``s for the inference pass, the gradient norms and
    the mode gap, traced at their first call. Not XLA: for these few small calls plain graphs
    ran about twice as fast on a CPU and trace in a fraction of XLA's compile time.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int):
        self.model = model
        self.labels = np.asarray(y[:PROBE_SIZE])
        self.x, self.y = tf.constant(x[:PROBE_SIZE]), tf.constant(self.labels)
        self.batch_size = int(batch_size)
        # Gradients on one training-sized batch of it: BN normalises with the statistics of
        # m images, so these are the norms a training step of this run would see.
        self.grad_x, self.grad_y = self.x[: self.batch_size], self.y[: self.batch_size]
        self._aux = keras.Model(
            model.inputs, [model.get_layer(f"{s}_act").input for s in SITES] + [model.output]
        )
        kernel_ids = {id(model.get_layer(name).kernel) for name in GRAD_LAYERS}
        self._kernel_index = [  # positions of the kernels among the trainable variables
            i for i, v in enumerate(model.trainable_variables) if id(v) in kernel_ids
        ]
        # Mode gap: whole batches only (a short tail batch would give BN degenerate statistics),
        # at most MODE_GAP_SIZE images, shaped (B, m, 32, 32, 1) for one compiled loop.
        gap_x, gap_y = x[:MODE_GAP_SIZE], y[:MODE_GAP_SIZE]
        batches = len(gap_x) // self.batch_size
        usable = batches * self.batch_size
        self.gap_x = tf.constant(gap_x[:usable].reshape(batches, self.batch_size, *x.shape[1:]))
        self.gap_y = tf.constant(gap_y[:usable].reshape(batches, self.batch_size))
        self._forward = tf.function(self._forward_fn, jit_compile=False)
        self._grad_norms = self._traced_without_recording(self._grad_norms_fn)
        self._gap = self._traced_without_recording(self._gap_fn)

    # -- public -----------------------------------------------------------------------------

    def activations(self) -> list[np.ndarray]:
        """Inputs of the four activations on the probe batch, inference mode, as numpy:
        (N, 28, 28, 6), (N, 10, 10, 16), (N, 120), (N, 84)."""
        return [a.numpy() for a in self._forward(self.x)[:-1]]

    def measure(self) -> dict[str, Any]:
        """One probe: ``probe_accuracy``, ``sites`` and ``grad_norms`` (JSON-safe)."""
        *acts, logits = (t.numpy() for t in self._forward(self.x))
        sites = {}
        for site, a in zip(SITES, acts, strict=True):
            a = a[:CONV_PROBE_SIZE] if a.ndim == 4 else a  # conv: enough values, 8x cheaper
            sites[site] = {
                "layer": percentiles(a),
                "unit": percentiles(a[..., 0]),  # channel 0 (all N*H*W values) or unit 0 (N)
            }
        accuracy = float(np.mean(np.argmax(logits, axis=-1) == self.labels))
        norms = self._grad_norms(self.grad_x, self.grad_y).numpy()
        return {
            "probe_accuracy": accuracy,
            "sites": sites,
            "grad_norms": {name: finite(n) for name, n in zip(GRAD_LAYERS, norms, strict=True)},
        }

    def mode_gap(self) -> tuple[float | None, float | None]:
        """(inference-mode accuracy, batch-statistics accuracy) on the same validation images,
        or (None, None) when there is not one whole batch of them."""
        if self.gap_x.shape[0] == 0:
            return None, None
        inference, batch_stats = (float(v) for v in self._gap(self.gap_x, self.gap_y).numpy())
        return finite(inference), finite(batch_stats)

    # -- compiled functions -----------------------------------------------------------------

    def _forward_fn(self, x):
        return self._aux(x, training=False)

    def _variables(self):
        """Current weights as tensors, in ``stateless_call``'s order."""
        model = self.model
        return (
            [tf.convert_to_tensor(v.value) for v in model.trainable_variables],
            [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables],
        )

    def _batch_stats_logits(self, trainable, frozen, x):
        """Logits in training mode (batch statistics) with every state update discarded:
        ``stateless_call`` hands back Keras BN's new moving statistics instead of assigning
        them, and we drop them."""
        return self.model.stateless_call(trainable, frozen, x, training=True)[0]

    def _grad_norms_fn(self, x, y):
        trainable, frozen = self._variables()
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            logits = self._batch_stats_logits(trainable, frozen, x)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        grads = tape.gradient(loss, [trainable[i] for i in self._kernel_index])
        return tf.stack([tf.norm(g) for g in grads])  # (len(GRAD_LAYERS),)

    def _gap_fn(self, xs, ys):
        trainable, frozen = self._variables()
        inference = batch_stats = tf.constant(0.0)
        for i in tf.range(tf.shape(xs)[0]):  # (B, m, 32, 32, 1): one batch of m at a time
            x, y = xs[i], ys[i]
            inference += _hits(self.model(x, training=False), y)
            batch_stats += _hits(self._batch_stats_logits(trainable, frozen, x), y)
        return tf.stack([inference, batch_stats]) / tf.cast(tf.size(ys), tf.float32)

    def _traced_without_recording(self, fn: Callable) -> Callable:
        """``fn`` compiled with every BatchNorm's ``record`` off while it is traced (the flag
        is read at trace time, so the compiled graph never pushes batch statistics)."""
        compiled = tf.function(fn, jit_compile=False)
        layers = [layer for layer in self.model.layers if isinstance(layer, BatchNorm)]

        def call(*args):
            saved = [layer.record for layer in layers]
            for layer in layers:
                layer.record = False
            try:
                return compiled(*args)
            finally:
                for layer, record in zip(layers, saved, strict=True):
                    layer.record = record

        return call


def _hits(logits, labels):
    """How many argmax predictions are right (a float scalar)."""
    right = tf.argmax(logits, axis=-1, output_type=labels.dtype) == labels
    return tf.reduce_sum(tf.cast(right, tf.float32))


class ProbeCallback(keras.callbacks.Callback):
    """Emits ``probe`` events every ``probe_every`` steps (and at step 0) and a ``mode_gap``
    event at the end of every epoch. Put it before the engine's streaming callback, so that
    an epoch's mode gap is emitted even when the stream then ends the run."""

    def __init__(
        self,
        probe_every: int,
        steps_per_epoch: int,
        batch_size: int,
        splits: Splits,
        emit: Callable[[dict[str, Any]], None],
    ):
        super().__init__()
        if probe_every < 1:
            raise ValueError(f"probe_every must be >= 1. Received: {probe_every}")
        self.probe_every, self.steps_per_epoch = int(probe_every), int(steps_per_epoch)
        self.batch_size, self.emit = int(batch_size), emit
        self.x, self.y = probe_data(splits)
        self.probe: Probe | None = None
        self.epoch, self.next_step = 0, 0

    def on_train_begin(self, logs=None):
        self.probe = Probe(self.model, self.x, self.y, self.batch_size)
        self._emit_probe(0)
        self.next_step = self.probe_every

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # The same step count as the engine's stream (Keras may report past the epoch's end).
        step = self.epoch * self.steps_per_epoch + min(batch + 1, self.steps_per_epoch)
        if step >= self.next_step:
            self._emit_probe(step)
            self.next_step = (step // self.probe_every + 1) * self.probe_every

    def on_epoch_end(self, epoch, logs=None):
        inference, batch_stats = self.probe.mode_gap()
        self.emit(
            {
                "type": Event.MODE_GAP,
                "epoch": epoch + 1,
                "val_accuracy_inference": inference,
                "val_accuracy_batch_stats": batch_stats,
            }
        )

    def _emit_probe(self, step: int) -> None:
        self.emit(
            {
                "type": Event.PROBE,
                "step": step,
                "epoch_progress": step / self.steps_per_epoch,
                **self.probe.measure(),
            }
        )
