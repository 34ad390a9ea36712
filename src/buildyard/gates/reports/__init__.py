"""Report parsers: files written by test runners, coverage tools, benchmark tools and scanners,
validated into the immutable value objects of :mod:`buildyard.gates.reports.model`.

Every parser raises :class:`~buildyard.gates.errors.ReportError` (file, line when known, what is
wrong) for missing, malformed or unknown input.
"""

from __future__ import annotations

from buildyard.gates.reports.benchmarks import BENCHMARK_FORMATS, parse_benchmarks
from buildyard.gates.reports.coverage import COVERAGE_FORMATS, parse_coverage
from buildyard.gates.reports.junit import parse_junit
from buildyard.gates.reports.model import (
    Benchmark,
    BenchmarkReport,
    CoverageReport,
    CoverageTotals,
    FileCoverage,
    JUnitReport,
    SarifLevel,
    SarifReport,
    SarifResult,
    TestCase,
    TestOutcome,
    TestTotals,
)
from buildyard.gates.reports.sarif import parse_sarif

__all__ = [
    "BENCHMARK_FORMATS",
    "COVERAGE_FORMATS",
    "Benchmark",
    "BenchmarkReport",
    "CoverageReport",
    "CoverageTotals",
    "FileCoverage",
    "JUnitReport",
    "SarifLevel",
    "SarifReport",
    "SarifResult",
    "TestCase",
    "TestOutcome",
    "TestTotals",
    "parse_benchmarks",
    "parse_coverage",
    "parse_junit",
    "parse_sarif",
]
