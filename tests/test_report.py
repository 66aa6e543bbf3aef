"""The HTML report: every table and chart, plotly.js once, versions, and no TensorFlow import."""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path

import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from bn_core.views import report
from tests.conftest import assert_runs_without_tensorflow
from tests.helpers import lr_sweep_results, result

ROOT = Path(__file__).resolve().parent.parent


def two_by_three():
    """lenet and lenet_fc_bn2, three seeds each, three epochs."""
    out = []
    for variant, base in (("lenet", 0.80), ("lenet_fc_bn2", 0.86)):
        for seed in range(3):
            val = [base + 0.03 * e + 0.01 * seed for e in range(3)]
            out.append(result(variant, seed, val, base + 0.1 + 0.01 * seed, run_id=len(out) + 1))
    return out


def charts(html: str) -> list[tuple[list[dict], dict]]:
    """(traces, layout) of every plotly chart in the page, in order (Plotly.newPlot's args)."""
    decoder, out = json.JSONDecoder(), []
    for call in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", html):
        traces, end = decoder.raw_decode(html, call.end())
        layout, _ = decoder.raw_decode(html, re.compile(r",\s*").match(html, end).end())
        out.append((traces, layout))
    return out


def chart_titles(html: str) -> list[str]:
    return [layout["title"]["text"] for _, layout in charts(html)]


@pytest.fixture(scope="module")
def page() -> str:
    return report.build_report(two_by_three(), title="Study <one>", preset="original")


def test_plotly_js_is_embedded_once_and_nothing_is_fetched(page):
    bundle = get_plotlyjs()
    assert page.count(bundle[:2000]) == 1 and page.count(bundle[-2000:]) == 1
    rest = page.replace(bundle, "")
    assert "cdn.plot.ly" not in rest and not re.search(r"<script[^>]+src=", rest)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_every_chart_is_there(page):
    titles = chart_titles(page)
    assert titles == [
        "Validation accuracy (3 seeds per variant)",
        "Validation loss (3 seeds per variant)",
        "Training accuracy (3 seeds per variant)",
        "Training loss (3 seeds per variant)",
        "Validation accuracy per variant (thin: one seed each; 3 seeds per variant)",
    ]
    assert page.count('class="plotly-graph-div"') == 5
    names = [t.get("name") for t in charts(page)[0][0]]
    assert "lenet (mean ± std, 3 seeds)" in names and "lenet +1 std" in names  # bands
    assert "lenet_fc_bn2 #6 seed 2" in names  # each seed's thin line


def test_title_date_machine_and_versions(page):
    assert "<title>Study &lt;one&gt;</title>" in page and "<h1>Study &lt;one&gt;</h1>" in page
    assert re.search(r"Created \d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert "Preset original: Original study." in page
    env = report.environment()
    assert env["CPUs"] == str(os.cpu_count())
    for dist in ("keras", "numpy", "streamlit", "plotly", "scipy", "pandas"):
        assert env[dist] == metadata.version(dist)
        assert f"<td>{dist}</td>\n      <td>{env[dist]}</td>" in page
    tf = next(v for v in map(report._version, ("tensorflow-cpu", "tensorflow")) if v)
    assert env["tensorflow"] == tf and f"<td>{tf}</td>" in page
    assert env["python"] in page and env["platform"] in page


def test_settings_summary_and_runs_tables(page):
    for heading in (
        "Shared by every run",
        "Per run (the settings that differ)",
        "Summary per variant",
        "Runs",
    ):
        assert heading in page
    assert "<td>epochs</td>\n      <td>10</td>" in page  # a shared setting
    for column in (
        "n",
        "test accuracy",
        "95% CI",
        "Δ vs lenet",
        "p (Welch)",
        "speed-up",
        "steps to lenet's best",
        "epoch reaching lenet's best",
    ):
        assert f"<th>{column}</th>" in page
    assert "<td>0.9100 ± 0.0100</td>" in page  # lenet: 0.90, 0.91, 0.92
    assert "<td>+0.0600</td>" in page  # lenet_fc_bn2 - lenet
    assert "Welch" in page and "epoch-level resolution" in page


def test_a_sweep_gets_its_chart_and_diverged_runs_are_listed():
    html = report.build_report(
        lr_sweep_results(),
        title="lr",
        extra_figures=[
            ("Extra heading", go.Figure(layout={"title": {"text": "An extra chart"}})),
            go.Figure(layout={"title": {"text": "Another"}}),
        ],
    )
    titles = chart_titles(html)
    assert titles[5].startswith("Final test accuracy vs learning rate")
    assert titles[6:] == ["An extra chart", "Another"] and "<h2>Extra heading</h2>" in html
    assert "<td>diverged</td>" in html
    assert "<td>lenet · learning_rate=0.03</td>" in html  # one summary row per arm
    assert "<th>learning_rate</th>" in html.split("Per run")[1]  # the differing setting


def test_no_runs_still_makes_a_page():
    html = report.build_report([], title="empty")
    assert "No runs." in html and chart_titles(html) == []


def test_building_a_report_does_not_import_tensorflow():
    done = assert_runs_without_tensorflow(
        "from tests.test_report import two_by_three\n"
        "from bn_core.views.report import build_report\n"
        "html = build_report(two_by_three(), title='t', preset='figure1')\n"
        "print(len(html) > 100000)\n"
    )
    assert done.stdout.split() == ["True", "LOADED", "[]"]
