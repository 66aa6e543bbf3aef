"""Which job runners are alive on a store: the ``runners`` table.

A runner (the dashboard's, ``bn-lab runner``, ``submit --wait``) registers itself when it
starts, refreshes its heartbeat every scheduling pass and removes itself when it stops. A
runner killed without stopping leaves its row behind; ``live_runners`` counts only rows whose
heartbeat is recent and whose process is not known to be dead. ``submit`` uses it to say
whether a queued run will start by itself. ``RunnerPresence`` is one part of ``RunStore``.
"""

from __future__ import annotations

import time
from typing import Any

from bn_core.runs.store import owner

LIVE_WITHIN = 15.0  # seconds: a runner that has not ticked for longer is taken for gone


class RunnerPresence:
    """Rows of ``runners``: id (the runner's owner string), kind, started_at, heartbeat."""

    connect: Any  # RunStore.connect

    def register_runner(self, runner_id: str, kind: str) -> None:
        now = time.time()
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO runners (id, kind, started_at, heartbeat)"
                " VALUES (?, ?, ?, ?)",
                (runner_id, kind, now, now),
            )

    def runner_heartbeat(self, runner_id: str) -> None:
        with self.connect() as db:
            db.execute("UPDATE runners SET heartbeat = ? WHERE id = ?", (time.time(), runner_id))

    def unregister_runner(self, runner_id: str) -> None:
        with self.connect() as db:
            db.execute("DELETE FROM runners WHERE id = ?", (runner_id,))

    def live_runners(self, within: float = LIVE_WITHIN) -> list[dict[str, Any]]:
        """Runners that ticked in the last ``within`` seconds and are not known to be dead."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT * FROM runners WHERE heartbeat >= ? ORDER BY started_at",
                (time.time() - within,),
            ).fetchall()
        return [dict(row) for row in rows if owner.alive(row["id"]) is not False]
