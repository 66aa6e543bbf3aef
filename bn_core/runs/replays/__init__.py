"""The window-replay room: replay files (``files``: format, atomic write, validated read,
progress and log) and the replay job (``job``: ``python -m bn_core.runs.replays.job RUN_ID``,
TensorFlow in its own process). The replay queue itself is a table of the store
(``bn_core.runs.store.replay_queue``). This module is the room's facade: code outside
``bn_core.runs`` imports from here (the TF-free file half), never from the modules above.
Which runs can be replayed is ``bn_core.vocabulary.REPLAYABLE``.
"""

from bn_core.runs.replays.files import (
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
