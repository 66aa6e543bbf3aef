"""The run store room: one SQLite file of runs, their metrics and their groups.

``RunStore`` (``run_store``) is the one class to construct; it composes ``lifecycle`` (status
changes), ``catalog`` (names, tags, groups, pages of runs; rules in ``names``), ``cleanup``,
``metric_writes``/``metric_reads``, ``presence`` (live runners) and ``replay_queue``.
``schema`` opens the file, ``migrations`` versions it, ``errors`` turns file trouble into
one-line ``StoreError``s, ``health`` checks it, ``records`` reads rows (setting damaged ones
aside), ``owner`` says who holds a run (host/pid/start time) and ``artifacts`` writes a run's
files atomically. This module is the room's facade: code outside ``bn_core.runs`` imports
from here, never from the modules above. Run statuses, their groups and stages are
``bn_core.vocabulary``'s: import them from there.
"""

from bn_core.runs.store import artifacts, owner
from bn_core.runs.store.catalog import SORTS, GroupRecord
from bn_core.runs.store.errors import StoreError, describe, kind_of, store_error
from bn_core.runs.store.health import check, ensure_sound
from bn_core.runs.store.migrations import LATEST, backup
from bn_core.runs.store.names import MAX_NAME, MAX_TAGS, clean_name, clean_tags
from bn_core.runs.store.records import RunRecord, damage_note, default_home
from bn_core.runs.store.run_store import RunStore
from bn_core.runs.store.schema import connect

__all__ = [
    "LATEST",
    "MAX_NAME",
    "MAX_TAGS",
    "SORTS",
    "GroupRecord",
    "RunRecord",
    "RunStore",
    "StoreError",
    "artifacts",
    "backup",
    "check",
    "clean_name",
    "clean_tags",
    "connect",
    "damage_note",
    "default_home",
    "describe",
    "ensure_sound",
    "kind_of",
    "owner",
    "store_error",
]
