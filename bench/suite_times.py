"""The test suite's time, from a pytest JUnit XML file: runs nothing itself.

``bash scripts/test.sh`` (the README's test command, which CI runs) writes
``.pytest-results.xml``; after a full run,

    .venv/bin/python bench/suite_times.py [.pytest-results.xml] [--top 10]

prints, as Markdown for bench/RESULTS.md, the whole suite's wall time and test counts, then
the slowest files: each file's time is the sum of its tests' times (setup, call and teardown,
which is what pytest's JUnit XML records per test, so a module-scoped fixture's start-up
counts in its file's first test).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

DEFAULT_XML = Path(__file__).resolve().parent.parent / ".pytest-results.xml"


def file_of(case: ET.Element) -> str:
    """The file a ``<testcase>`` came from: its ``file`` attribute (junit_family=xunit1), else
    its ``classname`` (``tests.reliability.test_disk_full`` or ``tests.test_x.TestClass``) up
    to the module, the first part named ``test_*`` or ``*_test``."""
    if case.get("file"):
        return case.get("file", "")
    parts = case.get("classname", "").split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_") or part.endswith("_test"):
            return "/".join(parts[: i + 1]) + ".py"
    return "/".join(parts) + ".py" if parts and parts[0] else "(unknown)"


def summarise(xml_path: Path) -> dict:
    """Totals and per-file times of one JUnit XML file."""
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    per_file: dict[str, float] = defaultdict(float)
    tests_per_file: dict[str, int] = defaultdict(int)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    wall = 0.0
    for suite in suites:
        wall += float(suite.get("time", 0) or 0)
        for key in counts:
            counts[key] += int(suite.get(key, 0) or 0)
        for case in suite.iter("testcase"):
            name = file_of(case)
            per_file[name] += float(case.get("time", 0) or 0)
            tests_per_file[name] += 1
    return {
        "wall": wall,
        "summed": sum(per_file.values()),
        "counts": counts,
        "files": sorted(
            ((name, t, tests_per_file[name]) for name, t in per_file.items()),
            key=lambda row: -row[1],
        ),
        "timestamp": next((s.get("timestamp") for s in suites if s.get("timestamp")), None),
        "hostname": next((s.get("hostname") for s in suites if s.get("hostname")), None),
    }


def minutes(seconds: float) -> str:
    return (
        f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"
    )


def markdown(summary: dict, top: int = 10) -> str:
    c = summary["counts"]
    passed = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
    when = f" ({summary['timestamp']}" + (
        f", {summary['hostname']})" if summary["hostname"] else ")"
    )
    lines = [
        f"Whole suite{when if summary['timestamp'] else ''}: **{minutes(summary['wall'])}** wall "
        f"time, {c['tests']} tests ({passed} passed, {c['failures']} failed, {c['errors']} "
        f"errors, {c['skipped']} skipped); the tests' own times sum to "
        f"{minutes(summary['summed'])}.",
        "",
        f"| slowest files (top {top}) | tests | time | share |",
        "|---|---:|---:|---:|",
    ]
    total = summary["summed"] or 1.0
    for name, seconds, n in summary["files"][:top]:
        lines.append(f"| `{name}` | {n} | {minutes(seconds)} | {100 * seconds / total:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml", nargs="?", type=Path, default=DEFAULT_XML, help="JUnit XML file")
    parser.add_argument("--top", type=int, default=10, help="how many files to list")
    args = parser.parse_args(argv)
    if not args.xml.is_file():
        print(f"{args.xml}: no such file (run `bash scripts/test.sh` first)", file=sys.stderr)
        return 2
    try:
        summary = summarise(args.xml)
    except ET.ParseError as exc:
        print(f"{args.xml}: not a JUnit XML file ({exc})", file=sys.stderr)
        return 2
    print(markdown(summary, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
