"""Checkpoints: everything a run needs to continue exactly where it stopped, in one ``.npz``.

``bn_core.nn.training.train(..., checkpoint=PATH)`` writes one at the end of every epoch and,
when ``PATH`` exists as it starts, restores it and continues with the next epoch. Because
the engine's shuffle is a pure function of (seed, epoch) and nothing else in a step draws a
random number, a resumed run takes the same steps, on the same batches, from the same state
as the run that was never interrupted.

A checkpoint holds (``np.savez``, uncompressed; read back with ``allow_pickle=False``):

- ``model/0..``: every variable of the model, trainable and not, in ``model.variables``
  order (weights, our BN's window and one-epoch history buffers and step counters, Keras
  BN's moving statistics);
- ``optimizer/0..``: every variable of the optimizer (its iteration counter, learning rate,
  and slots: Adam's m and v);
- ``history``: (epochs done, len(HISTORY_KEYS)) float64, the per-epoch rows so far (NaN
  kept: a run without a validation split has NaN validation columns);
- ``meta``: a UTF-8 JSON document stored as a uint8 array: format and version, ``epoch``
  (completed epochs), ``step`` (= epoch * steps_per_epoch), the run's ``fingerprint`` and
  the path, shape and dtype of every variable.

The fingerprint (``fingerprint``) is what decides the maths of a run: every ``TrainConfig``
field but ``epochs`` (a run may be resumed with more epochs), ``probe_every`` (probes only
read) and ``data_dir`` (where the files are, not what they hold), with the learning rate
actually used, plus the training/validation set sizes, the steps per epoch and a digest of
their labels (another split or another file changes it). A checkpoint whose fingerprint
differs is refused. Metadata and sizes are checked when the file is read (``load``), the
variables' paths, shapes and dtypes against the model before anything is assigned
(``restore``); any problem, a truncated or damaged file included, is a ``CheckpointError``.
Whoever passes ``PATH`` deletes the file once the run has ended; one written after the last
epoch still loads (resuming it then only evaluates on the test set).

Sizes and costs at the default settings (MNIST, 51,000 training images at batch 64: 796
steps per epoch), measured on a 2-core VM: 0.75 MB for ``lenet`` (weights plus Adam's m and
v, 3 x 61.7k floats), 0.76 MB ``lenet_keras_bn``, 0.80 MB ``lenet_bn1``, 0.91 MB
``lenet_bn2``, 1.68 MB ``lenet_fc_bn1``, 2.23 MB ``lenet_fc_bn2`` (our BN's one-epoch
history: 796 x 2C floats a site). Writing one, fsync included, took 10-35 ms at an epoch end
(an epoch takes ~25 s: about 0.1%); reading and restoring it 25-70 ms.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bn_core.atomic import atomic_path
from bn_core.config import TrainConfig
from bn_core.data import Splits
from bn_core.messages import one_line
from bn_core.results import HISTORY_KEYS

FORMAT = "bn-lab checkpoint"
VERSION = 1
# Fields that never change what a run computes (see the module docstring).
UNFINGERPRINTED = ("epochs", "probe_every", "data_dir")
_GROUPS = ("model", "optimizer")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str(e)`` is one line naming the file and the fix."""


@dataclass
class Checkpoint:
    """A read and checked checkpoint: ``epoch`` epochs done, ``step`` steps done."""

    epoch: int
    step: int
    history: dict[str, list[float]]
    values: dict[str, list[np.ndarray]]  # "model"/"optimizer" -> arrays in variable order
    specs: dict[str, list[dict[str, Any]]]  # the same -> {"path", "shape", "dtype"} each


def fingerprint(config: TrainConfig, splits: Splits) -> dict[str, Any]:
    """What decides the maths of ``config`` trained on ``splits`` (JSON-safe)."""
    values = {k: v for k, v in config.to_dict().items() if k not in UNFINGERPRINTED}
    values["learning_rate"] = config.effective_learning_rate  # None and 1e-3 are both Adam's
    labels = hashlib.sha256()
    for y in (splits.y_train, splits.y_val):
        labels.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return {
        **values,
        "n_train": len(splits.x_train),
        "n_val": len(splits.x_val),
        "steps_per_epoch": len(splits.x_train) // config.batch_size,
        "labels_sha256": labels.hexdigest(),
    }


def save(
    path: str | os.PathLike,
    model,
    *,
    fingerprint: dict[str, Any],
    epoch: int,
    step: int,
    history: dict[str, list[float]],
) -> None:
    """Write ``model``'s and its optimizer's variables and the run's progress to ``path``
    atomically (a reader, or a resume after a kill, finds the old file or the new one)."""
    variables = _variables(model)
    arrays = {
        f"{group}/{i}": np.asarray(v.numpy())
        for group, vs in variables.items()
        for i, v in enumerate(vs)
    }
    rows = [history[k] for k in HISTORY_KEYS]
    arrays["history"] = np.asarray(rows, dtype=np.float64).T.reshape(epoch, len(HISTORY_KEYS))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "step": int(step),
        "fingerprint": fingerprint,
        "history_keys": list(HISTORY_KEYS),
        **{group: [_spec(v) for v in vs] for group, vs in variables.items()},
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # a file object: np.savez would add ".npz" to a name
        f.flush()
        os.fsync(f.fileno())  # the rename must not outrun the data after a power cut


def load(path: str | os.PathLike, expected: dict[str, Any], epochs: int) -> Checkpoint:
    """Read the checkpoint at ``path`` and check it against ``expected`` (``fingerprint`` of
    the run that resumes it, which trains ``epochs`` epochs in all)."""
    path = Path(path)
    name = path.name
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}  # reads (and CRC-checks) every array
        meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any damage (truncated, not a zip, bad JSON)
        raise CheckpointError(
            f"{name}: damaged or not a checkpoint ({one_line(exc, typed=True)}); "
            "delete it to start the run afresh"
        ) from None
    try:
        checkpoint = _parse(meta, arrays)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{name}: not a valid checkpoint ({one_line(exc, typed=True)}); "
            "delete it to start afresh"
        ) from None
    differs = [
        f"{k}: {meta['fingerprint'].get(k)!r} in the file, {expected[k]!r} now"
        for k in expected
        if meta["fingerprint"].get(k) != expected[k]
    ]
    if differs or set(meta["fingerprint"]) != set(expected):
        detail = "; ".join(differs) or "other fields"
        raise CheckpointError(
            f"{name} is a checkpoint of another run ({detail}): delete it to start afresh, "
            "or resume with the settings it was made with"
        )
    if checkpoint.step != checkpoint.epoch * expected["steps_per_epoch"]:
        raise CheckpointError(
            f"{name}: step {checkpoint.step} is not {checkpoint.epoch} epochs of "
            f"{expected['steps_per_epoch']} steps; delete it to start afresh"
        )
    if checkpoint.epoch > epochs:
        raise CheckpointError(
            f"{name} was made after epoch {checkpoint.epoch}, but this run has only {epochs} "
            f"epochs; raise --epochs to at least {checkpoint.epoch} or delete it"
        )
    return checkpoint


def restore(checkpoint: Checkpoint, model, name: str = "checkpoint") -> None:
    """Assign ``checkpoint``'s values to ``model``'s and its optimizer's variables, after
    checking that every path, shape and dtype matches (nothing is assigned otherwise)."""
    variables = _variables(model)
    for group, vs in variables.items():
        saved = checkpoint.specs[group]
        if len(saved) != len(vs):
            raise CheckpointError(
                f"{name}: {len(saved)} {group} variables in the file, {len(vs)} in the model; "
                "delete it to start afresh"
            )
        for spec, v in zip(saved, vs, strict=True):
            if spec != _spec(v):
                raise CheckpointError(
                    f"{name}: {group} variable {spec} does not fit the model's {_spec(v)}; "
                    "delete it to start afresh"
                )
    for group, vs in variables.items():
        for v, value in zip(vs, checkpoint.values[group], strict=True):
            v.assign(value)


# ----------------------------------------------------------------------------- helpers


def _variables(model) -> dict[str, list]:
    return {"model": list(model.variables), "optimizer": list(model.optimizer.variables)}


def _spec(variable) -> dict[str, Any]:
    return {
        "path": variable.path,
        "shape": [int(d) for d in variable.shape],
        "dtype": str(np.dtype(variable.dtype)),
    }


def _parse(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Checkpoint:
    """A Checkpoint from the file's parts, every size and type checked (raises ValueError,
    KeyError or TypeError naming the first problem)."""
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"format {meta.get('format')!r} version {meta.get('version')!r}")
    epoch, step = meta["epoch"], meta["step"]
    if not all(type(n) is int and n >= 0 for n in (epoch, step)):
        raise ValueError(f"epoch {epoch!r} and step {step!r} must be integers >= 0")
    if meta["history_keys"] != list(HISTORY_KEYS) or not isinstance(meta["fingerprint"], dict):
        raise ValueError(f"history keys {meta['history_keys']!r}")
    history = arrays.pop("history")
    if history.shape != (epoch, len(HISTORY_KEYS)) or history.dtype != np.float64:
        raise ValueError(f"history of shape {history.shape} and dtype {history.dtype}")
    values, specs = {}, {}
    for group in _GROUPS:
        specs[group] = meta[group]
        values[group] = [arrays.pop(f"{group}/{i}") for i in range(len(specs[group]))]
        for i, (spec, value) in enumerate(zip(specs[group], values[group], strict=True)):
            if [*value.shape] != spec["shape"] or str(value.dtype) != spec["dtype"]:
                raise ValueError(f"{group}/{i} is {value.dtype}{[*value.shape]}, not {spec}")
    if arrays:
        raise ValueError(f"unexpected arrays {sorted(arrays)[:3]}")
    rows = {k: [float(v) for v in history[:, j]] for j, k in enumerate(HISTORY_KEYS)}
    return Checkpoint(epoch=epoch, step=step, history=rows, values=values, specs=specs)


def peek(path: str | os.PathLike) -> int | None:
    """The epochs done recorded in the checkpoint at ``path``, reading only its metadata (no
    TensorFlow, no variables); None when there is no file or it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        return int(meta["epoch"]) if meta.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
