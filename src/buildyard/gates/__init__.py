"""Quality gates and test analytics.

Reads the reports tools already write (JUnit XML, Cobertura/LCOV/coverage.py JSON/JaCoCo, pytest-
benchmark/Google Benchmark/hyperfine/generic benchmark JSON, SARIF 2.1.0), decides each gate of a
``gates:`` list with a one-line reason, and analyses test results across runs (flaky tests, new vs
known failures, slowest tests).

The engine's entry point is :func:`evaluate` (``gates`` + :class:`GateContext` ->
``list[GateResult]``); everything it needs is exported here.

The package imports its modules lazily (PEP 562): the report parsers load only when a report is
read, the benchmark statistics only when benchmarks are compared. The gate definitions belong to the
pipeline file (:mod:`buildyard.spec.gates`, re-exported by :mod:`buildyard.gates.config`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        gates_json_schema,
        parse_gates,
        validate_gates,
    )
    from buildyard.gates.configfile import load_gates_file
    from buildyard.gates.errors import GateConfigError, ReportError
    from buildyard.gates.evaluation import (
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

#: public name -> module defining it
_EXPORTS = {
    "AnyGate": "buildyard.gates.config",
    "BenchmarkComparison": "buildyard.gates.stats",
    "FailureTriage": "buildyard.gates.analytics",
    "FlakyTest": "buildyard.gates.analytics",
    "GateConfigError": "buildyard.gates.errors",
    "GateContext": "buildyard.gates.evaluation",
    "GateKind": "buildyard.gates.config",
    "GateList": "buildyard.gates.config",
    "GateResult": "buildyard.gates.results",
    "GateSpec": "buildyard.gates.config",
    "GateStatus": "buildyard.gates.results",
    "JobRow": "buildyard.gates.summary",
    "LicenseFinding": "buildyard.gates.checks",
    "ReportError": "buildyard.gates.errors",
    "Severity": "buildyard.model",
    "SlowTest": "buildyard.gates.analytics",
    "TestResult": "buildyard.gates.analytics",
    "Verdict": "buildyard.gates.stats",
    "VulnerabilityFinding": "buildyard.gates.checks",
    "baselines_needed": "buildyard.gates.evaluation",
    "evaluate": "buildyard.gates.evaluation",
    "evaluate_gate": "buildyard.gates.evaluation",
    "find_flaky": "buildyard.gates.analytics",
    "gates_json_schema": "buildyard.gates.config",
    "history_of": "buildyard.gates.analytics",
    "load_benchmarks": "buildyard.gates.evaluation",
    "load_coverage": "buildyard.gates.evaluation",
    "load_gates_file": "buildyard.gates.configfile",
    "load_junit": "buildyard.gates.evaluation",
    "load_sarif": "buildyard.gates.evaluation",
    "parse_gates": "buildyard.gates.config",
    "render_summary": "buildyard.gates.summary",
    "results_from_junit": "buildyard.gates.analytics",
    "slowest": "buildyard.gates.analytics",
    "triage_failures": "buildyard.gates.analytics",
    "validate_gates": "buildyard.gates.config",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'buildyard.gates' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
