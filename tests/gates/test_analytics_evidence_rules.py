"""Evidence rules of the test analytics: results on different contents are never flakiness, and a
rerun is not another sample of a test's duration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from buildyard.gates.analytics import TestResult, find_flaky, slowest
from buildyard.gates.reports.model import TestOutcome

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
P, F = TestOutcome.PASSED, TestOutcome.FAILED


def result(
    outcome: TestOutcome, *, tree: str = "", run: str = "r1", attempt: int = 1, duration=0.1
) -> TestResult:
    return TestResult("s", "mod", "t", outcome, duration, "c1", NOW - timedelta(hours=1), attempt, run, tree)


def test_same_commit_different_uncommitted_changes_is_not_flaky() -> None:
    clean_pass, dirty_fail = result(P, run="r1"), result(F, tree="d" * 32, run="r2")
    assert find_flaky([clean_pass, dirty_fail], now=NOW) == []
    [flaky] = find_flaky([clean_pass, dirty_fail, result(F, run="r3")], now=NOW)
    assert flaky.commits == ("c1",) and (flaky.passes, flaky.failures) == (1, 1)
    [dirty] = find_flaky([dirty_fail, result(P, tree="d" * 32, run="r4")], now=NOW)
    assert dirty.commits == ("c1+" + "d" * 12,)


def test_reruns_are_not_extra_duration_samples() -> None:
    rows = [
        result(F, run="r1", attempt=1, duration=2.0),
        result(P, run="r1", attempt=2, duration=2.0),
        result(P, run="r2", attempt=1, duration=4.0),
    ]
    [slow] = slowest(rows)
    assert (slow.count, slow.median) == (2, 3.0)
