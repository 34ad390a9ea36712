"""Plain-JSON forms of the values the history store keeps: gate results, coverage totals, benchmarks.

``*_to_dict`` output is JSON-serialisable with stable keys; ``*_from_dict`` rebuilds the value object
(``ValueError`` on malformed data). The store can keep these as JSON columns and give them back to
:class:`~buildyard.gates.evaluation.GateContext` (baselines) or the run summary (results).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildyard.gates.reports.model import Benchmark, BenchmarkReport, CoverageTotals
from buildyard.gates.results import GateResult, GateStatus
from buildyard.gates.stats import BenchmarkComparison, Verdict
from buildyard.spec.gates import GateKind


def coverage_to_dict(totals: CoverageTotals) -> dict[str, Any]:
    """Coverage totals as a mapping."""
    return {
        "line": totals.line,
        "branch": totals.branch,
        "lines_valid": totals.lines_valid,
        "lines_covered": totals.lines_covered,
        "branches_valid": totals.branches_valid,
        "branches_covered": totals.branches_covered,
    }


def coverage_from_dict(data: Mapping[str, Any]) -> CoverageTotals:
    """Inverse of :func:`coverage_to_dict`."""
    try:
        branch = data.get("branch")
        return CoverageTotals(
            line=float(data["line"]),
            branch=None if branch is None else float(branch),
            lines_valid=int(data.get("lines_valid", 0)),
            lines_covered=int(data.get("lines_covered", 0)),
            branches_valid=int(data.get("branches_valid", 0)),
            branches_covered=int(data.get("branches_covered", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed coverage totals: {exc}") from None


def benchmarks_to_dict(report: BenchmarkReport) -> dict[str, Any]:
    """Benchmark results with raw samples (seconds), enough to be a later run's baseline."""
    return {
        "format": report.format,
        "sources": list(report.sources),
        "benchmarks": [
            {
                "name": b.name,
                "samples": list(b.samples),
                "median": b.median,
                "mean": b.mean,
                "stddev": b.stddev,
                "rounds": b.rounds,
            }
            for b in report.benchmarks
        ],
    }


def benchmarks_from_dict(data: Mapping[str, Any]) -> BenchmarkReport:
    """Inverse of :func:`benchmarks_to_dict`."""
    try:
        return BenchmarkReport(
            sources=tuple(str(s) for s in data.get("sources", [])),
            format=str(data.get("format", "stored")),
            benchmarks=tuple(
                Benchmark(
                    name=str(b["name"]),
                    samples=tuple(float(x) for x in b.get("samples", [])),
                    median=float(b["median"]),
                    mean=float(b["mean"]),
                    stddev=float(b["stddev"]),
                    rounds=int(b["rounds"]),
                )
                for b in data["benchmarks"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed benchmark results: {exc}") from None


def result_from_dict(data: Mapping[str, Any]) -> GateResult:
    """Inverse of :meth:`GateResult.to_dict`."""
    try:
        return GateResult(
            gate=str(data["gate"]),
            kind=GateKind(data["kind"]),
            status=GateStatus(data["status"]),
            reason=str(data["reason"]),
            metrics=dict(data.get("metrics", {})),
            details=tuple(str(d) for d in data.get("details", [])),
            benchmarks=tuple(
                BenchmarkComparison(
                    name=str(b["name"]),
                    verdict=Verdict(b["verdict"]),
                    baseline=b.get("baseline"),
                    current=b.get("current"),
                    change=b.get("change"),
                    ci_low=b.get("ci_low"),
                    ci_high=b.get("ci_high"),
                    p_value=b.get("p_value"),
                    method=str(b.get("method", "")),
                    note=str(b.get("note", "")),
                )
                for b in data.get("benchmarks", [])
            ),
            allowed_failure=bool(data.get("allowed_failure", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed gate result: {exc}") from None
