"""The parser of every command, and ``main``: parse, run the command's handler, map errors to
exit codes (2: a bad flag or value, one line; 1: a dataset missing or corrupt). Every
``BN_LAB_*`` setting is checked before any command runs (``settings.check_all``): a bad one is
one line and exit 2, nothing queued or started (``bn-lab settings`` alone still runs)."""

from __future__ import annotations

import sys

from bn_core.cli import datasets, queue, replay, runs, settings, store, study, train
from bn_core.cli.common import PROG, ClusterUnavailable, DefaultsFormatter, Parser
from bn_core.config import ConfigError
from bn_core.data import DatasetError
from bn_core.runs.store import StoreError
from bn_core.settings import SettingError, check_all

COMMAND_GROUPS = (train, study, runs, queue, store, datasets, replay, settings)


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="BN Lab: train LeNet-5 with and without Batch Normalization.",
        epilog="Exit codes: 0 completed; 1 dataset missing/corrupt or run failed; 2 bad flags "
        "or values (also a bad BN_LAB_* variable: see `settings`; or no Ray cluster answers "
        "for --backend ray); 3 diverged; 4 the run "
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
        if getattr(args, "check_settings", True):
            check_all()
        return args.handler(args)
    except SettingError as exc:  # the environment, not a flag: one line, without the usage hint
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
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
