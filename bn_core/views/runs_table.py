"""The Runs page's table and selection as data: the sort choices, paging, the queue line and
the note under a selected run. Streamlit-free (``pages/runs.py`` and its helpers draw them);
the table's rows are ``views.runs.table_frame``'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bn_core.runs.store import RunRecord
from bn_core.views.runs import ERROR_STATUSES
from bn_core.vocabulary import RunStatus

MAX_LIVE = 4  # running runs drawn with their own live charts (the rest: a progress line)
MAX_OVERLAID = 60  # runs in one overlay chart (a group of a large sweep fits)
MAX_QUEUED_SHOWN = 12  # queued run ids named on the queue line
PAGE_SIZES = (25, 50, 100, 200)
# What the sort box offers: (store sort, descending) per label.
SORTS = {
    "newest first": ("id", True),
    "oldest first": ("id", False),
    "best test accuracy": ("accuracy", True),
    "name": ("name", False),
    "group": ("group", False),
    "variant": ("variant", False),
    "status": ("status", False),
    "node": ("node", False),
}


@dataclass(frozen=True)
class Paging:
    """Page ``page`` of ``pages`` (1-based, clamped), of ``size`` rows over ``total``."""

    page: int
    pages: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def caption(self, shown: int) -> str:
        """The line under the table, for ``shown`` rows on this page."""
        if shown == 0:
            return f"No runs match these filters · page {self.page} of {self.pages:,}."
        first = self.offset + 1
        return (
            f"Runs {first:,}–{first + shown - 1:,} of {self.total:,} · page {self.page} of "
            f"{self.pages:,}. Select rows to see their curves and actions."
        )


def paging(total: int, size: int, page: int) -> Paging:
    """``page`` of ``total`` rows ``size`` at a time; a page past the last (fewer rows than
    before) becomes the last, one before the first the first. There is always one page."""
    pages = max(1, -(-total // size))
    return Paging(page=min(max(1, int(page)), pages), pages=pages, size=size, total=total)


def table_key(query: dict[str, Any], sort: str, page: int, size: int) -> str:
    """The table's widget key: a new query (filter, sort, page) is a new table, so its
    selection starts empty rather than pointing at the rows that happen to sit where the
    old ones were."""
    return "runs-table-" + str(abs(hash((tuple(query.items()), sort, page, size))))


def queued_line(queued: Sequence[RunRecord]) -> str:
    """'queued: #4, #5, #6', the first ``MAX_QUEUED_SHOWN`` ids then '…'."""
    shown = ", ".join(f"#{r.id}" for r in queued[:MAX_QUEUED_SHOWN])
    return f"queued: {shown}" + (" …" if len(queued) > MAX_QUEUED_SHOWN else "")


def ended_note(run: RunRecord) -> tuple[str, str] | None:
    """How a selected run ended, as (kind, text): ``error`` (failed, diverged, interrupted:
    its error), ``info`` (cancelled: why), ``caption`` (completed: its test numbers), or
    None (still active, or nothing to say)."""
    if run.status in ERROR_STATUSES:
        return "error", f"Run {run.status}: {run.error or 'no message recorded'}"
    if run.status == RunStatus.CANCELLED:
        note = run.error or RunStatus.CANCELLED.value
        return "info", f"{note[0].upper()}{note[1:]}."
    if run.status == RunStatus.COMPLETED and run.test_accuracy is not None:
        loss = "" if run.test_loss is None else f" · test loss {run.test_loss:.4f}"
        return "caption", f"Test accuracy **{run.test_accuracy:.4f}**{loss}"
    return None


def split_tags(text: str | None) -> list[str]:
    """The Tags field's text as tags: split at commas, trimmed, empties dropped."""
    return [tag for tag in (part.strip() for part in (text or "").split(",")) if tag]
