"""Benchmark results: pytest-benchmark JSON, Google Benchmark JSON, hyperfine JSON, generic JSON.

Every parser yields times in **seconds**, lower is better. The generic format, for tools that have
none of their own, is::

    {"benchmarks": [{"name": "parse-large", "unit": "s", "samples": [0.12, 0.118, 0.121]}]}

``unit`` is one of ``s``, ``ms``, ``us``, ``ns``; ``samples`` holds at least one positive number
(one per measured round; more rounds give the comparison statistical power).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from buildyard.gates.errors import ReportError
from buildyard.gates.reports._io import parse_json, read_bytes
from buildyard.gates.reports.model import Benchmark, BenchmarkReport

BENCHMARK_FORMATS = ("pytest-benchmark", "google-benchmark", "hyperfine", "generic")
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def parse_benchmarks(path: Path, fmt: str = "auto") -> BenchmarkReport:
    """Parse a benchmark result file; ``fmt`` is one of :data:`BENCHMARK_FORMATS` or ``auto``."""
    data = parse_json(path, read_bytes(path))
    if fmt == "auto":
        fmt = _sniff(path, data)
    parsers = {
        "pytest-benchmark": _pytest_benchmark,
        "google-benchmark": _google_benchmark,
        "hyperfine": _hyperfine,
        "generic": _generic,
    }
    if fmt not in parsers:
        choices = ", ".join(BENCHMARK_FORMATS)
        raise ReportError(str(path), f"unknown benchmark format {fmt!r} (use one of {choices})")
    if not isinstance(data, dict):
        raise ReportError(str(path), f"expected a JSON object at the top level, got {type(data).__name__}")
    benchmarks = parsers[fmt](path, data)
    if not benchmarks:
        raise ReportError(str(path), "contains no benchmarks")
    return BenchmarkReport(sources=(str(path),), format=fmt, benchmarks=tuple(benchmarks))


def _sniff(path: Path, data: Any) -> str:
    if isinstance(data, dict):
        if isinstance(data.get("results"), list):
            return "hyperfine"
        entries = data.get("benchmarks")
        if isinstance(entries, list):
            first = entries[0] if entries and isinstance(entries[0], dict) else {}
            if "machine_info" in data or "stats" in first:
                return "pytest-benchmark"
            if "context" in data or "real_time" in first:
                return "google-benchmark"
            if "samples" in first:
                return "generic"
    expected = "pytest-benchmark, Google Benchmark, hyperfine or generic JSON"
    raise ReportError(str(path), f"unknown benchmark format (expected {expected})")


def _from_samples(path: Path, name: str, samples: Sequence[Any], scale: float = 1.0) -> Benchmark:
    values = tuple(_positive(path, f"{name}: sample", v) * scale for v in samples)
    if not values:
        raise ReportError(str(path), f"benchmark {name!r} has no samples")
    stddev = statistics.stdev(values) if len(values) > 1 else 0.0
    return Benchmark(
        name=name,
        samples=values,
        median=statistics.median(values),
        mean=statistics.fmean(values),
        stddev=stddev,
        rounds=len(values),
    )


def _positive(path: Path, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ReportError(str(path), f"{what} must be a non-negative number, got {value!r}")
    return float(value)


def _name(path: Path, entry: Any, where: str, *keys: str) -> str:
    if not isinstance(entry, dict):
        raise ReportError(str(path), f"{where} is not an object")
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value:
            return value
    raise ReportError(str(path), f"{where} has no {' or '.join(repr(k) for k in keys)} string")


def _pytest_benchmark(path: Path, data: Mapping[str, Any]) -> list[Benchmark]:
    out: list[Benchmark] = []
    for i, entry in enumerate(_list(path, data, "benchmarks")):
        name = _name(path, entry, f"benchmarks[{i}]", "fullname", "name")
        stats = entry.get("stats")
        if not isinstance(stats, dict):
            raise ReportError(str(path), f"benchmarks[{i}] ({name}) has no 'stats' object")
        raw = stats.get("data")
        if isinstance(raw, list) and raw:
            out.append(_from_samples(path, name, raw))
            continue
        rounds = stats.get("rounds")
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ReportError(str(path), f"benchmarks[{i}] ({name}).stats.rounds must be a positive integer")
        out.append(
            Benchmark(
                name=name,
                samples=(),
                median=_positive(path, f"{name}: stats.median", stats.get("median")),
                mean=_positive(path, f"{name}: stats.mean", stats.get("mean")),
                stddev=_positive(path, f"{name}: stats.stddev", stats.get("stddev", 0.0)),
                rounds=rounds,
            )
        )
    return out


def _google_benchmark(path: Path, data: Mapping[str, Any]) -> list[Benchmark]:
    """Each ``run_type: iteration`` entry is one sample (a repetition); aggregates are ignored
    unless a benchmark has no iteration entries at all (then its mean aggregate is one sample)."""
    samples: dict[str, list[float]] = {}
    aggregates: dict[str, list[float]] = {}
    for i, entry in enumerate(_list(path, data, "benchmarks")):
        name = _name(path, entry, f"benchmarks[{i}]", "run_name", "name")
        if entry.get("error_occurred"):
            detail = entry.get("error_message", "")
            raise ReportError(str(path), f"benchmark {name!r} reported an error: {detail}")
        unit = entry.get("time_unit", "ns")
        if not isinstance(unit, str) or unit not in _UNITS:
            raise ReportError(str(path), f"benchmarks[{i}] ({name}) has unknown time_unit {unit!r}")
        value = _positive(path, f"{name}: real_time", entry.get("real_time")) * _UNITS[unit]
        if entry.get("run_type", "iteration") == "aggregate":
            if entry.get("aggregate_name") == "mean":
                aggregates.setdefault(name, []).append(value)
        else:
            samples.setdefault(name, []).append(value)
    for name, values in aggregates.items():
        samples.setdefault(name, values)
    return [_from_samples(path, name, values) for name, values in samples.items()]


def _hyperfine(path: Path, data: Mapping[str, Any]) -> list[Benchmark]:
    out: list[Benchmark] = []
    for i, entry in enumerate(_list(path, data, "results")):
        name = _name(path, entry, f"results[{i}]", "command")
        times = entry.get("times")
        if not isinstance(times, list):
            raise ReportError(str(path), f"results[{i}] ({name}) has no 'times' list")
        out.append(_from_samples(path, name, times))
    return out


def _generic(path: Path, data: Mapping[str, Any]) -> list[Benchmark]:
    out: list[Benchmark] = []
    for i, entry in enumerate(_list(path, data, "benchmarks")):
        name = _name(path, entry, f"benchmarks[{i}]", "name")
        unit = entry.get("unit", "s")
        if not isinstance(unit, str) or unit not in _UNITS:
            message = f"benchmarks[{i}] ({name}): unknown unit {unit!r} (use s, ms, us or ns)"
            raise ReportError(str(path), message)
        samples = entry.get("samples")
        if not isinstance(samples, list):
            raise ReportError(str(path), f"benchmarks[{i}] ({name}) has no 'samples' list")
        out.append(_from_samples(path, name, samples, _UNITS[unit]))
    return out


def _list(path: Path, data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ReportError(str(path), f"no '{key}' list at the top level")
    return value
