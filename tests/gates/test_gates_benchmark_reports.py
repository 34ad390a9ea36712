"""Benchmark result parsing: real pytest-benchmark and hyperfine output, Google Benchmark, generic JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from gatestools import FIXTURES, hyperfine_json, write

from buildyard.gates.errors import ReportError
from buildyard.gates.reports import parse_benchmarks


def test_pytest_benchmark_with_raw_data(bench_json_reports: dict[str, Path]) -> None:
    report = parse_benchmarks(bench_json_reports["data"])
    assert report.format == "pytest-benchmark"
    raw = {
        b["fullname"]: b["stats"] for b in json.loads(bench_json_reports["data"].read_text())["benchmarks"]
    }
    assert (
        set(report.by_name()) == set(raw) == {"test_bench.py::test_sum_small", "test_bench.py::test_sorted"}
    )
    for name, bench in report.by_name().items():
        assert len(bench.samples) == raw[name]["rounds"] >= 20
        assert bench.median == pytest.approx(raw[name]["median"], rel=1e-9)
        assert bench.mean == pytest.approx(raw[name]["mean"], rel=1e-9)


def test_pytest_benchmark_stats_only(bench_json_reports: dict[str, Path]) -> None:
    report = parse_benchmarks(bench_json_reports["stats"])
    raw = {
        b["fullname"]: b["stats"] for b in json.loads(bench_json_reports["stats"].read_text())["benchmarks"]
    }
    for name, bench in report.by_name().items():
        assert bench.samples == ()
        assert (bench.median, bench.mean, bench.stddev, bench.rounds) == (
            raw[name]["median"],
            raw[name]["mean"],
            raw[name]["stddev"],
            raw[name]["rounds"],
        )


def test_hyperfine_times_are_samples(tmp_path: Path) -> None:
    path = hyperfine_json(tmp_path, "hf.json", ["sleep 0.01", "true"], runs=6)
    report = parse_benchmarks(path)
    assert report.format == "hyperfine"
    benches = report.by_name()
    assert set(benches) == {"sleep 0.01", "true"}
    assert len(benches["sleep 0.01"].samples) == 6
    assert benches["sleep 0.01"].median >= 0.01 > benches["true"].median
    raw = json.loads(path.read_text())["results"][0]
    assert benches[raw["command"]].median == pytest.approx(raw["median"])


def test_google_benchmark_repetitions_and_aggregates_only() -> None:
    # Format: Google Benchmark user guide, "Output Formats" (JSON; run_type iteration/aggregate).
    report = parse_benchmarks(FIXTURES / "google-benchmark.json")
    assert report.format == "google-benchmark"
    copy = report.by_name()["BM_StringCopy/64"]
    assert copy.samples == pytest.approx([25.8e-9, 26.1e-9, 25.9e-9, 26.4e-9, 25.7e-9])
    assert copy.median == pytest.approx(statistics.median([25.8, 26.1, 25.9, 26.4, 25.7]) * 1e-9)
    # Only aggregates (--benchmark_report_aggregates_only): the mean is the one sample, in ms.
    sort = report.by_name()["BM_Sort/1024"]
    assert sort.samples == pytest.approx([1.52e-3])


def test_generic_format_units(tmp_path: Path) -> None:
    path = write(
        tmp_path / "generic.json",
        '{"benchmarks": [{"name": "parse", "unit": "ms", "samples": [10, 12, 11]},'
        ' {"name": "load", "samples": [0.5]}]}',
    )
    report = parse_benchmarks(path)
    assert report.format == "generic"
    assert report.by_name()["parse"].samples == pytest.approx([0.010, 0.012, 0.011])
    assert report.by_name()["parse"].median == pytest.approx(0.011)
    assert report.by_name()["load"].rounds == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"benchmarks": [{"name": "a", "unit": "min", "samples": [1]}]}', r"unknown unit 'min'"),
        (
            '{"benchmarks": [{"name": "a", "samples": [1, -2]}]}',
            r"a: sample must be a non-negative number, got -2",
        ),
        ('{"benchmarks": [{"name": "a", "samples": []}]}', r"benchmark 'a' has no samples"),
        ('{"benchmarks": [{"samples": [1]}]}', r"benchmarks\[0\] has no 'name' string"),
        ('{"results": [{"command": "x"}]}', r"results\[0\] \(x\) has no 'times' list"),
        ('{"benchmarks": []}', r"unknown benchmark format"),
        ("[1, 2]", r"unknown benchmark format"),
        ('{"benchmarks": [\n{"name": "a",,}]}', r"b.json:2: malformed JSON"),
    ],
)
def test_malformed_benchmarks(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        parse_benchmarks(path)
