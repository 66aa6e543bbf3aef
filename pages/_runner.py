"""The process-wide job runner the pages share (imported as ``pages._runner``): one per
server process and store, with its store and whether runs can start on it. Only TF-free
bn_core modules are imported here."""

from __future__ import annotations

import streamlit as st

from bn_core.runs.execution import JobRunner
from bn_core.runs.store import RunStore, StoreError, default_home, describe
from bn_core.settings import SettingError, check_all


def _stop(runner: JobRunner) -> None:
    runner.stop()


@st.cache_resource(show_spinner=False, on_release=_stop)
def _runner_for(home: str) -> JobRunner:
    """One scheduler per server process and store (never per session). The store's pages are
    checked once here, by opening it (``RunStore``: SQLite's quick_check, 0.1 s for 1,000
    runs); a read-only store gets a runner that is never started: it could schedule nothing."""
    store = RunStore(home)
    runner = JobRunner(store)
    return runner if store.read_only else runner.start()


def get_runner() -> JobRunner:
    """The JobRunner of the store at $BN_LAB_HOME (default ./.bn_lab), started unless the
    store is read-only. A store that cannot be used at all (damaged, from a newer BN Lab, in
    an unusable folder) shows its one-line error instead and stops the script: app.py calls
    this before any page, so every page shows that error and nothing else. So does a bad
    ``BN_LAB_*`` setting (``bn_core.settings.check_all``), checked first: no runner starts.
    Not cached while it fails: the next rerun tries again, so fixing the file is enough."""
    try:
        check_all()
        return _runner_for(str(default_home().resolve()))
    except (SettingError, StoreError) as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()


def get_store() -> RunStore:
    return get_runner().store


def read_only_reason(store: RunStore) -> str | None:
    """Why no run can start on ``store`` (it cannot be written), or None when one can."""
    return describe("readonly", store.path, "it cannot be written") if store.read_only else None
