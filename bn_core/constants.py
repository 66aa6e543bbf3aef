"""Constants that several layers share (TF-free, imports nothing from bn_core).

They sit at the bottom of the package so that the TensorFlow half that *measures* a thing
(``bn_core.nn``) and the TF-free halves that *store, analyse and draw* it read one value:
the probes' percentiles and sizes, the window-replay choices, the dataset names.
"""

from __future__ import annotations

# -- datasets ---------------------------------------------------------------------------------

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")
TRAIN_ROWS = 60000  # training images of both MNIST and Fashion-MNIST, before the val split

# -- probes (Ioffe & Szegedy 2015, Figure 1) --------------------------------------------------

PERCENTILES: tuple[int, ...] = (15, 50, 85)  # as in the paper's Figure 1(b, c)
PROBE_SIZE = 256  # validation images of the fixed probe batch
# Conv sites' percentiles use its first images only: 32 * 28 * 28 = 25,088 values of a C1
# channel (32 * 10 * 10 = 3,200 of a C3 one) are plenty, and numpy's partition, the probe's
# costliest part after the two passes, costs 8x less.
CONV_PROBE_SIZE = 32
MODE_GAP_SIZE = 1024  # validation images of the per-epoch mode gap (whole batches of m only)
GRAD_LAYERS: tuple[str, ...] = ("C1", "C3", "F5", "F6", "output")  # linear layers, input first
# Probe every k steps: measured < 5% of training time at this k (bench/bench_probes.py).
PROBE_EVERY_DEFAULT = 96

# -- window replay ----------------------------------------------------------------------------

EPOCH = "epoch"  # the window of every recorded batch: exact Algorithm 2 over one epoch
EMA = "EMA"  # Keras' exponential moving average, run over the recorded batches
DEFAULT_WINDOWS: tuple[int | str, ...] = (1, 2, 5, 10, 50, 200, EPOCH)
EMA_MOMENTUM = 0.99  # Keras' BatchNormalization default
