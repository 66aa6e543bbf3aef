"""The tests that may skip (or xfail) in CI, each with why.

In CI (environment ``CI=true``; ``.ci/run`` sets it) a test that skips, xfails or xpasses is a
failure of the whole run unless one entry below matches its node id (tests/skip_policy.py, which
tests/conftest.py loads, enforces it; tests/test_skip_policy.py tests that). Outside CI a skip is
only a skip, reported by ``-ra``.

A key matches a node id that equals it, the same id with any parameters (``key[...]``), or,
when the key ends with ``*``, any node id that starts with what comes before the ``*``.
Every entry needs a reason that says what this machine lacks and why the test cannot run
without it; "flaky" is not a reason.

Empty today, on purpose. The skips that remain in tests/ are for machines other than CI's:
- tmpfs mounts (a real full disk: tests/reliability/test_disk_full.py,
  tests/test_store_commands.py's backup onto a full disk; a real read-only file system:
  read_only_folder in tests/store_helpers.py) skip where we are not root
  or mounting is not allowed. CI runs as root and can mount, so there they must run: not
  listed.
- tests/reliability/test_store_readonly.py's open_as_nobody skips as root without a user
  ``nobody``; Debian always has one: not listed.
- The real Fashion-MNIST tests do not skip at all: scripts/test.sh installs the dataset, and
  a missing one fails, as tests/test_integration.py does.
"""

from __future__ import annotations

ALLOWED_SKIPS: dict[str, str] = {
    # "tests/path/test_file.py::test_name": "what this machine lacks, and why it cannot run",
}
