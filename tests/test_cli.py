"""Tests for bn_core.cli (``python -m bn_core train|compare``).

A tiny synthetic mnist.npz (600 train / 100 test images, class k = a bright band at row 2k+4)
is written to a temporary folder and passed with --data-dir. A few checks run the real entry
point in a subprocess; the rest call ``bn_core.cli.main(argv)`` in-process, which is faster.
HOME, KERAS_HOME, BN_DATA_DIR and the download function are redirected so the machine's own
caches and the network never leak in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bn_core.nn.batchnorm  # noqa: F401  (registers BatchNorm, so saved models reload)
import bn_core.nn.training  # imported up front: TF's import-time output must not land in a test
from bn_core import cli, data
from bn_core.config import TrainConfig
from bn_core.results import HISTORY_KEYS, TrainResult
from bn_core.variants import VARIANT_NAMES, VARIANTS
from tests.helpers import write_npz

REPO_ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m bn_core"
# 600 rows: 100 validation, the first 256 of the other 500 for training (8 steps of 32).
QUICK = ["--epochs", "1", "--batch-size", "32", "--val-size", "100", "--train-limit", "256"]
QUICK_CONFIG = dict(epochs=1, batch_size=32, val_size=100, train_limit=256)
COMPARE_FILES = ["curves.csv", "results.json", "summary.csv", "val_accuracy.html"]  # sorted
STUDY_FILES = ["curves.csv", "report.html", "results.json", "store", "summary.csv"]  # sorted
RESULT_KEYS = {
    "variant",
    "status",
    "test_accuracy",
    "test_loss",
    "error",
    "steps",
    "seconds",
    "history",
    "config",
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dataset")
    write_npz(folder)
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real caches, no network, and a scratch working directory (compare's default --out)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    monkeypatch.delenv("BN_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    def offline(dataset):
        raise RuntimeError("offline (test)")

    monkeypatch.setattr(data.download, "fetch", offline)
    return home


def run_cli(args: list[str], tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m bn_core ARGS`` from the repo root, with HOME/KERAS_HOME and BN_LAB_HOME (the
    CLI's log of TensorFlow's native output) in tmp_path."""
    env = dict(os.environ)
    env.pop("BN_DATA_DIR", None)
    home = tmp_path / "sub_home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["KERAS_HOME"] = str(home / ".keras")
    env.setdefault("BN_LAB_HOME", str(tmp_path / "lab_home"))
    return subprocess.run(
        [sys.executable, "-m", "bn_core", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit code, whether it returns it or argparse exits."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


def one_line(text: str) -> str:
    """The single line of ``text``; fails when there are more or none."""
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {text!r}"
    assert "Traceback" not in text
    return lines[0]


def squash(text: str) -> str:
    """Whitespace-normalised text, so help wrapped at any width can be searched."""
    return " ".join(text.split())


def test_data_from_the_fixture_is_what_the_cli_will_see(dataset_dir):
    splits = data.load("mnist", dataset_dir, val_size=100, train_limit=256, seed=0)
    assert splits.x_train.shape == (256, 32, 32, 1)
    assert splits.x_val.shape == (100, 32, 32, 1)
    assert splits.x_test.shape == (100, 32, 32, 1)
    assert splits.source == f"npz file {dataset_dir / 'mnist.npz'}"


# ----------------------------------------------------------------------------- help


def test_top_level_help(capsys):
    assert exit_code(["--help"]) == 0
    out = squash(capsys.readouterr().out)
    assert out.startswith(f"usage: {PROG} [-h] COMMAND ...")
    assert "train train one variant" in out
    assert "compare the original study: every variant, same settings" in out
    assert "Exit codes: 0 completed; 1 dataset missing/corrupt or run failed; 2 bad flags" in out
    assert "3 diverged; 4 the run store cannot be used" in out and "130 cancelled" in out


def test_top_level_help_in_a_subprocess_is_quick_and_clean(tmp_path):
    proc = run_cli(["--help"], tmp_path, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"usage: {PROG} [-h] COMMAND ...")


def test_train_help_shows_every_default_and_the_variant_descriptions(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at hyphens; keep each help on a line
    assert exit_code(["train", "--help"]) == 0
    out = squash(capsys.readouterr().out)
    for flag, default in [
        ("--variant", "lenet"),
        ("--dataset", "mnist"),
        ("--epochs", "10"),
        ("--batch-size", "64"),
        ("--optimizer", "adam"),
        ("--epsilon", "1e-08"),
        ("--window-size", "5"),
        ("--activation", "sigmoid"),
        ("--seed", "0"),
        ("--val-size", "9000"),
    ]:
        assert flag in out
        assert f"(default: {default})" in out, flag
    assert "mini-batch size m (BN statistics are taken over it); 2 to 4096 (default: 64)" in out
    assert "0 to 2147483647 (default: 0)" in out
    assert "(default: the optimizer's own: adam 1e-3, sgd 1e-2, rmsprop 1e-3); 1e-06 to 10" in out
    assert "(default: search the usual places)" in out
    assert "(default: all)" in out
    for variant in VARIANTS.values():
        assert f"{variant.name}: {squash(variant.description)}" in out
    assert "--out OUT folder for result.json, history.csv, model.keras" in out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_compare_help_shows_every_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    assert exit_code(["compare", "--help"]) == 0
    out = squash(capsys.readouterr().out)
    assert f"(default: {','.join(VARIANT_NAMES)})" in out
    assert "(default: compare-results)" in out
    assert "(default: 64)" in out and "(default: 1e-08)" in out and "(default: 10)" in out
    assert "--variant " not in out  # compare trains a list of variants, not one


def test_bad_flags_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from bn_core import cli\n"
        "try:\n"
        "    cli.main(['train', '--epochs', '0'])\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.split() == ["2", "False", "False"]
    assert one_line(proc.stderr) == (
        f"{PROG}: error: epochs must be between 1 and 200. Received: 0 (see --help)"
    )


# ----------------------------------------------------------------------------- bad flags


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--bogus"], f"{PROG}: error: unrecognized arguments: --bogus"),
        (["train", "--epochs", "0"], "epochs must be between 1 and 200. Received: 0"),
        (["train", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["train", "--epochs"], "argument --epochs: expected one argument"),
        (["train", "--variant", "foo"], "argument --variant: invalid choice: 'foo'"),
        (["train", "--window-size", "0"], "window_size must be between 1 and 1000. Received: 0"),
        (
            ["train", "--learning-rate", "-1"],
            "learning_rate must be between 1e-06 and 10. Received: -1.0",
        ),
        (["train", "--learning-rate", "nan"], "learning_rate must be a number. Received: nan"),
        (["train", "--epsilon", "1"], "epsilon must be between 1e-12 and 0.1. Received: 1.0"),
        (
            ["train", "--epochs", "0", "--batch-size", "1"],
            "epochs must be between 1 and 200. Received: 0; "
            "batch_size must be between 2 and 4096. Received: 1",
        ),
        (
            ["train", "--data-dir", "nonexistent"],
            "--data-dir nonexistent is not a folder; pass an existing folder",
        ),
        (
            ["compare", "--variants", "lenet,bogus"],
            f"--variants must list some of {', '.join(VARIANT_NAMES)}. Received: 'lenet,bogus'",
        ),
        (["compare", "--variants", " , "], "--variants must list some of"),
        (["compare", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
        ([], "the following arguments are required: COMMAND"),
        (["fit"], "argument COMMAND: invalid choice: 'fit'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys, argv, expected):
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith(PROG) and ": error: " in line
    assert expected in line
    assert line.endswith("(see --help)")
    assert captured.out == ""


def test_out_pointing_at_an_existing_file_exits_2(tmp_path, capsys, dataset_dir):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert exit_code(["train", "--data-dir", str(dataset_dir), "--out", str(target)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == (
        f"{PROG}: error: --out {target} cannot be created (File exists); "
        "choose another folder (see --help)"
    )
    assert target.read_text() == "not a folder"


def test_bad_values_fail_before_the_out_folder_is_created(tmp_path, capsys):
    out = tmp_path / "never"
    assert exit_code(["train", "--epochs", "0", "--out", str(out)]) == 2
    assert not out.exists()
    assert exit_code(["compare", "--variants", "bogus"]) == 2
    assert not (tmp_path / "compare-results").exists()
    capsys.readouterr()


def _nothing_may_run(monkeypatch) -> None:
    """Each command's work (training, a study's store, queueing) fails the test if reached."""
    from bn_core.cli import runs, study, train

    def reached(*args, **kwargs):
        raise AssertionError("the command ran: its flags should have been refused")

    for module, name in (
        (train, "cmd_train"),
        (train, "cmd_compare"),
        (study, "cmd_study"),
        (runs, "cmd_submit"),
    ):
        monkeypatch.setattr(module, name, reached)


@pytest.mark.parametrize("command", ["train", "compare", "study"])
@pytest.mark.parametrize(
    "out, problem",
    [
        ("", "--out must name a folder. Received: ''"),  # Path("") is the current folder
        ("   ", "--out must name a folder. Received: '   '"),
        ("taken", "--out taken cannot be created (File exists)"),
        ("taken/inside", "--out taken/inside cannot be created (Not a directory)"),
    ],
)
def test_an_empty_or_unusable_out_is_one_line_exit_2_before_anything_runs(
    tmp_path, capsys, monkeypatch, dataset_dir, command, out, problem
):
    """``study original --quick --out ''`` once ran its 10 runs and wrote report, CSVs and
    store/ into the current folder. Now it is a bad flag: exit 2, one line, nothing made."""
    _nothing_may_run(monkeypatch)
    (tmp_path / "taken").write_text("a file")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = {
        "train": ["train"],
        "compare": ["compare", "--variants", "lenet"],
        "study": ["study", "original", "--quick"],
    }[command]
    assert exit_code([*args, "--data-dir", str(dataset_dir), "--out", out]) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith(f"{PROG}: error: {problem}") and line.endswith("(see --help)")
    assert captured.out == "" and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "argv, flag, text, note",
    [
        (["submit", "--epochs"], "--epochs", "\uff11", "U+FF11 FULLWIDTH DIGIT ONE"),
        (["submit", "--seed"], "--seed", "\u0663", "U+0663 ARABIC-INDIC DIGIT THREE"),
        (["train", "--epochs"], "--epochs", "1_0", None),  # int("1_0") is 10
        (["train", "--learning-rate"], "--learning-rate", "\uff11.5", "U+FF11 FULLWIDTH DIGIT ONE"),
        (["compare", "--epsilon"], "--epsilon", "1_0e-3", None),  # float() takes it too
        (["study", "original", "--out", "o", "--seeds"], "--seeds", "\uff14", "U+FF14"),
        (["runner", "--max-concurrent"], "--max-concurrent", "\u0662", "U+0662"),
    ],
)
def test_numbers_are_written_with_the_ascii_digits_only(
    tmp_path, capsys, monkeypatch, argv, flag, text, note
):
    """``submit --epochs １`` was queued: int() and float() take any Unicode digit (and "1_0").
    Every number flag takes 0-9 only; a bad one is one line naming the character."""
    _nothing_may_run(monkeypatch)
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "lab"))
    assert exit_code([*argv, text]) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    kind = "float" if flag in ("--learning-rate", "--epsilon") else "int"
    assert f"argument {flag}: invalid {kind} value: {text!r}" in line
    assert note is None or (f"({note}" in line and "is not one of the digits 0-9)" in line)
    assert captured.out == "" and not (tmp_path / "lab").exists() and not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- dataset errors


def test_missing_dataset_exits_1_with_one_line(tmp_path, capsys, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert exit_code(["train", "--data-dir", str(empty), "--out", str(out), *QUICK]) == 1
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith(f"{PROG}: dataset error: mnist not found: tried data_dir {empty} ")
    assert f"{isolated / '.keras' / 'datasets' / 'mnist.npz'} (missing)" in line
    assert "download (failed: RuntimeError: offline (test))" in line
    assert "--data-dir" in line  # the fix is named
    assert captured.out == ""
    assert list(out.iterdir()) == []  # nothing half-written


def test_missing_dataset_in_compare_exits_1_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["compare", "--variants", "lenet", "--data-dir", str(empty), "--out", "res", *QUICK]
    assert exit_code(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"{PROG}: dataset error: mnist not found: tried data_dir {empty} ")
    assert list((tmp_path / "res").iterdir()) == []


def test_corrupt_dataset_exits_1_with_one_line(tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "mnist.npz").write_bytes(b"this is not a zip archive")
    assert exit_code(["train", "--data-dir", str(folder), *QUICK]) == 1
    captured = capsys.readouterr()
    assert one_line(captured.err) == (
        f"{PROG}: dataset error: {folder / 'mnist.npz'}: not an npz (zip) archive"
    )
    assert captured.out == ""


def test_corrupt_dataset_in_a_subprocess_exits_1_without_traceback(tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    write_npz(folder)
    path = folder / "mnist.npz"
    path.write_bytes(path.read_bytes()[:5000])  # a truncated zip
    proc = run_cli(["train", "--data-dir", str(folder), *QUICK], tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    # TensorFlow's own start-up lines (absl/oneDNN) may precede it: the error is the last line.
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"{PROG}: dataset error: {path}: unreadable npz (")
    assert last.endswith("re-download it")
    assert sum(PROG in line for line in proc.stderr.splitlines()) == 1


def test_val_size_too_large_for_the_dataset_exits_with_one_line(capsys, dataset_dir):
    # The default --val-size 9000 is more than this 600-image dataset holds.
    assert exit_code(["train", "--data-dir", str(dataset_dir), "--epochs", "1"]) in (1, 2)
    assert "val_size" in one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- train


def test_train_json_and_out_end_to_end(tmp_path, dataset_dir):
    out = tmp_path / "run"
    args = ["train", "--variant", "lenet_fc_bn2", "--data-dir", str(dataset_dir), *QUICK]
    proc = run_cli([*args, "--json", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    result = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert isinstance(result, dict)
    assert set(result) == RESULT_KEYS | {"no_learning"}  # the CLI's judgement, beside the result
    assert isinstance(result["no_learning"], bool)
    assert result["variant"] == "lenet_fc_bn2"
    assert result["status"] == "completed"
    assert result["error"] is None
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["test_loss"] > 0
    assert set(result["history"]) == set(HISTORY_KEYS)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second"):
        assert isinstance(result["history"][key], list) and len(result["history"][key]) == 1, key
        assert isinstance(result["history"][key][0], float), key
    expected = TrainConfig(variant="lenet_fc_bn2", data_dir=str(dataset_dir), **QUICK_CONFIG)
    assert result["config"] == expected.to_dict()
    # The progress goes to stderr, one line per epoch (stderr is not a terminal here).
    assert "lenet_fc_bn2 epoch 1/1: loss " in proc.stderr

    # --out: exactly the three files, no temporary leftovers (hidden or not).
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "model.keras", "result.json"]
    assert json.loads((out / "result.json").read_text()) == result
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["variant", "epoch", *HISTORY_KEYS]
    assert history["variant"].tolist() == ["lenet_fc_bn2"]
    assert history["epoch"].tolist() == [1]
    for key in HISTORY_KEYS:
        assert history[key].tolist() == pytest.approx(result["history"][key], rel=1e-12)

    # The saved model reloads (with our BatchNorm layers) and reproduces the test accuracy.
    import keras

    model = keras.saving.load_model(out / "model.keras")
    assert sum(isinstance(layer, bn_core.nn.batchnorm.BatchNorm) for layer in model.layers) == 4
    splits = data.load("mnist", dataset_dir, val_size=100, train_limit=256, seed=0)
    logits = model.predict(splits.x_test, verbose=0)
    assert logits.shape == (100, 10)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == splits.y_test))
    assert accuracy == pytest.approx(result["test_accuracy"], abs=1e-6)


def test_train_prints_a_result_line_and_epoch_progress(tmp_path, capsys, dataset_dir):
    argv = ["train", "--data-dir", str(dataset_dir), "--activation", "relu", *QUICK]
    assert exit_code(argv) == 0
    captured = capsys.readouterr()
    line = one_line(captured.out)
    assert line.startswith("lenet: completed, test accuracy 0.")
    accuracy, loss = line.split("test accuracy ")[1].split(", test loss ")
    assert 0.0 <= float(accuracy) <= 1.0 and float(loss) > 0
    progress = one_line(captured.err)
    assert progress.startswith("lenet epoch 1/1: loss ")
    assert progress.endswith(" img/s")
    assert list(tmp_path.glob("*.tmp")) == [] and not (tmp_path / "compare-results").exists()


@pytest.mark.parametrize(
    ("status", "code"), [("completed", 0), ("failed", 1), ("diverged", 3), ("cancelled", 130)]
)
def test_train_exit_code_follows_the_status(tmp_path, capsys, monkeypatch, status, code):
    seen = {}

    def fake_train(config, on_event=None, should_stop=None, **kwargs):
        seen["config"], seen["should_stop"] = config, should_stop
        history = {k: [0.5] for k in HISTORY_KEYS}
        error = None if status == "completed" else f"{status} for the test"
        acc = 0.5 if status == "completed" else None
        return TrainResult(status, config, history, test_accuracy=acc, test_loss=acc, error=error)

    monkeypatch.setattr(bn_core.nn.training, "train", fake_train)
    handler_before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "out"
    assert exit_code(["train", "--epochs", "2", "--json", "--out", str(out)]) == code
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == status
    assert printed["no_learning"] is False  # 0.5 is no chance; failed/diverged are never judged
    assert printed["error"] == (None if status == "completed" else f"{status} for the test")
    assert seen["config"] == TrainConfig(epochs=2)
    assert seen["should_stop"]() is False  # the Ctrl-C flag, not yet raised
    # result.json and history.csv are written for every status; no model without one.
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "result.json"]
    assert json.loads((out / "result.json").read_text()) == printed
    assert signal.getsignal(signal.SIGINT) is handler_before  # the Ctrl-C handler is restored


@pytest.mark.parametrize("as_json", [False, True])
def test_train_at_chance_exits_0_and_says_no_learning(capsys, monkeypatch, as_json):
    # A run that completed at chance did what was asked (exit 0: a sweep's aggressive arms end
    # there by design) but the result says so, as the pages do (bn_core.results.no_learning).
    def at_chance(config, on_event=None, should_stop=None, **kwargs):
        history = {k: [2.3] for k in HISTORY_KEYS}
        return TrainResult("completed", config, history, test_accuracy=0.1, test_loss=2.3)

    monkeypatch.setattr(bn_core.nn.training, "train", at_chance)
    assert exit_code(["train", *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    if as_json:
        assert json.loads(out)["no_learning"] is True
    else:
        assert one_line(out) == (
            "lenet: completed, test accuracy 0.1000, test loss 2.3000, no learning: ended at chance"
        )


def test_submit_wait_an_exploding_run_is_diverged_and_a_stuck_one_no_learning(
    tmp_path, dataset_dir
):
    # The fault-injection pass: adam at learning rate 10 reached losses ~200x the start, was
    # stored "completed" at chance (exit 0) and flagged only on the pages. Now: "diverged",
    # exit 3, through a real runner and worker; a run that completes at chance exits 0 and
    # says "no learning" in submit --wait's line and in runs (line and --json).
    data_flags = ["--data-dir", str(dataset_dir), *QUICK]
    boom = run_cli(
        ["submit", "--wait", "--json", "--optimizer", "adam", "--learning-rate", "10", *data_flags],
        tmp_path,
    )
    assert boom.returncode == 3, boom.stderr
    row = json.loads(boom.stdout)
    assert row["status"] == "diverged" and row["no_learning"] is False
    assert row["error"].startswith("training loss of epoch 1 was ")
    assert row["error"].endswith(", over 10 x ln(10) = 23.03: exploded")

    stuck = run_cli(["submit", "--wait", "--optimizer", "sgd", *data_flags], tmp_path)
    assert stuck.returncode == 0, stuck.stderr
    line = one_line(stuck.stdout)  # sigmoid LeNet, SGD, one epoch: test accuracy 0.08
    assert line.startswith("#2 lenet seed=0 completed test_accuracy=0.")
    assert " (no learning: ended at chance) " in line

    listed = run_cli(["runs", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["status"], r["no_learning"]) for r in rows] == [
        ("diverged", False),
        ("completed", True),
    ]
    lines = run_cli(["runs"], tmp_path).stdout.splitlines()
    assert "#1 lenet seed=0 diverged (training loss of epoch 1 was " in lines[0]
    assert "(no learning: ended at chance)" in lines[1]


# ----------------------------------------------------------------------------- compare


def test_compare_end_to_end(tmp_path, dataset_dir):
    out = tmp_path / "cmp"
    args = ["compare", "--variants", "lenet,lenet_fc_bn2", "--data-dir", str(dataset_dir)]
    proc = run_cli([*args, *QUICK, "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    table_lines = proc.stdout.splitlines()
    assert table_lines[0].split()[:3] == ["variant", "status", "test_accuracy"]
    assert table_lines[1].split()[:2] == ["lenet", "completed"]
    assert table_lines[2].split()[:2] == ["lenet_fc_bn2", "completed"]
    assert proc.stdout.rstrip().endswith(
        f"wrote summary.csv, curves.csv, results.json, val_accuracy.html to {out}"
    )
    assert "lenet: completed, test accuracy" in proc.stderr
    assert "lenet_fc_bn2: completed, test accuracy" in proc.stderr

    assert sorted(p.name for p in out.iterdir()) == COMPARE_FILES
    results = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in results] == ["lenet", "lenet_fc_bn2"]
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert all(set(r) == RESULT_KEYS for r in results)

    summary = pd.read_csv(out / "summary.csv")
    assert summary["variant"].tolist() == ["lenet", "lenet_fc_bn2"]
    assert summary["test_accuracy"].tolist() == pytest.approx(
        [r["test_accuracy"] for r in results], rel=1e-12
    )
    assert summary["best_val_accuracy"].tolist() == pytest.approx(
        [r["history"]["val_accuracy"][0] for r in results], rel=1e-12
    )
    curves = pd.read_csv(out / "curves.csv")
    assert curves["variant"].tolist() == ["lenet", "lenet_fc_bn2"]
    assert curves["epoch"].tolist() == [1, 1]
    assert curves["val_accuracy"].tolist() == pytest.approx(
        summary["best_val_accuracy"].tolist(), rel=1e-12
    )

    html = (out / "val_accuracy.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.rstrip().endswith("</html>")
    assert "plotly" in html.lower()
    assert '"name":"lenet"' in html and '"name":"lenet_fc_bn2"' in html


def test_compare_json_prints_one_object(tmp_path, capsys, dataset_dir):
    argv = ["compare", "--variants", "lenet", "--data-dir", str(dataset_dir), *QUICK]
    assert exit_code([*argv, "--json", "--out", "res"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # the whole of stdout
    assert set(printed) == {"summary", "results"}
    assert [row["variant"] for row in printed["summary"]] == ["lenet"]
    assert printed["summary"][0]["status"] == "completed"
    assert printed["summary"][0]["epoch_reaching_baseline_best"] == 1
    assert [r["variant"] for r in printed["results"]] == ["lenet"]
    assert (
        printed["results"][0]["config"]
        == TrainConfig(data_dir=str(dataset_dir), **QUICK_CONFIG).to_dict()
    )
    assert printed["summary"][0]["test_accuracy"] == printed["results"][0]["test_accuracy"]
    assert json.loads((tmp_path / "res" / "results.json").read_text()) == printed["results"]
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == COMPARE_FILES


# ----------------------------------------------------------------------------- study


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """1,600 training rows: the quick presets' 1,000 validation images leave 600 to train on."""
    folder = tmp_path_factory.mktemp("study_dataset")
    write_npz(folder, n_train=1600, n_test=100)
    return folder


def test_study_help_shows_the_presets_and_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    assert exit_code(["study", "--help"]) == 0
    out = squash(capsys.readouterr().out)
    assert "Presets: original: Original study, 15 runs (quick: 10 runs, ~" in out
    for name in (
        "figure1: Paper Figure 1",
        "window: Window size, 9 runs",
        "lr: Learning-rate robustness, 27 runs",
        "batch-size: Batch-size robustness, 36 runs",
    ):
        assert name in out
    assert "(default: mnist)" in out and "(default: search the usual places)" in out
    assert "original 3 (2 quick)" in out and "lr 3 (1 quick)" in out
    assert "5,000 training and 1,000 validation images, 3 epochs" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["study", "bogus", "--out", "x"], "argument PRESET: invalid choice: 'bogus'"),
        (["study", "lr"], "the following arguments are required: --out"),
        (["study", "lr", "--seeds", "0", "--out", "x"], "seeds must be a whole number of at least"),
        (["study", "lr", "--seeds", "two", "--out", "x"], "argument --seeds: invalid int value"),
        (["study", "lr", "--dataset", "cifar", "--out", "x"], "argument --dataset: invalid choice"),
        (["study", "lr", "--data-dir", "nope", "--out", "x"], "--data-dir nope is not a folder"),
        (["study", "lr", "--quick", "yes", "--out", "x"], "unrecognized arguments: yes"),
    ],
)
def test_study_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith(PROG) and expected in line and line.endswith("(see --help)")
    assert captured.out == "" and not (tmp_path / "x").exists()


def test_study_missing_dataset_exits_1_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["study", "window", "--quick", "--data-dir", str(empty), "--out", "res"]
    assert exit_code(argv) == 1
    line = one_line(capsys.readouterr().err)  # the data loads before the first run starts
    assert line.startswith(f"{PROG}: dataset error: mnist not found: tried data_dir {empty} ")
    assert list((tmp_path / "res").iterdir()) == []


def test_study_writes_its_tables_and_report_from_the_results(tmp_path, capsys):
    """The outputs of a study from its results (a diverged run among them): what
    ``_write_outputs`` makes of the lr grid, without training 18 runs."""
    from bn_core.analysis.study import preset_configs
    from bn_core.cli.study import _write_outputs
    from tests.helpers import result

    configs = preset_configs("lr", quick=True, seeds=2)
    results = []
    for i, config in enumerate(configs, start=1):
        extra = {k: v for k, v in config.to_dict().items() if k not in ("variant", "seed")}
        if i == 7:  # lenet at x30: one epoch, then diverged
            row = result(config.variant, config.seed, [0.5], None, status="diverged", **extra)
        else:
            row = result(config.variant, config.seed, [0.5, 0.6], 0.5 + 0.01 * i, **extra)
        results.append({**row, "run_id": i, "steps_per_epoch": 600 // 64})
    out = tmp_path / "o"
    out.mkdir()
    _write_outputs("lr", results, None, [], out)
    assert sorted(p.name for p in out.iterdir()) == [f for f in STUDY_FILES if f != "store"]
    assert json.loads((out / "results.json").read_text())[6]["status"] == "diverged"
    summary = pd.read_csv(out / "summary.csv")
    assert summary["variant"].tolist()[:3] == [
        "lenet · learning_rate=default",
        "lenet · learning_rate=0.005",
        "lenet · learning_rate=0.03",
    ]
    assert summary.loc[2, "runs"] == 2 and summary.loc[2, "n"] == 1  # one seed diverged
    assert {"n", "test_accuracy_ci95_low", "p_value", "speedup"} <= set(summary.columns)
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) == 17 * 2 + 1  # the diverged run has one epoch
    html = (out / "report.html").read_text()
    assert "Preset lr: Learning-rate robustness." in html and "Final test accuracy vs" in html
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(
            f"wrote report.html, summary.csv, curves.csv, results.json to {out} (run store: store/)"
        )
    )


def test_study_ctrl_c_cancels_its_runs_and_keeps_what_was_measured(tmp_path, study_dir):
    """Ctrl-C while the first run trains: every run of the study ends (cancelled, the
    running one keeping its epochs), the report covers them, exit 130."""
    from bn_core.runs.store import RunStore

    out = tmp_path / "o"
    argv = ["study", "original", "--quick", "--data-dir", str(study_dir), "--out", str(out)]
    env = {**os.environ, "BN_LAB_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "bn_core", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the first run has recorded an epoch
            if (out / "store" / "runs.sqlite").exists():
                store = RunStore(out / "store")
                runs = store.list_runs()
                if runs and store.epoch_metrics([runs[0].id]):
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the study's first run recorded no epoch in 120 s")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    results = json.loads((out / "results.json").read_text())
    # The run training at Ctrl-C is cancelled keeping its epochs (or, on a busy machine, may
    # have completed just before); every run still queued then is cancelled untrained.
    assert len(results) == 10 and results[0]["status"] in ("cancelled", "completed")
    assert len(results[0]["history"]["loss"]) >= 1
    assert {r["status"] for r in results[1:]} <= {"cancelled", "completed"}
    assert results[-1]["status"] == "cancelled" and results[-1]["history"]["loss"] == []
    assert (out / "report.html").stat().st_size > 100000


def test_study_quick_end_to_end(tmp_path, capsys, study_dir):
    """Real training (worker processes of the study's own runner), three runs of 3 x 9 steps;
    every run is replayable (its model saved) like a submitted one."""
    from bn_core.runs.store import RunStore

    out = tmp_path / "study"
    args = ["study", "window", "--quick", "--seeds", "1", "--data-dir", str(study_dir)]
    assert exit_code([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "lenet_fc_bn2 epoch 3/3: loss " in captured.err  # compare's progress lines
    assert sorted(p.name for p in out.iterdir()) == STUDY_FILES
    results = json.loads((out / "results.json").read_text())
    assert [(r["config"]["window_size"], r["status"]) for r in results] == [
        (1, "completed"),
        (5, "completed"),
        (50, "completed"),
    ]
    assert all(len(r["history"]["loss"]) == 3 for r in results)
    assert all(r["config"]["train_limit"] == 5000 and r["steps"] == 3 * 9 for r in results)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["variant"].tolist() == [f"lenet_fc_bn2 · window_size={w}" for w in (1, 5, 50)]
    assert summary["test_accuracy_mean"].tolist() == pytest.approx(
        [r["test_accuracy"] for r in results], rel=1e-12
    )
    store = RunStore(out / "store")
    runs = store.list_runs()
    assert all(store.model_path(r.id).is_file() and r.images_per_second for r in runs)
    html = (out / "report.html").read_text()
    assert "Preset window: Window size." in html
    assert "Final test accuracy vs BN inference window" in html
    assert f"wrote report.html, summary.csv, curves.csv, results.json to {out}" in captured.out


def test_study_figure1_report_has_the_probe_charts_and_a_run_store(tmp_path, capsys, study_dir):
    """The quick Figure 1 preset: probes (at least the one at step 0) reach the report, and
    the study's runs are in OUT/store for the dashboard."""
    from bn_core.runs.store.run_store import RunStore

    out = tmp_path / "fig1"
    args = ["study", "figure1", "--quick", "--seeds", "1", "--data-dir", str(study_dir)]
    assert exit_code([*args, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    for heading in (
        "C1 without BN",
        "C1 with BN",
        "F6 with BN",
        "Probe accuracy against steps",
        "Gradient norms per layer",
    ):
        assert heading in html, heading
    store = RunStore(out / "store")
    runs = store.list_runs()
    assert [(r.variant, r.status) for r in runs] == [
        ("lenet", "completed"),
        ("lenet_fc_bn2", "completed"),
    ]
    assert store.probed_run_ids() == {r.id for r in runs}
    assert len(store.epoch_metrics([runs[0].id])) == 3
