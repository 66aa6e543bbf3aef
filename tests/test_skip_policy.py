"""The skip policy itself (tests/skip_policy.py): pytest in a subprocess, on a throwaway test
file that skips, xfails or xpasses, with CI=true and without, against a list of allowed skips
that names the test or does not. So the policy cannot pass by never firing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.allowed_skips import ALLOWED_SKIPS
from tests.skip_policy import allowed_by

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest

def test_runs():
    assert True

def test_needs_a_thing():
    pytest.skip("no thing here")

@pytest.mark.xfail(reason="known wrong")
def test_known_wrong():
    assert False

@pytest.mark.xfail(reason="thought wrong")
def test_thought_wrong():
    assert True

@pytest.mark.parametrize("n", [1, 2])
def test_each(n):
    pytest.skip(f"no {n}")
"""


def run_pytest(
    tmp_path: Path, allowed: dict[str, str] | None, ci: str | None, body: str = SAMPLE
) -> subprocess.CompletedProcess:
    """pytest (with only the skip-policy plugin) on ``body`` as tmp_path/test_sample.py, with
    ``allowed`` as the list of allowed skips and CI set to ``ci`` (None: unset)."""
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's addopts
    listing = tmp_path / "allowed.py"
    listing.write_text(f"ALLOWED_SKIPS = {allowed or {}!r}\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider"]
        + ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
        + ["--allowed-skips", str(listing), str(tmp_path / "test_sample.py")],
        cwd=ROOT,  # so that ``tests.skip_policy`` imports
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


EVERY_ONE = {
    "test_sample.py::test_needs_a_thing": "the sample has no thing",
    "test_sample.py::test_known_wrong": "the sample is known wrong",
    "test_sample.py::test_thought_wrong": "the sample was thought wrong",
    "test_sample.py::test_each": "every parameter: the sample has none",
}


def test_in_ci_an_unlisted_skip_xfail_or_xpass_fails_the_run_naming_each(tmp_path):
    done = run_pytest(tmp_path, allowed=None, ci="true")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "skip policy: 5 test(s) skipped or xfailed in CI, not allowed" in out, out
    assert "SKIPPED test_sample.py::test_needs_a_thing: no thing here" in out
    assert "XFAILED test_sample.py::test_known_wrong: known wrong" in out
    assert "XPASSED test_sample.py::test_thought_wrong: thought wrong" in out
    assert "SKIPPED test_sample.py::test_each[1]: no 1" in out
    assert "SKIPPED test_sample.py::test_each[2]: no 2" in out
    assert "test_sample.py::test_runs" not in out.split("skip policy:")[1]


def test_in_ci_listed_ones_pass_and_only_the_unlisted_one_is_named(tmp_path):
    done = run_pytest(tmp_path, allowed=EVERY_ONE, ci="true")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skip policy" not in done.stdout

    some = {k: v for k, v in EVERY_ONE.items() if not k.endswith("test_known_wrong")}
    done = run_pytest(tmp_path, allowed=some, ci="true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skip policy: 1 test(s)" in done.stdout
    assert "XFAILED test_sample.py::test_known_wrong: known wrong" in done.stdout


def test_outside_ci_a_skip_is_only_a_skip(tmp_path):
    for ci in (None, "", "false"):
        done = run_pytest(tmp_path, allowed=None, ci=ci)
        assert done.returncode == 0, (ci, done.stdout + done.stderr)
        assert "skip policy" not in done.stdout


def test_a_module_level_skip_counts_too(tmp_path):
    body = 'import pytest\npytest.skip("no module here", allow_module_level=True)\n'
    done = run_pytest(tmp_path, allowed=None, ci="true", body=body)
    # Nothing ran: pytest says 5 (no tests) or our 1; either way not a pass.
    assert done.returncode != 0, done.stdout + done.stderr
    assert "SKIPPED test_sample.py: no module here" in done.stdout


def test_a_failing_run_keeps_its_own_exit_status(tmp_path):
    done = run_pytest(tmp_path, allowed=None, ci="true", body=SAMPLE + "\ndef test_x():\n    1/0\n")
    assert done.returncode == 1 and "1 failed" in done.stdout
    assert "skip policy: 5 test(s)" in done.stdout


def test_an_entry_without_a_reason_is_refused(tmp_path):
    done = run_pytest(tmp_path, allowed={"test_sample.py::test_needs_a_thing": " "}, ci="true")
    assert done.returncode == 4, done.stdout + done.stderr  # a usage error
    assert "entries without a reason: test_sample.py::test_needs_a_thing" in done.stderr


KEYS = {"tests/a.py::test_b": "a reason", "tests/c/*": "another"}


@pytest.mark.parametrize(
    ("nodeid", "key"),
    [
        ("tests/a.py::test_b", "tests/a.py::test_b"),
        ("tests/a.py::test_b[x-1]", "tests/a.py::test_b"),
        ("tests/a.py::test_bc", None),
        ("tests/c/test_d.py::test_e", "tests/c/*"),
        ("tests/b.py::test_c", None),
    ],
)
def test_keys_match_a_node_id_its_parameters_or_a_star_prefix(nodeid, key):
    assert allowed_by(nodeid, KEYS) == key


def test_the_projects_list_gives_every_entry_a_reason():
    assert all(isinstance(r, str) and r.strip() for r in ALLOWED_SKIPS.values())
