"""CLI commands around the run store: submit (through the job runner), runs, datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bn_core import data
from bn_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def npz_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(
        folder / "mnist.npz",
        x_train=rng.integers(0, 256, (400, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 400, dtype=np.uint8),
        x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 50, dtype=np.uint8),
    )
    return folder


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BN_DATA_DIR"}
    env.update(
        HOME=str(tmp_path), KERAS_HOME=str(tmp_path / "keras"), BN_LAB_HOME=str(tmp_path / "home")
    )
    return env


def test_submit_wait_runs_through_the_store_and_runs_lists_it(tmp_path, npz_dir):
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "bn_core"]
    flags = [
        "--data-dir",
        str(npz_dir),
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--variant",
        "lenet_bn1",
    ]
    done = subprocess.run(
        [*cmd, "submit", *flags, "--wait", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout)
    assert row["status"] == "completed" and row["variant"] == "lenet_bn1"
    assert 0.0 <= row["test_accuracy"] <= 1.0

    listed = subprocess.run(
        [*cmd, "runs", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(row["id"], "completed")]


def test_runs_on_an_empty_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "home"))
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.strip() == "no runs yet"


def test_datasets_reports_local_folders(tmp_path, npz_dir, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("BN_DATA_DIR", raising=False)
    monkeypatch.setitem(data.search.SYSTEM_DIRS, "fashion_mnist", str(tmp_path / "none"))
    assert main(["datasets", "--data-dir", str(npz_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("mnist: ") and str(npz_dir) in out[0]
    assert out[1] == "fashion_mnist: not found locally; downloaded at first use"


def test_datasets_fetch_failure_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("BN_DATA_DIR", raising=False)
    monkeypatch.setitem(data.search.SYSTEM_DIRS, "fashion_mnist", str(tmp_path / "none"))

    def offline(dataset):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.download, "fetch", offline)
    assert main(["datasets", "--fetch"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset error" in err[0] and "mnist" in err[0]
