"""Gate config models: the issue's example, strict units, errors with file:line, embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gatestools import write
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, ValidationError

from buildyard.errors import NotFoundError
from buildyard.gates import GateConfigError, GateSpec, load_gates_file, parse_gates
from buildyard.gates.config import (
    ArtifactSizeGate,
    BenchmarksGate,
    CoverageGate,
    DurationGate,
    LicensesGate,
    SarifGate,
    Severity,
    TestsGate,
    VulnerabilitiesGate,
    gates_json_schema,
)
from buildyard.gates.units import parse_duration, parse_percent, parse_size

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
    assert isinstance(coverage, CoverageGate) and (coverage.min_line, coverage.min_branch) == (90, 80)
    assert isinstance(bench, BenchmarksGate) and bench.max_regression == 5.0 and bench.baseline == "main"
    assert isinstance(vulns, VulnerabilitiesGate) and vulns.severity is Severity.MEDIUM
    assert isinstance(sarif, SarifGate) and sarif.max_level == "warning"
    assert isinstance(duration, DurationGate) and duration.max == 600
    assert isinstance(size, ArtifactSizeGate) and size.max == 50_000_000
    assert all(not g.allow_failure for g in gates)
    with pytest.raises(ValidationError):
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
    assert f"{path}:3: gates[1].coverage.colour: Extra inputs are not permitted" in lines
    assert any(
        line.startswith(f"{path}:7: gates[2].duration.max: '10 minutes' is not a duration") for line in lines
    )
    assert any("gates[3].artifact_size.paths: needs at least one path" in line for line in lines)
    assert any("gates[3].artifact_size.max: '50mb' is not a size" in line for line in lines)
    assert any("gates[4].tests.max_failures" in line for line in lines)
    assert any("gates[4].tests.allow_failure" in line for line in lines)


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


def test_gate_list_embeds_in_a_pipeline_model() -> None:
    class Job(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        script: list[str]
        gates: list[GateSpec] = []

    job = Job.model_validate(
        {"script": ["make"], "gates": [{"duration": {"max": "90s", "allow_failure": True}}]}
    )
    (gate,) = job.gates
    assert (
        isinstance(gate, DurationGate) and gate.max == 90 and gate.allow_failure and gate.label == "duration"
    )
    # A model dump validates back to the same gates (kind-tagged form).
    assert Job.model_validate(job.model_dump()) == job
    with pytest.raises(ValidationError, match=r"gates\.0"):
        Job.model_validate({"script": [], "gates": [{"tests": {"junit": 3}}]})


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10m", 600), ("1h30m", 5400), ("500ms", 0.5), ("90s", 90), (45, 45), ("2d", 172800)],
)
def test_durations(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["10", "10 m", "10min", "1m1m", "m", "", "-5s", True])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|non-negative"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "expected"), [("5%", 5.0), ("2.5%", 2.5), (90, 90.0), ("0%", 0.0)])
def test_percentages(value: object, expected: float) -> None:
    assert parse_percent(value) == expected


@pytest.mark.parametrize("value", ["5", "five%", "%5", "101%", True, "-1%"])
def test_bad_percentages(value: object) -> None:
    with pytest.raises(ValueError, match=r"percent|more than"):
        parse_percent(value)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_duration_roundtrip(amount: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * factor)


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
