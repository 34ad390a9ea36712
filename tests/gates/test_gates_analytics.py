"""Test analytics: flaky detection and clearing, new vs known failures, slowest tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buildyard.gates import find_flaky, history_of, results_from_junit, slowest, triage_failures
from buildyard.gates.analytics import TestResult
from buildyard.gates.reports import TestOutcome, parse_junit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
P, F, E, S = TestOutcome.PASSED, TestOutcome.FAILED, TestOutcome.ERROR, TestOutcome.SKIPPED


def r(
    name: str,
    outcome: TestOutcome,
    *,
    commit: str = "c1",
    hours_ago: float = 1,
    attempt: int = 1,
    duration: float = 0.1,
    run: str = "",
) -> TestResult:
    return TestResult(
        "suite",
        "mod",
        name,
        outcome,
        duration,
        commit,
        NOW - timedelta(hours=hours_ago),
        attempt=attempt,
        run_id=run or f"run-{hours_ago}",
    )


def test_flaky_from_a_real_rerun(junit_from_pytest: Path) -> None:
    results = results_from_junit(parse_junit(junit_from_pytest), commit="abc", time=NOW, run_id="1")
    attempts = [x for x in results if x.name == "test_flaky_once"]
    assert [(x.attempt, x.outcome) for x in attempts] == [(1, F), (2, P)]
    (flaky,) = find_flaky(results, now=NOW)
    assert flaky.display_name == "test_sample::test_flaky_once"
    assert (flaky.commits, flaky.passes, flaky.failures) == (("abc",), 1, 1)


def test_flaky_across_separate_runs_on_same_commit_only() -> None:
    same_commit = [r("t", P, hours_ago=5), r("t", F, hours_ago=4)]
    assert [f.test[2] for f in find_flaky(same_commit, now=NOW)] == ["t"]
    # Failing on one commit and passing on the next is a fix (or a regression), not flakiness.
    different = [r("t", F, commit="c1", hours_ago=5), r("t", P, commit="c2", hours_ago=4)]
    assert find_flaky(different, now=NOW) == []
    # Errors count as failures; skips are ignored.
    assert find_flaky([r("u", E, hours_ago=3), r("u", S, hours_ago=2), r("u", P, hours_ago=1)], now=NOW)
    assert find_flaky([r("v", S, hours_ago=3), r("v", P, hours_ago=2)], now=NOW) == []


def test_evidence_older_than_the_window_is_ignored() -> None:
    old = [r("t", P, hours_ago=24 * 15), r("t", F, hours_ago=24 * 15 - 1)]
    assert find_flaky(old, now=NOW) == []
    assert find_flaky(old, now=NOW, window=timedelta(days=30))


def test_cleared_after_a_streak_of_consistent_results() -> None:
    history = [r("t", P, hours_ago=100), r("t", F, hours_ago=99)]
    history += [r("t", P, commit=f"n{i}", hours_ago=50 - i) for i in range(9)]
    (still,) = find_flaky(history, now=NOW)
    assert still.consistent_since == 9
    history.append(r("t", P, commit="n9", hours_ago=1))
    assert find_flaky(history, now=NOW) == []
    assert find_flaky(history, now=NOW, clear_after=11)
    # An inconsistent result after the evidence breaks the streak.
    broken = [*history[:-2], r("t", F, commit="x", hours_ago=2), r("t", P, commit="y", hours_ago=1)]
    assert find_flaky(broken, now=NOW)[0].consistent_since == 1
    with pytest.raises(ValueError, match="clear_after"):
        find_flaky(history, now=NOW, clear_after=0)


def test_triage_new_known_fixed() -> None:
    baseline = [r("a", P), r("b", F), r("c", F), r("d", P)]
    current = [
        r("a", F),
        r("b", F),
        r("c", P),
        r("d", P),
        r("e", E),
        r("f", F, attempt=1),
        r("f", P, attempt=2),
    ]
    triage = triage_failures(current, baseline)
    assert [t[2] for t in triage.new] == ["a", "e"]  # e is a new test that fails
    assert [t[2] for t in triage.known] == ["b"]
    assert [t[2] for t in triage.fixed] == ["c"]


def test_slowest_by_median_duration() -> None:
    results = [
        r("fast", P, duration=0.01),
        r("slow", P, duration=2.0),
        r("slow", P, duration=4.0, hours_ago=2),
        r("spiky", P, duration=0.1),
        r("spiky", P, duration=0.1, hours_ago=2),
        r("spiky", P, duration=9.0, hours_ago=3),
        r("skip", S, duration=99),
    ]
    top = slowest(results, limit=2)
    assert [(t.display_name, t.median, t.maximum, t.count) for t in top] == [
        ("mod::slow", 3.0, 4.0, 2),
        ("mod::spiky", 0.1, 9.0, 3),
    ]


def test_history_of_a_test() -> None:
    results = [r("test_a", P, hours_ago=3), r("test_a", F, hours_ago=1), r("test_ab", P, hours_ago=2)]
    assert [x.outcome for x in history_of(results, "test_a")] == [F, P]  # exact name, newest first
    assert len(history_of(results, "mod::test_a")) == 2
    assert len(history_of(results, "suite::mod::test_ab")) == 1
    assert len(history_of(results, "test_")) == 3  # no exact match: substring
    assert history_of(results, "nothing") == []
