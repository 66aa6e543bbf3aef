"""A pytest plugin: in CI (``CI=true``), a test that skips, xfails or xpasses fails the run
unless tests/allowed_skips.py lists it, with a reason.

tests/conftest.py loads it (it imports these hooks); ``-p tests.skip_policy`` loads it into any
other pytest run (tests/test_skip_policy.py does, on a throwaway test file). ``--allowed-skips
FILE`` reads ``ALLOWED_SKIPS`` from another Python file instead of tests/allowed_skips.py.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).resolve().parent / "allowed_skips.py"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def load_allowed(path: Path) -> dict[str, str]:
    """``ALLOWED_SKIPS`` of the Python file at ``path``; every entry must have a reason."""
    spec = importlib.util.spec_from_file_location("_bn_lab_allowed_skips", path)
    if spec is None or spec.loader is None:
        raise pytest.UsageError(f"{path}: cannot be read as a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    allowed = getattr(module, "ALLOWED_SKIPS", None)
    if not isinstance(allowed, dict):
        raise pytest.UsageError(f"{path}: no ALLOWED_SKIPS dict")
    bare = [key for key, reason in allowed.items() if not str(reason or "").strip()]
    if bare:
        raise pytest.UsageError(f"{path}: entries without a reason: {', '.join(bare)}")
    return dict(allowed)


def allowed_by(nodeid: str, allowed: dict[str, str]) -> str | None:
    """The key of ``allowed`` that matches ``nodeid``, if one does."""
    for key in allowed:
        if key.endswith("*"):
            if nodeid.startswith(key[:-1]):
                return key
        elif nodeid == key or nodeid.startswith(key + "["):
            return key
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--allowed-skips",
        default=str(DEFAULT_LIST),
        help="Python file whose ALLOWED_SKIPS lists the tests that may skip/xfail in CI",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipPolicy(config), "bn_lab_skip_policy")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


class SkipPolicy:
    """Notes every skipped, xfailed and xpassed test; in CI, fails the session when one of
    them is not allowed, and names them at the end of the output."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.allowed = load_allowed(Path(config.getoption("--allowed-skips")))  # checked early
        self.seen: dict[str, tuple[str, str]] = {}  # node id -> (how, why)
        self.unlisted: list[tuple[str, str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(report, "wasxfail"):
            how = "xfailed" if report.skipped else "xpassed" if report.passed else None
        else:
            how = "skipped" if report.skipped else None
        if how is not None:
            self.seen.setdefault(report.nodeid, (how, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a module-level pytest.skip or importorskip
            self.seen.setdefault(report.nodeid, ("skipped", _reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not in_ci():
            return
        self.unlisted = [
            (nodeid, how, why)
            for nodeid, (how, why) in self.seen.items()
            if allowed_by(nodeid, self.allowed) is None
        ]
        if self.unlisted and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.unlisted:
            return
        terminalreporter.write_sep(
            "=",
            f"skip policy: {len(self.unlisted)} test(s) skipped or xfailed in CI, not allowed",
            red=True,
        )
        for nodeid, how, why in self.unlisted:
            terminalreporter.write_line(f"{how.upper()} {nodeid}: {why}")
        terminalreporter.write_line(
            "CI=true: a skip is a failure unless "
            f"{self.config.getoption('--allowed-skips')} lists the test with a reason "
            "(or make the test run here)."
        )
