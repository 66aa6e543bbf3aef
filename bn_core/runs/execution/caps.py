"""How much one submission may queue, and how many runs the queue may hold.

One click on the Sweep page can ask for thousands of runs (9 learning rates x 12 batch sizes x
every variant x 10 seeds); each is a row in the store, a worker process in turn, and hours of
compute. Two caps keep a slip of the mouse from filling a machine for a week:

- ``max_runs_per_submit()``: runs one ``JobRunner.submit`` may queue, default 200
  (``$BN_LAB_MAX_RUNS_PER_SUBMIT``); the largest preset grid (batch-size: 36 runs) fits 5 times.
- ``max_queued()``: runs waiting in the queue at once, default 1,000 (``$BN_LAB_MAX_QUEUED``).

Both are read with ``bn_core.settings`` at each call: a variable that is not a whole number
from 1 to 100,000 (``"0"``, ``"-5"``, ``"lots"``) is a ``SettingError`` (one line naming it),
which the CLI and the dashboard report before anything starts (``settings.check_all``). A
typo neither lifts a cap nor silently falls back to the default; empty is the default.

The queue cap is checked against a count read just before the runs are written, so two
submissions racing each other may overshoot it by one submission: it is a guard against
accidents, not a quota.
"""

from __future__ import annotations

from bn_core import settings
from bn_core.config import ConfigError

SUBMIT_ENV = "BN_LAB_MAX_RUNS_PER_SUBMIT"
QUEUED_ENV = "BN_LAB_MAX_QUEUED"
DEFAULT_MAX_RUNS_PER_SUBMIT = settings.BY_NAME[SUBMIT_ENV].default  # 200
DEFAULT_MAX_QUEUED = settings.BY_NAME[QUEUED_ENV].default  # 1000


class CapError(ConfigError):
    """A submission over a cap. ``str(e)`` is one line: the limit, the variable that raises
    it, and how to split the work."""


def max_runs_per_submit() -> int:
    """Runs one submission may queue: ``$BN_LAB_MAX_RUNS_PER_SUBMIT``, default 200
    (SettingError for a bad value)."""
    return settings.value(SUBMIT_ENV)


def max_queued() -> int:
    """Runs the queue may hold at once: ``$BN_LAB_MAX_QUEUED``, default 1,000 (SettingError
    for a bad value)."""
    return settings.value(QUEUED_ENV)


def submit_problem(n_new: int, n_queued: int) -> str | None:
    """Why queueing ``n_new`` runs on top of ``n_queued`` queued ones is refused (one line),
    or None when both caps allow it."""
    per_submit, queue = max_runs_per_submit(), max_queued()
    if n_new > per_submit:
        return (
            f"{n_new:,} runs in one submission are more than the limit of {per_submit:,} "
            f"({SUBMIT_ENV}): queue them in parts of at most {per_submit:,} (fewer seeds, "
            f"variants or swept values each), or raise {SUBMIT_ENV}"
        )
    if n_queued + n_new > queue:
        room = max(queue - n_queued, 0)
        return (
            f"{n_new:,} more runs would put {n_queued + n_new:,} in the queue, over its limit "
            f"of {queue:,} ({QUEUED_ENV}): queue at most {room:,} now and the rest as queued "
            f"runs start, cancel queued runs, or raise {QUEUED_ENV}"
        )
    return None


def submit_note(n_new: int, n_queued: int) -> str:
    """What a click would queue against both caps, for a caption beside the button."""
    return (
        f"Queues {n_new:,} run{'s' * (n_new != 1)} (at most {max_runs_per_submit():,} per "
        f"submission); {n_queued:,} of at most {max_queued():,} runs are queued now."
    )


def check_submit(n_new: int, n_queued: int) -> None:
    """Raise ``CapError`` when ``submit_problem`` finds one."""
    problem = submit_problem(n_new, n_queued)
    if problem is not None:
        raise CapError(problem)
