"""Helpers shared by the pages (imported as ``pages._ui``): the process-wide job runner and
a few small renderers. Only TF-free bn_core modules are imported here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from bn_core.config import ConfigError
from bn_core.runs.execution import ClusterInfo, JobRunner, ray_address
from bn_core.runs.store import (
    GroupRecord,
    RunRecord,
    RunStore,
    StoreError,
    damage_note,
    default_home,
    describe,
    ensure_sound,
)
from bn_core.views import cluster as cluster_view
from bn_core.views import links, train_form
from bn_core.views.runs import STATUS_COLORS, run_label
from pages._auth import require_login

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
URLS_KEPT = 200  # query strings a page remembers writing in one session (view_from_url)
CLUSTER_SECONDS = 5.0  # how long one answer of the cluster is reused: pages stay quick


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


def _stop(runner: JobRunner) -> None:
    runner.stop()


@st.cache_resource(show_spinner=False, on_release=_stop)
def _runner_for(home: str) -> JobRunner:
    """One scheduler per server process and store (never per session). The store's pages are
    checked once here (``health.ensure_sound``: 30-80 ms per 100k metric rows); a read-only
    store gets a runner that is never started: it could schedule nothing."""
    store = RunStore(home)
    ensure_sound(store.path)
    runner = JobRunner(store)
    return runner if store.read_only else runner.start()


def get_runner() -> JobRunner:
    """The JobRunner of the store at $BN_LAB_HOME (default ./.bn_lab), started unless the
    store is read-only. A store that cannot be used at all (damaged, from a newer BN Lab, in
    an unusable folder) shows its one-line error instead and stops the script: app.py calls
    this before any page, so every page shows that error and nothing else. Not cached while
    it fails: the next rerun tries again, so fixing the file is enough."""
    try:
        return _runner_for(str(default_home().resolve()))
    except StoreError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()


def read_only_reason(store: RunStore) -> str | None:
    """Why no run can start on ``store`` (it cannot be written), or None when one can."""
    return describe("readonly", store.path, "it cannot be written") if store.read_only else None


def store_banner(move_key: str | None = None) -> str | None:
    """Call near the top of a page: one st.warning when the run store is in trouble (it is
    read-only; the runner cannot write it: a full disk, I/O errors; runs skipped as damaged),
    nothing when all is well. Viewing goes on. Then ``cluster_banner`` (runs waiting for a
    cluster that is gone), with its button where ``move_key`` is given. Returns
    ``read_only_reason``: Start is off."""
    runner = get_runner()
    frozen = read_only_reason(runner.store)
    notes = [note for note in (frozen, runner.problem) if note]
    try:
        notes += [damage_note(run_id, why) for run_id, why in runner.store.damaged_runs()]
    except StoreError as exc:  # it cannot even be read now: say that instead
        notes.append(str(exc))
    if notes:
        st.warning("\n\n".join(dict.fromkeys(notes)), icon=":material/warning:")
    cluster_banner(move_key, frozen)
    return frozen


def cluster_banner(move_key: str | None = None, read_only: str | None = None) -> None:
    """While the runner's Ray cluster cannot take runs (``JobRunner.cluster_problem``) and runs
    are queued for it: one st.warning saying so; with ``move_key``, a "Run them on this
    machine" button (keyed ``move_key``) that sends them to the local backend, which starts
    them within its poll interval. Drawn on one or two pages only: one click is enough."""
    runner = get_runner()
    if said := st.session_state.pop("cluster-moved", None):  # the button's last click
        ok, text = said
        if ok:
            st.success(text, icon=":material/check:")
        else:
            st.error(text, icon=":material/error:")
    if not runner.cluster_problem:
        return
    try:
        waiting = runner.store.queued_for("ray")
    except StoreError:  # the store banner above already says the store cannot be read
        return
    if not waiting:
        return
    st.warning(
        cluster_view.waiting_banner(runner.cluster_problem, waiting), icon=":material/cloud_off:"
    )
    if move_key is not None:
        st.button(
            "Run them on this machine",
            key=move_key,
            on_click=_run_waiting_here,
            disabled=read_only is not None,
            help=read_only or "queue them for this machine's worker processes instead",
            icon=":material/computer:",
        )


def _run_waiting_here() -> None:
    """The button's click (before the page reruns): the runs queued for Ray go local."""
    try:
        moved = get_runner().store.move_queued("ray", "local")
    except StoreError as exc:  # a full disk, say: one line
        st.session_state["cluster-moved"] = (False, str(exc))
    else:
        st.session_state["cluster-moved"] = (True, f"{moved} run(s) will run on this machine.")


@dataclass(frozen=True)
class ClusterReach:
    """What the cluster answered: its nodes (``info``), or why it cannot be used (``problem``,
    one line)."""

    info: ClusterInfo | None
    problem: str | None


def cluster_reach() -> ClusterReach | None:
    """The Ray cluster at $RAY_ADDRESS as the runner sees it, at most ``CLUSTER_SECONDS`` old;
    None when no cluster is configured (nothing imports Ray then). The runner's cluster
    backend is made here when it has none yet, so the runs queued for it start on the
    connection this check made."""
    address = ray_address()
    if address is None:
        return None
    runner = get_runner()
    return _ask_cluster(address, runner.runner_id, runner)


@st.cache_data(ttl=CLUSTER_SECONDS, show_spinner=False)
def _ask_cluster(address: str, runner_id: str, _runner: JobRunner) -> ClusterReach:
    """``cluster_reach``'s answer, cached per address and runner (``_runner`` itself is not
    hashed: its id stands for it)."""
    try:
        cluster = _runner.ensure_cluster()
        cluster.capacity()
        return ClusterReach(cluster.info(), None)
    except Exception as exc:  # noqa: BLE001 - ClusterError, or Ray failing in its own ways
        lines = str(exc).strip().splitlines()
        return ClusterReach(None, lines[0] if lines else type(exc).__name__)


def backend_choice(key: str) -> str:
    """Where the runs a page queues execute: "ray" or "local". A "Run on" radio (keyed
    ``key``, the cluster first chosen) when a cluster is configured and answers; a one-line
    caption when it is configured but does not answer; nothing without $RAY_ADDRESS."""
    reach = cluster_reach()
    if reach is None:
        return "local"
    if reach.info is None:
        st.caption(f":material/cloud_off: Runs execute on this machine: {reach.problem}")
        return "local"
    labels = {"local": cluster_view.LOCAL_LABEL, "ray": cluster_view.cluster_label(reach.info)}
    return st.radio(
        "Run on",
        list(labels),
        index=1,
        format_func=labels.get,
        key=key,
        horizontal=True,
        help="each run is one Ray task on a node with room; its metrics, checkpoints and "
        "model come back to this machine's run store",
    )


def get_store() -> RunStore:
    return get_runner().store


def run_picker(
    runs: list[RunRecord], key: str, first_visit: list[int], help: str, container=st
) -> list[RunRecord]:
    """A "Runs" multiselect over ``runs`` (newest first, labelled by ``views.runs.run_label``),
    keyed ``key``; returns the chosen runs in ``runs``' order. Preselects ``first_visit`` the
    first time; after that the widget keeps its own state, minus runs deleted since
    (Streamlit refuses options that no longer exist)."""
    labels = {r.id: run_label(r) for r in runs}
    default = first_visit
    if key in st.session_state:
        st.session_state[key] = [i for i in st.session_state[key] if i in labels]
        default = None
    selected = container.multiselect(
        "Runs",
        sorted(labels, reverse=True),
        default=default,
        format_func=labels.get,
        key=key,
        help=help,
    )
    return [r for r in runs if r.id in set(selected)]


def group_picker(
    groups: list[GroupRecord], key: str, default: str | None, help: str, container=st
) -> GroupRecord | None:
    """One "Group" selectbox over ``groups`` (newest first), each shown by its label (name,
    date, runs, status): type in it to find a group by name or date. Starts on ``default``
    (else the newest); after that the widget keeps its own state, unless that group is gone.
    None when there are no groups."""
    if not groups:
        return None
    by_id = {g.id: g for g in groups}
    keep_choice(key, {g.id: g.label for g in groups}, default if default in by_id else groups[0].id)
    chosen = container.selectbox(
        "Group", list(by_id), format_func=lambda i: by_id[i].label, key=key, help=help
    )
    return by_id[chosen]


def keep_choice(key: str, labels: dict, fallback) -> None:
    """Before the selectbox keyed ``key`` over ``labels`` (option -> label) is drawn: the
    browser holds the label it shows, not the option, so a label that changed since (a renamed
    group, a count that moved) comes back as text that is no longer an option, and Streamlit
    would drop the choice. Every label this session was shown maps back to its option; setting
    the state also makes the browser show the new label. ``fallback`` when the choice is gone."""
    seen = st.session_state.setdefault(f"{key}-labels", {})
    chosen = st.session_state.get(key)
    if chosen not in labels:
        chosen = seen.get(chosen, fallback)
    seen.update({label: option for option, label in labels.items()})
    st.session_state[key] = chosen if chosen in labels else fallback


def linked_group_picker(
    page: str, groups: list[GroupRecord], default: str | None, help: str
) -> GroupRecord | None:
    """``group_picker`` keyed ``{page}-group`` whose group is also the page's URL
    (``?group=…``): a link or a reload opens the same group."""
    view = view_from_url(page, {g.id for g in groups})
    if view is not None and view.group is not None:
        st.session_state[f"{page}-group"] = view.group
    group = group_picker(groups, f"{page}-group", default, help)
    if group is not None:
        write_url(page, links.View(group=group.id))
    return group


def rename_group_button(group: GroupRecord, key: str, read_only: str | None) -> None:
    """A "Rename" popover for ``group``: its name is what every picker shows and searches."""
    with st.popover(
        "Rename", icon=":material/edit:", disabled=read_only is not None, help=read_only
    ):
        name = st.text_input("Group name", value=group.name, max_chars=80, key=f"{key}-name")
        if st.button("Save name", key=f"{key}-save", type="primary"):
            try:
                get_store().rename_group(group.id, name)
            except (ValueError, StoreError) as exc:  # an empty name, a full disk: one line
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state.pop(f"{key}-name", None)
                st.rerun()


def view_from_url(page: str, groups: set[str]) -> links.View | None:
    """The view the URL asks for (``bn_core.views.links``) when it is news to this session:
    the session's first run of ``page`` (a reload, a shared link: each a new session) or a
    URL this page never wrote (a link from another page, ``st.page_link(query_params=...)``);
    None otherwise, and when the URL is plain on a later visit (the menu leads back here: the
    widgets keep what they had). Every URL this page wrote counts as known, not only the
    last: a rerun cut short by the next click may start before the browser shows the newest
    one, and taking the older URL for a link would undo the click. What the URL holds that
    cannot be used is said in one line."""
    params = st.query_params.to_dict()
    written = st.session_state.get(f"url-{page}")
    if written is not None and (not params or params in written):
        return None
    view, note = links.parse(params, groups)
    if note:
        st.warning(note, icon=":material/link_off:")
    return view


def write_url(page: str, view: links.View) -> None:
    """Put ``view`` in the page's URL (replacing its query string), so reloading or sharing
    the link shows the same thing; ``view_from_url`` remembers it as this session's own."""
    params = links.encode(view)
    written = st.session_state.setdefault(f"url-{page}", [])
    if params not in written:
        written.append(params)
        del written[:-URLS_KEPT]
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def quick_start_button(
    preset: str, key: str, group_id: str | None = None, backend: str = "local"
) -> None:
    """The empty-page way forward: a caption and a one-click button that queues the quick
    version of ``preset`` on an available dataset (disabled, with the reason, when no dataset
    is) to execute on ``backend``, then opens the Runs page. Stops the page script."""
    start = train_form.quick_start(preset, st.session_state)
    st.caption(start.caption)
    problem = read_only_reason(get_runner().store) or start.problem
    if st.button(
        start.label,
        key=key,
        type="primary",
        icon=":material/rocket_launch:",
        disabled=problem is not None,
        help=problem,
    ):
        try:
            get_runner().submit(start.configs, group_id=group_id, backend=backend)
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
