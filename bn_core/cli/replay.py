"""``replay RUN_ID``: window replay of a finished run of the store at ``$BN_LAB_HOME``: BN's
inference statistics re-estimated from its last W recorded batches, without retraining."""

from __future__ import annotations

import argparse

from bn_core.cli.common import PROG, quiet_native_output
from bn_core.cli.values import run_id_arg
from bn_core.config import ConfigError


def register(commands, formatter) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-estimate BN's inference statistics of a finished run (window replay)",
        formatter_class=formatter,
    )
    replay.add_argument(
        "run_id", type=run_id_arg, metavar="RUN_ID", help="the run's id (see `runs`)"
    )
    replay.set_defaults(handler=_replay)


@quiet_native_output
def _replay(args: argparse.Namespace) -> int:
    from bn_core.runs.replays import run_job
    from bn_core.runs.store import RunStore

    store = RunStore()
    if store.get(args.run_id) is None:  # a bad flag value, as for resume: exit 2, one line
        raise ConfigError(
            f"there is no run #{args.run_id} in {store.path} (or it cannot be read: "
            f"`{PROG} store check`); `{PROG} runs` lists them"
        )
    return run_job([str(args.run_id)])
