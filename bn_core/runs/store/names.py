"""The rules of run names and tags, and the name a group gets when nobody gave one.

Pure functions of their arguments (no store), so a form can check a name before saving it.
A name is one line of 1 to ``MAX_NAME`` characters; a tag is a short label without commas
(a run's tags are stored joined by commas). Neither may hold a bidirectional control
character (``BIDI_CONTROLS``: U+202E RIGHT-TO-LEFT OVERRIDE makes "run\u202etxt.exe" display as
"runexe.txt"), so a name reads as what it holds. Every bad value is a one-line ValueError that
names the value and the rule (a refused character by its code point).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable
from typing import Any

from bn_core.config import TrainConfig

MAX_NAME = 80  # characters of a group or run name
MAX_TAG = 32  # characters of one tag
MAX_TAGS = 20  # tags of one run
SHOWN_VARIANTS = 3  # variants a default group name lists before "+N more"
# Unicode's bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates
# (U+2066-U+2069), the marks (U+200E, U+200F, U+061C). Each can reorder how the text around it
# displays, so a name could show as something other than what it holds.
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)


def clean_name(text: Any, what: str = "group name", *, limit: int = MAX_NAME) -> str:
    """``text`` without surrounding spaces; ValueError (one line) unless it is 1 to ``limit``
    characters with no control characters (tabs, newlines: a name is one line) and no
    bidirectional controls (``BIDI_CONTROLS``), the refused one named by its code point."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text. Received: {text!r}")
    name = text.strip()
    if not 1 <= len(name) <= limit:
        raise ValueError(
            f"{what} must be 1 to {limit} characters (spaces around it are dropped). "
            f"Received: {len(name)} characters"
        )
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise ValueError(
            f"{what} must be one line without control characters. Received: {name[:40]!r}"
        )
    bidi = next((c for c in name if c in BIDI_CONTROLS), None)
    if bidi is not None:
        raise ValueError(
            f"{what} must not contain U+{ord(bidi):04X} {unicodedata.name(bidi, 'a bidi control')}"
            f" (character {name.index(bidi) + 1}): it changes the order in which text "
            f"displays. Received: {name[:40]!r}"
        )
    return name


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Each tag cleaned (``clean_name``, at most ``MAX_TAG`` characters, no commas: they are
    stored joined by commas), repeats dropped, order kept; ValueError over ``MAX_TAGS``."""
    if isinstance(tags, str):
        raise ValueError(f"tags must be a list of tags, not one text. Received: {tags!r}")
    cleaned = tuple(dict.fromkeys(clean_name(tag, "a tag", limit=MAX_TAG) for tag in tags))
    for tag in cleaned:
        if "," in tag:
            raise ValueError(f"a tag must not contain a comma; give two tags. Received: {tag!r}")
    if len(cleaned) > MAX_TAGS:
        raise ValueError(f"a run has at most {MAX_TAGS} tags. Received: {len(cleaned)}")
    return cleaned


def default_group_name(configs: list[TrainConfig], when: float) -> str:
    """A readable name for a group nobody named: "lenet, lenet_bn1 · 3 seeds · 12-01 11:26"
    (its variants in order, at most ``SHOWN_VARIANTS`` then "+N more"; local time)."""
    variants = list(dict.fromkeys(c.variant for c in configs))
    shown = ", ".join(variants[:SHOWN_VARIANTS])
    if len(variants) > SHOWN_VARIANTS:
        shown += f" +{len(variants) - SHOWN_VARIANTS} more"
    seeds = len({c.seed for c in configs})
    stamp = time.strftime("%m-%d %H:%M", time.localtime(when))
    return f"{shown} · {seeds} seed{'s' * (seeds != 1)} · {stamp}"
