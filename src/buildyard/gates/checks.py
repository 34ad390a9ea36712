"""One pure function per gate kind: parsed reports (or findings) in, :class:`GateResult` out.

No I/O here; :mod:`buildyard.gates.evaluation` loads the files and calls these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from buildyard.gates.reports.model import (
    BenchmarkReport,
    CoverageReport,
    CoverageTotals,
    JUnitReport,
    SarifLevel,
    SarifReport,
)
from buildyard.gates.results import GateResult, GateStatus, Metric
from buildyard.gates.stats import BenchmarkComparison, Verdict, compare
from buildyard.gates.units import format_size
from buildyard.model import Severity
from buildyard.spec.durations import format_duration
from buildyard.spec.gates import (
    ArtifactSizeGate,
    BenchmarksGate,
    CoverageGate,
    DurationGate,
    GateKind,
    LicensesGate,
    SarifGate,
    TestsGate,
    VulnerabilitiesGate,
)

#: How many offending items a reason names before "and N more".
_NAMED = 3


class VulnerabilityFinding(Protocol):
    """What the vulnerabilities gate needs of one finding from the deps scan.

    ``severity`` is ``low``/``medium``/``high``/``critical`` (case-insensitive; CVSS-derived);
    anything else (``unknown``, empty) ranks as ``high`` so an unrated vulnerability is not ignored.
    """

    @property
    def id(self) -> str: ...
    @property
    def package(self) -> str: ...
    @property
    def severity(self) -> str: ...


class LicenseFinding(Protocol):
    """What the licenses gate needs of one dependency's license verdict from the deps service.

    ``verdict`` is ``allowed``, ``denied``, ``review`` or ``unknown`` under the named policy.
    """

    @property
    def package(self) -> str: ...
    @property
    def license(self) -> str: ...
    @property
    def verdict(self) -> str: ...


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_NAMED])
    return f"{shown} and {len(items) - _NAMED} more" if len(items) > _NAMED else shown


def _result(
    gate_label: str,
    kind: GateKind,
    ok: bool,
    reason: str,
    *,
    metrics: Mapping[str, Metric] | None = None,
    details: tuple[str, ...] = (),
) -> GateResult:
    return GateResult(
        gate=gate_label,
        kind=kind,
        status=GateStatus.PASSED if ok else GateStatus.FAILED,
        reason=reason,
        metrics=dict(metrics or {}),
        details=details,
    )


def check_tests(gate: TestsGate, report: JUnitReport) -> GateResult:
    """At most ``max_failures`` failed/errored tests (flaky ones count unless ``allow_flaky``)."""
    totals = report.totals
    failing = [c for c in report.cases if c.outcome.is_failure]
    flaky = [c for c in report.cases if c.flaky]
    counted = failing + ([] if gate.allow_flaky else flaky)
    metrics = {
        "total": totals.total,
        "passed": totals.passed,
        "failed": totals.failed,
        "errors": totals.errors,
        "skipped": totals.skipped,
        "flaky": totals.flaky,
        "duration": round(totals.duration, 3),
    }
    details = tuple(
        f"{c.outcome.value}: {c.display_name}" + (f": {c.message}" if c.message else "") for c in failing
    ) + tuple(f"flaky ({c.failed_attempts} failed attempt(s)): {c.display_name}" for c in flaky)
    counts = f"{totals.total} tests: {totals.passed} passed, {totals.failed} failed, {totals.errors} errors"
    counts += f", {totals.skipped} skipped" + (f", {totals.flaky} flaky" if totals.flaky else "")
    executed = totals.total - totals.skipped
    if executed < gate.min_tests:
        reason = f"only {executed} test(s) ran, expected at least {gate.min_tests} ({counts})"
        return _result(gate.label, GateKind.TESTS, False, reason, metrics=metrics, details=details)
    if len(counted) > gate.max_failures:
        names = _names([c.display_name for c in counted])
        reason = f"{len(counted)} failing test(s) > max {gate.max_failures}: {names} ({counts})"
        return _result(gate.label, GateKind.TESTS, False, reason, metrics=metrics, details=details)
    return _result(gate.label, GateKind.TESTS, True, counts, metrics=metrics, details=details)


def check_coverage(gate: CoverageGate, report: CoverageReport, baseline: CoverageTotals | None) -> GateResult:
    """Line/branch minimums and, with ``no_decrease``, no drop below ``baseline``."""
    totals = report.totals
    metrics: dict[str, float | int | str | None] = {
        "line": round(totals.line, 2),
        "branch": None if totals.branch is None else round(totals.branch, 2),
        "lines_valid": totals.lines_valid,
        "lines_covered": totals.lines_covered,
        "branches_valid": totals.branches_valid,
        "branches_covered": totals.branches_covered,
        "baseline_line": None if baseline is None else round(baseline.line, 2),
        "baseline_branch": None if baseline is None or baseline.branch is None else round(baseline.branch, 2),
    }
    summary = f"line {totals.line:.2f}%"
    if totals.branch is not None:
        summary += f", branch {totals.branch:.2f}%"
    # Every comparison is made at the displayed precision (two decimals), so a reason never reads
    # "90.00% < min 90%" and 90.004% vs 90.001% is not a "decrease".
    line = round(totals.line, 2)
    branch = None if totals.branch is None else round(totals.branch, 2)
    problems: list[str] = []
    if gate.min_line is not None and line < gate.min_line:
        problems.append(f"line coverage {totals.line:.2f}% < min {gate.min_line:g}%")
    if gate.min_branch is not None:
        if totals.branch is None:
            problems.append(
                "min_branch is set but the report has no branch data (measure branches, e.g. --branch)"
            )
        elif branch is not None and branch < gate.min_branch:
            problems.append(f"branch coverage {totals.branch:.2f}% < min {gate.min_branch:g}%")
    if gate.no_decrease:
        if baseline is None:
            summary += " (no baseline coverage to compare)"
        else:
            if line < round(baseline.line, 2):
                problems.append(f"line coverage decreased {baseline.line:.2f}% -> {totals.line:.2f}%")
            if baseline.branch is not None and branch is not None and branch < round(baseline.branch, 2):
                problems.append(f"branch coverage decreased {baseline.branch:.2f}% -> {totals.branch:.2f}%")
            summary += f" (baseline line {baseline.line:.2f}%)"
    if problems:
        return _result(gate.label, GateKind.COVERAGE, False, "; ".join(problems), metrics=metrics)
    return _result(gate.label, GateKind.COVERAGE, True, summary, metrics=metrics)


def check_benchmarks(
    gate: BenchmarksGate, current: BenchmarkReport, baseline: BenchmarkReport | None, *, seed: int = 0
) -> GateResult:
    """Fail only on a statistically clear regression beyond ``max_regression``; warn when too noisy."""
    if baseline is None:
        reason = (
            f"no baseline results for '{gate.baseline}': {len(current.benchmarks)} benchmark(s) not compared"
        )
        return GateResult(gate.label, GateKind.BENCHMARKS, GateStatus.WARNING, reason)
    base = baseline.by_name()
    rows: list[BenchmarkComparison] = []
    for name, bench in current.by_name().items():
        if name not in base:
            rows.append(BenchmarkComparison(name, Verdict.NEW, current=bench.median, note="no baseline"))
            continue
        rows.append(
            compare(
                base[name], bench, max_regression=gate.max_regression, confidence=gate.confidence, seed=seed
            )
        )
    seen = {r.name for r in rows}
    rows.extend(
        BenchmarkComparison(name, Verdict.MISSING, baseline=b.median, note="not in current results")
        for name, b in base.items()
        if name not in seen
    )
    by = {v: [r for r in rows if r.verdict is v] for v in Verdict}
    compared = len(rows) - len(by[Verdict.NEW]) - len(by[Verdict.MISSING])
    metrics: dict[str, Metric] = {v.value: len(by[v]) for v in Verdict}
    metrics["max_regression"] = gate.max_regression
    threshold = f"{gate.max_regression:g}%"
    status = GateStatus.PASSED
    if by[Verdict.REGRESSION]:
        status = GateStatus.FAILED
        names = _names([r.describe() for r in by[Verdict.REGRESSION]])
        count = len(by[Verdict.REGRESSION])
        reason = f"{count} of {compared} benchmark(s) slower by more than {threshold}: {names}"
    elif by[Verdict.INCONCLUSIVE]:
        status = GateStatus.WARNING
        names = _names([r.describe() for r in by[Verdict.INCONCLUSIVE]])
        reason = f"inconclusive (too noisy) for {len(by[Verdict.INCONCLUSIVE])} of {compared}: {names}"
    elif compared == 0:
        status = GateStatus.WARNING
        reason = f"no benchmark in common with baseline '{gate.baseline}'"
    else:
        reason = f"no regression beyond {threshold} in {compared} benchmark(s)"
        if by[Verdict.IMPROVED]:
            reason += f", {len(by[Verdict.IMPROVED])} faster"
        if by[Verdict.NEW]:
            reason += f", {len(by[Verdict.NEW])} new"
    return GateResult(
        gate.label, GateKind.BENCHMARKS, status, reason, metrics=metrics, benchmarks=tuple(rows)
    )


def _severity(raw: str) -> Severity:
    """A finding's severity; anything unrecognised is UNKNOWN, which never hides (it ranks above critical)."""
    try:
        return Severity(raw.strip().lower())
    except ValueError:
        return Severity.UNKNOWN


def check_vulnerabilities(gate: VulnerabilitiesGate, findings: Sequence[VulnerabilityFinding]) -> GateResult:
    """No finding (outside ``ignore``) more severe than ``max_severity``."""
    ignored = set(gate.ignore)
    open_findings = [f for f in findings if f.id not in ignored]
    above = [f for f in open_findings if _severity(f.severity).rank > gate.severity.rank]
    counts = {s.value: sum(1 for f in open_findings if _severity(f.severity) is s) for s in Severity}
    metrics = {"findings": len(open_findings), "ignored": len(findings) - len(open_findings)} | counts
    details = tuple(f"{f.severity or 'unrated'}: {f.id} in {f.package}" for f in above)
    if above:
        names = _names([f"{f.id} ({f.package}, {f.severity or 'unrated'})" for f in above])
        reason = (
            f"{_count(len(above), 'vulnerability', 'vulnerabilities')} above {gate.max_severity}: {names}"
        )
        return _result(gate.label, GateKind.VULNERABILITIES, False, reason, metrics=metrics, details=details)
    known = _count(len(open_findings), "known vulnerability", "known vulnerabilities")
    reason = f"{known}, none above {gate.max_severity}"
    return _result(gate.label, GateKind.VULNERABILITIES, True, reason, metrics=metrics)


def check_licenses(gate: LicensesGate, findings: Sequence[LicenseFinding]) -> GateResult:
    """No ``denied`` license; ``review``/``unknown`` verdicts warn (unless ``warn_on_review`` is off)."""
    verdicts = [(f, f.verdict.strip().lower()) for f in findings]
    denied = [f for f, v in verdicts if v == "denied"]
    review = [f for f, v in verdicts if v not in ("allowed", "denied")]
    metrics: dict[str, Metric] = {
        "packages": len(findings),
        "denied": len(denied),
        "review": len(review),
        "policy": gate.policy,
    }
    details = tuple(f"denied: {f.package} ({f.license})" for f in denied) + tuple(
        f"review: {f.package} ({f.license or 'no license'})" for f in review
    )
    if denied:
        names = _names([f"{f.package} ({f.license})" for f in denied])
        reason = f"{len(denied)} package(s) with a license denied by policy '{gate.policy}': {names}"
        return _result(gate.label, GateKind.LICENSES, False, reason, metrics=metrics, details=details)
    if review and gate.warn_on_review:
        names = _names([f"{f.package} ({f.license or 'no license'})" for f in review])
        reason = f"{len(review)} package(s) need license review under policy '{gate.policy}': {names}"
        return GateResult(
            gate.label, GateKind.LICENSES, GateStatus.WARNING, reason, metrics=dict(metrics), details=details
        )
    reason = f"{len(findings)} package(s) allowed by license policy '{gate.policy}'"
    return _result(gate.label, GateKind.LICENSES, True, reason, metrics=metrics, details=details)


def check_sarif(gate: SarifGate, report: SarifReport) -> GateResult:
    """No result whose level is above ``max_level``."""
    limit = SarifLevel(gate.max_level)
    above = [r for r in report.results if r.level.rank > limit.rank]
    counts = {level.value: sum(1 for r in report.results if r.level is level) for level in SarifLevel}
    metrics = {"results": len(report.results), "suppressed": report.suppressed} | counts
    details = tuple(f"{r.level.value}: {r.tool} {r.rule_id} at {r.location}: {r.message}" for r in above)
    if above:
        names = _names([f"{r.rule_id} at {r.location}" if r.location else r.rule_id for r in above])
        reason = f"{len(above)} result(s) above level {limit.value}: {names}"
        return _result(gate.label, GateKind.SARIF, False, reason, metrics=metrics, details=details)
    reason = f"{len(report.results)} result(s), none above level {limit.value}"
    if report.suppressed:
        reason += f" ({report.suppressed} suppressed)"
    return _result(gate.label, GateKind.SARIF, True, reason, metrics=metrics)


def check_duration(gate: DurationGate, seconds: float) -> GateResult:
    """The measured duration is at most ``max``."""
    metrics = {"seconds": round(seconds, 3), "max_seconds": gate.max}
    took, limit = format_duration(seconds), format_duration(gate.max)
    if seconds > gate.max:
        return _result(gate.label, GateKind.DURATION, False, f"took {took} > max {limit}", metrics=metrics)
    return _result(gate.label, GateKind.DURATION, True, f"took {took} (max {limit})", metrics=metrics)


def check_artifact_size(gate: ArtifactSizeGate, sizes: Mapping[str, int]) -> GateResult:
    """The total size of the matched files is at most ``max``."""
    total = sum(sizes.values())
    metrics = {"bytes": total, "max_bytes": gate.max, "files": len(sizes)}
    largest = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    details = tuple(f"{format_size(size)}: {name}" for name, size in largest)
    summary = f"{format_size(total)} in {len(sizes)} file(s)"
    if total > gate.max:
        names = _names([f"{n} ({format_size(s)})" for n, s in largest])
        reason = f"{summary} > max {format_size(gate.max)}; largest: {names}"
        return _result(gate.label, GateKind.ARTIFACT_SIZE, False, reason, metrics=metrics, details=details)
    reason = f"{summary} (max {format_size(gate.max)})"
    return _result(gate.label, GateKind.ARTIFACT_SIZE, True, reason, metrics=metrics, details=details)


__all__ = [
    "LicenseFinding",
    "VulnerabilityFinding",
    "check_artifact_size",
    "check_benchmarks",
    "check_coverage",
    "check_duration",
    "check_licenses",
    "check_sarif",
    "check_tests",
    "check_vulnerabilities",
]
