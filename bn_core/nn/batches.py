"""The engine's input pipeline: the training split as shuffled mini-batches, evaluation sets
in big batches.

The shuffling contract: epoch e (0-based) of a run with seed s trains on the permutation
``tf.random.experimental.stateless_shuffle(range(n), seed=(s, e))`` of its n training
images, cut in order into n // m batches of m (``epoch_batches``). It is a pure function of
(s, e) (for one TensorFlow version), so a run resumed at epoch k from a checkpoint sees
exactly the batches the uninterrupted run saw, without replaying epochs 0..k-1.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

EVAL_BATCH_SIZE = 1000  # inference is batch-independent, so evaluate in big batches


def epoch_batches(n: int, batch_size: int, seed: int, epoch) -> tf.Tensor:
    """The image indices of epoch ``epoch``'s batches, (n // batch_size, batch_size) int64: the
    permutation ``stateless_shuffle(range(n), seed=(seed, epoch))`` cut in order into batches.

    The last n mod m indices of the permutation are dropped (a different few each epoch, so
    every image is used): BN's statistics over a tail batch of a few samples would be
    degenerate, and a fixed shape keeps XLA from compiling a second program.
    """
    steps = n // batch_size
    order = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
    )
    return tf.reshape(order[: steps * batch_size], (steps, batch_size))  # (n,) -> (steps, m)


class TrainBatches(keras.callbacks.Callback):
    """The training split as mini-batches in ``epoch_batches`` order: ``dataset`` reads the
    epoch from a variable that ``on_epoch_begin`` sets (Keras opens a new iterator of a finite
    dataset for every epoch, after the callbacks' ``on_epoch_begin``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        images, labels = tf.constant(x), tf.constant(y)
        steps = len(x) // batch_size
        with tf.device("/CPU:0"):  # read by the input pipeline, which runs on the CPU
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

        def batches(_):
            order = epoch_batches(len(x), batch_size, seed, self.epoch.read_value())
            return tf.data.Dataset.from_tensor_slices(order)  # one (m,) index vector a step

        # A gather per batch is cheap; what costs is tf.data's autotuner and shared thread
        # pools competing with the training step for the cores (epochs ran at half speed, at
        # random). One private input thread and a fixed prefetch measured faster and steadier.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        self.dataset = (
            tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
            .flat_map(batches)  # the permutation is drawn once an epoch, when it is opened
            .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)))  # (m,32,32,1)
            .prefetch(2)
            .apply(tf.data.experimental.assert_cardinality(steps))  # Keras counts the steps
            .with_options(options)
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def eval_dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(EVAL_BATCH_SIZE).prefetch(2)
