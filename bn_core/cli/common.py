"""What every command module shares: the parser class, the TrainConfig flags, exit codes,
output folders, Ctrl-C handling, and the log file that takes native libraries' chatter."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bn_core.cli.values import number
from bn_core.config import ConfigError, TrainConfig, field_spec, format_number
from bn_core.runs.store import default_home
from bn_core.variants import VARIANT_NAMES, VARIANTS
from bn_core.vocabulary import RunStatus

# The name people typed: the console script, or the module form (kept for existing scripts).
PROG = "bn-lab" if Path(sys.argv[0]).name == "bn-lab" else "python -m bn_core"
# A run's final status -> the process exit code (an interrupted run did not finish: 1). One
# that completed at chance (bn_core.results.no_learning) exits 0 too: it did what was asked,
# and a sweep's aggressive arms end there by design; its result line and JSON say so instead.
EXIT_CODES = {
    RunStatus.COMPLETED: 0,
    RunStatus.FAILED: 1,
    RunStatus.DIVERGED: 3,
    RunStatus.CANCELLED: 130,
    RunStatus.INTERRUPTED: 1,
}


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every flag that has a default other than None/False."""

    def _get_help_string(self, action):
        hidden = action.default is None or action.default is False  # (0 == False: use identity)
        if hidden or action.default == argparse.SUPPRESS or "%(default)" in action.help:
            return action.help
        return action.help + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, without the usage block, and takes no
    abbreviations (``compare --variant X`` must not silently mean ``--variants X``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per TrainConfig field, with its default, limits, choices and help."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in exclude:
            continue
        spec = field_spec(f.name)
        help_text = spec["help"]
        if spec["min"] is not None:
            help_text += f"; {format_number(spec['min'])} to {format_number(spec['max'])}"
        if f.name == "variant":
            help_text += ". " + " ".join(f"{v.name}: {v.description}" for v in VARIANTS.values())
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=number(spec["type"]) if spec["type"] in (int, float) else spec["type"],
            default=spec["default"],
            choices=spec["choices"],
            metavar=None if spec["choices"] else f.name.upper(),
            help=help_text.replace("%", "%%"),
        )


def add_backend_flag(parser: argparse.ArgumentParser) -> None:
    """``--backend {local,ray}``: where the runs execute (default: ray when $RAY_ADDRESS is
    set, else local)."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default=None,
        help="where the runs execute: local (processes on this machine) or ray (the Ray "
        "cluster at $RAY_ADDRESS, else one `ray start` runs here); default: ray when "
        "$RAY_ADDRESS is set, else local",
    )


def cluster_for(backend: str | None):
    """(backend name, a connected RayBackend or None) for ``--backend``; raises
    ``ClusterUnavailable`` (exit 2, one line) when ray is asked for and no cluster answers,
    before anything is queued."""
    from bn_core.runs.execution import ClusterError, RayBackend, ray_address

    name = backend or ("ray" if ray_address() else "local")
    if name == "local":
        return name, None

    try:
        cluster = RayBackend()
        cluster.capacity()
    except ClusterError as exc:
        raise ClusterUnavailable(str(exc)) from None
    return name, cluster


class ClusterUnavailable(Exception):
    """``--backend ray`` with no cluster to run on; ``str(e)`` is the one-line reason."""


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The validated TrainConfig of the parsed flags (ConfigError: exit 2)."""
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }
    config = TrainConfig(**{**values, **overrides}).validate()
    check_data_dir(config.data_dir)
    return config


def check_data_dir(data_dir: str | None) -> None:
    if data_dir is not None and not os.path.isdir(data_dir):
        raise ConfigError(f"--data-dir {data_dir} is not a folder; pass an existing folder")


def parse_variants(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        raise ConfigError(
            f"--variants must list some of {', '.join(VARIANT_NAMES)}. Received: {text!r}"
        )
    return names


def prepare_out(out: str | None) -> Path | None:
    """Create the output folder up front, so a bad path fails before any training: ConfigError
    (exit 2, one line) for an empty or blank ``--out`` (``Path("")`` is the current folder:
    the outputs would land wherever the command was started), a path that is a file or cannot
    be created, and a folder where a file cannot be written (tried, not only ``os.access``:
    root passes that on a read-only mount)."""
    if out is None:
        return None
    if not out.strip():
        raise ConfigError(f"--out must name a folder. Received: {out!r}")
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        detail = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"--out {out} cannot be created ({detail}); choose another folder"
        ) from exc
    try:
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--out {out} is not writable ({exc.strerror or exc}); choose another folder"
        ) from None
    return path


def worst_exit(statuses: set[str]) -> int:
    """The exit code of several runs: the most serious outcome decides."""
    for worst in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.DIVERGED):
        if worst in statuses:
            return EXIT_CODES[worst]
    return 0


class CtrlC:
    """A ``should_stop`` callable: the first Ctrl-C asks the run to stop cleanly, and so do
    SIGTERM (``kill``, ``docker stop``, systemd) and SIGHUP (the terminal closed): the run
    ends ``cancelled`` with what it measured, and the command writes its outputs. A second
    signal of the same kind acts as it would have without this (Ctrl-C aborts at once)."""

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    )

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Callable | int | None] = {}

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self) -> CtrlC:
        def handler(signum, frame):
            self.requested = True
            signal.signal(signum, self._previous[signum])  # the second one acts at once

        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _open_log():
    """The CLI's log, opened for appending: ``$BN_LAB_HOME/logs/cli.log`` (default
    ``./.bn_lab/logs/cli.log``), else a file in the temp folder; None when neither opens."""
    for path in (
        default_home() / "logs" / "cli.log",
        Path(tempfile.gettempdir()) / f"bn-lab-cli-{os.getuid()}.log",
    ):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "ab")
        except OSError:
            continue
    return None


@contextlib.contextmanager
def native_output_to_log() -> Iterator[Path | None]:
    """Send what native code writes to file descriptor 2 to the CLI's log while the block runs;
    Python's ``sys.stderr`` (our messages, tracebacks, tqdm) keeps the terminal. Yields the log's
    path, or None when ``sys.stderr`` is not descriptor 2 (a test capturing output) or the log
    cannot be opened: then nothing changes.

    TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()",
    oneDNN's "custom operations are on") are written straight to descriptor 2, whatever
    TF_CPP_MIN_LOG_LEVEL says, so only moving the descriptor keeps them off the terminal.
    """
    log = _open_log() if _is_descriptor_2(sys.stderr) else None
    if log is None:
        yield None
        return
    python_stderr = sys.stderr
    python_stderr.flush()
    terminal = os.dup(2)
    # Line-buffered, like the interpreter's own stderr: each message shows as it is printed.
    sys.stderr = open(
        terminal, "w", buffering=1, encoding=python_stderr.encoding, errors=python_stderr.errors
    )
    os.dup2(log.fileno(), 2)
    try:
        yield Path(log.name)
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        sys.stderr.close()  # closes the duplicate descriptor too
        sys.stderr = python_stderr
        log.close()


def _is_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


def quiet_native_output(handler: Callable[[argparse.Namespace], int]):
    """Decorator for a command handler that imports TensorFlow: see ``native_output_to_log``."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        with native_output_to_log():
            return handler(args)

    return wrapper
