"""bn_core.messages.one_line: how every error is said to a person, in one line."""

from __future__ import annotations

import pytest

from bn_core.messages import LIMIT, one_line


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class TaskError(Exception):
    """Like Ray's RayTaskError: a wrapper whose ``cause`` is the task's own exception."""

    def __init__(self, text: str, cause: BaseException | None):
        super().__init__(text)
        self.cause = cause


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("epochs must be between 1 and 200"), "epochs must be between 1 and 200"),
        (OSError(), "OSError"),  # an empty message still says what it was
        (KeyError(), "KeyError"),
        (ValueError("   \n\t\n"), "ValueError"),  # only blanks: as empty
        (ValueError("\n\n  first line  \nsecond line"), "first line"),  # first non-blank
        (Unprintable(), "Unprintable"),  # a __str__ that raises
    ],
)
def test_the_first_non_blank_line_else_the_type_name(exc, expected):
    assert one_line(exc) == expected


def test_typed_puts_the_type_name_in_front():
    assert one_line(ValueError("bad shape\nTraceback ..."), typed=True) == "ValueError: bad shape"
    assert one_line(OSError(), typed=True) == "OSError"  # never "OSError: "
    assert one_line(Unprintable(), typed=True) == "Unprintable"


def test_a_cause_is_said_instead_of_its_wrapper():
    wrapped = TaskError("ray.exceptions.RayTaskError(ValueError): long\ntraceback", ValueError("x"))
    assert one_line(wrapped) == "x"
    assert one_line(wrapped, typed=True) == "ValueError: x"
    assert one_line(TaskError("plain", None)) == "plain"  # no cause: the exception itself
    assert one_line(TaskError("plain", "not an exception")) == "plain"  # type: ignore[arg-type]


def test_the_limit_cuts_with_an_ellipsis():
    long = ValueError("x" * 1000)
    assert len(one_line(long)) == LIMIT == 300
    assert one_line(long).endswith("…") and one_line(long).startswith("xxx")
    assert one_line(long, 10) == "x" * 9 + "…"
    assert one_line(long, None) == "x" * 1000  # no limit
    assert one_line(ValueError("exactly ten"), 11) == "exactly ten"  # at the limit: uncut
    assert one_line(ValueError("y" * 20), 10, typed=True) == "ValueErro…"  # the prefix counts
