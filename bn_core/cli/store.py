"""``store check`` (is the run store sound: SQLite's integrity check of its pages, and the runs
whose rows cannot be read) and ``store backup PATH`` (a consistent copy, even while runs
write to the store). Both only read the store: they work on a read-only or newer one, and
never migrate it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bn_core.config import ConfigError

ADVICE_PAGES = (
    "copy what can still be read with `sqlite3 {path} .recover | sqlite3 {path}.recovered`, "
    "then move the store aside (mv {path} {path}.damaged) and the recovered file in its place"
)
ADVICE_ROWS = (
    "the dashboard and `bn-lab runs` skip them; delete them with "
    "`sqlite3 {path} 'DELETE FROM runs WHERE id IN ({ids})'`"
)


def register(commands, formatter) -> None:
    store = commands.add_parser(
        "store",
        help="check or back up the run store ($BN_LAB_HOME/runs.sqlite)",
        formatter_class=formatter,
    )
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="check the run store's pages and runs; exit 0 when sound, 4 when not",
        formatter_class=formatter,
        description="Runs SQLite's integrity_check on the store (read-only) and reads every "
        "run, then prints one line: what is wrong and what to do, or that it is sound.",
    )
    check.add_argument(
        "--quick",
        action="store_true",
        help="SQLite's quick_check instead (does not match indexes to their tables; ~4x faster)",
    )
    check.set_defaults(handler=lambda args: cmd_check(quick=args.quick))
    backup = actions.add_parser(
        "backup",
        help="copy the run store to PATH (consistent even while runs train)",
        formatter_class=formatter,
        description="Copies the store with SQLite's online backup API: the copy is the store "
        "as it was at one moment, even while workers write to it. The copy is one file.",
    )
    backup.add_argument(
        "path",
        metavar="PATH",
        help="the file to write (a new one), in a folder that exists, outside $BN_LAB_HOME",
    )
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    backup.set_defaults(handler=lambda args: cmd_backup(Path(args.path), force=args.force))


def cmd_check(quick: bool = False) -> int:
    from bn_core.runs.store import LATEST, StoreError, check, damage_note, default_home

    path = default_home() / "runs.sqlite"
    if not path.is_file():
        print(f"store check: no run store at {path} yet: nothing to check")
        return 0
    try:
        health = check(path, full=not quick)
    except StoreError as exc:
        if exc.kind != "damaged":
            raise
        reason = exc.__cause__ or exc
        if "not a database" in str(reason):
            print(
                f"store check: {path} is not a SQLite database ({reason}): move it aside "
                f"(mv {path} {path}.damaged); a new store is made on the next start"
            )
        else:  # SQLite cannot even read its table list: a truncated file, say
            print(
                f"store check: {path} cannot be read ({reason}): {ADVICE_PAGES.format(path=path)}"
            )
        return 4
    problems, advice = [], []
    if health.file:
        shown = "; ".join(" ".join(line.split()) for line in health.file[:3])
        more = f" (and {len(health.file) - 3} more)" if len(health.file) > 3 else ""
        problems.append(f"SQLite found damaged pages: {shown}{more}")
        advice.append(ADVICE_PAGES.format(path=path))
    if health.damaged:
        problems += [damage_note(run_id, reason) for run_id, reason in health.damaged]
        ids = ", ".join(str(run_id) for run_id, _ in health.damaged)
        advice.append(ADVICE_ROWS.format(path=path, ids=ids))
    if health.version > LATEST:
        problems.append(f"schema version {health.version}: written by a newer BN Lab")
        advice.append(f"upgrade BN Lab (this one reads versions up to {LATEST})")
    if not problems:
        print(
            f"store check: {path} is sound: {health.runs} run(s), schema version "
            f"{health.version}, {'quick_check' if quick else 'integrity_check'} ok"
        )
        return 0
    print(
        f"store check: {path}: {len(problems)} problem(s): {'; '.join(problems)}: "
        f"{'; '.join(advice)}"
    )
    return 4


def cmd_backup(target: Path, force: bool = False) -> int:
    from bn_core.runs.store import backup, connect, default_home, kind_of, store_error

    source = default_home() / "runs.sqlite"
    if not source.is_file():
        raise ConfigError(
            f"there is no run store at {source} to back up; set BN_LAB_HOME to the folder "
            "that holds runs.sqlite"
        )
    if not str(target).strip() or "\0" in str(target):
        raise ConfigError(f"PATH must name a file. Received: {str(target)!r}")
    if target.is_dir():
        raise ConfigError(f"PATH {target} is a folder; give the copy a file name inside it")
    owned = _store_file(target, source)
    if owned is not None:
        raise ConfigError(f"PATH {target} {owned}; choose a file outside it")
    if target.parent.exists() and not target.parent.is_dir():
        raise ConfigError(f"PATH {target}: {target.parent} is not a folder; choose another")
    if not target.parent.is_dir():
        raise ConfigError(
            f"PATH {target}: the folder {target.parent} does not exist; create it first "
            f"(mkdir -p {target.parent}) or choose another"
        )
    if target.exists() and not force:
        raise ConfigError(f"PATH {target} exists; pass --force to overwrite it, or choose another")
    with connect(source, read_only=True) as db:
        try:
            backup(db, target)
        except (sqlite3.Error, OSError) as exc:
            if kind_of(exc) == "damaged":  # the store's pages, not the copy's
                raise store_error(exc, source) from exc
            detail = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"PATH {target} cannot be written ({detail}); choose a folder you can write "
                f"to, with {source.stat().st_size / 1e6:.1f} MB free"
            ) from None
    with connect(target, read_only=True) as copy:
        runs = copy.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    size = target.stat().st_size / 1e6
    print(f"store backup: {runs} run(s) copied from {source} to {target} ({size:.1f} MB)")
    return 0


def _store_file(target: Path, source: Path) -> str | None:
    """Why ``target`` is the store's own, or None: it is in the store's folder ($BN_LAB_HOME,
    links followed), where everything is the store's (the database and its -wal, -shm and
    -journal files, the backups the migrations keep, models, checkpoints, replays, logs), or
    it is another name (a hard link) of the database or one of its side files."""
    home = source.parent.resolve()
    if target.resolve().is_relative_to(home):
        return (
            f"is inside the run store's folder {home}, which holds the store's own files "
            "(runs.sqlite and its -wal, -shm and -journal files, backups/, models/, "
            "checkpoints/, replays/, logs/)"
        )
    for side in (source.with_name(source.name + end) for end in ("", "-wal", "-shm", "-journal")):
        try:
            if target.exists() and side.exists() and side.samefile(target):
                return f"is another name (a hard link) of the run store's file {side}"
        except OSError:
            continue
    return None
