"""Managing the run store from the command line: ``runs delete``, ``runs prune``, ``runs
rename``, ``runs tag`` (actions of ``runs``, whose plain form lists), and ``groups`` (list
them, newest first) with ``groups rename``.

Deleting and pruning print what goes (``--dry-run``: what would go) and never prompt, so
scripts can call them; active runs are never deleted (cancel them first). Bad input is one
line and exit 2, like every command's; a store that cannot be written is exit 4.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys

from bn_core.cli.common import PROG
from bn_core.cli.values import MAX_RUN_ID, run_id_arg
from bn_core.config import ConfigError, parse_number
from bn_core.vocabulary import FINISHED

SHOWN_IDS = 20  # run ids a deletion line lists before "and N more"


def register_groups(commands, formatter) -> None:
    groups = commands.add_parser(
        "groups",
        help="list the groups of runs, newest first; rename one",
        formatter_class=formatter,
    )
    groups.add_argument("--json", action="store_true", help="print one JSON list")
    groups.set_defaults(handler=lambda args: cmd_groups(args.json))
    rename = groups.add_subparsers(dest="groups_action", metavar="ACTION").add_parser(
        "rename", help="give a group a name", formatter_class=formatter
    )
    rename.add_argument("group_id", metavar="GROUP_ID", help="the group's id (`bn-lab groups`)")
    rename.add_argument("name", metavar="NAME", help="its new name, 1 to 80 characters")
    rename.set_defaults(handler=lambda args: cmd_rename_group(args.group_id, args.name))


def register_run_actions(actions, formatter) -> None:
    """``runs delete``, ``prune``, ``rename``, ``tag`` (plain ``runs`` still lists)."""
    delete = actions.add_parser(
        "delete",
        help="delete finished runs with their metrics and files",
        formatter_class=formatter,
        description="Deletes the finished runs given (and those of --group); active runs are "
        "refused, with the reason. Exit 2 when nothing could be deleted.",
    )
    delete.add_argument("ids", nargs="*", type=run_id_arg, metavar="ID", help="run ids (12 or #12)")
    delete.add_argument("--group", metavar="GROUP_ID", help="also every finished run of a group")
    delete.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    delete.set_defaults(handler=cmd_delete)

    prune = actions.add_parser(
        "prune",
        help="delete old finished runs: outside the newest groups and/or older than some days",
        formatter_class=formatter,
        description="Deletes the finished runs outside the N newest groups (--keep-groups) "
        "and/or created more than DAYS ago (--older-than; with both, a run must be both). "
        "Active runs are never pruned.",
    )
    prune.add_argument(
        "--keep-groups", type=_count, metavar="N", help="keep the runs of the N newest groups"
    )
    prune.add_argument(
        "--older-than", type=_days, metavar="DAYS", help="prune runs created over DAYS days ago"
    )
    prune.add_argument(
        "--status",
        nargs="+",
        choices=[status.value for status in FINISHED],  # plain strings: argparse shows their repr
        default=[status.value for status in FINISHED],
        metavar="S",
        help=f"prune only runs with these statuses, among {', '.join(FINISHED)}",
    )
    prune.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    prune.set_defaults(handler=lambda args: cmd_prune(args, prune))

    rename = actions.add_parser("rename", help="name a run", formatter_class=formatter)
    rename.add_argument("id", type=run_id_arg, metavar="ID", help="the run (12 or #12)")
    rename.add_argument("name", metavar="NAME", help='its name, 1 to 80 characters ("": none)')
    rename.set_defaults(handler=lambda args: cmd_rename_run(args.id, args.name))

    tag = actions.add_parser("tag", help="add tags to a run", formatter_class=formatter)
    tag.add_argument("id", type=run_id_arg, metavar="ID", help="the run (12 or #12)")
    tag.add_argument("tags", nargs="*", metavar="TAG", help="tags to add, 1 to 32 characters")
    tag.add_argument("--clear", action="store_true", help="remove its tags first")
    tag.set_defaults(handler=lambda args: cmd_tag(args.id, args.tags, args.clear, tag))


def _count(text: str) -> int:
    try:
        count = parse_number(text, int)
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_RUN_ID:  # (SQLite's integers: a larger LIMIT overflows)
        raise argparse.ArgumentTypeError(
            f"N must be a whole number >= 0 (at most {MAX_RUN_ID}), in the digits 0-9: {text!r}"
        )
    return count


def _days(text: str) -> float:
    try:
        days = parse_number(text, float)  # the digits 0-9 only: float() takes "１" and "1_0"
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and 0 < days * 86400.0 < math.inf):  # seconds, for the query
        raise argparse.ArgumentTypeError(f"DAYS must be a number above 0, like 30 or 0.5: {text!r}")
    return days


def _value_errors_are_config_errors(handler):
    """The store's ValueErrors (a bad name, no such run) as ConfigErrors: one line, exit 2."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return wrapper


# -- the commands ------------------------------------------------------------------------------


def quoted(text: str) -> str:
    """A name as JSON writes it: in quotes, its own quotes escaped, letters kept."""
    return json.dumps(text, ensure_ascii=False)


def _ids(ids: list[int]) -> str:
    """The ids as "#1, #2, #3" (the first ``SHOWN_IDS``, then how many more)."""
    shown = ", ".join(f"#{i}" for i in ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _deletion(store, ids: list[int], dry_run: bool) -> None:
    """Delete ``ids`` (or, ``dry_run``, say they would go) and print one line about it."""
    if dry_run:
        print(f"would delete {len(ids)} run{'s' * (len(ids) != 1)} ({_ids(ids)})")
        return
    deleted = store.delete_runs(ids)
    print(f"deleted {len(deleted)} run{'s' * (len(deleted) != 1)} ({_ids(deleted)})")


@_value_errors_are_config_errors
def cmd_delete(args: argparse.Namespace) -> int:
    from bn_core.runs.store import RunStore

    if not args.ids and args.group is None:
        raise ConfigError("runs delete needs run ids or --group GROUP_ID")
    store = RunStore()
    runs = {run_id: store.get(run_id) for run_id in args.ids}
    if args.group is not None:
        in_group = store.list_runs(group_id=args.group)
        if not in_group:
            raise ConfigError(f"there is no group {args.group!r}; `{PROG} groups` lists them")
        runs.update((run.id, run) for run in in_group)
    chosen, refused = [], []
    for run_id, run in sorted(runs.items()):
        if run is None:
            refused.append(
                f"run #{run_id} does not exist (or cannot be read: `{PROG} store check`)"
            )
        elif run.active:
            refused.append(f"run #{run_id} is {run.status}: cancel it first")
        else:
            chosen.append(run_id)
    for reason in refused:
        print(f"{PROG} runs delete: {reason}; not deleted", file=sys.stderr)
    if not chosen:
        return 2
    _deletion(store, chosen, args.dry_run)
    return 0


@_value_errors_are_config_errors
def cmd_prune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from bn_core.runs.store import RunStore

    if args.keep_groups is None and args.older_than is None:
        parser.error("say what to prune: --keep-groups N and/or --older-than DAYS")
    store = RunStore()
    ids = store.prune_candidates(
        keep_groups=args.keep_groups,
        older_than_days=args.older_than,
        statuses=tuple(dict.fromkeys(args.status)),
    )
    if not ids:
        print("nothing to prune")
        return 0
    _deletion(store, ids, args.dry_run)
    return 0


@_value_errors_are_config_errors
def cmd_rename_run(run_id: int, name: str) -> int:
    from bn_core.runs.store import RunStore

    RunStore().rename_run(run_id, name)
    shown = name.strip()
    print(f"run #{run_id} is now named {quoted(shown)}" if shown else f"run #{run_id}: no name")
    return 0


@_value_errors_are_config_errors
def cmd_tag(run_id: int, tags: list[str], clear: bool, parser: argparse.ArgumentParser) -> int:
    from bn_core.runs.store import RunStore

    if not tags and not clear:
        parser.error("give tags to add, or --clear to remove them")
    store = RunStore()
    run = store.get(run_id)
    if run is None:
        raise ConfigError(f"there is no run #{run_id}; `{PROG} runs` lists them")
    now = store.set_tags(run_id, tags if clear else [*run.tag_list, *tags])
    print(f"run #{run_id} tags: {', '.join(now)}" if now else f"run #{run_id}: no tags")
    return 0


def cmd_groups(as_json: bool) -> int:
    from bn_core.runs.store import RunStore

    groups = RunStore().list_groups()
    if as_json:
        print(json.dumps([{**vars(g), "label": g.label} for g in groups]))
    elif not groups:
        print("no groups yet")
    else:
        print("\n".join(f"{g.id}  {g.label}" for g in groups))
    return 0


@_value_errors_are_config_errors
def cmd_rename_group(group_id: str, name: str) -> int:
    from bn_core.runs.store import RunStore

    cleaned = RunStore().rename_group(group_id, name)
    print(f"group {group_id} is now named {quoted(cleaned)}")
    return 0
