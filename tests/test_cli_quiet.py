"""The CLI's stderr carries our messages only: TensorFlow's C++ start-up lines (absl's "All log
messages before absl::InitializeLog()", oneDNN's "custom operations are on"), which reach file
descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL says, go to ``$BN_LAB_HOME/logs/cli.log``.

Every check runs the real entry point in a fresh process (the redirect moves descriptor 2,
which pytest's own capture must not see moved). TF_ENABLE_ONEDNN_OPTS=1 forces the oneDNN
line on any CPU, so the chatter exists to be hidden and the log proves where it went.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m bn_core"
CHATTER = ("absl", "oneDNN", "tensorflow", "I0000", "WARNING", "cpu_feature_guard")


def run_python(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repo root with HOME, KERAS_HOME and BN_LAB_HOME in tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "HOME": str(home),
        "KERAS_HOME": str(home / ".keras"),
        "BN_LAB_HOME": str(tmp_path / "lab"),
        "TF_ENABLE_ONEDNN_OPTS": "1",
        **env,
    }
    full_env.pop("BN_DATA_DIR", None)
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # bn_core's own default applies
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


SNIPPET = textwrap.dedent(
    """
    import os, sys
    from bn_core.cli.common import native_output_to_log
    with native_output_to_log() as path:
        os.write(2, b"native chatter\\n")  # what C++ code does
        print("ours, inside", file=sys.stderr)
    print(f"ours, after; log {path}", file=sys.stderr)
    os.write(2, b"native after\\n")
    """
)


def test_native_writes_go_to_the_log_and_python_messages_to_stderr(tmp_path):
    proc = run_python(["-c", SNIPPET], tmp_path)
    log = tmp_path / "lab" / "logs" / "cli.log"
    assert proc.returncode == 0, proc.stderr
    # Inside the block only descriptor 2 moved; after it, descriptor 2 is the terminal again.
    assert proc.stderr.splitlines() == [
        "ours, inside",
        f"ours, after; log {log}",
        "native after",
    ]
    assert log.read_text() == "native chatter\n"


def test_an_unwritable_home_logs_to_the_temp_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_python(
        ["-c", SNIPPET], tmp_path, BN_LAB_HOME=str(blocker / "lab"), TMPDIR=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    log = tmp_path / f"bn-lab-cli-{os.getuid()}.log"
    assert proc.stderr.splitlines()[1] == f"ours, after; log {log}"
    assert log.read_text() == "native chatter\n"


def test_captured_stderr_is_left_alone(capsys):
    from bn_core.cli.common import native_output_to_log

    stderr = sys.stderr
    with native_output_to_log() as path:
        assert path is None and sys.stderr is stderr
        print("captured", file=sys.stderr)
    assert capsys.readouterr().err == "captured\n"


def test_corrupt_dataset_prints_exactly_one_line(tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "mnist.npz").write_bytes(b"this is not a zip archive")
    proc = run_python(["-m", "bn_core", "train", "--data-dir", str(folder)], tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        f"{PROG}: dataset error: {folder / 'mnist.npz'}: not an npz (zip) archive\n"
    )
    # TensorFlow was imported and spoke: into the log, not at the user.
    assert "oneDNN custom operations are on" in (tmp_path / "lab/logs/cli.log").read_text()


@pytest.mark.integration
def test_a_tiny_real_training_prints_only_our_lines(tmp_path):
    args = ["--dataset", "fashion_mnist", "--train-limit", "300", "--val-size", "100"]
    proc = run_python(["-m", "bn_core", "train", *args, "--epochs", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lenet: completed, test accuracy ")
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lenet epoch 1/1: loss "), lines
    assert not any(word in proc.stderr for word in CHATTER), proc.stderr
    assert "oneDNN custom operations are on" in (tmp_path / "lab/logs/cli.log").read_text()
