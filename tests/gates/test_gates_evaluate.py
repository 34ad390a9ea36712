"""Evaluating gates against real report files: pass, fail, warn, and never a silent pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gatestools import FIXTURES, hyperfine_or_skip, run_tool, write

from buildyard.gates import (
    AnyGate,
    GateContext,
    GateKind,
    GateStatus,
    Verdict,
    baselines_needed,
    evaluate,
    evaluate_gate,
    load_benchmarks,
    parse_gates,
)
from buildyard.gates.findings import LicenseVerdict, Vulnerability
from buildyard.gates.reports import CoverageTotals


def gate(kind: str, **options: object) -> AnyGate:
    (parsed,) = parse_gates([{kind: options}])
    return parsed


@pytest.fixture
def project(tmp_path: Path, junit_from_pytest: Path, coverage_reports: dict[str, Path]) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    shutil.copy(junit_from_pytest, reports / "pytest.xml")
    shutil.copy(coverage_reports["cobertura"], tmp_path / "coverage.xml")
    shutil.copy(FIXTURES / "sarif-multi-tool.sarif", reports / "codeql.sarif")
    return tmp_path


def test_tests_gate_counts_failures_and_errors(project: Path) -> None:
    ctx = GateContext(root=project)
    result = evaluate_gate(gate("tests", junit="reports/*.xml"), ctx)
    assert result.status is GateStatus.FAILED
    assert result.reason.startswith(
        "2 failing test(s) > max 0: test_sample::test_fails, test_sample::test_setup_error"
    )
    assert result.metrics["flaky"] == 1 and result.metrics["total"] == 8
    assert any(d.startswith("error: test_sample::test_setup_error") for d in result.details)
    assert (
        evaluate_gate(gate("tests", junit="reports/*.xml", max_failures=2), ctx).status is GateStatus.PASSED
    )
    strict = evaluate_gate(gate("tests", junit="reports/*.xml", max_failures=2, allow_flaky=False), ctx)
    assert strict.status is GateStatus.FAILED and "3 failing test(s)" in strict.reason
    allowed = evaluate_gate(gate("tests", junit="reports/*.xml", allow_failure=True), ctx)
    assert allowed.status is GateStatus.WARNING and allowed.allowed_failure
    assert allowed.reason.endswith("(allowed to fail)")


def test_tests_gate_requires_tests_to_run(tmp_path: Path) -> None:
    write(tmp_path / "empty.xml", '<testsuites><testsuite name="s" tests="0"/></testsuites>')
    result = evaluate_gate(gate("tests", junit="empty.xml"), GateContext(root=tmp_path))
    assert result.status is GateStatus.FAILED and result.reason.startswith("only 0 test(s) ran")


def test_missing_and_malformed_reports_fail_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "reports/bad.xml", "<testsuite name='x'>\n<testcase name='a'>\n")
    ctx = GateContext(root=tmp_path)
    results = evaluate(
        [
            gate("tests", junit="reports/*.xml"),
            gate("tests", junit="missing/*.xml"),
            gate("coverage", report="coverage.xml", min_line=1),
            gate("sarif", files="reports/bad.xml"),
            gate("benchmarks", results="reports/bad.xml", baseline="main"),
        ],
        ctx,
    )
    assert [r.status for r in results] == [GateStatus.FAILED] * 5
    assert results[0].reason.startswith(f"{tmp_path}/reports/bad.xml:3: malformed XML")
    assert results[1].reason == f"{tmp_path}/missing/*.xml: no report file matches this path"
    assert results[2].reason == f"{tmp_path}/coverage.xml: no report file matches this path"
    assert results[3].reason.startswith(f"{tmp_path}/reports/bad.xml:1: malformed JSON")
    assert "malformed JSON" in results[4].reason


def test_coverage_gate_thresholds_and_no_decrease(project: Path) -> None:
    line = evaluate_gate(gate("coverage", report="coverage.xml"), GateContext(root=project)).metrics["line"]
    assert isinstance(line, float) and 0 < line < 100
    ctx = GateContext(root=project)
    assert (
        evaluate_gate(gate("coverage", report="coverage.xml", min_line=line - 1), ctx).status
        is GateStatus.PASSED
    )
    low = evaluate_gate(gate("coverage", report="coverage.xml", min_line=line + 1, min_branch=99), ctx)
    assert low.status is GateStatus.FAILED
    assert low.reason.startswith(f"line coverage {line:.2f}% < min {line + 1:g}%; branch coverage")
    higher = GateContext(root=project, coverage_baseline=CoverageTotals(line=line + 0.5, branch=None))
    dropped = evaluate_gate(gate("coverage", report="coverage.xml", no_decrease=True), higher)
    assert dropped.status is GateStatus.FAILED
    assert dropped.reason == f"line coverage decreased {line + 0.5:.2f}% -> {line:.2f}%"
    same = GateContext(root=project, coverage_baseline=CoverageTotals(line=line, branch=None))
    assert (
        evaluate_gate(gate("coverage", report="coverage.xml", no_decrease=True), same).status
        is GateStatus.PASSED
    )
    first = evaluate_gate(gate("coverage", report="coverage.xml", no_decrease=True), ctx)
    assert first.status is GateStatus.PASSED and "no baseline coverage to compare" in first.reason


def test_coverage_min_branch_without_branch_data_fails(tmp_path: Path) -> None:
    write(tmp_path / "lcov.info", "SF:a.c\nDA:1,1\nDA:2,0\nend_of_record\n")
    result = evaluate_gate(gate("coverage", report="lcov.info", min_branch=50), GateContext(root=tmp_path))
    assert result.status is GateStatus.FAILED and "has no branch data" in result.reason


def _hyperfine(work: Path, out: str, command: str, runs: int = 10) -> None:
    (work / out).parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [
            hyperfine_or_skip(),
            "--runs",
            str(runs),
            "-N",
            "--style",
            "none",
            "-n",
            "sleep-bench",
            "--export-json",
            str(work / out),
            command,
        ],
        work,
    )


def test_benchmarks_gate_with_real_hyperfine(tmp_path: Path) -> None:
    _hyperfine(tmp_path, "bench/main.json", "sleep 0.01")
    _hyperfine(tmp_path, "bench/slow.json", "sleep 0.06")
    _hyperfine(tmp_path, "bench/same.json", "sleep 0.01")
    ctx = GateContext(root=tmp_path)
    slow = evaluate_gate(
        gate("benchmarks", results="bench/slow.json", baseline="bench/main.json", max_regression="50%"), ctx
    )
    assert slow.status is GateStatus.FAILED
    assert slow.reason.startswith("1 of 1 benchmark(s) slower by more than 50%: sleep-bench +")
    (row,) = slow.benchmarks
    assert row.verdict is Verdict.REGRESSION and row.change is not None and row.change > 100
    same = evaluate_gate(
        gate("benchmarks", results="bench/same.json", baseline="bench/main.json", max_regression="100%"), ctx
    )
    assert same.status is not GateStatus.FAILED
    assert same.benchmarks[0].verdict in (Verdict.OK, Verdict.IMPROVED, Verdict.INCONCLUSIVE)


def test_benchmarks_gate_baseline_from_history_and_noise(tmp_path: Path) -> None:
    write(
        tmp_path / "base.json",
        '{"benchmarks": [{"name": "a", "samples": [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]},'
        ' {"name": "gone", "samples": [1, 1, 1, 1, 1]}]}',
    )
    write(
        tmp_path / "noisy.json",
        '{"benchmarks": [{"name": "a", "samples": [0.7, 1.6, 1.0, 2.1, 0.8, 1.3]},'
        ' {"name": "fresh", "samples": [1, 1, 1, 1, 1]}]}',
    )
    history = {"main": load_benchmarks(tmp_path, ["base.json"])}
    g = gate("benchmarks", results="noisy.json", baseline="main")
    assert baselines_needed([g], tmp_path) == {"main"}
    result = evaluate_gate(g, GateContext(root=tmp_path, benchmark_baselines=history))
    assert result.status is GateStatus.WARNING
    assert result.reason.startswith("inconclusive (too noisy) for 1 of 1: a +")
    assert {r.name: r.verdict for r in result.benchmarks} == {
        "a": Verdict.INCONCLUSIVE,
        "fresh": Verdict.NEW,
        "gone": Verdict.MISSING,
    }
    none = evaluate_gate(g, GateContext(root=tmp_path))
    assert none.status is GateStatus.WARNING and none.reason.startswith("no baseline results for 'main'")


def test_sarif_gate_levels(project: Path) -> None:
    ctx = GateContext(root=project)
    failed = evaluate_gate(gate("sarif", files="reports/*.sarif", max_level="warning"), ctx)
    assert failed.status is GateStatus.FAILED
    assert failed.reason == "1 result(s) above level warning: py/sql-injection at app/db.py:42"
    passed = evaluate_gate(gate("sarif", files="reports/*.sarif", max_level="error"), ctx)
    assert (
        passed.status is GateStatus.PASSED
        and passed.reason == "4 result(s), none above level error (1 suppressed)"
    )
    notes = evaluate_gate(gate("sarif", files="reports/*.sarif", max_level="none"), ctx)
    assert notes.metrics["results"] == 4 and "4 result(s) above level none" in notes.reason


def test_findings_gates(tmp_path: Path) -> None:
    vulns = [
        Vulnerability("GHSA-1", "requests", "HIGH"),
        Vulnerability("CVE-2", "idna", "low"),
        Vulnerability("OSV-3", "rich", ""),
    ]
    ctx = GateContext(
        root=tmp_path,
        vulnerabilities=vulns,
        licenses=[
            LicenseVerdict("a", "MIT", "allowed"),
            LicenseVerdict("b", "GPL-3.0-only", "denied"),
        ],
    )
    result = evaluate_gate(gate("vulnerabilities", max_severity="medium"), ctx)
    assert result.status is GateStatus.FAILED
    assert result.reason == "2 vulnerabilities above medium: GHSA-1 (requests, HIGH), OSV-3 (rich, unrated)"
    ignored = evaluate_gate(gate("vulnerabilities", max_severity="medium", ignore=["GHSA-1", "OSV-3"]), ctx)
    assert ignored.status is GateStatus.PASSED and ignored.metrics["ignored"] == 2
    # An unrated finding never hides (same rule as `deps scan`): it fails even a "critical" threshold...
    critical = evaluate_gate(gate("vulnerabilities", max_severity="critical"), ctx)
    assert critical.status is GateStatus.FAILED and critical.reason.endswith("OSV-3 (rich, unrated)")
    # ...until it is explicitly ignored.
    accepted = evaluate_gate(gate("vulnerabilities", max_severity="critical", ignore=["OSV-3"]), ctx)
    assert accepted.status is GateStatus.PASSED
    licenses = evaluate_gate(gate("licenses"), ctx)
    assert licenses.status is GateStatus.FAILED and "b (GPL-3.0-only)" in licenses.reason
    review = GateContext(root=tmp_path, licenses=[LicenseVerdict("c", "", "unknown")])
    assert evaluate_gate(gate("licenses"), review).status is GateStatus.WARNING
    assert evaluate_gate(gate("licenses", warn_on_review=False), review).status is GateStatus.PASSED


def test_unavailable_inputs_fail_in_a_run_and_warn_in_a_check(tmp_path: Path) -> None:
    gates = [gate("vulnerabilities", max_severity="low"), gate("licenses"), gate("duration", max="1m")]
    assert [r.status for r in evaluate(gates, GateContext(root=tmp_path))] == [GateStatus.FAILED] * 3
    check = GateContext(root=tmp_path, unavailable=GateStatus.WARNING)
    results = evaluate(gates, check)
    # no vulnerability database is no verdict: that gate fails in a check too (issue 19)
    assert [r.status for r in results] == [GateStatus.FAILED, GateStatus.WARNING, GateStatus.WARNING]
    assert results[0].reason.startswith("no vulnerability database: set BUILDYARD_OSV_DB")
    assert results[2].reason == "duration unknown (the pipeline has not run)"


def test_duration_gate() -> None:
    g = gate("duration", max="10m")
    over = evaluate_gate(g, GateContext(root=Path(), duration=605))
    assert over.status is GateStatus.FAILED and over.reason == "took 10m05s > max 10m00s"
    assert evaluate_gate(g, GateContext(root=Path(), duration=42.5)).reason == "took 42.5s (max 10m00s)"


def test_artifact_size_gate(tmp_path: Path) -> None:
    (tmp_path / "dist/wheelhouse").mkdir(parents=True)
    (tmp_path / "dist/app.tar.gz").write_bytes(b"x" * 1500)
    (tmp_path / "dist/wheelhouse/dep.whl").write_bytes(b"y" * 700)
    ctx = GateContext(root=tmp_path)
    ok = evaluate_gate(gate("artifact_size", paths=["dist/*"], max="3KB"), ctx)
    assert ok.status is GateStatus.PASSED and ok.metrics["bytes"] == 2200 and ok.metrics["files"] == 2
    over = evaluate_gate(gate("artifact_size", paths="dist/*", max="2KB"), ctx)
    assert over.status is GateStatus.FAILED
    assert (
        over.reason
        == "2.2KB in 2 file(s) > max 2.0KB; largest: dist/app.tar.gz (1.5KB), dist/wheelhouse/dep.whl (700B)"
    )
    missing = evaluate_gate(gate("artifact_size", paths="build/*.whl", max="1MB"), ctx)
    assert missing.status is GateStatus.FAILED and missing.reason.endswith("no artifact matches this path")
    assert missing.kind is GateKind.ARTIFACT_SIZE
