"""Round trips through the JSON forms the history store keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildyard.gates import GateContext, evaluate, load_benchmarks, parse_gates
from buildyard.gates.reports import parse_coverage
from buildyard.gates.serialize import (
    benchmarks_from_dict,
    benchmarks_to_dict,
    coverage_from_dict,
    coverage_to_dict,
    result_from_dict,
)


def test_round_trips(
    tmp_path: Path, bench_json_reports: dict[str, Path], coverage_reports: dict[str, Path]
) -> None:
    report = load_benchmarks(tmp_path, [str(bench_json_reports["data"])])
    stored = json.loads(json.dumps(benchmarks_to_dict(report)))
    assert benchmarks_from_dict(stored) == report
    gates = parse_gates(
        [
            {"benchmarks": {"results": str(bench_json_reports["data"]), "baseline": "main"}},
            {"coverage": {"report": str(coverage_reports["lcov"]), "min_line": 99}},
        ]
    )
    # A stored report serves as the baseline of a later evaluation: same data, no regression.
    results = evaluate(
        gates, GateContext(root=tmp_path, benchmark_baselines={"main": benchmarks_from_dict(stored)})
    )
    assert {b.verdict.value for b in results[0].benchmarks} <= {"ok", "improved"}
    for result in results:
        assert result_from_dict(json.loads(json.dumps(result.to_dict()))) == result
    totals = parse_coverage(coverage_reports["lcov"]).totals
    assert coverage_from_dict(json.loads(json.dumps(coverage_to_dict(totals)))) == totals


def test_malformed_stored_data() -> None:
    with pytest.raises(ValueError, match="malformed benchmark results"):
        benchmarks_from_dict({"benchmarks": [{"name": "a"}]})
    with pytest.raises(ValueError, match="malformed gate result"):
        result_from_dict({"gate": "x", "kind": "nope", "status": "passed", "reason": ""})
    with pytest.raises(ValueError, match="malformed coverage totals"):
        coverage_from_dict({"branch": 1})
