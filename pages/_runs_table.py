"""The Runs page's table (imported as ``pages._runs_table``): its filters, the rows of one
page with their selection, and the pager under them. The store filters, sorts and pages in
SQL (``RunStore.runs_page``); the numbers are ``views.runs_table``'s."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from bn_core.runs.store import GroupRecord, RunRecord, RunStore
from bn_core.views import runs_table as table
from bn_core.vocabulary import STATUSES
from pages._pickers import keep_choice
from pages._ui import COMPARE_PAGE

COLUMNS = {
    "run": st.column_config.NumberColumn("run", format="#%d", width="small"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
    "test accuracy": st.column_config.NumberColumn("test accuracy", format="%.4f"),
    "img/s": st.column_config.NumberColumn(
        "img/s", format="%.0f", help="training images per second, recorded at the run's end"
    ),
    "seed": st.column_config.NumberColumn("seed", width="small"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
}


def filters(groups: list[GroupRecord]) -> tuple[dict[str, Any], str, int]:
    """The row of filters over the table: (the store query, the sort label, rows per page)."""
    by_id = {g.id: g for g in groups}
    search_col, status_col, group_col, sort_col, size_col = st.columns(
        [3, 2, 3, 2, 1], vertical_alignment="bottom"
    )
    search = search_col.text_input(
        "Search",
        key="runs-search",
        placeholder="#12, a name, variant, tag, node…",
        help="'#12' (or 12) finds run 12 only; words find runs whose name, variant, group, tags "
        "or node contain every one of them",
    )
    statuses = status_col.multiselect(
        "Status", [s.value for s in STATUSES], key="runs-status", placeholder="any"
    )
    keep_choice("runs-group", {"": "all groups", **{g.id: g.label for g in groups}}, "")
    group_id = group_col.selectbox(
        "Group",
        ["", *by_id],
        format_func=lambda g: by_id[g].label if g else "all groups",
        key="runs-group",
        help="type to find a group by name or date",
    )
    sort = sort_col.selectbox("Sort", list(table.SORTS), key="runs-sort")
    size = size_col.selectbox("Rows", table.PAGE_SIZES, index=1, key="runs-size")
    query = {
        "search": search.strip() or None,
        "statuses": tuple(statuses) or None,
        "group_id": group_id or None,
    }
    return query, sort, size


def count(store: RunStore, query: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(the query, how many runs it finds); a search the store cannot take is said, and
    dropped: everything else of the query still counts."""
    try:
        return query, store.runs_page(**query, limit=1)[1]
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        query = {**query, "search": None}
        return query, store.runs_page(**query, limit=1)[1]


def rows(frame: pd.DataFrame, records: list[RunRecord], wanted: set[int], key: str) -> list[int]:
    """The table of one page (``views.runs.table_frame``), ``wanted`` runs selected at
    first; returns the ids of the selected rows."""
    selected = [i for i, r in enumerate(records) if r.id in wanted]
    event = st.dataframe(
        frame,
        key=key,
        selection_default={"selection": {"rows": selected}} if wanted else None,
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        column_config=COLUMNS,
    )
    return [int(frame.iloc[i]["run"]) for i in event.selection.rows if i < len(frame)]


def pager(paging: table.Paging, shown: int, group_id: str | None) -> None:
    """Under the table: the page number, which rows these are, and (with a group filter) a
    link to compare the group."""
    number, counts, compare_link = st.columns([1, 3, 2], vertical_alignment="center")
    number.number_input("Page", 1, paging.pages, key="runs-page", label_visibility="collapsed")
    counts.caption(paging.caption(shown))
    if group_id:
        compare_link.page_link(
            COMPARE_PAGE,
            label="Compare this group",
            icon=":material/compare_arrows:",
            query_params={"group": group_id},
        )
