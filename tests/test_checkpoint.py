"""Tests for checkpoints and exact resume: bn_core.nn.checkpoint, bn_core.nn.batches and
``train(..., checkpoint=PATH)``.

Runs train LeNet-5 on the tiny synthetic splits of conftest.py (256 train images) at batch 8:
32 steps per epoch, 4 epochs. ``steps_per_execution=8`` gives four batch events an epoch (so a
run can be killed in the middle of one), and plain graphs stand in for XLA
(``jit_compile=False``: the same maths at a fraction of the compile time; the XLA engine
resumes exactly too, checked by hand: every history number equal).

Each scenario compares a run that was never interrupted with one resumed from a checkpoint
of epoch 2: lenet_bn2 from the file the uninterrupted run had on disk in the middle of epoch
3 (what a kill at that moment leaves), lenet_keras_bn with probes from a run cancelled after
epoch 2. The resumed run must take the same steps on the same batches from the same state, so
its numbers match and its events continue the uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from bn_core.config import TrainConfig
from bn_core.nn import checkpoint as ckpt
from bn_core.nn import training
from bn_core.nn.batches import TrainBatches, epoch_batches
from bn_core.nn.checkpoint import CheckpointError
from bn_core.nn.training import EngineOptions, train
from bn_core.results import HISTORY_KEYS
from tests.helpers import Recorder

RUN = dict(batch_size=8, epochs=4, activation="relu")
STEPS = 256 // 8  # per epoch
OPTIONS = EngineOptions(jit_compile=False, steps_per_execution=8)
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Probes every 36 steps, callbacks every 8: due at 36, 72, 108, taken at 40, 72, 112. A run
# resumed at step 64 must take the next one at 72 (not at once, and not at step "0").
K = 36
# The resumed run repeats the same float32 operations in the same order; the bound only
# allows for a multi-threaded reduction that sums in another order (measured: 0.0).
ATOL = 1e-4


def steps(rec: Recorder, kind: str) -> list[int]:
    return [e["step"] for e in rec.of_type(kind)]


@pytest.fixture(scope="module")
def bn2(tiny_splits, tmp_path_factory):
    """lenet_bn2: uninterrupted (with a checkpoint), and resumed from the file that run had on
    disk in the middle of epoch 3: what a kill at that moment would have left behind."""
    folder = tmp_path_factory.mktemp("bn2")
    config = TrainConfig(variant="lenet_bn2", **RUN)
    full_rec, resumed_rec = Recorder(), Recorder()
    path, left = folder / "a", folder / "left.npz"

    def snapshot_mid_epoch_3(event):
        full_rec(event)
        if event["type"] == "batch" and event["epoch"] == 3 and event["batch"] == 16:
            shutil.copyfile(path, left)

    full = train(config, snapshot_mid_epoch_3, splits=tiny_splits, options=OPTIONS, checkpoint=path)
    found = ckpt.load(left, ckpt.fingerprint(config, tiny_splits), config.epochs)
    resumed = train(config, resumed_rec, splits=tiny_splits, options=OPTIONS, checkpoint=left)
    return {
        "config": config,
        "folder": folder,
        "full": (full, full_rec),
        "left": found,  # as the resumed run found it (it then wrote epochs 3 and 4 there)
        "resumed": (resumed, resumed_rec),
    }


@pytest.fixture(scope="module")
def keras_bn(tiny_splits, tmp_path_factory):
    """lenet_keras_bn with probes: uninterrupted, cancelled after epoch 2, resumed."""
    folder = tmp_path_factory.mktemp("keras_bn")
    config = TrainConfig(variant="lenet_keras_bn", probe_every=K, **RUN)
    full_rec, cancelled_rec, resumed_rec = Recorder(), Recorder(), Recorder()
    full = train(config, full_rec, splits=tiny_splits, options=OPTIONS)

    def after_epoch_2():
        return any(e["type"] == "epoch" and e["epoch"] == 2 for e in cancelled_rec.events)

    path = folder / "run.npz"
    cancelled = train(
        config, cancelled_rec, after_epoch_2, splits=tiny_splits, options=OPTIONS, checkpoint=path
    )
    resumed = train(config, resumed_rec, splits=tiny_splits, options=OPTIONS, checkpoint=path)
    return {
        "full": (full, full_rec),
        "cancelled": (cancelled, cancelled_rec),
        "resumed": (resumed, resumed_rec),
    }


# ----------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("scenario", ["bn2", "keras_bn"])
def test_a_resumed_run_gives_the_numbers_of_the_uninterrupted_run(scenario, request):
    runs = request.getfixturevalue(scenario)
    (full, _), (resumed, _) = runs["full"], runs["resumed"]
    assert full.status == resumed.status == "completed"
    assert [len(resumed.history[k]) for k in HISTORY_KEYS] == [4] * len(HISTORY_KEYS)
    for key in METRIC_KEYS:
        np.testing.assert_allclose(resumed.history[key], full.history[key], rtol=0, atol=ATOL)
    # A count of hits over 64 test images: k/64 is exact, so equal means the same answers.
    assert resumed.test_accuracy == full.test_accuracy
    assert resumed.test_loss == pytest.approx(full.test_loss, abs=ATOL)
    assert resumed.steps == full.steps == 4 * STEPS
    # Both end in the same state, down to BN's step counters, windows and history buffers.
    for model in (full.model, resumed.model):
        assert int(model.optimizer.iterations.numpy()) == 4 * STEPS
    pairs = zip(
        [*full.model.variables, *full.model.optimizer.variables],
        [*resumed.model.variables, *resumed.model.optimizer.variables],
        strict=True,
    )
    for theirs, mine in pairs:
        assert mine.path == theirs.path
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=ATOL)
    # The toy problem is learnt at all (else equal numbers would prove little).
    assert full.history["loss"][-1] < full.history["loss"][0] / 2


def test_mid_epoch_the_checkpoint_on_disk_is_that_of_the_last_epoch(bn2):
    (full, _), left = bn2["full"], bn2["left"]
    assert (left.epoch, left.step) == (2, 2 * STEPS)
    for key in HISTORY_KEYS:  # the two completed epochs, timings included
        assert left.history[key] == full.history[key][:2], key
    assert sorted(p.name for p in bn2["folder"].iterdir()) == ["a", "left.npz"]  # no temp files


def test_a_resumed_run_keeps_the_history_of_the_epochs_before_it(bn2):
    left, (resumed, _) = bn2["left"], bn2["resumed"]
    for key in HISTORY_KEYS:  # timings too: they come from the checkpoint
        assert resumed.history[key][:2] == left.history[key], key


def test_resumed_events_continue_the_uninterrupted_stream(bn2):
    (_, full_rec), (_, rec) = bn2["full"], bn2["resumed"]
    events = [e for e in rec.events if e["type"] != "stage"]
    assert [e["type"] for e in events] == [
        "start",
        "resume",
        *(["batch"] * 4 + ["epoch"]) * 2,
        "end",
    ]
    assert events[1] == {"type": "resume", "epoch": 2, "step": 2 * STEPS}
    assert rec.events[1:3] == [events[1], {"type": "stage", "stage": "compiling"}]
    assert events[0] == full_rec.events[0]  # the same start event
    for kind in ("batch", "epoch"):
        later = [e for e in full_rec.of_type(kind) if e["step"] > 2 * STEPS]
        assert [e["step"] for e in rec.of_type(kind)] == [e["step"] for e in later]
        for mine, theirs in zip(rec.of_type(kind), later, strict=True):
            assert mine["epoch"] == theirs["epoch"]
            assert mine["loss"] == pytest.approx(theirs["loss"], abs=ATOL)
    assert [b["epoch_progress"] for b in rec.of_type("batch")][:2] == [2.25, 2.5]
    assert rec.events[-1]["steps"] == 4 * STEPS
    assert rec.events[-1]["history"]["loss"] == bn2["resumed"][0].history["loss"]


def test_probes_continue_at_the_uninterrupted_runs_steps(keras_bn):
    (_, full_rec), (cancelled, cancelled_rec), (_, rec) = (
        keras_bn["full"],
        keras_bn["cancelled"],
        keras_bn["resumed"],
    )
    assert cancelled.status == "cancelled" and cancelled.error == "cancelled after epoch 2"
    assert steps(full_rec, "probe") == [0, 40, 72, 112]
    assert steps(cancelled_rec, "probe") == [0, 40]
    assert steps(rec, "probe") == [72, 112]
    assert [e["type"] for e in rec.events if e["type"] != "stage"][:3] == [
        "start",
        "resume",
        "probe",  # at the first callback of epoch 3, step 72
    ]
    for mine, theirs in zip(rec.of_type("probe"), full_rec.of_type("probe")[2:], strict=True):
        assert mine["epoch_progress"] == theirs["epoch_progress"]
        assert mine["probe_accuracy"] == pytest.approx(theirs["probe_accuracy"], abs=ATOL)
        for site, values in mine["sites"].items():
            np.testing.assert_allclose(
                values["layer"], theirs["sites"][site]["layer"], rtol=1e-4, atol=ATOL
            )
    gaps = rec.of_type("mode_gap")
    assert [g["epoch"] for g in gaps] == [3, 4]
    for mine, theirs in zip(gaps, full_rec.of_type("mode_gap")[2:], strict=True):
        assert mine["val_accuracy_inference"] == pytest.approx(
            theirs["val_accuracy_inference"], abs=ATOL
        )


def test_the_checkpoint_of_a_finished_run_still_loads(bn2, tiny_splits):
    full, full_rec = bn2["full"]
    path = bn2["folder"] / "a"  # written after the last epoch of the uninterrupted run
    rec = Recorder()
    again = train(bn2["config"], rec, splits=tiny_splits, options=OPTIONS, checkpoint=path)
    assert again.status == "completed"
    assert rec.of_type("resume") == [{"type": "resume", "epoch": 4, "step": 4 * STEPS}]
    assert rec.of_type("batch") == rec.of_type("epoch") == []  # nothing left to train
    assert again.history == full.history and again.steps == full.steps
    assert again.test_accuracy == full.test_accuracy
    assert again.test_loss == pytest.approx(full.test_loss, abs=ATOL)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"variant": "lenet_keras_bn"}, "variant: 'lenet_bn2' in the file, 'lenet_keras_bn' now"),
        ({"seed": 1}, "seed: 0 in the file, 1 now"),
        ({"learning_rate": 0.01}, "learning_rate: 0.001 in the file, 0.01 now"),
        ({"batch_size": 16}, "batch_size: 8 in the file, 16 now"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused_before_any_event(bn2, tiny_splits, change, named):
    config = bn2["config"].replace(**change)
    rec = Recorder()
    with pytest.raises(CheckpointError) as info:
        train(config, rec, splits=tiny_splits, options=OPTIONS, checkpoint=bn2["folder"] / "a")
    message = str(info.value)
    assert message.startswith("a is a checkpoint of another run (") and named in message
    assert "\n" not in message
    assert rec.events == []


def test_fields_that_do_not_change_the_maths_are_not_in_the_fingerprint(tiny_splits):
    config = TrainConfig(variant="lenet_bn2", **RUN)
    same = ckpt.fingerprint(config, tiny_splits)
    for change in ({"epochs": 9}, {"probe_every": 64}, {"data_dir": "/elsewhere"}):
        assert ckpt.fingerprint(config.replace(**change), tiny_splits) == same
    # The optimizer's default learning rate is the same maths as the same rate given.
    assert ckpt.fingerprint(config.replace(learning_rate=1e-3), tiny_splits) == same
    other_labels = dataclasses.replace(tiny_splits, y_train=np.roll(tiny_splits.y_train, 1))
    assert ckpt.fingerprint(config, other_labels)["labels_sha256"] != same["labels_sha256"]


def test_fewer_epochs_than_the_checkpoint_has_done_is_refused(bn2, tiny_splits):
    config = bn2["config"].replace(epochs=3)
    with pytest.raises(CheckpointError, match=r"made after epoch 4, but this run has only 3"):
        train(config, splits=tiny_splits, options=OPTIONS, checkpoint=bn2["folder"] / "a")


def _rewritten(source, target, **changes):
    """A copy of the checkpoint ``source`` at ``target`` with arrays replaced (None: removed)."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    with open(target, "wb") as f:
        np.savez(f, **arrays)
    return target


def _meta(source, **changes) -> np.ndarray:
    with np.load(source, allow_pickle=False) as npz:
        meta = json.loads(bytes(npz["meta"]).decode())
    meta.update(changes)
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "not a zip",
        "no meta",
        "bad json",
        "version",
        "history dtype",
        "array shape",
        "missing array",
        "extra array",
        "step",
    ],
)
def test_a_damaged_checkpoint_raises_checkpoint_error(bn2, tiny_splits, tmp_path, damage):
    good = bn2["folder"] / "a"
    path = tmp_path / "run.npz"
    data = good.read_bytes()
    history = np.load(good, allow_pickle=False)["history"]
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not a zip":
        path.write_text("hello")
    elif damage == "no meta":
        _rewritten(good, path, meta=None)
    elif damage == "bad json":
        _rewritten(good, path, meta=np.frombuffer(b"{not json", dtype=np.uint8))
    elif damage == "version":
        _rewritten(good, path, meta=_meta(good, version=99))
    elif damage == "history dtype":
        _rewritten(good, path, history=history.astype(np.float32))
    elif damage == "array shape":
        _rewritten(good, path, **{"model/0": np.zeros((3, 3), np.float32)})
    elif damage == "missing array":
        _rewritten(good, path, **{"optimizer/5": None})
    elif damage == "extra array":
        _rewritten(good, path, stray=np.zeros(2))
    elif damage == "step":
        _rewritten(good, path, meta=_meta(good, step=4 * STEPS - 1))
    config = bn2["config"]
    with pytest.raises(CheckpointError) as info:
        ckpt.load(path, ckpt.fingerprint(config, tiny_splits), config.epochs)
    assert str(info.value).startswith("run.npz")
    assert "delete it" in str(info.value) and "\n" not in str(info.value)
    rec = Recorder()
    with pytest.raises(CheckpointError):  # and train refuses it before any event
        train(config, rec, splits=tiny_splits, options=OPTIONS, checkpoint=path)
    assert rec.events == []


# ----------------------------------------------------------------------------- round trip


def _randomised(model, rng) -> list[np.ndarray]:
    """Give every model and optimizer variable random values; return them."""
    values = []
    for v in [*model.variables, *model.optimizer.variables]:
        shape, dtype = tuple(v.shape), np.dtype(v.dtype)
        if dtype.kind == "i":
            value = rng.integers(0, 1000, size=shape).astype(dtype)
        else:
            value = rng.normal(size=shape).astype(dtype)
        v.assign(value)
        values.append(value)
    return values


def test_save_and_restore_round_trip_every_variable_exactly(tiny_splits, tmp_path):
    config = TrainConfig(variant="lenet_fc_bn2", **RUN)
    fingerprint = ckpt.fingerprint(config, tiny_splits)
    model = training._compiled_model(config, STEPS, OPTIONS)
    values = _randomised(model, np.random.default_rng(0))
    # Our BN's step counters and Adam's iteration are int64; the history buffers are there.
    assert any(np.dtype(v.dtype) == np.int64 for v in model.variables)
    assert any(np.dtype(v.dtype) == np.int64 for v in model.optimizer.variables)
    assert any(v.path == "F6_bn/history_mean" for v in model.variables)
    history = {k: [float(i), float("nan")] for i, k in enumerate(HISTORY_KEYS)}
    path = tmp_path / "run.npz"
    ckpt.save(path, model, fingerprint=fingerprint, epoch=2, step=2 * STEPS, history=history)

    fresh = training._compiled_model(config, STEPS, OPTIONS)
    saved = ckpt.load(path, fingerprint, config.epochs)
    ckpt.restore(saved, fresh)
    restored = [v.numpy() for v in [*fresh.variables, *fresh.optimizer.variables]]
    assert len(restored) == len(values)
    for got, want in zip(restored, values, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert (saved.epoch, saved.step) == (2, 2 * STEPS)
    for i, key in enumerate(HISTORY_KEYS):  # each column back under its own key, NaN kept
        assert saved.history[key][0] == i and np.isnan(saved.history[key][1])


def test_restore_into_another_model_changes_nothing(tiny_splits, tmp_path):
    config = TrainConfig(variant="lenet_bn2", **RUN)
    fingerprint = ckpt.fingerprint(config, tiny_splits)
    path = tmp_path / "run.npz"
    model = training._compiled_model(config, STEPS, OPTIONS)
    ckpt.save(
        path, model, fingerprint=fingerprint, epoch=0, step=0, history={k: [] for k in HISTORY_KEYS}
    )
    other = training._compiled_model(config.replace(variant="lenet_fc_bn2"), STEPS, OPTIONS)
    before = [v.numpy() for v in other.variables]
    with pytest.raises(CheckpointError, match=r"^run.npz: .* variables in the file"):
        ckpt.restore(ckpt.load(path, fingerprint, config.epochs), other, "run.npz")
    for got, want in zip([v.numpy() for v in other.variables], before, strict=True):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- shuffling


def test_each_epochs_order_is_a_pure_function_of_seed_and_epoch():
    n, m = 100, 8
    orders = {(s, e): epoch_batches(n, m, s, e).numpy() for s in (0, 1) for e in range(3)}
    for (s, e), order in orders.items():
        assert order.shape == (n // m, m) and order.dtype == np.int64
        assert len(np.unique(order)) == (n // m) * m and order.min() >= 0 and order.max() < n
        np.testing.assert_array_equal(order, epoch_batches(n, m, s, e).numpy())  # again: same
    assert len({order.tobytes() for order in orders.values()}) == len(orders)  # all differ


def test_the_training_dataset_yields_epoch_batches_whatever_came_before():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 32, 32, 1)).astype("float32")
    y = np.arange(50, dtype="int32")  # label = index: shows which images each batch took
    batches = TrainBatches(x, y, 8, seed=3)
    assert int(batches.dataset.cardinality()) == 6  # 50 // 8, the tail of 2 dropped

    def labels_of_epoch(epoch):
        batches.on_epoch_begin(epoch)
        return np.stack([labels.numpy() for _, labels in batches.dataset])

    first = [labels_of_epoch(e) for e in range(3)]
    skipped = labels_of_epoch(2)  # epoch 2 again, straight after epoch 2: as on a resume
    np.testing.assert_array_equal(skipped, first[2])
    for epoch, labels in enumerate(first):
        np.testing.assert_array_equal(labels, epoch_batches(50, 8, 3, epoch).numpy())
    batches.on_epoch_begin(1)
    images, labels = next(iter(batches.dataset))
    np.testing.assert_array_equal(images.numpy(), x[labels.numpy()])
