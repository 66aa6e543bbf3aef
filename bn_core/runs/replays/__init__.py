"""The window-replay room: replay files (``files``: format, atomic write, validated read,
progress and log) and the replay job (``job``: ``python -m bn_core.runs.replays.job RUN_ID``,
TensorFlow in its own process). The replay queue itself is a table of the store
(``bn_core.runs.store.replay_queue``). This module is the room's facade: code outside
``bn_core.runs`` imports from here (the TF-free file half), never from the modules above.
"""

from bn_core.runs.replays.files import (
    REPLAYABLE_STATUSES,
    ROW_KEYS,
    ReplayFileError,
    load_replay,
    read_progress,
    replay_path,
    replay_problem,
    replay_progress_path,
)

__all__ = [
    "run_job",
    "REPLAYABLE_STATUSES",
    "ROW_KEYS",
    "ReplayFileError",
    "load_replay",
    "read_progress",
    "replay_path",
    "replay_problem",
    "replay_progress_path",
]


def run_job(argv: list[str]) -> int:
    """``python -m bn_core.runs.replays.job ARGV`` in this process (``bn-lab replay``); the
    job imports TensorFlow only once a replay really runs."""
    from bn_core.runs.replays import job

    return job.main(argv)
