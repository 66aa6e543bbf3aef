"""Links you can share: what a comparison page shows, as its URL's query string.

``/compare?group=20261201-112631-4b928b&runs=12,13&metric=val_loss&smooth=0.8&x=epoch&log=1``
reopens the same comparison after a reload or in a colleague's browser (the page itself is
the URL's path), the way TensorFlow Playground keeps its whole state in its URL.

A query string comes from anyone, so every value is checked here before a page uses it: a
value that is malformed, out of range or names no group is dropped (the page's default is
used), and so is a key the page does not read (``select=``, a misspelt ``metrik=``); each is
named in one line (``note``), shown safely (cut to ``SHOWN_CHARS``, control and invisible
characters escaped). Only Streamlit's own keys and tracking tails (``PASSTHROUGH``) go
unnamed. Nothing from the URL reaches SQL or the file system unchecked. No Streamlit here:
plain mappings in, a ``View`` and strings out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from bn_core.config import parse_number
from bn_core.views.overlay import OVERLAY_METRICS, X_AXES

MAX_RUNS = 200  # a link names at most this many runs (a group of a big sweep fits)
MAX_SMOOTHING = 0.99
_GROUP_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:~-]{0,99}")  # ids runner.submit and studies make
SHOWN_CHARS = 40  # of a value named in the note; a longer one is cut, its length said
NAMED_AT_MOST = 6  # items in the note; more are counted ("and 3 more")
# Keys no page reads that are not the link's fault: Streamlit's own, and tracking tails.
PASSTHROUGH = {"embed", "embed_options", "fbclid", "gclid", "mc_cid", "mc_eid"}


@dataclass(frozen=True)
class View:
    """What a comparison page shows: the defaults are what a plain link opens."""

    group: str | None = None
    runs: tuple[int, ...] = ()  # empty: every run of the group
    metric: str = "val_accuracy"
    smooth: float = 0.6  # TensorBoard's default smoothing weight
    x: str = "step"
    log: bool = False


def parse(
    params: Mapping[str, object],
    groups: Container[str] | None = None,
    keys: Collection[str] | None = None,
) -> tuple[View, str | None]:
    """``read`` (``keys`` None: every key of a ``View``), with what it ignored as one line
    (``note``), or None."""
    view, ignored = read(params, groups, KEYS if keys is None else keys)
    return view, note(ignored)


def read(
    params: Mapping[str, object], groups: Container[str] | None = None, keys: Collection[str] = ()
) -> tuple[View, list[str]]:
    """The ``View`` in ``params`` (``st.query_params``: each value a string, or a list when a
    key repeats; the last one counts) and what was ignored, each as ``item`` names it. Only
    ``keys`` (the ones the page reads; none: nothing can be used) are read, the rest named
    unless in ``PASSTHROUGH`` or ``utm_*``. With ``groups``, a group that is not in it is
    ignored (it was deleted, or never existed)."""
    view, ignored = View(), []
    for name, raw in params.items():
        text = raw[-1] if isinstance(raw, list) and raw else raw
        if name not in keys or name not in _PARSERS:
            if name not in PASSTHROUGH and not name.startswith("utm_"):
                ignored.append(item(name, text))
            continue
        value = _PARSERS[name](str(text).strip()) if isinstance(text, str) else None
        if name == "group" and value is not None and groups is not None and value not in groups:
            value = None
        if value is None:
            ignored.append(item(name, text))
        else:
            view = replace(view, **{name: value})
    return view, ignored


def note(ignored: Sequence[str]) -> str | None:
    """The one line naming what a link held that could not be used (``read``'s items, and any
    the page adds: ``item("runs", "999")`` for a run that does not exist); None for none."""
    if not ignored:
        return None
    shown = list(ignored[:NAMED_AT_MOST])
    if len(ignored) > NAMED_AT_MOST:
        shown.append(f"{len(ignored) - NAMED_AT_MOST} more")
    return f"The link's {', '.join(shown)} could not be used: the defaults are shown."


def item(name: str, value: object) -> str:
    """``name=value`` as the note shows it: each part cut and escaped (``shown``)."""
    return f"{shown(name, 24)}={shown(value)}"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` safe to show in one line: control, format (zero-width, bidi overrides) and
    other unprintable characters as Python escapes (``\\x07``, ``\\u202e``); longer than
    ``limit`` characters: cut, with ``…`` and its length."""
    text = value if isinstance(value, str) else str(value)
    cut = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit]
    )
    return cut if len(text) <= limit else f"{cut}… ({len(text):,} characters)"


def encode(view: View) -> dict[str, str]:
    """The query string of ``view``: only what differs from the defaults, so a plain view has
    a plain URL."""
    default, out = View(), {}
    for f in fields(View):
        value = getattr(view, f.name)
        if value == getattr(default, f.name):
            continue
        if f.name == "runs":
            out["runs"] = ",".join(str(i) for i in value)
        elif f.name == "log":
            out["log"] = "1"
        elif f.name == "smooth":
            out["smooth"] = f"{value:g}"
        else:
            out[f.name] = str(value)
    return out


def _group(text: str) -> str | None:
    return text if _GROUP_ID.fullmatch(text) else None


def _runs(text: str) -> tuple[int, ...] | None:
    parts = [p.strip().lstrip("#") for p in text.split(",") if p.strip()]
    # ASCII digits only: isdigit() takes "²", which int() then refuses (the page raised)
    ascii_digits = all(p.isascii() and p.isdigit() and len(p) <= 12 for p in parts)
    if not parts or len(parts) > MAX_RUNS or not ascii_digits:
        return None
    return tuple(dict.fromkeys(int(p) for p in parts))  # order kept, repeats dropped


def _choice(choices: Container[str]):
    return lambda text: text if text in choices else None


def _smooth(text: str) -> float | None:
    try:
        value = parse_number(text, float)  # the digits 0-9: float() takes "０.５" and "0_5"
    except ValueError:
        return None
    return value if 0.0 <= value <= MAX_SMOOTHING else None  # NaN fails both comparisons


def _flag(text: str) -> bool | None:
    return {"1": True, "0": False, "true": True, "false": False}.get(text.lower())


_PARSERS = {
    "group": _group,
    "runs": _runs,
    "metric": _choice(OVERLAY_METRICS),
    "smooth": _smooth,
    "x": _choice(X_AXES),
    "log": _flag,
}
KEYS = tuple(_PARSERS)  # every key a View has; Compare reads them all
