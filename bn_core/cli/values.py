"""What a flag's value may be, where argparse's own types take too much: numbers in the ASCII
digits 0-9 only (``int()`` and ``float()`` also take "１", "٣" and "1_0"), and run ids that
SQLite can look up (1 to 2**63 - 1: a larger one raised OverflowError, a traceback). Each is an
argparse ``type``: a bad value is one line, exit 2, naming the character that is not a digit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bn_core.config import odd_character, parse_number


def number(kind: type = int) -> Callable[[str], int | float]:
    """An argparse ``type`` for a number flag: ``config.parse_number`` (ASCII digits 0-9 only:
    ``int()`` and ``float()`` would also take "１" or "1_0"); a bad one is one line naming the
    character ("argument --epochs: invalid int value: '１' (U+FF11 FULLWIDTH DIGIT ONE is not
    one of the digits 0-9)"). Its limits are checked later, with the other values'."""

    def parse(text: str) -> int | float:
        try:
            return parse_number(text, kind)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.__name__
    return parse


MAX_RUN_ID = 2**63 - 1  # SQLite's largest integer: a larger one cannot even be looked up


def run_id_arg(text: str) -> int:
    """An argparse ``type`` for a run id: "12" or "#12", ASCII digits, 1 to ``MAX_RUN_ID``
    (a larger number is no run's: SQLite would raise OverflowError looking it up)."""
    digits = text.strip().removeprefix("#")
    if digits.isascii() and digits.isdecimal() and len(digits) <= 19:
        if 1 <= int(digits) <= MAX_RUN_ID:
            return int(digits)
    from bn_core.cli.common import PROG  # (common imports this module)

    shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
    raise argparse.ArgumentTypeError(
        f"a run id is a whole number from 1 to {MAX_RUN_ID}, like 12 or #12 (`{PROG} runs` "
        f"lists them). Received: {shown}{odd_character(text)}"
    )
