"""``buildyard design``: a build_requirements document -> a pipeline that validates and runs on a sample
Python project (cold, then fully cached), with its gates, timeouts and deployments; located errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from by_testutil import git, shared_osv

REQUIREMENTS = """\
build_requirements:
  name: calc
  project_type: web_application
  tech_stack: [python, postgresql]
  performance_targets:
    build_time: "<10 minutes"
  quality_gates:
    test_coverage: ">90%"
    security_scan: "no critical vulnerabilities"
  environments: [dev, staging, production]
"""
SAMPLE = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "1.4.0"\n',
    "requirements.txt": "",
    "calc.py": "def add(a, b):\n    return a + b\n\n\ndef half(x):\n    return x / 2\n",
    "tests/test_calc.py": (
        "from calc import add, half\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_half():\n    assert half(4) == 2\n"
    ),
    "requirements.yml": REQUIREMENTS,
}


def _statuses(result: Any) -> dict[str, str]:
    data = json.loads(result.out)
    return {j["name"]: j["status"] for j in data["jobs"]}


def test_designed_pipeline_validates_and_runs_cold_then_cached(
    make_project: Callable[..., Path], cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDYARD_OSV_DB", str(shared_osv()))
    monkeypatch.setenv("PYTHONPATH", ".")
    root = make_project(SAMPLE)
    made = cli("-C", root, "design", "requirements.yml")
    assert made.code == 0, made.err
    pipeline = yaml.safe_load((root / "buildyard.yml").read_text())
    assert pipeline["defaults"]["timeout"] == "10m"
    assert {"coverage": {"report": "reports/coverage.xml", "min_line": 90.0}} in pipeline["gates"]
    assert {"vulnerabilities": {"max_severity": "high"}} in pipeline["gates"]
    assert {"duration": {"max": "10m"}} in pipeline["gates"]
    assert pipeline["jobs"]["deploy-production"]["environment"] == {
        "name": "production",
        "approval": "required",
    }
    assert "approval" not in pipeline["jobs"]["deploy-staging"]["environment"]
    doc = (root / "docs" / "pipeline-design.md").read_text()
    assert "```mermaid" in doc
    assert "  deploy_staging --> deploy_production" in doc
    assert "| production | `deploy-production` | `main` only | required (`buildyard approve`) |" in doc
    assert cli("-C", root, "validate").code == 0

    args = ["run", "--json", "--var", f"PYTHON={sys.executable}", "--manual", "deploy-production"]
    cold = cli("-C", root, *args)
    assert cold.code == 0, cold.err
    assert _statuses(cold) == dict.fromkeys(
        ["lint", "test", "package", "gates", "deploy-dev", "deploy-staging", "deploy-production"], "success"
    )
    gates = {g["gate"]: g["status"] for j in json.loads(cold.out)["jobs"] for g in j.get("gates", [])}
    assert gates == dict.fromkeys(["tests", "coverage", "vulnerabilities", "duration"], "passed")
    warm = cli("-C", root, *args)
    assert warm.code == 0, warm.err
    statuses = _statuses(warm)
    assert {statuses[n] for n in ("lint", "test", "package")} == {"cached"}
    assert statuses["gates"] == "success"
    assert {statuses[n] for n in ("deploy-dev", "deploy-staging", "deploy-production")} <= {
        "success",
        "skipped",
    }
    assert ".coverage" not in (root / ".gitignore").read_text()  # the data file is written under reports/
    assert "reports/" in (root / ".gitignore").read_text()

    report = cli("-C", root, "report", "--format", "build-output", "--json")
    assert report.code == 0, report.err
    out = json.loads(report.out)["build_output"]
    sha = git(root, "rev-parse", "HEAD").strip()
    assert out["pipeline"] == "calc"
    assert out["pipeline_config"] == str(root / "buildyard.yml")
    (artifact,) = out["artifacts"]
    assert artifact["name"] == "calc"
    assert artifact["version"].startswith("1.4.0+build.1.")
    assert (artifact["commit"], artifact["build_number"], artifact["in_repository"]) == (sha, 1, True)
    assert set(out["deployments"]) == {"dev", "staging", "production"}
    assert out["deployments"]["production"]["current"] == f"calc@{artifact['version']}"
    assert out["deployments"]["production"]["approved_by"] is not None
    assert out["documentation"] == ["docs/pipeline-design.md"]
    metrics = out["metrics"]
    assert (metrics["runs"], metrics["successful_runs"], metrics["success_rate"]) == (2, 2, 1.0)
    assert 0 < metrics["build_time_s"]["last"] <= metrics["build_time_s"]["max"]
    text = cli("-C", root, "report")
    assert yaml.safe_load(text.out) == json.loads(report.out)  # the same document as YAML


def test_design_gates_fail_a_project_below_its_coverage_target(
    make_project: Callable[..., Path], cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDYARD_OSV_DB", str(shared_osv()))
    monkeypatch.setenv("PYTHONPATH", ".")
    files = {
        **SAMPLE,
        "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    }
    root = make_project(files)
    assert cli("-C", root, "design", "requirements.yml").code == 0
    run = cli("-C", root, "run", "--json", "--var", f"PYTHON={sys.executable}")
    assert run.code != 0
    statuses = _statuses(run)
    assert statuses["gates"] == "failed"
    assert statuses["deploy-dev"] == "skipped"  # a deployment waits for the gates
    out = json.loads(cli("-C", root, "report", "--json").out)["build_output"]
    assert (out["metrics"]["runs"], out["metrics"]["success_rate"]) == (1, 0.0)
    assert out["metrics"]["build_time_s"]["last"] is None  # measured on successful runs
    assert out["deployments"] == {}


def test_design_refuses_bad_requirements_with_located_errors(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    bad = (
        "build_requirements:\n"
        "  project_type: webapp\n"
        "  tech_stack: [cobol]\n"
        "  performance_targets: {build_tme: '<10 minutes'}\n"
        "  quality_gates: {test_coverage: lots, security_scan: maybe}\n"
        "  environments: [dev, 'pro duction']\n"
    )
    root = make_project({"requirements.yml": bad})
    result = cli("-C", root, "design", "requirements.yml")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 6, result.err
    assert "requirements.yml:2:17: build_requirements.project_type: unknown project_type 'webapp'" in lines[0]
    assert "requirements.yml:4:25: build_requirements.performance_targets.build_tme: unknown key" in lines[2]
    assert "did you mean 'build_time'?" in lines[2]
    assert "Traceback" not in result.err
    assert not (root / "buildyard.yml").exists()
    (root / "buildyard.yml").write_text("jobs: {a: {script: echo}}\n")
    (root / "requirements.yml").write_text(REQUIREMENTS)
    exists = cli("-C", root, "design", "requirements.yml")
    assert exists.code == 2
    assert "use --force" in exists.err


@pytest.mark.parametrize("language", ["node", "go", "rust"])
def test_design_for_other_stacks_validates(
    language: str, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({"requirements.yml": REQUIREMENTS.replace("[python, postgresql]", f"[{language}]")})
    assert cli("-C", root, "design", "requirements.yml").code == 0
    assert cli("-C", root, "validate").code == 0
    jobs = yaml.safe_load((root / "buildyard.yml").read_text())["jobs"]
    assert list(jobs) == ["lint", "test", "package", "deploy-dev", "deploy-staging", "deploy-production"]


def test_report_before_any_run_is_an_empty_document(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({"buildyard.yml": "jobs: {a: {script: echo}}\n"})
    result = cli("-C", root, "report", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)["build_output"]
    assert (out["pipeline"], out["artifacts"], out["deployments"]) == (None, [], {})
    assert out["metrics"] == {
        "runs": 0,
        "successful_runs": 0,
        "success_rate": None,
        "build_time_s": {"last": None, "median": None, "max": None},
    }
