"""Every ``BN_LAB_*`` environment variable, declared once, and the one way Python reads them.
(Over 300 lines: the table of every variable; the reader itself is a hundred lines.)

``SETTINGS`` lists each variable with its type, default, limits and help; ``bn-lab settings``
and the README's table are made from it. ``value(name)`` reads ``os.environ`` at each call (no
cache: a test or a shell may change it) and parses it; ``check_all()`` parses every variable
that Python reads, so the CLI and the dashboard refuse a bad one before anything starts.

One policy for a bad value: ``SettingError``, one line naming the variable, the value and what
is allowed (``BN_LAB_MAX_QUEUED='abc' is not a whole number from 1 to 100000: fix or unset
it``). An empty value is the same as unset (the default). Numbers and switches may have spaces
around them; a switch is one of 1/0, true/false, yes/no, on/off (any case).

Some variables are read only by the shell scripts or docker-compose.yml (``where`` says which);
they are declared here so that every one is listed, but Python does not check them: their
readers do. ``BN_LAB_PASSWORD`` is a secret: only whether it is set is ever shown.
TF-free; imports nothing from bn_core but ``config.ConfigError``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bn_core.config import ConfigError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
WHOLE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() would also take "٣" or "1_0"
SWITCH_WORDS = ", ".join(f"{t}/{f}" for t, f in zip(TRUE, FALSE, strict=True))
# Who reads a variable. The first three are Python (checked here); the rest are not.
DASHBOARD, CLI, WORKER = "dashboard", "CLI", "worker"
PYTHON = (DASHBOARD, CLI, WORKER)
RUN_SH, ENTRYPOINT, COMPOSE = "scripts/run.sh", "scripts/docker-entrypoint.sh", "docker-compose.yml"
ENVIRONMENT, DEFAULT = "environment", "default"  # where an effective value came from


class SettingError(ConfigError):
    """A ``BN_LAB_*`` variable with a value that cannot be used. ``str(e)`` is one line: the
    variable, its value and what is allowed."""


@dataclass(frozen=True)
class Setting:
    """One environment variable. ``type`` is int, number (a float), switch (a bool), choice,
    path or text. ``default`` is the value when it is unset (None: decided elsewhere, as
    ``default_text`` says). ``low``/``high`` bound int and number; ``choices`` a choice."""

    name: str
    type: str
    default: Any
    help: str
    where: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default_text: str = ""  # how the README and `bn-lab settings` say the default
    secret: bool = False

    @property
    def checked(self) -> bool:
        """Whether Python reads it (and so checks it): the others belong to scripts."""
        return any(reader in PYTHON for reader in self.where)

    @property
    def shown_default(self) -> str:
        if self.default_text:
            return self.default_text
        return "unset" if self.default is None else _show(self.default)

    def allowed(self) -> str:
        """What a value may be, in words: the end of a SettingError's line."""
        if self.type == "int":
            return f"a whole number from {_show(self.low)} to {_show(self.high)}"
        if self.type == "number":
            return f"a number from {_show(self.low)} to {_show(self.high)}"
        if self.type == "switch":
            return f"one of {SWITCH_WORDS}"
        if self.type == "choice":
            return f"one of {', '.join(self.choices)}"
        return "any text"

    def parse(self, text: str) -> Any:
        """``text`` (non-empty) as this setting's value; SettingError when it is not one."""
        word = text.strip()
        if self.type == "int":
            if WHOLE.fullmatch(word) and self.low <= int(word) <= self.high:
                return int(word)
        elif self.type == "number":
            try:
                number = float(word) if word.isascii() else math.nan
            except ValueError:
                number = math.nan
            if self.low <= number <= self.high:  # (nan fails both)
                return number
        elif self.type == "switch":
            if word.lower() in TRUE + FALSE:
                return word.lower() in TRUE
        elif self.type == "choice":
            if word.lower() in self.choices:
                return word.lower()
        elif self.type == "path":
            return Path(text)
        else:
            return text
        shown = "(hidden)" if self.secret else repr(text)
        raise SettingError(f"{self.name}={shown} is not {self.allowed()}: fix or unset it")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


APP = (DASHBOARD, CLI)  # the processes that run the job runner
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "BN_LAB_HOME",
        "path",
        Path(".bn_lab"),
        "the folder of the run store (runs.sqlite), logs, checkpoints, models and the XLA cache",
        (DASHBOARD, CLI, WORKER),
        default_text="./.bn_lab",
    ),
    Setting(
        "BN_LAB_MAX_CONCURRENT",
        "int",
        None,
        "runs the job runner starts at once (`bn-lab runner --max-concurrent` wins)",
        APP,
        low=1,
        high=1024,
        default_text="1 on ≤ 2 cores, else cores/2",
    ),
    Setting(
        "BN_LAB_MAX_RUNS_PER_SUBMIT",
        "int",
        200,
        "runs one submission may queue (Train, Sweep, `submit`, `study`)",
        APP,
        low=1,
        high=100_000,
    ),
    Setting(
        "BN_LAB_MAX_QUEUED",
        "int",
        1000,
        "runs the queue may hold at once",
        APP,
        low=1,
        high=100_000,
    ),
    Setting(
        "BN_LAB_STANDBY",
        "switch",
        True,
        "keep a standby worker (TensorFlow imported, datasets read) while nothing runs",
        APP,
    ),
    Setting(
        "BN_LAB_XLA_CACHE",
        "switch",
        True,
        "share compiled train steps between workers ($BN_LAB_HOME/xla-cache/)",
        (WORKER,),
    ),
    Setting(
        "BN_LAB_PASSWORD",
        "text",
        None,
        "the dashboard's password (else `password` in .streamlit/secrets.toml; unset: no password)",
        (DASHBOARD,),
        secret=True,
    ),
    Setting(
        "BN_LAB_RAY_CPUS",
        "number",
        1.0,
        "CPUs each Ray run asks for (and TensorFlow's threads)",
        APP,
        low=1,
        high=256,
    ),
    Setting("BN_LAB_RAY_GPUS", "number", 0.0, "GPUs each Ray run asks for", APP, low=0, high=256),
    Setting(
        "BN_LAB_ADDRESS",
        "text",
        "127.0.0.1",
        "the address the dashboard listens on (0.0.0.0: the network; set a password first)",
        (RUN_SH,),
    ),
    Setting(
        "BN_LAB_PORT",
        "int",
        8501,
        "the host port compose publishes the dashboard on",
        (COMPOSE,),
        low=1,
        high=65535,
    ),
    Setting("BN_LAB_IMAGE", "text", "bn-lab", "the image compose builds and runs", (COMPOSE,)),
    Setting(
        "BN_LAB_SHM_SIZE",
        "text",
        "1gb",
        "/dev/shm of each container (Ray's object store)",
        (COMPOSE,),
    ),
    Setting(
        "BN_LAB_RAY_HEAD",
        "choice",
        "0",
        "1: start a Ray head with the dashboard, auto: only beside compose workers, 0: never",
        (ENTRYPOINT,),
        choices=("0", "1", "auto"),
        default_text="0 (compose: auto)",
    ),
    Setting(
        "BN_LAB_RAY_WAIT",
        "int",
        10,
        "seconds BN_LAB_RAY_HEAD=auto looks for workers",
        (ENTRYPOINT,),
        low=0,
        high=3600,
    ),
    Setting(
        "BN_LAB_RAY_ARGS",
        "text",
        "",
        "more `ray start` options for any node (ports, labels)",
        (ENTRYPOINT,),
        default_text="none",
    ),
    Setting(
        "BN_LAB_WORKER_CPUS",
        "number",
        None,
        "CPUs a Ray worker node offers",
        (ENTRYPOINT, COMPOSE),
        low=0,
        high=4096,
        default_text="all it sees",
    ),
    Setting(
        "BN_LAB_WORKER_GPUS",
        "number",
        None,
        "GPUs a Ray worker node offers",
        (ENTRYPOINT,),
        low=0,
        high=4096,
        default_text="the GPUs Ray detects",
    ),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Reading:
    """One setting as the environment has it: ``text`` (None: unset or empty), the effective
    ``value``, its ``source`` (environment or default) and ``problem`` (the SettingError's
    line, else None). A setting Python does not check keeps its text as it is."""

    setting: Setting
    text: str | None
    value: Any
    source: str
    problem: str | None = None

    @property
    def shown(self) -> str:
        """The value for people: a secret is only "set" or "unset"."""
        if self.setting.secret:
            return "set" if self.text is not None else "unset"
        if self.problem is not None:
            return repr(self.text)
        if self.text is None:
            return self.setting.shown_default
        return _show(self.value)


def read(name: str, env: Mapping[str, str] | None = None) -> Reading:
    """``name`` as ``env`` (default: ``os.environ`` now) has it; never raises for a bad
    value (see ``problem``). KeyError for a name not in ``SETTINGS``."""
    setting = BY_NAME[name]
    text = (os.environ if env is None else env).get(name) or None  # empty is unset
    if text is None:
        return Reading(setting, None, setting.default, DEFAULT)
    if not setting.checked:
        return Reading(setting, text, text, ENVIRONMENT)
    try:
        return Reading(setting, text, setting.parse(text), ENVIRONMENT)
    except SettingError as exc:
        return Reading(setting, text, None, ENVIRONMENT, str(exc))


def value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The effective value of setting ``name``: parsed from ``env`` (default: ``os.environ``,
    read now), or its default when unset or empty. SettingError for a bad value."""
    reading = read(name, env)
    if reading.problem is not None:
        raise SettingError(reading.problem)
    return reading.value


def readings(env: Mapping[str, str] | None = None) -> list[Reading]:
    """Every setting of ``SETTINGS``, in order, as ``env`` has it."""
    return [read(setting.name, env) for setting in SETTINGS]


def check_all(env: Mapping[str, str] | None = None) -> None:
    """Raise SettingError for the first setting Python reads whose value is bad."""
    for reading in readings(env):
        if reading.problem is not None:
            raise SettingError(reading.problem)


def markdown_table() -> str:
    """The README's table of every setting, from ``SETTINGS`` (``bn-lab settings --markdown``)."""
    rows = ["| variable | read by | default | what |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        where = ", ".join(s.where) + ("" if s.checked else " (not checked by Python)")
        rows.append(f"| `{s.name}` | {where} | {s.shown_default} | {s.help} |")
    return "\n".join(rows) + "\n"
