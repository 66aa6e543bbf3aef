"""The Runs page's buttons (imported as ``pages._run_actions``): Cancel, Resume, Delete, the
Name popover. Each click is a callback that runs before the page does; what it did, or why
it could not (a full disk, a bad name, a full queue), is said once at the top of the next
run (``last_click``). ``read_only`` (``_runner.read_only_reason``) turns them all off."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from bn_core.config import ConfigError
from bn_core.runs.execution import JobRunner
from bn_core.runs.store import RunRecord, RunStore, StoreError
from bn_core.views import runs_table as table
from bn_core.vocabulary import RESUMABLE

FAILED = "runs-store-error"  # session_state keys: the last click's error, or what it did
SAID = "runs-said"


def last_click() -> None:
    """Say, once, what the last click did or why it failed."""
    if failed := st.session_state.pop(FAILED, None):
        st.error(failed, icon=":material/error:")
    if said := st.session_state.pop(SAID, None):
        st.success(said, icon=":material/check:")


def act(action: Callable, *args, done: str | None = None) -> None:
    """A click's write (cancel, delete, resume, rename, tag); ``done`` (else what ``action``
    returned, when it is text) is said after it."""
    try:
        result = action(*args)
    except (StoreError, ConfigError, ValueError) as exc:
        st.session_state[FAILED] = str(exc)
        return
    message = result if isinstance(result, str) and done is None else done
    if message:
        st.session_state[SAID] = message


def cancel_button(runner: JobRunner, run: RunRecord, key: str, read_only: str | None) -> None:
    st.button(
        "Cancel",
        key=key,
        on_click=act,
        args=(runner.cancel, run.id),
        disabled=run.cancel_requested or read_only is not None,
        help=read_only,
        icon=":material/stop_circle:",
    )


def cancel_queued_button(
    runner: JobRunner, queued: Sequence[RunRecord], read_only: str | None, container=st
) -> None:
    container.button(
        f"Cancel {len(queued)} queued",
        key="cancel-queued",
        on_click=act,
        args=(lambda: [runner.cancel(r.id) for r in queued],),
        kwargs={"done": f"Cancelled {len(queued)} queued run(s)."},
        disabled=read_only is not None,
        help=read_only,
        icon=":material/cancel_schedule_send:",
    )


def run_buttons(runner: JobRunner, run: RunRecord, read_only: str | None) -> None:
    """A selected run's actions: Cancel while it is active; else Resume (when it can) and
    Delete; and the Name popover."""
    if run.active:
        cancel_button(runner, run, f"cancel-selected-{run.id}", read_only)
    else:
        if run.status in RESUMABLE:
            st.button(
                "Resume",
                key=f"resume-{run.id}",
                on_click=act,
                args=(runner.resume, run.id),
                disabled=read_only is not None,
                help=read_only
                or "Continue from its last completed epoch (its checkpoint), in this "
                "same run; without a checkpoint it starts over.",
                icon=":material/play_arrow:",
            )
        st.button(
            "Delete",
            key=f"delete-{run.id}",
            on_click=act,
            args=(runner.store.delete, run.id),
            kwargs={"done": f"Deleted run #{run.id}."},
            disabled=read_only is not None,
            help=read_only,
            icon=":material/delete:",
        )
    with st.popover("Name", icon=":material/edit:", disabled=read_only is not None, help=read_only):
        st.text_input("Name", value=run.name or "", key=f"name-{run.id}")
        tags = ", ".join(run.tag_list)
        st.text_input("Tags", value=tags, key=f"tags-{run.id}", help="comma-separated")
        st.button(
            "Save",
            key=f"save-{run.id}",
            type="primary",
            on_click=act,
            args=(save_names, runner.store, run.id),
            kwargs={"done": f"Saved run #{run.id}'s name and tags."},
        )


def save_names(store: RunStore, run_id: int) -> None:
    """The Name popover's Save: both fields, read from their widgets (the callback runs first)."""
    store.rename_run(run_id, st.session_state.get(f"name-{run_id}") or None)
    store.set_tags(run_id, table.split_tags(st.session_state.get(f"tags-{run_id}")))


def delete_finished_button(store: RunStore, finished: list[int], read_only: str | None) -> None:
    """One button for all the finished selected runs (when there are two or more)."""
    if len(finished) < 2:
        return
    st.button(
        f"Delete the {len(finished)} finished selected runs",
        key="delete-selected",
        on_click=act,
        args=(store.delete_runs, finished),
        kwargs={"done": f"Deleted {len(finished)} runs."},
        disabled=read_only is not None,
        help=read_only,
        icon=":material/delete_sweep:",
    )
