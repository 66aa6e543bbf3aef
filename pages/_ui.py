"""Helpers shared by the pages (imported as ``pages._ui``): the process-wide job runner and
a few small renderers. Only TF-free bn_core modules are imported here."""

from __future__ import annotations

import streamlit as st

from bn_core.runs.runner import JobRunner
from bn_core.runs.store import RunRecord, RunStore, default_home
from bn_core.views.runs import STATUS_COLORS

TRAIN_PAGE = "pages/train.py"
RUNS_PAGE = "pages/runs.py"
COMPARE_PAGE = "pages/compare.py"
NETWORK_PAGE = "pages/network.py"
WINDOW_PAGE = "pages/window.py"
SWEEP_PAGE = "pages/sweep.py"
ABOUT_PAGE = "pages/about.py"
# Plotly's camera button saves a PNG in the browser (no kaleido on the server).
PNG = {"displaylogo": False}


def use_navigation() -> None:
    """Call first in every page. A ``pages/`` folder next to app.py makes Streamlit start in its
    legacy folder mode until some session runs app.py's st.navigation; when a fresh server's
    first request is a page URL (say /runs), that page runs without app.py (sidebar listing
    every file, no page config). Switch to app.py's navigation and rerun the same page (page
    hashes come from the url_path, which both modes derive from the file name). The flag is
    process-wide, so this happens at most once per server. Not under AppTest, which resets the
    flag before every run (a rerun there would swallow the click that caused the run)."""
    try:
        from streamlit import config
        from streamlit.runtime.pages_manager import PagesManager  # internal API; pinned version
    except ImportError:  # pragma: no cover - a Streamlit without it has no legacy mode
        return
    if config.get_option("global.appTest"):
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _stop(runner: JobRunner) -> None:
    runner.stop()


@st.cache_resource(show_spinner=False, on_release=_stop)
def _runner_for(home: str) -> JobRunner:
    """One scheduler per server process and store (never per session)."""
    return JobRunner(RunStore(home)).start()


def get_runner() -> JobRunner:
    """The started JobRunner of the store at $BN_LAB_HOME (default ./.bn_lab)."""
    return _runner_for(str(default_home().resolve()))


def get_store() -> RunStore:
    return get_runner().store


def selection_default(key: str, known, first_visit: list[int]) -> list[int] | None:
    """``default=`` for a run multiselect keyed ``key``: ``first_visit`` the first time; after
    that the widget keeps its own state, minus runs deleted since (Streamlit refuses options
    that no longer exist)."""
    if key in st.session_state:
        st.session_state[key] = [i for i in st.session_state[key] if i in known]
        return None
    return first_visit


def png_config(filename: str) -> dict:
    """``config=`` for st.plotly_chart: the toolbar's camera button downloads FILENAME.png."""
    return {**PNG, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def status_badge(run: RunRecord) -> None:
    label = "cancelling" if run.active and run.cancel_requested else run.status
    st.badge(label, color=STATUS_COLORS.get(run.status, "gray"))
