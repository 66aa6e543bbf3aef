"""The parser of every command, and ``main``: parse, run the command's handler, map errors to
exit codes (2: a bad flag or value, one line; 1: a dataset missing or corrupt)."""

from __future__ import annotations

import sys

from bn_core.cli import datasets, queue, replay, runs, store, study, train
from bn_core.cli.common import PROG, ClusterUnavailable, DefaultsFormatter, Parser
from bn_core.config import ConfigError
from bn_core.data import DatasetError
from bn_core.runs.store import StoreError

COMMAND_GROUPS = (train, study, runs, queue, store, datasets, replay)


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="BN Lab: train LeNet-5 with and without Batch Normalization.",
        epilog="Exit codes: 0 completed; 1 dataset missing/corrupt or run failed; 2 bad flags "
        "or values (or no Ray cluster answers for --backend ray); 3 diverged; 4 the run "
        "store cannot be used (disk full, read-only, damaged, "
        "newer); 130 cancelled (Ctrl-C: the first one stops cleanly, keeping "
        "what was measured). TensorFlow's own start-up messages go to "
        "$BN_LAB_HOME/logs/cli.log (default ./.bn_lab/logs/cli.log).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands, DefaultsFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:  # raised while checking flags, before anything runs
        parser.error(str(exc))
    except DatasetError as exc:
        print(f"{parser.prog}: dataset error: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 4
    except ClusterUnavailable as exc:  # --backend ray, and no cluster: nothing was queued
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
