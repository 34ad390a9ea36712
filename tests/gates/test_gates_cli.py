"""``buildyard gates check`` end to end, in-process through ``run_cli``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from gatestools import FIXTURES, write

Cli = Callable[..., int]


@pytest.fixture
def project(tmp_path: Path, junit_from_pytest: Path, coverage_reports: dict[str, Path]) -> Path:
    shutil.copy(junit_from_pytest, write(tmp_path / "reports/.keep", "").parent / "pytest.xml")
    shutil.copy(coverage_reports["cobertura"], tmp_path / "coverage.xml")
    shutil.copy(FIXTURES / "sarif-multi-tool.sarif", tmp_path / "reports/scan.sarif")
    write(
        tmp_path / "bench/main.json", '{"benchmarks": [{"name": "a", "samples": [1, 1.01, 0.99, 1, 1.02]}]}'
    )
    write(tmp_path / "bench/now.json", '{"benchmarks": [{"name": "a", "samples": [1, 1.02, 0.99, 1.01, 1]}]}')
    return tmp_path


def test_passing_gates_exit_0_with_a_table(
    project: Path, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project / "buildyard.yml",
        """
        gates:
          - tests: {junit: "reports/*.xml", max_failures: 2}
          - coverage: {report: coverage.xml, min_line: 50}
          - benchmarks: {results: "bench/now.json", baseline: bench/main.json, max_regression: 5%}
          - sarif: {files: "reports/*.sarif", max_level: error}
        """,
    )
    assert cli("-C", str(project), "gates", "check") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["gate", "status", "reason"]
    assert lines[1].startswith("tests       passed  8 tests: 4 passed")
    assert any(line.startswith("coverage    passed  line ") for line in lines)
    assert "benchmarks (benchmarks):" in out
    assert any(line.startswith("a          1s ") and "ok: within 5%" in line for line in lines)
    assert lines[-1] == "4 gate(s): passed"


def test_failing_gate_exits_1_and_json(project: Path, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        project / "ci.yml",
        """
        gates:
          - tests: {junit: "reports/*.xml"}
          - sarif: {files: "reports/*.sarif", allow_failure: true}
          - duration: {max: 5m}
          - artifact_size: {paths: [dist/*], max: 1MB}
        """,
    )
    assert cli("-C", str(project), "gates", "check", "--config", "ci.yml", "--json") == 1
    captured = capsys.readouterr()
    assert captured.err == "buildyard: error: 2 gate(s) failed: tests, artifact_size\n"
    data = json.loads(captured.out)
    assert data["status"] == "failed"
    statuses = {g["gate"]: (g["status"], g["reason"]) for g in data["gates"]}
    assert statuses["tests"][0] == "failed" and "2 failing test(s) > max 0" in statuses["tests"][1]
    assert statuses["sarif"][0] == "warning" and statuses["sarif"][1].endswith("(allowed to fail)")
    assert statuses["duration"] == ("warning", "duration unknown (the pipeline has not run)")
    assert statuses["artifact_size"] == ("failed", f"{project}/dist/*: no artifact matches this path")
    # With a duration and --strict, inputs are checked or missing ones fail.
    assert (
        cli("-C", str(project), "gates", "check", "-c", "ci.yml", "--json", "--duration", "4m", "--strict")
        == 1
    )
    strict = {g["gate"]: g["status"] for g in json.loads(capsys.readouterr().out)["gates"]}
    assert strict["duration"] == "passed"


def test_findings_and_baselines_options(project: Path, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        project / "buildyard.yml",
        """
        gates:
          - vulnerabilities: {max_severity: high}
          - licenses: {policy: strict}
          - benchmarks: {results: bench/now.json, baseline: main}
          - coverage: {report: coverage.xml, no_decrease: true}
        """,
    )
    write(
        project / "findings.json",
        '{"vulnerabilities": [{"id": "GHSA-x", "package": "urllib3", "severity": "critical"}],'
        ' "licenses": [{"package": "attrs", "license": "MIT", "verdict": "allowed"}]}',
    )
    code = cli(
        "-C",
        str(project),
        "gates",
        "check",
        "--json",
        "--findings",
        "findings.json",
        "--baseline",
        "main=bench/main.json",
        "--coverage-baseline",
        "coverage.xml",
    )
    assert code == 1
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert gates["vulnerabilities"]["reason"] == "1 vulnerability above high: GHSA-x (urllib3, critical)"
    assert gates["licenses"]["status"] == "passed"
    assert gates["benchmarks"]["benchmarks"][0]["verdict"] == "ok"
    assert gates["coverage"]["status"] == "passed" and "baseline line" in gates["coverage"]["reason"]


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({}, [], "buildyard.yml: no such file (pass --config to name the pipeline file)"),
        ({"buildyard.yml": "gates:\n  - tset: {}\n"}, [], "buildyard.yml:2: gates[0]: unknown gate 'tset'"),
        ({"buildyard.yml": "gates: []\n"}, ["--baseline", "main"], "--baseline 'main': expected REF=FILE"),
        ({"buildyard.yml": "gates: []\n"}, ["--duration", "soon"], "--duration: invalid duration 'soon'"),
        (
            {"buildyard.yml": "gates: []\n", "f.json": "{"},
            ["--findings", "f.json"],
            "f.json:1: malformed JSON",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path,
    cli: Cli,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    for name, content in files.items():
        write(tmp_path / name, content)
    assert cli("-C", str(tmp_path), "gates", "check", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("buildyard: error: ") and message in err


def test_no_gates(tmp_path: Path, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "buildyard.yml", "jobs: {}\n")
    assert cli("-C", str(tmp_path), "gates", "check") == 0
    assert capsys.readouterr().out.endswith("buildyard.yml: no gates to check\n")
