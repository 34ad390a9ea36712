"""Test analytics over many runs: flaky tests, new vs known failures, slowest tests.

Pure functions over plain sequences of :class:`TestResult` (one per test *attempt*); storage is the
history store's business. A test's identity is ``(suite, classname, name)``.

Flakiness rule (documented contract):

- **evidence**: within ``window`` (default 14 days) before ``now``, the same test both passed and
  failed (failed or error) on the same content -- the same commit with the same uncommitted changes
  (``tree``) -- in retries of one run or in separate runs; results on different contents never are;
- **cleared**: a test stops being flaky once its ``clear_after`` (default 10) most recent results,
  all later than its latest evidence, have the same outcome. Ten is enough that a test failing 1 run
  in 5 at random keeps its flag with probability ~90%, and few enough that a fixed test is cleared
  within a working day or two of CI;
- skipped results are neither evidence nor part of a streak.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from buildyard.gates.reports.model import JUnitReport, TestOutcome

TestId = tuple[str, str, str]

DEFAULT_WINDOW = timedelta(days=14)
DEFAULT_CLEAR_AFTER = 10


@dataclass(frozen=True, slots=True)
class TestResult:
    """One execution (attempt) of one test in one run."""

    __test__ = False

    suite: str
    classname: str
    name: str
    outcome: TestOutcome
    duration: float
    commit: str
    time: datetime
    attempt: int = 1
    run_id: str = ""
    tree: str = ""  # digest of the uncommitted changes tested ("" for a clean checkout)

    @property
    def identity(self) -> TestId:
        """(suite, classname, name)."""
        return (self.suite, self.classname, self.name)

    @property
    def content(self) -> str:
        """What was tested: the commit, ``+`` the digest of uncommitted changes when there were any."""
        return f"{self.commit}+{self.tree[:12]}" if self.tree else self.commit


@dataclass(frozen=True, slots=True)
class FlakyTest:
    """A test currently considered flaky, with its evidence."""

    test: TestId
    commits: tuple[str, ...]
    passes: int
    failures: int
    last_evidence: datetime
    consistent_since: int
    new: bool = False  # flaky only because of the run being reported

    @property
    def display_name(self) -> str:
        """``classname::name``."""
        return _display(self.test)

    def marked_new(self, new: bool) -> FlakyTest:
        """This verdict with ``new`` set."""
        return replace(self, new=new)


@dataclass(frozen=True, slots=True)
class FailureTriage:
    """Failing tests of a run split by what the baseline run says.

    ``new``: failing now, passing (or absent) on the baseline; ``known``: failing on both;
    ``fixed``: failing on the baseline, passing now.
    """

    new: tuple[TestId, ...]
    known: tuple[TestId, ...]
    fixed: tuple[TestId, ...]


@dataclass(frozen=True, slots=True)
class SlowTest:
    """Duration statistics of one test across the given results (seconds)."""

    test: TestId
    median: float
    maximum: float
    count: int

    @property
    def display_name(self) -> str:
        """``classname::name``."""
        return _display(self.test)


def _display(test: TestId) -> str:
    _, classname, name = test
    return f"{classname}::{name}" if classname else name


def results_from_junit(
    report: JUnitReport, *, commit: str, time: datetime, run_id: str = ""
) -> list[TestResult]:
    """One :class:`TestResult` per attempt of every case (reruns become failed attempts)."""
    out: list[TestResult] = []
    for case in report.cases:
        outcomes = [TestOutcome.FAILED] * case.failed_attempts + [case.outcome]
        out.extend(
            TestResult(
                case.suite,
                case.classname,
                case.name,
                outcome,
                case.duration,
                commit,
                time,
                attempt=attempt,
                run_id=run_id,
            )
            for attempt, outcome in enumerate(outcomes, start=1)
        )
    return out


def _by_test(results: Iterable[TestResult]) -> dict[TestId, list[TestResult]]:
    grouped: dict[TestId, list[TestResult]] = defaultdict(list)
    for result in results:
        if result.outcome is not TestOutcome.SKIPPED:
            grouped[result.identity].append(result)
    for items in grouped.values():
        items.sort(key=lambda r: (r.time, r.run_id, r.attempt))
    return grouped


def find_flaky(
    results: Sequence[TestResult],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    clear_after: int = DEFAULT_CLEAR_AFTER,
) -> list[FlakyTest]:
    """Tests that are flaky as of ``now`` (see the module docstring), most recent evidence first."""
    if clear_after < 1:
        raise ValueError("clear_after must be at least 1")
    since = now - window
    flaky: list[FlakyTest] = []
    for test, history in _by_test(r for r in results if r.time <= now).items():
        per_commit: dict[str, list[TestResult]] = defaultdict(list)
        for r in history:
            if r.time >= since:
                per_commit[r.content].append(r)
        evidence = {
            commit: items
            for commit, items in per_commit.items()
            if any(r.outcome is TestOutcome.PASSED for r in items)
            and any(r.outcome.is_failure for r in items)
        }
        if not evidence:
            continue
        last_evidence = max(r.time for items in evidence.values() for r in items)
        after = [r for r in history if r.time > last_evidence]
        streak = _streak(after)
        if streak >= clear_after:
            continue
        flaky.append(
            FlakyTest(
                test=test,
                commits=tuple(sorted(evidence)),
                passes=sum(
                    1 for items in evidence.values() for r in items if r.outcome is TestOutcome.PASSED
                ),
                failures=sum(1 for items in evidence.values() for r in items if r.outcome.is_failure),
                last_evidence=last_evidence,
                consistent_since=streak,
            )
        )
    flaky.sort(key=lambda f: (f.last_evidence, f.test), reverse=True)
    return flaky


def _streak(results: Sequence[TestResult]) -> int:
    """Length of the run of identical (pass vs fail) outcomes at the end of ``results``."""
    if not results:
        return 0
    last = results[-1].outcome.is_failure
    count = 0
    for r in reversed(results):
        if r.outcome.is_failure != last:
            break
        count += 1
    return count


def _final_outcomes(results: Iterable[TestResult]) -> dict[TestId, TestOutcome]:
    """The outcome of each test's last attempt in one run (skipped tests are left out)."""
    return {test: items[-1].outcome for test, items in _by_test(results).items()}


def triage_failures(current: Sequence[TestResult], baseline: Sequence[TestResult]) -> FailureTriage:
    """Split the failures of ``current`` (one run) against ``baseline`` (one run)."""
    now = _final_outcomes(current)
    before = _final_outcomes(baseline)
    failing = sorted(t for t, o in now.items() if o.is_failure)
    new = tuple(t for t in failing if not before.get(t, TestOutcome.PASSED).is_failure)
    known = tuple(t for t in failing if before.get(t, TestOutcome.PASSED).is_failure)
    fixed = tuple(sorted(t for t, o in before.items() if o.is_failure and t in now and not now[t].is_failure))
    return FailureTriage(new=new, known=known, fixed=fixed)


def slowest(results: Sequence[TestResult], *, limit: int = 10) -> list[SlowTest]:
    """The ``limit`` tests with the highest median duration over ``results``.

    One execution of a case is one sample: its reruns (attempts after the first) repeat the case's
    duration and are not counted again.
    """
    stats = [
        SlowTest(
            test=test,
            median=statistics.median(r.duration for r in items),
            maximum=max(r.duration for r in items),
            count=len(items),
        )
        for test, items in _by_test(r for r in results if r.attempt == 1).items()
    ]
    stats.sort(key=lambda s: (-s.median, s.test))
    return stats[:limit]


def history_of(results: Sequence[TestResult], query: str) -> list[TestResult]:
    """Results of the test(s) ``query`` names, newest first (for ``buildyard tests history NAME``).

    ``query`` matches a test's ``name``, ``classname::name`` or ``suite::classname::name`` exactly;
    when nothing matches exactly, every test whose ``classname::name`` contains ``query``.
    """

    def keys(r: TestResult) -> tuple[str, ...]:
        full = _display(r.identity)
        return (r.name, full, f"{r.suite}::{full}")

    exact = [r for r in results if query in keys(r)]
    chosen = exact or [r for r in results if query in _display(r.identity)]
    return sorted(chosen, key=lambda r: (r.time, r.run_id, r.attempt), reverse=True)
