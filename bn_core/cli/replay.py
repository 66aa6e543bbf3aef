"""``replay RUN_ID``: window replay of a finished run of the store at ``$BN_LAB_HOME``: BN's
inference statistics re-estimated from its last W recorded batches, without retraining."""

from __future__ import annotations

import argparse

from bn_core.cli.common import quiet_native_output


def register(commands, formatter) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-estimate BN's inference statistics of a finished run (window replay)",
        formatter_class=formatter,
    )
    replay.add_argument("run_id", type=int, metavar="RUN_ID", help="the run's id (see `runs`)")
    replay.set_defaults(handler=_replay)


@quiet_native_output
def _replay(args: argparse.Namespace) -> int:
    from bn_core.runs.replays import run_job

    return run_job([str(args.run_id)])
