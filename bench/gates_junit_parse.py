"""Benchmark: parse a large JUnit XML report (20,000 test cases) into per-test outcomes.

Peer: junitparser (PyPI), the common Python library for JUnit files. Both sides do the same work:
read the file and produce (suite, classname, name, outcome, time) for every case. Prints a table and
the ratio buildyard / junitparser (lower is better). Run: ``nice .venv/bin/python bench/gates_junit_parse.py``
(needs ``pip install junitparser``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from buildyard.gates.reports import parse_junit

SUITES, CASES = 200, 100
ROUNDS = 7


def make_report(path: Path) -> None:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<testsuites>"]
    for s in range(SUITES):
        lines.append(f'<testsuite name="suite{s}" tests="{CASES}">')
        for t in range(CASES):
            attrs = f'classname="pkg.mod{s}.TestC" name="test_{t}" time="0.{t:03d}"'
            if t % 17 == 0:
                failure = '<failure message="assert 1 == 2">trace\nmore</failure>'
                lines.append(f"<testcase {attrs}>{failure}</testcase>")
            elif t % 23 == 0:
                lines.append(f'<testcase {attrs}><skipped message="later"/></testcase>')
            else:
                lines.append(f"<testcase {attrs}/>")
        lines.append("</testsuite>")
    lines.append("</testsuites>")
    path.write_text("\n".join(lines))


def buildyard_parse(path: Path) -> int:
    report = parse_junit(path)
    return sum(1 for c in report.cases if c.outcome.is_failure)


def junitparser_parse(path: Path) -> int:
    from junitparser import Error, Failure, JUnitXml

    failures = 0
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            _ = (suite.name, case.classname, case.name, case.time)
            if any(isinstance(r, Failure | Error) for r in case.result):
                failures += 1
    return failures


def measure(fn: Callable[[Path], int], path: Path) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        result = fn(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    try:
        import junitparser  # noqa: F401 - the peer is a bench-only dependency
    except ModuleNotFoundError:
        raise SystemExit("install the peer first: pip install junitparser") from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junit.xml"
        make_report(path)
        ours, ours_failures = measure(buildyard_parse, path)
        peer, peer_failures = measure(junitparser_parse, path)
    assert ours_failures == peer_failures, (ours_failures, peer_failures)
    print(f"JUnit parse, {SUITES * CASES} cases, median of {ROUNDS}")
    print(f"{'tool':<14}{'median ms':>10}")
    print(f"{'buildyard':<14}{ours * 1000:>10.1f}")
    print(f"{'junitparser':<14}{peer * 1000:>10.1f}")
    print(f"ratio buildyard/junitparser: {ours / peer:.2f}")


if __name__ == "__main__":
    main()
