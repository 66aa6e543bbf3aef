"""Pickers of runs and groups, and a page's view in its URL (imported as ``pages._pickers``):
widgets that keep their choice across reruns, renames and reloads."""

from __future__ import annotations

from collections.abc import Collection

import streamlit as st

from bn_core.runs.store import GroupRecord, RunRecord, StoreError
from bn_core.views import links
from bn_core.views.runs import run_label
from pages import _runner

URLS_KEPT = 200  # query strings a page remembers writing in one session (view_from_url)


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
    (``?group=…``): a link or a reload opens the same group; any other key is named."""
    view = view_from_url(page, {g.id for g in groups}, keys=("group",))
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
                _runner.get_store().rename_group(group.id, name)
            except (ValueError, StoreError) as exc:  # an empty name, a full disk: one line
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state.pop(f"{key}-name", None)
                st.rerun()


def view_from_url(
    page: str, groups: set[str], keys: Collection[str] = links.KEYS
) -> links.View | None:
    """The view the URL asks for (``bn_core.views.links``, reading only ``keys``) when it is
    news to this session: the session's first run of ``page`` (a reload, a shared link: each a
    new session) or a URL this page never wrote (a link from another page,
    ``st.page_link(query_params=...)``); None otherwise, and when the URL is plain on a later
    visit (the menu leads back here: the widgets keep what they had). Every URL this page
    wrote counts as known, not only the last: a rerun cut short by the next click may start
    before the browser shows the newest one, and taking the older URL for a link would undo
    the click. What the URL holds that cannot be used is said in one line, here (a slot that
    ``unusable_runs`` can add to)."""
    params = st.query_params.to_dict()
    written = st.session_state.get(f"url-{page}")
    # The note's slot is made on every run, used or not: the widgets below keep their place
    # in the page (an element that moves is drawn twice until its rerun ends).
    slot = st.empty()
    if written is not None and (not params or params in written):
        st.session_state[f"url-note-{page}"] = (slot, [])
        return None
    view, ignored = links.read(params, groups, keys)
    st.session_state[f"url-note-{page}"] = (slot, ignored)
    _say(page)
    return view


def unusable_url(page: str) -> None:
    """On a page that has nothing to show yet (no runs, no group that fits): everything its
    URL holds is named as unused, in the same one line."""
    view_from_url(page, set(), keys=())


def unusable_runs(page: str, view: links.View | None, usable: Collection[int]) -> None:
    """Adds the link's runs that are not in ``usable`` (deleted, never existed, in another
    group, not on the table's page) to the line ``view_from_url`` drew this run."""
    missing = [i for i in view.runs if i not in usable] if view is not None else []
    if missing and f"url-note-{page}" in st.session_state:
        st.session_state[f"url-note-{page}"][1].append(
            links.item("runs", ",".join(str(i) for i in missing))
        )
        _say(page)


def _say(page: str) -> None:
    """Draws (again) the note in its slot: ``view_from_url`` sets both, this script run."""
    slot, ignored = st.session_state[f"url-note-{page}"]
    text = links.note([_markdown_text(i) for i in ignored])
    if text:
        slot.warning(text, icon=":material/link_off:")


def _markdown_text(text: str) -> str:
    """``text`` shown as it is by st.warning's Markdown: no emphasis, link, LaTeX ($), colour
    directive or HTML made of a link's value (CommonMark's backslash escapes)."""
    return "".join("\\" + c if c in _MARKDOWN else c for c in text)


_MARKDOWN = set("\\`*_{}[]<>#+!|~$:&^")


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
