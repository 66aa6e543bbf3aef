"""Shareable links (bn_core.views.links): a view survives the URL round trip, and whatever a
URL holds that is not a valid view is dropped and named, never used."""

from __future__ import annotations

import pytest

from bn_core.views.links import (
    MAX_RUNS,
    NAMED_AT_MOST,
    SHOWN_CHARS,
    View,
    encode,
    item,
    note,
    parse,
    read,
    shown,
)

GROUPS = {"20261201-112631-4b928b", "sweep-20261202-090000-aa11bb"}


def test_a_plain_view_has_a_plain_url():
    assert encode(View()) == {}
    assert parse({}) == (View(), None)


def test_a_view_survives_the_round_trip():
    view = View(
        group="20261201-112631-4b928b",
        runs=(12, 3, 40),
        metric="val_loss",
        smooth=0.85,
        x="epoch",
        log=True,
    )
    params = encode(view)
    assert params == {
        "group": "20261201-112631-4b928b",
        "runs": "12,3,40",
        "metric": "val_loss",
        "smooth": "0.85",
        "x": "epoch",
        "log": "1",
    }
    assert parse(params, GROUPS) == (view, None)


def test_smoothing_zero_is_kept_and_read_back():
    params = encode(View(smooth=0.0))
    assert params == {"smooth": "0"}
    assert parse(params)[0].smooth == 0.0


@pytest.mark.parametrize(
    ("params", "ignored"),
    [
        ({"group": "no-such-group"}, "group=no-such-group"),
        ({"group": "x' OR 1=1 --"}, "group=x' OR 1=1 --"),
        ({"group": "../../etc/passwd"}, "group=../../etc/passwd"),
        ({"runs": "1,two,3"}, "runs=1,two,3"),
        ({"runs": ""}, "runs="),
        ({"runs": ",".join(str(i) for i in range(MAX_RUNS + 1))}, "runs="),
        ({"metric": "weights"}, "metric=weights"),
        ({"smooth": "nan"}, "smooth=nan"),
        ({"smooth": "1.5"}, "smooth=1.5"),
        ({"smooth": "-0.1"}, "smooth=-0.1"),
        ({"x": "batch"}, "x=batch"),
        ({"log": "maybe"}, "log=maybe"),
    ],
)
def test_a_bad_value_is_dropped_and_named(params, ignored):
    view, note = parse(params, GROUPS)
    assert view == View()  # the default in its place
    assert note is not None and ignored in note and note.endswith("the defaults are shown.")


def test_good_values_stay_when_another_is_bad():
    view, note = parse({"metric": "loss", "x": "nowhere", "runs": "#5, 7,5"}, GROUPS)
    assert view == View(metric="loss", runs=(5, 7))  # '#' allowed, repeats dropped
    assert note == "The link's x=nowhere could not be used: the defaults are shown."


def test_unknown_keys_are_not_ours_to_judge():
    assert parse({"utm_source": "mail", "embed": "true"}) == (View(), None)


def test_a_repeated_key_counts_its_last_value():
    assert parse({"metric": ["loss", "val_loss"]})[0].metric == "val_loss"


def test_without_a_group_list_any_well_formed_id_is_kept():
    assert parse({"group": "study-original-20261201-101010"})[0].group == (
        "study-original-20261201-101010"
    )


# ----------------------------------------------------------------------------- hostile links


def test_a_key_no_page_reads_is_named():
    view, note = parse({"select": "abc"}, GROUPS)
    assert view == View()
    assert note == "The link's select=abc could not be used: the defaults are shown."
    view, note = parse({"select": "1,abc,-1," + "9" * 30}, GROUPS)
    assert note is not None and "select=1,abc,-1,999" in note


def test_a_key_this_page_does_not_read_is_named():
    """Inside the network, Window size and Sweep read only the group."""
    view, ignored = read({"group": "20261201-112631-4b928b", "runs": "999"}, GROUPS, ("group",))
    assert view == View(group="20261201-112631-4b928b") and ignored == ["runs=999"]
    assert read({"group": "x", "metric": "loss"}, GROUPS, keys=())[1] == ["group=x", "metric=loss"]


def test_streamlit_and_tracking_keys_are_not_named():
    assert parse({"utm_campaign": "x", "embed": "true", "embed_options": "dark_theme"}) == (
        View(),
        None,
    )


def test_control_and_invisible_characters_are_escaped():
    note = parse({"group": "a\x07b\nc\u202eevil\u200b", "x\x1b[31m": "1"}, GROUPS)[1]
    assert "group=a\\x07b\\nc\\u202eevil\\u200b" in note and "x\\x1b[31m=1" in note
    assert note.isprintable()


def test_a_long_value_is_cut_and_its_length_said():
    note = parse({"runs": "x" * 10_000}, GROUPS)[1]
    assert f"runs={'x' * SHOWN_CHARS}… (10,000 characters) could not be used" in note
    assert len(note) < 200
    assert shown("é" * SHOWN_CHARS) == "é" * SHOWN_CHARS  # at the limit: kept whole


def test_many_bad_keys_make_one_short_line():
    note = parse({f"k{i}": "v" for i in range(1000)}, GROUPS)[1]
    assert note.count("=") == NAMED_AT_MOST and "994 more could not be used" in note


def test_the_page_adds_its_own_items_in_the_same_wording():
    """A run the page cannot show (runs=999: no such run) joins what the parser ignored."""
    _, ignored = read({"select": "abc"}, GROUPS)
    assert note([*ignored, item("runs", "999")]) == (
        "The link's select=abc, runs=999 could not be used: the defaults are shown."
    )
    assert note([]) is None


@pytest.mark.parametrize(
    "key, text",
    [
        ("runs", "\u00b2"),  # isdigit() is True, int() raised ValueError: the page failed
        ("runs", "\u0661\u0662"),  # int() read Arabic-Indic 12 as run 12
        ("runs", "\uff11"),
        ("smooth", "\uff10.\uff15"),  # float() read it as 0.5
        ("smooth", "0_5"),
    ],
)
def test_numbers_in_a_link_are_ascii_digits_only(key, text):
    view, ignored = parse({key: text}, GROUPS)
    assert view == View() and ignored is not None and ignored.startswith(f"The link's {key}=")
