"""The Markdown run summary a reviewer reads."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from gatestools import write

from buildyard.gates import (
    GateContext,
    JobRow,
    evaluate,
    find_flaky,
    load_junit,
    parse_gates,
    render_summary,
    results_from_junit,
    triage_failures,
)
from buildyard.gates.reports import CoverageTotals


def test_summary_lists_jobs_gates_tests_coverage_benchmarks(
    tmp_path: Path, junit_from_pytest: Path, coverage_reports: dict[str, Path]
) -> None:
    shutil.copy(junit_from_pytest, tmp_path / "junit.xml")
    shutil.copy(coverage_reports["lcov"], tmp_path / "cov.lcov")
    write(
        tmp_path / "base.json",
        '{"benchmarks": [{"name": "parse|json", "samples": [1, 1.01, 0.99, 1, 1.02]}]}',
    )
    write(
        tmp_path / "cur.json",
        '{"benchmarks": [{"name": "parse|json", "samples": [1.5, 1.52, 1.49, 1.5, 1.51]}]}',
    )
    gates = parse_gates(
        [
            {"tests": {"junit": "junit.xml", "max_failures": 5}},
            {"coverage": {"report": "cov.lcov", "no_decrease": True}},
            {"benchmarks": {"results": "cur.json", "baseline": "base.json"}},
        ]
    )
    results = evaluate(
        gates, GateContext(root=tmp_path, coverage_baseline=CoverageTotals(line=99.0, branch=50.0))
    )
    now = datetime(2026, 11, 23, tzinfo=UTC)
    current = results_from_junit(load_junit(tmp_path, ["junit.xml"]), commit="c2", time=now)
    baseline = [x for x in current if x.name != "test_fails"]
    md = render_summary(
        title="run 42",
        status="failed",
        jobs=[
            JobRow("build", "success", 12.5),
            JobRow("lint", "cached", 0.2, cached=True),
            JobRow("deploy", "skipped", None, note="gate benchmarks failed"),
        ],
        gates=results,
        triage=triage_failures(current, baseline),
        flaky=find_flaky(current, now=now),
    )
    assert md.startswith("# run 42: failed\n")
    assert "3 job(s), 1 from cache." in md
    assert "| deploy | skipped | - | gate benchmarks failed |" in md
    assert "| build | success | 12.5s |   |" in md
    assert "3 gate(s): 2 failed, 0 warning(s)." in md
    assert "| coverage | ❌ failed | line coverage decreased 99.00% -> " in md
    assert "8 tests: 4 passed, 1 failed, 1 errors, 2 skipped, 1 flaky (passed on rerun)." in md
    assert "**New failures** (passing on the baseline):\n\n- `test_sample::test_fails`" in md
    assert "Known failures (also failing on the baseline):\n\n- `test_sample::test_setup_error`" in md
    assert "- `test_sample::test_flaky_once` (1 passed, 1 failed)" in md
    assert "## Coverage\n\nLine coverage " in md and "pts vs baseline 99.00%" in md
    assert "| benchmark | baseline | current | change | CI | verdict |" in md
    assert "| parse\\|json | 1s | 1.5s | +50.0% | [+" in md  # pipes in names are escaped
    assert "regression: slower by more than 5%" in md


def test_summary_of_nothing_is_just_a_title() -> None:
    assert render_summary() == "# buildyard run\n"
