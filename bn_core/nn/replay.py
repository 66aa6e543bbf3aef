"""Window replay: re-estimate every BN layer's inference statistics after training, from the
batch statistics it recorded, and measure the trained model under each choice (no retraining).

Ioffe & Szegedy (2015, arXiv:1502.03167) Algorithm 2 replaces the mini-batch statistics of
training by population statistics for inference. Over the last W recorded training batches
B_1..B_W of one feature (means mu_j, biased variances sigma2_j, sizes m_j):

    E[x]   = 1/W * sum_j mu_j
    Var[x] = 1/W * sum_j m_j / (m_j - 1) * sigma2_j

which is what ``bn_core.nn.batchnorm.BatchNorm`` computes over its own window (``window_size``).
Keras' ``BatchNormalization`` keeps instead an exponential moving average of the *biased*
batch moments, started at mean 0 / variance 1 and updated after every training batch:

    moving_mean = momentum * moving_mean + (1 - momentum) * mu_j
    moving_var  = momentum * moving_var  + (1 - momentum) * sigma2_j

What the history holds: ``training.train`` builds our BN layers with ``history_size =
steps_per_epoch`` and drops each epoch's incomplete last batch, so a completed run's model
keeps the (mu, sigma2, m) of exactly its last epoch's batches (a run cancelled mid-epoch: its
last steps_per_epoch steps, across two epochs; fewer if cancelled within its first). Hence:

- W = ``epoch`` (every recorded batch) is Algorithm 2 over one epoch. Each batch's statistics
  were measured with the weights of the step that used them, as in the layer's own window;
  the paper's step 10 would re-run the batches through the final network instead.
- Ws larger than the history are clipped to it and flagged ``clipped`` (never a silent copy).
- The EMA can only run over the recorded batches, so it starts at (0, 1) k batches before the
  end instead of at the first step of training. Keras' real EMA differs from it by
  momentum**k times (its value one epoch earlier minus (0, 1)); that weight is stored as
  ``ema_start_weight`` (0.99**796 = 3e-4 for 796 batches: negligible; for a tiny run of
  k ~ 10 batches the start dominates, as it would in Keras after k steps).

A stored run is replayed by ``bn_core.runs.replays.job`` (``python -m bn_core replay RUN_ID``),
which writes ``replays/run-ID.json`` (format in ``bn_core.runs.replays.files``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bn_core.constants import DEFAULT_WINDOWS, EMA, EMA_MOMENTUM, EPOCH

EVAL_BATCH_SIZE = 1000  # inference is batch-independent: any batch size gives the same outputs


class ReplayError(Exception):
    """A run or model that cannot be replayed; ``str(e)`` is one line saying why."""


# ----------------------------------------------------------------------------- the statistics


def population_for_window(
    means: np.ndarray, variances: np.ndarray, counts: np.ndarray, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2 over the last ``w`` of the recorded batches (rows oldest first).

    ``means`` and ``variances`` (biased) are (k, C), ``counts`` (k,). Returns (E[x], Var[x]),
    each (C,). A batch with m <= 1 is taken as it is (no m/(m-1)), as the layer does.
    """
    k = len(means)
    if not 1 <= w <= k:
        raise ValueError(f"w must be between 1 and the {k} recorded batches. Received: {w}")
    means = np.asarray(means, np.float64)[-w:]
    variances = np.asarray(variances, np.float64)[-w:]
    counts = np.asarray(counts, np.float64)[-w:]
    unbias = np.where(counts > 1, counts / np.maximum(counts - 1, 1), 1.0)  # (w,)
    return means.mean(axis=0), (unbias[:, None] * variances).mean(axis=0)  # (w, C) -> (C,)


def ema_population(
    means: np.ndarray,
    variances: np.ndarray,
    momentum: float = EMA_MOMENTUM,
    start: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Keras' moving averages of the batch means and biased variances, run over the recorded
    batches oldest to newest from ``start`` = (mean, variance), Keras' initial values."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1). Received: {momentum}")
    means = np.asarray(means, np.float64)
    variances = np.asarray(variances, np.float64)
    if len(means) == 0:
        raise ValueError("ema_population needs at least one recorded batch")
    # The closed form of the recursion: the start keeps momentum**k, batch j (0 = oldest)
    # weighs (1 - momentum) * momentum**(k - 1 - j).
    k = len(means)
    weights = (1.0 - momentum) * momentum ** np.arange(k - 1, -1, -1)  # (k,)
    keep = momentum**k
    mean = keep * start[0] + weights @ means  # (k,) @ (k, C) -> (C,)
    variance = keep * start[1] + weights @ variances
    return mean, variance


# ----------------------------------------------------------------------------- the model


def load_model(path):
    """A saved ``.keras`` model with our BatchNorm (its recorded batches included), uncompiled."""
    import keras  # TensorFlow loads here, only when a model is at hand

    from bn_core.nn.batchnorm import BatchNorm  # noqa: F401 - registers the layer for loading

    return keras.saving.load_model(path, compile=False)


def history_layers(model) -> list:
    """Our BatchNorm layers of ``model`` that recorded batches, in model order.

    Raises ReplayError when there are none (no BN, Keras' BN only, or no history kept)."""
    from bn_core.nn.batchnorm import (
        BatchNorm,  # TensorFlow loads here, only when a model is at hand
    )

    ours = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    if not ours:
        keras_bn = any("BatchNormalization" in type(layer).__name__ for layer in model.layers)
        raise ReplayError(
            "the model's BN layers are Keras' BatchNormalization, which keeps no batch history: "
            "replay applies to bn_core's BatchNorm only"
            if keras_bn
            else "the model has no Batch Normalization: nothing to replay"
        )
    kept = [layer for layer in ours if layer.history is not None and int(layer.steps.numpy())]
    if len(kept) < len(ours):
        raise ReplayError(
            "the model's BN layers keep no recorded batches (history_size=0, or never trained): "
            "train the run again to replay it"
        )
    return kept


def replay(
    model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    windows: Sequence[int | str] = DEFAULT_WINDOWS,
    ema_momentum: float | None = EMA_MOMENTUM,
    batch_size: int = EVAL_BATCH_SIZE,
) -> list[dict[str, Any]]:
    """Test accuracy and loss of ``model`` under each choice of inference statistics.

    ``windows`` holds integers W >= 1 and/or ``"epoch"`` (every recorded batch); an EMA row
    with ``ema_momentum`` follows unless it is None. Each choice sets every BN layer's
    population (``BatchNorm.set_population``) and evaluates; the layers' own windows are
    restored afterwards, whatever happens. Returns one dict per choice, in order:
    ``choice`` (axis label), ``kind``, ``requested``, ``window`` (batches used), ``clipped``,
    ``test_accuracy``, ``test_loss`` (None if not finite).
    """
    layers = history_layers(model)
    recorded = [layer.recorded_batches() for layer in layers]  # each (means, variances, counts)
    k = min(len(means) for means, _, _ in recorded)
    epoch = layers[0].history_size  # = steps_per_epoch in models built by training.train
    choices = _choices(windows, k, epoch, ema_momentum)
    saved = [[weight.numpy() for weight in _window_state(layer)] for layer in layers]
    results: dict[tuple[bool, int], tuple[float | None, float | None]] = {}
    try:
        for choice in choices:
            key = (choice["kind"] == "ema", choice["window"])
            if key in results:  # a clipped W that equals another choice: measured once
                continue
            for layer, (means, variances, counts) in zip(layers, recorded, strict=True):
                if choice["kind"] == "ema":
                    mean, var = ema_population(means[-k:], variances[-k:], ema_momentum)
                else:
                    mean, var = population_for_window(means, variances, counts, choice["window"])
                layer.set_population(mean, var)
            results[key] = evaluate(model, x_test, y_test, batch_size)
    finally:
        for layer, values in zip(layers, saved, strict=True):
            for weight, value in zip(_window_state(layer), values, strict=True):
                weight.assign(value)
    for choice in choices:
        accuracy, loss = results[(choice["kind"] == "ema", choice["window"])]
        choice.update(test_accuracy=accuracy, test_loss=loss)
    return choices


def _window_state(layer) -> tuple:
    """The variables ``set_population`` overwrites: saved before a replay, restored after."""
    return (layer.mean_window, layer.var_window, layer.count_window, layer.steps)


def _choices(
    windows: Sequence[int | str], k: int, epoch: int, ema_momentum: float | None
) -> list[dict[str, Any]]:
    """The rows to measure: requested W, W used (clipped to the k recorded batches)."""
    rows, seen = [], set()
    for w in windows:
        if w in seen:
            continue
        seen.add(w)
        if w == EPOCH:
            rows.append(_row(EPOCH, "epoch", epoch, k, clipped=k < epoch))
        elif isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1:
            rows.append(_row(str(int(w)), "window", int(w), min(int(w), k), clipped=w > k))
        else:
            raise ValueError(f"windows must hold integers >= 1 or {EPOCH!r}. Received: {w!r}")
    if ema_momentum is not None:
        rows.append(_row(EMA, "ema", None, k, clipped=False))
    return rows


def _row(choice: str, kind: str, requested: int | None, window: int, clipped: bool) -> dict:
    return {
        "choice": choice,
        "kind": kind,
        "requested": requested,
        "window": window,
        "clipped": bool(clipped),
    }


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = EVAL_BATCH_SIZE):
    """(accuracy, mean cross-entropy) of the model's logits, both None if not finite."""
    logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)  # (N, K)
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))  # log-sum-exp, (N,)
    loss = float(np.mean(log_norm - logits[np.arange(len(y)), y]))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
    if not (math.isfinite(loss) and np.isfinite(logits).all()):
        return None, None
    return accuracy, loss
