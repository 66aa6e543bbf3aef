"""How an exception is said to a person: one line. TF-free; imports nothing from bn_core.

Every place that shows an error (a run's ``error`` column, a CLI line, a page's banner) goes
through ``one_line``, so the same exception reads the same everywhere and an exception with
an empty message (``OSError()``) still says what it was.
"""

from __future__ import annotations

LIMIT = 300  # characters of a message kept by default: a run's error column, a banner


def one_line(exc: BaseException, limit: int | None = LIMIT, *, typed: bool = False) -> str:
    """The first non-blank line of ``str(exc)``, else the exception's type name; cut to
    ``limit`` characters (with "…") unless ``limit`` is None. ``typed`` puts the type name
    in front (``ValueError: bad shape``), for a crash whose message alone would not say what
    broke. A Ray task error's own cause (``exc.cause``) is said instead of Ray's wrapper when
    it has one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that raises still gets a name
        text = ""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    name = type(exc).__name__
    line = (f"{name}: {line}" if typed else line) if line else name
    if limit is not None and len(line) > limit:
        line = line[: max(0, limit - 1)] + "…"
    return line
