"""Gate config models: the issue's example, strict units, errors with file:line, embedding."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import yaml
from gatestools import write
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from buildyard.errors import NotFoundError
from buildyard.gates import AnyGate, GateConfigError, load_gates_file, parse_gates, validate_gates
from buildyard.model import Severity
from buildyard.spec.gates import (
    ArtifactSizeGate,
    BenchmarksGate,
    CoverageGate,
    DurationGate,
    LicensesGate,
    SarifGate,
    TestsGate,
    VulnerabilitiesGate,
    gates_json_schema,
)
from buildyard.spec.quantities import parse_percent, parse_size

ISSUE_EXAMPLE = """
name: demo
gates:
  - tests: {junit: "reports/*.xml", max_failures: 0}
  - coverage: {report: coverage.xml, min_line: 90, min_branch: 80, no_decrease: true}
  - benchmarks: {results: "bench/*.json", baseline: main, max_regression: 5%}
  - vulnerabilities: {max_severity: medium}        # from the deps scan
  - licenses: {policy: default}
  - sarif: {files: "reports/*.sarif", max_level: warning}
  - duration: {max: 10m}                            # the whole pipeline, or per job
  - artifact_size: {paths: ["dist/*"], max: 50MB}
"""


def test_issue_example_parses_into_typed_gates(tmp_path: Path) -> None:
    gates = load_gates_file(write(tmp_path / "buildyard.yml", ISSUE_EXAMPLE))
    assert [type(g) for g in gates] == [
        TestsGate,
        CoverageGate,
        BenchmarksGate,
        VulnerabilitiesGate,
        LicensesGate,
        SarifGate,
        DurationGate,
        ArtifactSizeGate,
    ]
    tests, coverage, bench, vulns, _licenses, sarif, duration, size = gates
    assert isinstance(tests, TestsGate) and tests.junit == ("reports/*.xml",) and tests.max_failures == 0
    assert tests.label == "tests" and tests.kind == "tests"
    assert isinstance(coverage, CoverageGate) and (coverage.min_line, coverage.min_branch) == (90, 80)
    assert isinstance(bench, BenchmarksGate) and bench.max_regression == 5.0 and bench.baseline == "main"
    assert isinstance(vulns, VulnerabilitiesGate) and vulns.severity is Severity.MEDIUM
    assert isinstance(sarif, SarifGate) and sarif.max_level == "warning"
    assert isinstance(duration, DurationGate) and duration.max == 600
    assert isinstance(size, ArtifactSizeGate) and size.max == 50_000_000
    assert all(not g.allow_failure for g in gates)
    with pytest.raises(AttributeError):
        tests.max_failures = 3  # type: ignore[misc]  # frozen


def test_errors_are_all_reported_with_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "buildyard.yml",
        """
        gates:
          - test: {junit: a.xml}
          - coverage:
              report: c.xml
              min_line: 190
              colour: red
          - duration: {max: 10 minutes}
          - artifact_size: {paths: [], max: 50mb}
          - tests: {junit: a.xml, max_failures: "0", allow_failure: "yes"}
        """,
    )
    with pytest.raises(GateConfigError) as info:
        load_gates_file(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}:2: gates[0]: unknown gate 'test' (did you mean 'tests'?)"
    assert f"{path}:3: gates[1].coverage.min_line: 190 is more than 100%" in lines
    assert (
        f"{path}:3: gates[1].coverage.colour: unknown key 'colour' (allowed: name, allow_failure, report,"
        " format, min_line, min_branch, no_decrease)" in lines
    )
    assert (
        f"{path}:7: gates[2].duration.max: invalid duration '10 minutes' (use e.g. 30s, 10m, 1h30m)" in lines
    )
    assert any("gates[3].artifact_size.paths: needs at least one path" in line for line in lines)
    assert any("gates[3].artifact_size.max: '50mb' is not a size" in line for line in lines)
    assert f"{path}:9: gates[4].tests.max_failures: Expected `int`, got `str`" in lines
    assert f"{path}:9: gates[4].tests.allow_failure: Expected `bool`, got `str`" in lines


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "buildyard.yml", "gates:\n  - tests: {junit: [a.xml\n")
    with pytest.raises(GateConfigError, match=r"buildyard.yml:3: invalid YAML"):
        load_gates_file(path)
    with pytest.raises(NotFoundError, match=r"nope.yml: no such file"):
        load_gates_file(tmp_path / "nope.yml")
    path.write_text("gates: {tests: {}}\n")
    with pytest.raises(GateConfigError, match=r"'gates' must be a list"):
        load_gates_file(path)
    path.write_text("jobs: {}\n")
    assert load_gates_file(path) == []


def test_gate_list_embeds_in_a_spec_struct() -> None:
    class Job(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
        script: list[str]
        gates: list[AnyGate] = msgspec.field(default_factory=list)

    gates, problems = validate_gates([{"duration": {"max": "90s", "allow_failure": True}}])
    assert problems == []
    job = Job(script=["make"], gates=gates)
    (gate,) = job.gates
    assert (
        isinstance(gate, DurationGate) and gate.max == 90 and gate.allow_failure and gate.label == "duration"
    )
    # Encoded with a "kind" tag, decoded back to the same structs.
    encoded = msgspec.json.encode(job)
    assert b'"kind":"duration"' in encoded
    assert msgspec.json.decode(encoded, type=Job) == job
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"script": [], "gates": [{"kind": "tests", "junit": 3}]}', type=Job)


def test_problems_are_paths_relative_to_the_gates_key() -> None:
    gates, problems = validate_gates(
        [{"tests": {"junit": "a.xml"}}, {"sarif": {"files": [], "max_level": "fatal"}}, {"licenses": "x"}]
    )
    assert [type(g) for g in gates] == [TestsGate]
    assert problems == [
        ((1, "sarif", "files"), "needs at least one path or glob"),
        ((1, "sarif", "max_level"), "Invalid enum value 'fatal' (one of: none, note, warning, error)"),
        ((2, "licenses"), "the options of gate 'licenses' must be a mapping"),
    ]
    assert validate_gates({"tests": {}}) == (
        [],
        [((), "'gates' must be a list of gates (e.g. '- tests: {junit: ...}')")],
    )


def test_licenses_default_and_name() -> None:
    (gate,) = parse_gates([{"licenses": None}])
    assert isinstance(gate, LicensesGate) and gate.policy == "default"
    (named,) = parse_gates([{"tests": {"junit": ["a.xml", "b.xml"], "name": "unit tests"}}])
    assert named.label == "unit tests"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(512, 512), ("512B", 512), ("50MB", 50_000_000), ("1.5GiB", int(1.5 * 2**30)), ("2 KiB", 2048)],
)
def test_sizes(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["50mb", "50", "MB", "-1MB", 1.5, True, "5 MBs", None])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@pytest.mark.parametrize("value", ["0s", 0, "-5s", "soon", True])
def test_duration_gate_needs_a_positive_duration(value: object) -> None:
    # Durations use the pipeline's own syntax (buildyard.spec.durations), plus "must be positive".
    _, problems = validate_gates([{"duration": {"max": value}}])
    assert [p for p, _ in problems] == [(0, "duration", "max")]
    assert validate_gates([{"duration": {"max": "1h30m"}}])[0] == [DurationGate(max=5400.0)]


@pytest.mark.parametrize(("value", "expected"), [("5%", 5.0), ("2.5%", 2.5), (90, 90.0), ("0%", 0.0)])
def test_percentages(value: object, expected: float) -> None:
    assert parse_percent(value) == expected


@pytest.mark.parametrize("value", ["5", "five%", "%5", "101%", True, "-1%"])
def test_bad_percentages(value: object) -> None:
    with pytest.raises(ValueError, match=r"percent|more than"):
        parse_percent(value)


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["B", "KB", "MB", "GiB"]))
def test_size_roundtrip(amount: int, unit: str) -> None:
    factor = {"B": 1, "KB": 1000, "MB": 10**6, "GiB": 2**30}[unit]
    assert parse_size(f"{amount}{unit}") == amount * factor


def test_json_schema_describes_the_yaml_form() -> None:
    validator = Draft202012Validator(gates_json_schema())
    Draft202012Validator.check_schema(gates_json_schema())
    example = yaml.safe_load(ISSUE_EXAMPLE)["gates"]
    assert list(validator.iter_errors(example)) == []
    assert list(validator.iter_errors([{"licenses": None}, {"duration": {"max": 30}}])) == []
    for bad in (
        [{"tset": {"junit": "a.xml"}}],
        [{"tests": {"junit": "a.xml", "colour": 1}}],
        [{"artifact_size": {"paths": "dist/*", "max": "50mb"}}],
        [{"coverage": {"report": "c.xml", "min_line": 120}}],
        [{"tests": {"junit": "a.xml"}, "coverage": {"report": "c.xml"}}],
    ):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(GateConfigError):
            parse_gates(bad)
