"""Typed, immutable value objects every report parser produces.

Parsers validate raw files into these; gates and analytics receive only these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TestOutcome(StrEnum):
    """Final outcome of one test case (``ERROR`` is a crash outside the assertion, e.g. in setup)."""

    __test__ = False  # not a pytest test class

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def is_failure(self) -> bool:
        """True for ``FAILED`` and ``ERROR``."""
        return self in (TestOutcome.FAILED, TestOutcome.ERROR)


@dataclass(frozen=True, slots=True)
class TestCase:
    """One test case of a JUnit report, after reruns are folded in.

    ``attempts`` counts every execution (1 without reruns); ``failed_attempts`` those that failed
    before the final one. A case that passed after failing at least once is ``flaky``.
    """

    __test__ = False

    suite: str
    classname: str
    name: str
    outcome: TestOutcome
    duration: float
    message: str = ""
    attempts: int = 1
    failed_attempts: int = 0

    @property
    def flaky(self) -> bool:
        """Passed in the end, but only after at least one failed attempt."""
        return self.outcome is TestOutcome.PASSED and self.failed_attempts > 0

    @property
    def identity(self) -> tuple[str, str, str]:
        """(suite, classname, name): how a test is recognised across runs."""
        return (self.suite, self.classname, self.name)

    @property
    def display_name(self) -> str:
        """``classname::name`` (or just ``name``), for tables and messages."""
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True, slots=True)
class TestTotals:
    """Counts over a set of test cases."""

    __test__ = False

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    duration: float = 0.0

    @property
    def failures(self) -> int:
        """Failed plus errored cases."""
        return self.failed + self.errors


@dataclass(frozen=True, slots=True)
class JUnitReport:
    """The test cases of one (or several merged) JUnit XML files."""

    sources: tuple[str, ...]
    cases: tuple[TestCase, ...]

    @property
    def totals(self) -> TestTotals:
        """Counts by outcome, flaky cases and summed duration."""
        by = dict.fromkeys(TestOutcome, 0)
        for case in self.cases:
            by[case.outcome] += 1
        return TestTotals(
            total=len(self.cases),
            passed=by[TestOutcome.PASSED],
            failed=by[TestOutcome.FAILED],
            errors=by[TestOutcome.ERROR],
            skipped=by[TestOutcome.SKIPPED],
            flaky=sum(1 for c in self.cases if c.flaky),
            duration=sum(c.duration for c in self.cases),
        )

    def merged(self, other: JUnitReport) -> JUnitReport:
        """Both reports' cases in one report."""
        return JUnitReport(self.sources + other.sources, self.cases + other.cases)


@dataclass(frozen=True, slots=True)
class FileCoverage:
    """Line and branch counts of one source file."""

    path: str
    lines_valid: int
    lines_covered: int
    branches_valid: int = 0
    branches_covered: int = 0


@dataclass(frozen=True, slots=True)
class CoverageTotals:
    """Line and branch rates in percent (``branch`` is None when the report has no branch data)."""

    line: float
    branch: float | None
    lines_valid: int = 0
    lines_covered: int = 0
    branches_valid: int = 0
    branches_covered: int = 0


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Coverage of one (or several merged) reports: per-file counts and totals.

    ``has_branches`` says whether the tool measured branches at all (coverage.py without
    ``--branch`` does not), which is different from a project with zero branches.
    """

    sources: tuple[str, ...]
    format: str
    files: tuple[FileCoverage, ...]
    lines_valid: int
    lines_covered: int
    branches_valid: int
    branches_covered: int
    has_branches: bool

    @property
    def totals(self) -> CoverageTotals:
        """Rates in percent; an empty report has 100% line coverage of nothing (0 valid lines)."""
        line = 100.0 * self.lines_covered / self.lines_valid if self.lines_valid else 100.0
        branch: float | None = None
        if self.has_branches:
            branch = 100.0 * self.branches_covered / self.branches_valid if self.branches_valid else 100.0
        return CoverageTotals(
            line=line,
            branch=branch,
            lines_valid=self.lines_valid,
            lines_covered=self.lines_covered,
            branches_valid=self.branches_valid,
            branches_covered=self.branches_covered,
        )

    def merged(self, other: CoverageReport) -> CoverageReport:
        """Both reports in one, file by file.

        Reports of disjoint files (one per package or language) add up exactly. A file present in
        both (the same code measured by two test runs) keeps the larger counts: a lower bound of the
        true union, since per-line data is not kept -- combine such runs with the coverage tool
        (``coverage combine``, ``lcov -a``) for exact numbers.
        """
        files: dict[str, FileCoverage] = {f.path: f for f in self.files}
        for f in other.files:
            seen = files.get(f.path)
            files[f.path] = (
                f
                if seen is None
                else FileCoverage(
                    path=f.path,
                    lines_valid=max(seen.lines_valid, f.lines_valid),
                    lines_covered=max(seen.lines_covered, f.lines_covered),
                    branches_valid=max(seen.branches_valid, f.branches_valid),
                    branches_covered=max(seen.branches_covered, f.branches_covered),
                )
            )
        merged = tuple(files.values())
        return CoverageReport(
            sources=self.sources + other.sources,
            format=self.format if self.format == other.format else "mixed",
            files=merged,
            lines_valid=sum(f.lines_valid for f in merged),
            lines_covered=sum(f.lines_covered for f in merged),
            branches_valid=sum(f.branches_valid for f in merged),
            branches_covered=sum(f.branches_covered for f in merged),
            has_branches=self.has_branches and other.has_branches,
        )


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One benchmark's timings in seconds (lower is better).

    ``samples`` are raw per-round times when the tool wrote them. Tools that only write summary
    statistics (pytest-benchmark without ``--benchmark-save-data``) leave ``samples`` empty and fill
    ``mean``, ``stddev`` and ``rounds``, which the comparison then uses instead.
    """

    name: str
    samples: tuple[float, ...]
    median: float
    mean: float
    stddev: float
    rounds: int


@dataclass(frozen=True, slots=True)
class BenchmarkReport:
    """Benchmarks of one (or several merged) result files, by name."""

    sources: tuple[str, ...]
    format: str
    benchmarks: tuple[Benchmark, ...]

    def by_name(self) -> dict[str, Benchmark]:
        """Benchmarks keyed by name (later files win on duplicate names)."""
        return {b.name: b for b in self.benchmarks}

    def merged(self, other: BenchmarkReport) -> BenchmarkReport:
        """Benchmarks of both reports."""
        fmt = self.format if self.format == other.format else "mixed"
        return BenchmarkReport(self.sources + other.sources, fmt, self.benchmarks + other.benchmarks)


class SarifLevel(StrEnum):
    """SARIF 2.1.0 ``result.level`` values, ordered from least to most severe."""

    NONE = "none"
    NOTE = "note"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 (none) … 3 (error), for comparisons."""
        return list(SarifLevel).index(self)


@dataclass(frozen=True, slots=True)
class SarifResult:
    """One (unsuppressed, ``kind: fail``) finding of a SARIF log."""

    tool: str
    rule_id: str
    level: SarifLevel
    message: str
    uri: str = ""
    line: int | None = None

    @property
    def location(self) -> str:
        """``uri:line`` (or what is known of it)."""
        if self.uri and self.line is not None:
            return f"{self.uri}:{self.line}"
        return self.uri


@dataclass(frozen=True, slots=True)
class SarifReport:
    """Findings of one (or several merged) SARIF logs; ``suppressed`` counts dropped findings."""

    sources: tuple[str, ...]
    results: tuple[SarifResult, ...]
    suppressed: int = 0

    def merged(self, other: SarifReport) -> SarifReport:
        """Findings of both logs."""
        return SarifReport(
            self.sources + other.sources, self.results + other.results, self.suppressed + other.suppressed
        )
