"""``settings``: every ``BN_LAB_*`` environment variable (``bn_core.settings.SETTINGS``) with its
effective value, where that came from (environment or default) and its help. A bad value is
shown flagged and the exit code is 2; this is the one command that still runs with one (every
other refuses to start: ``cli.main``). ``--json`` for scripts, ``--markdown`` for the README's
table. ``BN_LAB_PASSWORD`` is only ever "set" or "unset"."""

from __future__ import annotations

import json
import sys

from bn_core import settings


def register(commands, formatter) -> None:
    parser = commands.add_parser(
        "settings",
        help="list every BN_LAB_* environment variable: value, source, help",
        formatter_class=formatter,
        description="Lists every BN_LAB_* environment variable: its effective value, whether "
        "it came from the environment or is the default, who reads it, and what it does. "
        "Python checks the ones the dashboard, the CLI and the workers read; the others are "
        "read by the scripts and docker-compose.yml, which check them. Exit 2 when one that "
        "Python reads has a bad value (it is flagged).",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON list of objects")
    output.add_argument(
        "--markdown", action="store_true", help="print the README's table (no values)"
    )
    # The only command main() lets run with a bad setting: it is how one finds it.
    parser.set_defaults(handler=cmd_settings, check_settings=False)


def as_dict(reading: settings.Reading) -> dict:
    """One setting for ``--json``: a secret's value is "set" or "unset", never the text."""
    s = reading.setting
    value = reading.value
    if s.secret or reading.problem is not None:
        value = reading.shown if s.secret else reading.text
    elif value is not None and not isinstance(value, (bool, int, float)):
        value = str(value)
    return {
        "name": s.name,
        "value": value,
        "source": reading.source,
        "default": s.shown_default,
        "read_by": list(s.where),
        "checked": s.checked,
        "secret": s.secret,
        "problem": reading.problem,
        "help": s.help,
    }


def cmd_settings(args) -> int:
    if args.markdown:
        print(settings.markdown_table(), end="")
        return 0
    readings = settings.readings()
    bad = [r.problem for r in readings if r.problem is not None]
    if args.json:
        print(json.dumps([as_dict(r) for r in readings], indent=2))
    else:
        width = max(len(r.setting.name) for r in readings)
        shown = max(len(r.shown) for r in readings)
        for r in readings:
            note = r.setting.help
            if not r.setting.checked:
                note += f" [read by {', '.join(r.setting.where)}; not checked here]"
            if r.problem is not None:
                note = f"BAD: {r.problem}"
            print(f"{r.setting.name:<{width}}  {r.shown:<{shown}}  {r.source:<11}  {note}")
    for problem in bad:
        print(problem, file=sys.stderr)
    return 2 if bad else 0
