"""Rendering for reviewers: table rows for gates and benchmarks, and the Markdown run summary.

Pure: values in, strings out. The CLI and the engine's ``--summary FILE`` both use these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from buildyard.gates.analytics import FailureTriage, FlakyTest
from buildyard.gates.reports.model import CoverageTotals, TestTotals
from buildyard.gates.results import GateResult, GateStatus
from buildyard.gates.stats import BenchmarkComparison
from buildyard.gates.units import format_time
from buildyard.spec.durations import format_duration
from buildyard.spec.gates import GateKind

GATE_HEADER = ("gate", "status", "reason")
BENCHMARK_HEADER = ("benchmark", "baseline", "current", "change", "CI", "verdict")
_STATUS_MARK = {
    GateStatus.PASSED: "✅ passed",
    GateStatus.WARNING: "⚠️ warning",
    GateStatus.FAILED: "❌ failed",
}


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job line of the summary (the engine fills it from its outcomes)."""

    name: str
    status: str
    duration: float | None = None
    cached: bool = False
    note: str = ""


def gate_rows(results: Sequence[GateResult]) -> list[tuple[str, str, str]]:
    """(gate, status, reason) per result."""
    return [(r.gate, r.status.value, r.reason) for r in results]


def benchmark_rows(rows: Sequence[BenchmarkComparison]) -> list[tuple[str, str, str, str, str, str]]:
    """(benchmark, baseline, current, change, CI, verdict) per comparison, formatted."""
    out = []
    for row in rows:
        baseline = format_time(row.baseline) if row.baseline is not None else "-"
        current = format_time(row.current) if row.current is not None else "-"
        change = f"{row.change:+.1f}%" if row.change is not None else "-"
        ci = (
            f"[{row.ci_low:+.1f}%, {row.ci_high:+.1f}%]"
            if row.ci_low is not None and row.ci_high is not None
            else "-"
        )
        verdict = row.verdict.value
        if row.note:
            verdict = row.note if row.note.startswith(verdict) else f"{verdict}: {row.note}"
        out.append((row.name, baseline, current, change, ci, verdict))
    return out


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ").strip() or " "


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def _tests_from_gates(gates: Sequence[GateResult]) -> TestTotals | None:
    for result in gates:
        m = result.metrics
        if result.kind is GateKind.TESTS and "total" in m:
            return TestTotals(
                total=int(m["total"] or 0),
                passed=int(m.get("passed") or 0),
                failed=int(m.get("failed") or 0),
                errors=int(m.get("errors") or 0),
                skipped=int(m.get("skipped") or 0),
                flaky=int(m.get("flaky") or 0),
                duration=float(m.get("duration") or 0.0),
            )
    return None


def _coverage_from_gates(gates: Sequence[GateResult]) -> tuple[CoverageTotals | None, CoverageTotals | None]:
    for result in gates:
        m = result.metrics
        if result.kind is GateKind.COVERAGE and isinstance(m.get("line"), float | int):
            branch = m.get("branch")
            current = CoverageTotals(
                line=float(m["line"] or 0), branch=float(branch) if branch is not None else None
            )
            base_line, base_branch = m.get("baseline_line"), m.get("baseline_branch")
            baseline = None
            if base_line is not None:
                baseline = CoverageTotals(
                    line=float(base_line), branch=float(base_branch) if base_branch is not None else None
                )
            return current, baseline
    return None, None


def _delta(current: float, baseline: float | None) -> str:
    if baseline is None:
        return ""
    diff = current - baseline
    return f" ({diff:+.2f} pts vs baseline {baseline:.2f}%)" if abs(diff) >= 0.005 else " (unchanged)"


def render_summary(
    *,
    title: str = "buildyard run",
    status: str | None = None,
    jobs: Sequence[JobRow] = (),
    gates: Sequence[GateResult] = (),
    tests: TestTotals | None = None,
    triage: FailureTriage | None = None,
    coverage: CoverageTotals | None = None,
    coverage_baseline: CoverageTotals | None = None,
    flaky: Sequence[FlakyTest] = (),
) -> str:
    """The Markdown summary a reviewer reads: jobs, gates, tests, coverage, benchmarks.

    Test counts and coverage default to what the ``tests``/``coverage`` gate results measured.
    """
    parts = [f"# {title}" + (f": {status}" if status else "")]
    if jobs:
        cached = sum(1 for j in jobs if j.cached)
        parts.append(f"## Jobs\n\n{len(jobs)} job(s), {cached} from cache.\n")
        rows = [
            (
                j.name,
                j.status + (" (cached)" if j.cached and "cached" not in j.status else ""),
                format_duration(j.duration) if j.duration is not None else "-",
                j.note,
            )
            for j in jobs
        ]
        parts.append(markdown_table(("job", "status", "duration", "note"), rows))
    if gates:
        failed = sum(1 for g in gates if g.failed)
        warned = sum(1 for g in gates if g.status is GateStatus.WARNING)
        parts.append(f"## Gates\n\n{len(gates)} gate(s): {failed} failed, {warned} warning(s).\n")
        parts.append(markdown_table(GATE_HEADER, [(g.gate, _STATUS_MARK[g.status], g.reason) for g in gates]))
    tests = tests or _tests_from_gates(gates)
    if tests is not None or triage is not None or flaky:
        parts.append("## Tests\n")
        if tests is not None:
            line = (
                f"{tests.total} tests: {tests.passed} passed, {tests.failed} failed, {tests.errors} errors, "
                f"{tests.skipped} skipped"
            )
            if tests.flaky:
                line += f", {tests.flaky} flaky (passed on rerun)"
            parts.append(line + ".")
        if triage is not None:
            if triage.new:
                parts.append("**New failures** (passing on the baseline):\n")
                parts.append("\n".join(f"- `{_name(t)}`" for t in triage.new))
            if triage.known:
                parts.append("Known failures (also failing on the baseline):\n")
                parts.append("\n".join(f"- `{_name(t)}`" for t in triage.known))
            if triage.fixed:
                parts.append("Fixed since the baseline:\n")
                parts.append("\n".join(f"- `{_name(t)}`" for t in triage.fixed))
        if flaky:
            parts.append("Flaky tests (passed and failed on the same commit):\n")
            parts.append(
                "\n".join(f"- `{f.display_name}` ({f.passes} passed, {f.failures} failed)" for f in flaky)
            )
    gate_coverage, gate_baseline = _coverage_from_gates(gates)
    coverage = coverage or gate_coverage
    coverage_baseline = coverage_baseline or gate_baseline
    if coverage is not None:
        base_line = coverage_baseline.line if coverage_baseline else None
        line = f"Line coverage {coverage.line:.2f}%{_delta(coverage.line, base_line)}"
        if coverage.branch is not None:
            base_branch = coverage_baseline.branch if coverage_baseline else None
            line += f"; branch coverage {coverage.branch:.2f}%{_delta(coverage.branch, base_branch)}"
        parts.append(f"## Coverage\n\n{line}.")
    benchmarks = [row for g in gates for row in g.benchmarks]
    if benchmarks:
        parts.append("## Benchmarks\n")
        parts.append(markdown_table(BENCHMARK_HEADER, benchmark_rows(benchmarks)))
    return "\n\n".join(parts).replace("\n\n\n", "\n\n") + "\n"


def _name(test: tuple[str, str, str]) -> str:
    _, classname, name = test
    return f"{classname}::{name}" if classname else name
