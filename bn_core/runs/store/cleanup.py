"""Clearing runs away: deleting finished runs (one, many, a group's) and choosing what to
prune (a store of thousands of runs needs a way out besides the dashboard).

A deletion is one transaction over any number of runs (their ids travel as one JSON
parameter), so a prune of thousands is all done or not at all; metrics go with their run
(``ON DELETE CASCADE``), then each run's files. Active runs are never deleted: cancel them
first. ``RunCleanup`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bn_core.runs.store.catalog import ids_json
from bn_core.runs.store.schema import transaction
from bn_core.vocabulary import FINISHED, parse_statuses


class RunCleanup:
    """Deleting runs and choosing the ones to prune."""

    home: Path  # set by RunStore
    connect: Any  # RunStore.connect: a connection to the store, closed on exit
    model_path: Any  # RunLifecycle's paths of a run's files
    checkpoint_path: Any

    def delete_runs(self, run_ids: Iterable[int]) -> list[int]:
        """Delete the finished runs of ``run_ids`` with their metrics (one transaction) and
        their files (model, checkpoint, replay); active runs are refused (cancel them first),
        unknown ids ignored. A group left without runs loses its name too. Returns the ids
        deleted, in order."""
        marks = ",".join("?" * len(FINISHED))
        with self.connect() as db, transaction(db):
            gone = db.execute(
                "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?))"
                f" AND status IN ({marks}) RETURNING id, group_id",
                (ids_json(run_ids), *FINISHED),
            ).fetchall()
            db.execute(
                "DELETE FROM groups WHERE id IN (SELECT value FROM json_each(?))"
                " AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.group_id = groups.id)",
                (json.dumps(sorted({row[1] for row in gone})),),
            )
        deleted = sorted(int(row[0]) for row in gone)
        for run_id in deleted:
            self._remove_files(run_id)
        return deleted

    def _remove_files(self, run_id: int) -> None:
        """A deleted run's files: its model, its checkpoint, its window replay."""
        self.model_path(run_id).unlink(missing_ok=True)
        self.checkpoint_path(run_id).unlink(missing_ok=True)
        # bn_core.runs.replays.files.replay_path (not imported: that module imports the store)
        (self.home / "replays" / f"run-{int(run_id)}.json").unlink(missing_ok=True)

    def prune_candidates(
        self,
        *,
        keep_groups: int | None = None,
        older_than_days: float | None = None,
        statuses: Iterable[str] = FINISHED,
    ) -> list[int]:
        """Ids of the runs in ``statuses`` (finished ones: active runs are never pruned) that
        are outside the newest ``keep_groups`` groups and/or were created more than
        ``older_than_days`` ago (both given: both must hold). ValueError without either."""
        if keep_groups is None and older_than_days is None:
            raise ValueError(
                "say what to prune: keep_groups (N newest groups kept) and/or older_than_days"
            )
        if keep_groups is not None and (
            not isinstance(keep_groups, int) or isinstance(keep_groups, bool) or keep_groups < 0
        ):
            raise ValueError(f"keep_groups must be a whole number >= 0. Received: {keep_groups!r}")
        if older_than_days is not None and not (
            isinstance(older_than_days, (int, float)) and older_than_days > 0
        ):
            raise ValueError(f"older_than_days must be above 0. Received: {older_than_days!r}")
        statuses = parse_statuses(statuses)  # ValueError for one that is no status
        if not statuses or any(s not in FINISHED for s in statuses):
            raise ValueError(
                f"statuses must be among {', '.join(FINISHED)} (active runs are never pruned). "
                f"Received: {list(statuses)}"
            )
        sql = f"SELECT id FROM runs WHERE status IN ({','.join('?' * len(statuses))})"
        args: list = list(statuses)
        if keep_groups is not None:
            sql += (
                " AND group_id NOT IN (SELECT group_id FROM runs GROUP BY group_id"
                " ORDER BY MAX(id) DESC LIMIT ?)"
            )
            args.append(keep_groups)
        if older_than_days is not None:
            sql += " AND created_at < ?"
            args.append(time.time() - older_than_days * 86400.0)
        with self.connect() as db:
            return [int(row[0]) for row in db.execute(sql + " ORDER BY id", args)]
