"""Quality gates and test analytics.

Reads the reports tools already write (JUnit XML, Cobertura/LCOV/coverage.py JSON/JaCoCo, pytest-
benchmark/Google Benchmark/hyperfine/generic benchmark JSON, SARIF 2.1.0), decides each gate of a
``gates:`` list with a one-line reason, and analyses test results across runs (flaky tests, new vs
known failures, slowest tests).

The engine's entry point is :func:`evaluate` (``gates`` + :class:`GateContext` ->
``list[GateResult]``); everything it needs is exported here.
"""

from __future__ import annotations

from buildyard.gates.analytics import (
    FailureTriage,
    FlakyTest,
    SlowTest,
    TestResult,
    find_flaky,
    history_of,
    results_from_junit,
    slowest,
    triage_failures,
)
from buildyard.gates.checks import LicenseFinding, VulnerabilityFinding
from buildyard.gates.config import (
    AnyGate,
    GateKind,
    GateList,
    GateSpec,
    Severity,
    gates_json_schema,
    parse_gates,
    validate_gates,
)
from buildyard.gates.configfile import load_gates_file
from buildyard.gates.errors import GateConfigError, ReportError
from buildyard.gates.evaluate import (
    GateContext,
    baselines_needed,
    evaluate,
    evaluate_gate,
    load_benchmarks,
    load_coverage,
    load_junit,
    load_sarif,
)
from buildyard.gates.results import GateResult, GateStatus
from buildyard.gates.stats import BenchmarkComparison, Verdict
from buildyard.gates.summary import JobRow, render_summary

__all__ = [
    "AnyGate",
    "BenchmarkComparison",
    "FailureTriage",
    "FlakyTest",
    "GateConfigError",
    "GateContext",
    "GateKind",
    "GateList",
    "GateResult",
    "GateSpec",
    "GateStatus",
    "JobRow",
    "LicenseFinding",
    "ReportError",
    "Severity",
    "SlowTest",
    "TestResult",
    "Verdict",
    "VulnerabilityFinding",
    "baselines_needed",
    "evaluate",
    "evaluate_gate",
    "find_flaky",
    "gates_json_schema",
    "history_of",
    "load_benchmarks",
    "load_coverage",
    "load_gates_file",
    "load_junit",
    "load_sarif",
    "parse_gates",
    "render_summary",
    "results_from_junit",
    "slowest",
    "triage_failures",
    "validate_gates",
]
