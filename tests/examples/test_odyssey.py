"""examples/odyssey end to end: a Python + Mojo project's pipeline run cold, fully cached, and after a
commit that slows a kernel down (the benchmark gate must then block both deployments); and the same
pipeline written as a GitHub Actions workflow, run with ``buildyard run -f`` on a fresh copy: the same
jobs succeed with the same test counts, and its second run is fully cached.

Real everything: the pipeline makes its own virtualenv with Mojo and NumPy from the package index,
compiles the Mojo kernels, runs the Python, Mojo and Python<->Mojo tests, benchmarks both, publishes a
signed artifact and deploys it to a directory served over HTTP (health-checked). Skipped, with one
line, only where Mojo cannot be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from by_testutil import git

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "odyssey"
LEFTOVERS = (".venv", "build", "dist", "reports", ".buildyard", ".deploy", ".pytest-tmp")


def _mojo_installable(tmp: Path) -> bool:
    pins = (EXAMPLE / "requirements-dev.lock").read_text().splitlines()
    mojo = next(line for line in pins if line.startswith("mojo=="))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), mojo],
        capture_output=True,
        check=False,
        timeout=300,
    )
    return done.returncode == 0


def _osv_db(tmp: Path) -> Path:
    """The shared OSV data when present; else an empty PyPI dump (the gate runs, finding nothing)."""
    for candidate in (EXAMPLE.parents[2] / "shared" / "data" / "osv", Path("/work/shared/data/osv")):
        if candidate.is_dir():
            return candidate
    empty = tmp / "osv"
    (empty / "PyPI").mkdir(parents=True)
    with zipfile.ZipFile(empty / "PyPI" / "all.zip", "w"):
        pass
    return empty


def _fresh_copy(root: Path) -> Path:
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(*LEFTOVERS, "__pycache__"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "odyssey")
    return root


def _junit_counts(root: Path) -> dict[str, int]:
    """Tests per JUnit report under ``reports/`` (file name -> number of test cases)."""
    return {
        report.name: len(ET.parse(report).getroot().findall(".//testcase"))
        for report in sorted((root / "reports").glob("junit-*.xml"))
    }


def _run(root: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, object]], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run", "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=1500,
    )
    took = time.perf_counter() - start
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"run did not print its JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode, {j["name"]: j for j in data["jobs"]}, took


def test_odyssey_cold_cached_and_a_slowed_kernel_blocks_the_deployments(tmp_path: Path) -> None:
    if not _mojo_installable(tmp_path / "wheels"):
        pytest.skip("mojo cannot be installed from the package index here")
    root = _fresh_copy(tmp_path / "odyssey")
    deploy_root = tmp_path / "deploy"
    env = {
        **os.environ,
        "BUILDYARD_OSV_DB": str(_osv_db(tmp_path)),
        "ODYSSEY_DEPLOY_ROOT": str(deploy_root),
    }

    code, cold_jobs, cold = _run(root, env, "--manual", "production")  # approved in advance
    jobs = cold_jobs
    failed = {n: j["message"] for n, j in jobs.items() if j["status"] != "success"}
    assert code == 0 and failed == {}, failed
    gates = {g["gate"]: g for g in jobs["gates"]["gates"]}
    assert gates["tests"]["status"] == "passed" and gates["coverage"]["status"] == "passed"
    assert gates["vulnerabilities"]["status"] == "passed" and gates["licenses"]["status"] == "passed"
    published = str(jobs["release"]["published"])
    assert published.startswith("odyssey@0.3.0+build.1.")  # the wheel's version, build number, commit
    for env_name in ("staging", "production"):
        index = json.loads((deploy_root / env_name / "current" / "index.json").read_text())
        assert sorted(index["files"]) == [
            "odyssey-0.3.0-py3-none-any.whl",
            "odyssey-kernels",
            "odyssey_kernels.mojoc",
        ]
    assert "| matmul |" in (root / "reports" / "bench" / "ratio.md").read_text()

    code, jobs, cached = _run(root, env)  # no approval given: deploying what is live needs none
    assert code == 0
    ran = {n for n, j in jobs.items() if j["status"] != "cached"}
    assert ran == {"gates", "staging", "production"}  # the gates always judge; deployments are no-ops
    assert "not redeployed" in str(jobs["staging"]["message"])
    assert "not redeployed" in str(jobs["production"]["message"])
    statuses = {n: j["status"] for n, j in cold_jobs.items()}
    tests = _junit_counts(root)

    # The same pipeline as a GitHub Actions workflow, on a fresh copy: buildyard is on PATH (as it
    # would be installed on a runner), the OSV data and the deployment root come from the environment.
    gh_root = _fresh_copy(tmp_path / "odyssey-github")
    gh_env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "ODYSSEY_OSV_DB": env["BUILDYARD_OSV_DB"],
        "ODYSSEY_DEPLOY_ROOT": str(tmp_path / "deploy-github"),
    }
    workflow = ".github/workflows/ci.yml"
    code, gh_jobs, gh_cold = _run(gh_root, gh_env, "-f", workflow)
    logs = {n: j["message"] for n, j in gh_jobs.items() if j["status"] != "success"}
    assert code == 0 and {n: j["status"] for n, j in gh_jobs.items()} == statuses, logs
    assert _junit_counts(gh_root) == tests and sum(tests.values()) > 0
    for env_name in ("staging", "production"):
        index = json.loads((tmp_path / "deploy-github" / env_name / "current" / "index.json").read_text())
        assert sorted(index["files"]) == [
            "odyssey-0.3.0-py3-none-any.whl",
            "odyssey-kernels",
            "odyssey_kernels.mojoc",
        ]
    code, gh_jobs, gh_cached = _run(gh_root, gh_env, "-f", workflow)
    assert code == 0
    assert {n for n, j in gh_jobs.items() if j["status"] != "cached"} == set()

    kernels = root / "src" / "odyssey" / "kernels.py"  # a change that makes matmul do its work twice
    kernels.write_text(kernels.read_text().replace("    return a @ b\n", "    return (a @ b + a @ b) / 2\n"))
    git(root, "commit", "-q", "-am", "matmul: a slower formulation")
    code, jobs, _ = _run(root, env)
    assert code == 1
    assert jobs["bench"]["status"] == "success"  # measured again: the kernel's source is an input
    bench = next(g for g in jobs["gates"]["gates"] if g["gate"] == "benchmarks")
    assert bench["status"] == "failed" and "numpy/matmul" in bench["reason"]
    assert jobs["staging"]["status"] == "skipped" and jobs["production"]["status"] == "skipped"
    live = json.loads((deploy_root / "staging" / "current" / "index.json").read_text())
    assert live["version"] == published.split("@", 1)[1]  # still what the good run deployed
    print(
        f"\n[figures] odyssey buildyard.yml: cold {cold:.1f}s, fully cached {cached:.2f}s; "
        f"{workflow}: cold {gh_cold:.1f}s, fully cached {gh_cached:.2f}s"
    )
