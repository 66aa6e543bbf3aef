"""Helpers every page uses (imported as ``pages._ui``): the pages' paths, the navigation
hand-over, the store banner and a few small renderers. The runner is ``pages._runner``'s,
the cluster's view ``pages._cluster_ui``'s, pickers and URLs ``pages._pickers``'. Only TF-free
bn_core modules are imported here. A helper module's name, less its underscore, must be no
page's: Streamlit's pages-directory mode gives both the same URL (``_cluster_ui``, not
``_cluster``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bn_core.config import ConfigError
from bn_core.runs.store import RunRecord, StoreError, damage_note
from bn_core.views import train_form
from bn_core.views.runs import STATUS_COLORS
from pages import _runner
from pages._auth import require_login
from pages._cluster_ui import cluster_banner

TRAIN_PAGE = "pages/train.py"
RUNS_PAGE = "pages/runs.py"
COMPARE_PAGE = "pages/compare.py"
NETWORK_PAGE = "pages/network.py"
WINDOW_PAGE = "pages/window.py"
SWEEP_PAGE = "pages/sweep.py"
ABOUT_PAGE = "pages/about.py"
CLUSTER_PAGE = "pages/cluster.py"
FRAMED = "bn-lab-framed"  # session_state key: app.py has framed this session
# Plotly's camera button saves a PNG in the browser (no kaleido on the server).
PNG = {"displaylogo": False}


def use_navigation() -> None:
    """Call first in every page. With a ``pages/`` folder next to app.py, Streamlit starts in its
    pages-directory mode, which lasts until some session calls st.navigation: a fresh server's
    first request for /runs runs pages/runs.py without app.py (and that mode's menu of file
    names stays hidden: ``client.showSidebarNavigation = false``). A session that app.py has
    not framed yet hands over to it: st.navigation over the same pages as that mode (app.py
    first, the default, then the page files) ends the mode for the whole server and resolves
    the URL to the same page; the rerun then runs app.py, whose pages have the same URLs (their
    file names). Once per session, so a page run as the main script (AppTest) never loops."""
    if st.session_state.get(FRAMED):
        # app.py's gate has run first in this run (and drawn the sidebar's Log out); checking
        # again here means a page script never runs ungated, even without app.py in front.
        require_login(logout=False)
        return
    st.session_state[FRAMED] = True
    here = Path(__file__).resolve().parent  # absolute: also right when a page is the main script
    pages = [st.Page(here.parent / "app.py", default=True)]
    pages += [st.Page(path) for path in sorted(here.glob("[!_]*.py"))]
    st.navigation(pages, position="hidden")
    st.rerun()


def store_banner(move_key: str | None = None) -> str | None:
    """Call near the top of a page: one st.warning when the run store is in trouble (it is
    read-only; the runner cannot write it: a full disk, I/O errors; runs skipped as damaged),
    nothing when all is well. Viewing goes on. Then ``cluster_banner`` (runs waiting for a
    cluster that is gone), with its button where ``move_key`` is given. Returns
    ``read_only_reason``: Start is off."""
    runner = _runner.get_runner()
    frozen = _runner.read_only_reason(runner.store)
    notes = [note for note in (frozen, runner.problem) if note]
    try:
        notes += [damage_note(run_id, why) for run_id, why in runner.store.damaged_runs()]
    except StoreError as exc:  # it cannot even be read now: say that instead
        notes.append(str(exc))
    if notes:
        st.warning("\n\n".join(dict.fromkeys(notes)), icon=":material/warning:")
    cluster_banner(move_key, frozen)
    return frozen


def quick_start_button(
    preset: str, key: str, group_id: str | None = None, backend: str = "local"
) -> None:
    """The empty-page way forward: a caption and a one-click button that queues the quick
    version of ``preset`` on an available dataset (disabled, with the reason, when no dataset
    is) to execute on ``backend``, then opens the Runs page. Stops the page script."""
    start = train_form.quick_start(preset, st.session_state)
    st.caption(start.caption)
    problem = _runner.read_only_reason(_runner.get_runner().store) or start.problem
    if st.button(
        start.label,
        key=key,
        type="primary",
        icon=":material/rocket_launch:",
        disabled=problem is not None,
        help=problem,
    ):
        try:
            _runner.get_runner().submit(start.configs, group_id=group_id, backend=backend)
        except (StoreError, ConfigError) as exc:  # a full disk or queue: one line, page usable
            st.error(str(exc), icon=":material/error:")
            st.stop()
        st.switch_page(RUNS_PAGE)
    st.stop()


def png_config(filename: str) -> dict:
    """``config=`` for st.plotly_chart: the toolbar's camera button downloads FILENAME.png."""
    return {**PNG, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def status_badge(run: RunRecord, no_learning: bool = False) -> None:
    """The run's status; with ``no_learning`` (``views.runs.no_learning_note``) a second,
    orange "no learning" badge: the run finished, at chance accuracy."""
    label = "cancelling" if run.active and run.cancel_requested else run.status
    st.badge(label, color=STATUS_COLORS.get(run.status, "gray"))
    if no_learning:
        st.badge("no learning", icon=":material/warning:", color="orange")
