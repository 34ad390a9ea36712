"""Evaluating gates: load the reports a gate names, call its pure check, apply ``allow_failure``.

The engine (and ``buildyard gates check``) call :func:`evaluate` with the validated gates and a
:class:`GateContext` carrying what is not on disk: baselines from history, findings of the deps
scan, the measured duration. A report that is missing or malformed fails its gate with a message
naming the file -- never a silent pass, never an exception.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from buildyard.gates.checks import (
    LicenseFinding,
    VulnerabilityFinding,
    check_artifact_size,
    check_benchmarks,
    check_coverage,
    check_duration,
    check_licenses,
    check_sarif,
    check_tests,
    check_vulnerabilities,
)
from buildyard.gates.errors import ReportError
from buildyard.gates.reports import (
    BenchmarkReport,
    CoverageReport,
    CoverageTotals,
    JUnitReport,
    SarifReport,
    parse_benchmarks,
    parse_coverage,
    parse_junit,
    parse_sarif,
)
from buildyard.gates.results import GateResult, GateStatus
from buildyard.spec.gates import (
    AnyGate,
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

#: The vulnerabilities gate without scan results, in ``run`` and in ``gates check`` alike (README).
NO_VULNERABILITY_DB = (
    "no vulnerability database: set BUILDYARD_OSV_DB to a directory of OSV dumps (<Ecosystem>/all.zip) "
    "or run `buildyard deps db update`"
)


@dataclass(frozen=True)
class GateContext:
    """Everything a gate needs besides its report files.

    - ``root``: directory the gates' paths and globs are relative to (the project or job workspace);
    - ``coverage_baseline``: coverage of the baseline run, for ``no_decrease`` (None: nothing to compare);
    - ``benchmark_baselines``: baseline benchmark results keyed by the gate's ``baseline`` value
      (a branch name). A ``baseline`` naming an existing file under ``root`` is read from that file;
    - ``vulnerabilities`` / ``licenses``: findings of the deps scan (None: no scan ran -> gate fails;
      the vulnerabilities gate fails whatever ``unavailable`` says: no database is no verdict);
    - ``duration``: seconds the pipeline (or, for a job's gates, the job) took (None -> gate fails);
    - ``seed``: seed of the benchmark bootstrap, so a verdict is reproducible;
    - ``unavailable``: status of a gate whose non-file input (findings, duration) is None: FAILED in
      a run; ``buildyard gates check`` uses WARNING since nothing ran.
    """

    root: Path
    coverage_baseline: CoverageTotals | None = None
    benchmark_baselines: Mapping[str, BenchmarkReport] = field(default_factory=dict)
    vulnerabilities: Sequence[VulnerabilityFinding] | None = None
    licenses: Sequence[LicenseFinding] | None = None
    duration: float | None = None
    seed: int = 0
    unavailable: GateStatus = GateStatus.FAILED


def evaluate(gates: Sequence[AnyGate], context: GateContext) -> list[GateResult]:
    """Evaluate every gate in order; a failure of one never stops the others."""
    return [evaluate_gate(gate, context) for gate in gates]


def evaluate_gate(gate: AnyGate, context: GateContext) -> GateResult:
    """Evaluate one gate; ``allow_failure`` turns FAILED into WARNING (marked ``allowed_failure``)."""
    try:
        result = _dispatch(gate, context)
    except ReportError as exc:
        result = GateResult(gate.label, GateKind(gate.kind), GateStatus.FAILED, str(exc))
    if result.failed and gate.allow_failure:
        return GateResult(
            gate=result.gate,
            kind=result.kind,
            status=GateStatus.WARNING,
            reason=f"{result.reason} (allowed to fail)",
            metrics=result.metrics,
            details=result.details,
            benchmarks=result.benchmarks,
            allowed_failure=True,
        )
    return result


def baselines_needed(gates: Sequence[AnyGate], root: Path) -> set[str]:
    """Baseline refs (branch names) the engine must fetch from history for these gates."""
    return {
        g.baseline for g in gates if isinstance(g, BenchmarksGate) and not _baseline_file(root, g.baseline)
    }


def _dispatch(gate: AnyGate, context: GateContext) -> GateResult:
    root = context.root
    if isinstance(gate, TestsGate):
        return check_tests(gate, load_junit(root, gate.junit))
    if isinstance(gate, CoverageGate):
        return check_coverage(gate, load_coverage(root, gate.report, gate.format), context.coverage_baseline)
    if isinstance(gate, BenchmarksGate):
        current = load_benchmarks(root, gate.results, gate.format)
        file = _baseline_file(root, gate.baseline)
        baseline = (
            load_benchmarks(root, (gate.baseline,), gate.format)
            if file
            else context.benchmark_baselines.get(gate.baseline)
        )
        return check_benchmarks(gate, current, baseline, seed=context.seed)
    if isinstance(gate, SarifGate):
        return check_sarif(gate, load_sarif(root, gate.files))
    if isinstance(gate, ArtifactSizeGate):
        return check_artifact_size(gate, _sizes(root, gate.paths))
    if isinstance(gate, VulnerabilitiesGate):
        if context.vulnerabilities is None:  # fails in a run and in a check alike
            return GateResult(gate.label, GateKind(gate.kind), GateStatus.FAILED, NO_VULNERABILITY_DB)
        return check_vulnerabilities(gate, context.vulnerabilities)
    if isinstance(gate, LicensesGate):
        if context.licenses is None:
            return _missing_input(gate, context, "no license verdicts (run the dependency scan first)")
        return check_licenses(gate, context.licenses)
    if isinstance(gate, DurationGate):
        if context.duration is None:
            return _missing_input(gate, context, "duration unknown (the pipeline has not run)")
        return check_duration(gate, context.duration)
    raise AssertionError(f"unhandled gate kind {gate.kind}")  # pragma: no cover - exhaustive union


def _missing_input(gate: AnyGate, context: GateContext, reason: str) -> GateResult:
    return GateResult(gate.label, GateKind(gate.kind), context.unavailable, reason)


def _baseline_file(root: Path, baseline: str) -> bool:
    return (root / baseline).is_file()


def expand(root: Path, patterns: Sequence[str]) -> list[Path]:
    """Files matching ``patterns`` (globs, ``**`` recursive) under ``root``, sorted, deduplicated.

    Raises ``ReportError`` naming the pattern when one matches nothing.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        files = [p for p in _glob(root, pattern) if p.is_file()]
        if not files:
            raise ReportError(str(root / pattern), "no report file matches this path")
        found.update(dict.fromkeys(files))
    return list(found)


def load_junit(root: Path, patterns: Sequence[str]) -> JUnitReport:
    """Parse and merge every JUnit file matching ``patterns``."""
    reports = [parse_junit(p) for p in expand(root, patterns)]
    merged = reports[0]
    for report in reports[1:]:
        merged = merged.merged(report)
    return merged


def load_coverage(root: Path, patterns: Sequence[str], fmt: str = "auto") -> CoverageReport:
    """Parse and merge every coverage report matching ``patterns``."""
    reports = [parse_coverage(p, fmt) for p in expand(root, patterns)]
    merged = reports[0]
    for report in reports[1:]:
        merged = merged.merged(report)
    return merged


def load_benchmarks(root: Path, patterns: Sequence[str], fmt: str = "auto") -> BenchmarkReport:
    """Parse and merge every benchmark result file matching ``patterns``."""
    reports = [parse_benchmarks(p, fmt) for p in expand(root, patterns)]
    merged = reports[0]
    for report in reports[1:]:
        merged = merged.merged(report)
    return merged


def load_sarif(root: Path, patterns: Sequence[str]) -> SarifReport:
    """Parse and merge every SARIF log matching ``patterns``."""
    reports = [parse_sarif(p) for p in expand(root, patterns)]
    merged = reports[0]
    for report in reports[1:]:
        merged = merged.merged(report)
    return merged


def _glob(root: Path, pattern: str) -> list[Path]:
    # glob.glob, not Path.glob: patterns may be absolute and "**" must match zero directories.
    return [root / m for m in sorted(glob.glob(pattern, root_dir=root, recursive=True))]  # noqa: PTH207


def _sizes(root: Path, patterns: Sequence[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for pattern in patterns:
        matches = _glob(root, pattern)
        if not matches:
            raise ReportError(str(root / pattern), "no artifact matches this path")
        for path in matches:
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for file in files:
                sizes[str(file.relative_to(root)) if file.is_relative_to(root) else str(file)] = (
                    file.stat().st_size
                )
    return sizes
