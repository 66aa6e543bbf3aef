"""A batch larger than the training images left is a config error (TrainConfig.errors), so
the CLI answers exit 2 in one line before any data or TensorFlow loads; and the probe_every
floor (0, or at least PROBE_EVERY_MIN). Pure Python but for the one data.prepare comparison."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bn_core import cli, data
from bn_core.config import PROBE_EVERY_MIN, ConfigError, TrainConfig, training_images
from bn_core.constants import TRAIN_ROWS
from tests.conftest import assert_runs_without_tensorflow

PROG = "python -m bn_core"


def test_training_images_is_what_prepare_keeps():
    """The formula against the real split, on a 100-row dataset (prepare works on any size)."""
    rows = 100
    raw = data.RawData(
        x_train=np.zeros((rows, 28, 28), np.uint8),
        y_train=np.zeros(rows, np.int64),
        x_test=np.zeros((3, 28, 28), np.uint8),
        y_test=np.zeros(3, np.int64),
        source="zeros",
    )
    for val_size, limit in itertools.product((0, 1, 40, 99), (None, 1, 30, 60, 99, 500)):
        kept = len(data.prepare(raw, val_size=val_size, train_limit=limit).x_train)
        assert training_images(val_size, limit, rows=rows) == kept, (val_size, limit)
    assert training_images(9000, None) == 51000 == TRAIN_ROWS - 9000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"train_limit": 10},
            "batch_size must be at most the 10 training images left (60000 minus val_size "
            "9000, cut to train_limit 10): lower batch_size or raise train_limit. Received: 64",
        ),
        (
            {"val_size": 59000, "batch_size": 4096},
            "batch_size must be at most the 1000 training images left (60000 minus val_size "
            "59000): lower batch_size or val_size. Received: 4096",
        ),
    ],
)
def test_a_batch_larger_than_the_training_images_is_a_config_error(changes, message):
    config = TrainConfig(**changes)
    assert config.errors() == [message]
    assert config.field_errors() == []  # no single field is out of its limits
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert str(info.value) == message


def test_the_batch_limit_is_inclusive():
    assert TrainConfig(train_limit=64, batch_size=64).errors() == []
    assert len(TrainConfig(train_limit=63, batch_size=64).errors()) == 1
    assert TrainConfig(val_size=59000, batch_size=1000).errors() == []
    assert len(TrainConfig(val_size=59000, batch_size=1001).errors()) == 1
    # train_limit above what the split leaves: the split decides.
    assert TrainConfig(val_size=59000, train_limit=60000, batch_size=1000).errors() == []


def test_the_batch_check_waits_for_valid_fields():
    """A field out of its own limits is reported alone (no second, confusing message)."""
    assert TrainConfig(train_limit=10, batch_size=1).errors() == [
        "batch_size must be between 2 and 4096. Received: 1"
    ]
    assert TrainConfig(val_size=60000, batch_size=64).errors() == [
        "val_size must be between 0 and 59000. Received: 60000"
    ]


@pytest.mark.parametrize("k", [0, PROBE_EVERY_MIN, PROBE_EVERY_MIN + 1, 100000])
def test_probe_every_off_or_at_least_the_floor_is_valid(k):
    assert TrainConfig(probe_every=k).errors() == []


@pytest.mark.parametrize("k", [1, 16, PROBE_EVERY_MIN - 1])
def test_probe_every_below_the_floor_is_refused(k):
    assert TrainConfig(probe_every=k).errors() == [
        f"probe_every must be 0 (off) or at least {PROBE_EVERY_MIN}: training reports every "
        f"{PROBE_EVERY_MIN} steps, a smaller k gives no more probes. Received: {k}"
    ]
    assert TrainConfig(probe_every=-1).errors() == [
        "probe_every must be between 0 and 100000. Received: -1"
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--train-limit", "10"], "at most the 10 training images left"),
        (["train", "--val-size", "59000", "--batch-size", "4096"], "at most the 1000 training"),
        (["compare", "--train-limit", "10"], "at most the 10 training images left"),
        (["train", "--probe-every", "8"], f"or at least {PROBE_EVERY_MIN}"),
    ],
)
def test_the_cli_exits_2_in_one_line(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"{PROG}: error: ") and expected in lines[0]
    assert lines[0].endswith("(see --help)") and captured.out == ""


def test_the_cli_refuses_before_anything_loads(tmp_path):
    """In a fresh interpreter: exit 2, and neither TensorFlow nor a dataset was touched."""
    done = assert_runs_without_tensorflow(
        """
        from bn_core import cli, data
        def no_loading(*args, **kwargs):
            raise AssertionError("data loaded")
        data.load = data.load_raw = no_loading
        try:
            cli.main(["train", "--train-limit", "10", "--out", "out"])
        except SystemExit as exc:
            print("EXIT", exc.code)
        """,
        home=tmp_path,
    )
    assert "EXIT 2" in done.stdout
    assert "at most the 10 training images left" in done.stderr
