"""Every ``BN_LAB_*`` setting (bn_core.settings): the parser, the CLI's refusal to start with a
bad one, ``bn-lab settings``, the dashboard's banner and the README's table.

The bad-value tests are parametrized over ``SETTINGS``: a setting is tested the day it is
declared. The CLI runs as ``python -m bn_core`` in a subprocess with every ``BN_LAB_*`` of the
shell running the tests removed, so only the variable under test is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bn_core import settings
from bn_core.runs.execution import caps
from bn_core.runs.execution.backends import local
from bn_core.runs.execution.runner import JobRunner, default_concurrency
from bn_core.runs.store import RunStore, default_home
from bn_core.settings import SETTINGS, SettingError
from pages import _runner
from tests.helpers import RecordingBackend

ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m bn_core"
SUBMIT = ["submit", "--variant", "lenet", "--epochs", "1"]
CHECKED = [s for s in SETTINGS if s.checked]
FREE = ("text", "path")  # types for which every value is valid


def bad_value(setting: settings.Setting) -> str:
    """A value ``setting`` must refuse: one past its upper limit, a word, or no choice."""
    if setting.type == "int":
        return str(int(setting.high) + 1)
    return {"number": "lots", "switch": "maybe", "choice": "nope"}[setting.type]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """os.environ without any BN_LAB_*, with HOME and BN_LAB_HOME in tmp_path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BN_LAB_")}
    env.pop("RAY_ADDRESS", None)
    env["HOME"] = str(tmp_path / "user")
    env["BN_LAB_HOME"] = str(tmp_path / "lab")
    return {**env, **extra}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bn_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(monkeypatch):
    """This process's environment with no BN_LAB_* (the parser reads os.environ)."""
    for name in list(os.environ):
        if name.startswith("BN_LAB_"):
            monkeypatch.delenv(name)
    return monkeypatch


# ----------------------------------------------------------------------------- the table


def test_every_setting_is_declared_once_with_help_and_a_reader():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names)) == 18
    for s in SETTINGS:
        assert s.name.startswith("BN_LAB_") and s.help and s.where, s.name
        assert s.type in ("int", "number", "switch", "choice", "path", "text"), s.name
        if s.type in ("int", "number"):
            assert s.low <= s.high, s.name
        if s.checked and s.default is not None and s.type not in FREE:
            assert s.parse(settings._show(s.default)) == s.default, s.name  # default is valid


def test_only_the_settings_python_reads_are_checked():
    assert {s.name for s in CHECKED} == {
        "BN_LAB_HOME",
        "BN_LAB_MAX_CONCURRENT",
        "BN_LAB_MAX_RUNS_PER_SUBMIT",
        "BN_LAB_MAX_QUEUED",
        "BN_LAB_STANDBY",
        "BN_LAB_XLA_CACHE",
        "BN_LAB_PASSWORD",
        "BN_LAB_RAY_CPUS",
        "BN_LAB_RAY_GPUS",
    }
    shell_only = {"BN_LAB_RAY_HEAD": "sometimes", "BN_LAB_PORT": "http", "BN_LAB_WORKER_CPUS": "x"}
    settings.check_all(shell_only)  # their readers (the scripts, compose) check them
    assert settings.read("BN_LAB_PORT", shell_only).value == "http"


# ----------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("BN_LAB_MAX_QUEUED", "7", 7),
        ("BN_LAB_MAX_QUEUED", " 7 ", 7),
        ("BN_LAB_MAX_QUEUED", "+7", 7),
        ("BN_LAB_MAX_QUEUED", "1", 1),  # the lower limit
        ("BN_LAB_MAX_QUEUED", "100000", 100_000),  # the upper limit
        ("BN_LAB_MAX_CONCURRENT", "1024", 1024),
        ("BN_LAB_RAY_CPUS", "2.5", 2.5),
        ("BN_LAB_RAY_GPUS", "0", 0.0),
        ("BN_LAB_HOME", "some folder", Path("some folder")),
    ],
)
def test_good_values(name, text, expected):
    assert settings.value(name, {name: text}) == expected
    assert settings.read(name, {name: text}).source == settings.ENVIRONMENT


@pytest.mark.parametrize(
    ("name", "text", "allowed"),
    [
        ("BN_LAB_MAX_QUEUED", "abc", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "0", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "100001", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "-5", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "2.5", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "1e3", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "1_000", "a whole number from 1 to 100000"),
        ("BN_LAB_MAX_QUEUED", "\u0663", "a whole number from 1 to 100000"),  # Arabic 3
        ("BN_LAB_MAX_QUEUED", " ", "a whole number from 1 to 100000"),  # spaces are not empty
        ("BN_LAB_MAX_CONCURRENT", "\u00b2", "a whole number from 1 to 1024"),  # superscript 2
        ("BN_LAB_RAY_CPUS", "0.5", "a number from 1 to 256"),
        ("BN_LAB_RAY_CPUS", "nan", "a number from 1 to 256"),
        ("BN_LAB_RAY_GPUS", "inf", "a number from 0 to 256"),
        ("BN_LAB_RAY_GPUS", "-1", "a number from 0 to 256"),
        ("BN_LAB_STANDBY", "2", "one of 1/0, true/false, yes/no, on/off"),
        ("BN_LAB_XLA_CACHE", "disabled", "one of 1/0, true/false, yes/no, on/off"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_the_value_and_what_is_allowed(
    name, text, allowed
):
    with pytest.raises(SettingError) as caught:
        settings.value(name, {name: text})
    assert str(caught.value) == f"{name}={text!r} is not {allowed}: fix or unset it"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(SettingError, match=name):
        settings.check_all({name: text})


@pytest.mark.parametrize("name", ["BN_LAB_STANDBY", "BN_LAB_XLA_CACHE"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [(w, True) for w in ("1", "true", "YES", "On", " on ")]
    + [(w, False) for w in ("0", "false", "No", "OFF", "0 ")],
)
def test_switches_take_one_set_of_words_in_any_case(name, text, expected):
    assert settings.value(name, {name: text}) is expected


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_unset_or_empty_is_the_default(setting):
    for env in ({}, {setting.name: ""}):
        reading = settings.read(setting.name, env)
        assert (reading.value, reading.source, reading.problem) == (
            setting.default,
            settings.DEFAULT,
            None,
        )


def test_value_reads_os_environ_at_each_call(env):
    assert settings.value("BN_LAB_MAX_QUEUED") == 1000
    env.setenv("BN_LAB_MAX_QUEUED", "12")
    assert settings.value("BN_LAB_MAX_QUEUED") == 12
    env.setenv("BN_LAB_MAX_QUEUED", "x")
    with pytest.raises(SettingError):
        settings.value("BN_LAB_MAX_QUEUED")


def test_an_undeclared_name_is_a_key_error():
    with pytest.raises(KeyError):
        settings.value("BN_LAB_NO_SUCH_THING")


def test_the_password_is_never_shown():
    secret = "correct horse battery staple"
    reading = settings.read("BN_LAB_PASSWORD", {"BN_LAB_PASSWORD": secret})
    assert reading.value == secret  # the gate gets it
    assert reading.shown == "set" and secret not in repr(settings.markdown_table())
    assert settings.read("BN_LAB_PASSWORD", {}).shown == "unset"


# ----------------------------------------------------------------------------- the readers


def test_every_python_reader_uses_the_settings(env, tmp_path):
    env.setenv("BN_LAB_MAX_CONCURRENT", "3")
    env.setenv("BN_LAB_MAX_RUNS_PER_SUBMIT", "4")
    env.setenv("BN_LAB_MAX_QUEUED", "5")
    env.setenv("BN_LAB_STANDBY", "no")
    env.setenv("BN_LAB_HOME", str(tmp_path / "h"))
    assert default_concurrency() == 3
    assert (caps.max_runs_per_submit(), caps.max_queued()) == (4, 5)
    assert local.standby_default() is False
    assert default_home() == tmp_path / "h"
    for name in ("BN_LAB_MAX_CONCURRENT", "BN_LAB_MAX_QUEUED", "BN_LAB_STANDBY"):
        env.setenv(name, "bad")
    with pytest.raises(SettingError, match="BN_LAB_MAX_CONCURRENT='bad'"):
        default_concurrency()
    with pytest.raises(SettingError, match="BN_LAB_MAX_QUEUED='bad'"):
        caps.max_queued()
    with pytest.raises(SettingError, match="BN_LAB_STANDBY='bad'"):
        local.standby_default()


# ----------------------------------------------------------------------------- the CLI


def test_a_good_environment_queues_the_run(tmp_path):
    """The control for the next test: the same command does queue a run."""
    proc = run_cli(SUBMIT, clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert len(RunStore(tmp_path / "lab").list_runs()) == 1


@pytest.mark.parametrize(
    "setting", [s for s in CHECKED if s.type not in FREE], ids=lambda s: s.name
)
def test_a_bad_setting_stops_every_command_before_anything_is_queued(tmp_path, setting):
    text = bad_value(setting)
    proc = run_cli(SUBMIT, clean_env(tmp_path, **{setting.name: text}))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{PROG}: {setting.name}={text!r} is not {setting.allowed()}: fix or unset it"
    ]
    assert proc.stdout == ""
    assert not (tmp_path / "lab").exists()  # no store, not even its folder


@pytest.mark.parametrize("setting", [s for s in CHECKED if s.type in FREE], ids=lambda s: s.name)
def test_free_text_settings_take_any_value(setting):
    for text in ("x", " a b ", "0", "-1", "\u00e9t\u00e9"):
        assert settings.read(setting.name, {setting.name: text}).problem is None


def test_settings_lists_every_name_and_hides_the_password(tmp_path):
    env = clean_env(tmp_path, BN_LAB_MAX_QUEUED="12", BN_LAB_PASSWORD="s3cret-value")
    proc = run_cli(["settings"], env)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert list(lines) == [s.name for s in SETTINGS]
    assert lines["BN_LAB_MAX_QUEUED"].split()[1:3] == ["12", "environment"]
    assert lines["BN_LAB_MAX_RUNS_PER_SUBMIT"].split()[1:3] == ["200", "default"]
    assert lines["BN_LAB_PASSWORD"].split()[1:3] == ["set", "environment"]
    assert "s3cret-value" not in proc.stdout
    assert "not checked here" in lines["BN_LAB_RAY_HEAD"]


def test_settings_json_parses_and_flags_a_bad_value_with_exit_2(tmp_path):
    env = clean_env(tmp_path, BN_LAB_STANDBY="maybe", BN_LAB_PASSWORD="s3cret-value")
    proc = run_cli(["settings", "--json"], env)
    assert proc.returncode == 2
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert list(rows) == [s.name for s in SETTINGS]
    problem = (
        "BN_LAB_STANDBY='maybe' is not one of 1/0, true/false, yes/no, on/off: fix or unset it"
    )
    assert rows["BN_LAB_STANDBY"]["problem"] == problem
    assert proc.stderr.splitlines() == [problem]
    assert rows["BN_LAB_MAX_QUEUED"]["value"] == 1000
    assert rows["BN_LAB_MAX_QUEUED"]["source"] == "default"
    assert rows["BN_LAB_PASSWORD"]["value"] == "set" and "s3cret-value" not in proc.stdout
    assert rows["BN_LAB_HOME"]["value"] == str(tmp_path / "lab")
    assert [r["problem"] for r in rows.values()].count(None) == len(SETTINGS) - 1
    text = run_cli(["settings"], env)  # the table flags it too
    assert text.returncode == 2 and f"BAD: {problem}" in text.stdout


# ----------------------------------------------------------------------------- the README


def test_the_readme_table_is_the_one_made_from_settings():
    """README.md holds ``bn-lab settings --markdown`` between its two markers, verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- settings table: bn-lab settings --markdown -->\n", "<!-- end settings -->"
    assert readme.count(begin) == 1 and readme.count(end) == 1
    table = readme.split(begin)[1].split(end)[0]
    assert table == settings.markdown_table(), "run: python -m bn_core settings --markdown"
    for s in SETTINGS:  # names, defaults and help, each once
        assert table.count(f"| `{s.name}` |") == 1
        assert f"| {s.shown_default} | {s.help} |" in table


# ----------------------------------------------------------------------------- the dashboard


def test_a_bad_setting_shows_one_banner_and_starts_no_runner(env, tmp_path, monkeypatch):
    env.setenv("BN_LAB_HOME", str(tmp_path / "lab"))
    env.setenv("BN_LAB_MAX_QUEUED", "lots")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    made = []

    def runner_for(home: str) -> JobRunner:  # what _runner would cache: a runner never started
        made.append(home)
        return JobRunner(RunStore(home), backend=RecordingBackend())

    monkeypatch.setattr(_runner, "_runner_for", runner_for)
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        "BN_LAB_MAX_QUEUED='lots' is not a whole number from 1 to 100000: fix or unset it"
    ]
    assert made == [] and not (tmp_path / "lab").exists()
    assert not at.button  # no page ran: nothing to click
    env.setenv("BN_LAB_MAX_QUEUED", "50")  # fixed: the next rerun gets its runner
    at.run()
    assert not at.exception and not at.error
    assert set(made) == {str((tmp_path / "lab").resolve())}  # (uncached here: once per call)
    st.cache_resource.clear()
