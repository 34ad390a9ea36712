"""The repository promises of the README: quick-start commands, CI entry point, lockfiles."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_three_commands_and_ci_runs_the_test_command() -> None:
    commands = quick_start()
    assert len(commands) == 3
    assert "examples/shop run" in commands[0] and "requirements.lock" in commands[0]
    assert "requirements-test.lock" in commands[1] and "-e ." in commands[1]
    assert commands[1].endswith(".venv/bin/buildyard run test")  # the pipeline's test job: exit 1 on failure
    assert commands[2].endswith("buildyard -C examples/shop serve")
    assert "requirements-server.lock" in commands[2]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
    # then the whole pipeline (lint, types, scan, licenses, SBOM, the published wheel)
    assert ".venv/bin/buildyard run" in ci[ci.index(commands[1]) + 1 :]


def test_coverage_floor_is_branch_coverage_of_the_package() -> None:
    import tomllib

    coverage = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert coverage["run"]["branch"] is True and coverage["run"]["source"] == ["buildyard"]
    assert 50 <= coverage["report"]["fail_under"] < 100


def _pipeline() -> Any:
    from buildyard.spec.load import load

    return load(ROOT / "buildyard.yml")


def test_the_test_job_runs_every_test_file_once_under_coverage_with_the_floor() -> None:
    """``buildyard run test`` (README command 2, CI): the shards run every test file exactly once,
    under coverage.py, and the coverage job enforces fail_under, also as the recorded gate."""
    import tomllib

    pipeline = _pipeline()
    jobs = pipeline.jobs
    shards = sorted(name for name in jobs if name.startswith("test-shard-"))
    assert len(shards) >= 2
    assert set(jobs["test"].needs or []) == {*shards, "coverage"}
    assert set(jobs["coverage"].needs or []) == set(shards)
    runs = []
    for k, name in enumerate(shards, start=1):
        (script,) = jobs[name].script or []
        assert script == f"bash .ci/test-shard {k} {len(shards)}"
        assert jobs[name].artifacts.paths == [f"reports/shards/{k}/"]
        runs.append(_shard_files(k, len(shards)))
    everything = sorted(f for files in runs for f in files)
    assert everything == _shards().test_files(ROOT)  # each file in exactly one shard
    assert len(everything) == len(set(everything)) > 100
    shard_script = (ROOT / ".ci" / "test-shard").read_text()
    assert "coverage run -p -m pytest" in shard_script and "--junitxml=" in shard_script

    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["report"]["fail_under"]
    steps = jobs["coverage"].script or []
    # the last step: coverage.py's own verdict against fail_under (no --fail-under overriding it)
    assert steps[-1] == '"$PYTHON" -m coverage report --data-file=reports/.coverage'
    (gate,) = jobs["coverage"].gates
    assert gate.min_line == floor  # the recorded gate at the same level
    (tests_gate,) = jobs["test"].gates
    assert tests_gate.max_failures == 0 and tests_gate.junit == ("reports/shards/*/junit.xml",)
    assert str(jobs["test"].when) == "always"  # a failed shard's tests are still named and recorded


def test_what_the_pipeline_writes_is_git_ignored() -> None:
    """A job's default inputs are the git-visible files: outputs must not be, or the next run misses."""
    written = [
        ".buildyard/buildyard.db",
        "dist/buildyard-0.1.0-py3-none-any.whl",
        "reports/shards/1/junit.xml",
        "reports/shards/1/.coverage.host.1.x",
        "reports/coverage.xml",
        ".coverage.host.12.abc",
        ".hypothesis/examples/x",
        ".mypy_cache/x",
        ".ruff_cache/x",
    ]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *written], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert sorted(done.stdout.split()) == sorted(written)


def _shards() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ci_shards", ROOT / ".ci" / "shards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shard_files(k: int, n: int, *within: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, ROOT / ".ci" / "shards.py", "files", str(k), str(n), *within],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_shards_are_deterministic_and_balanced_by_duration() -> None:
    shards = _shards()
    durations = {"a.py": 10.0, "b.py": 7.0, "c.py": 6.0, "d.py": 4.0, "e.py": 3.0}
    groups = shards.split(["e.py", "d.py", "c.py", "b.py", "a.py", "new.py"], durations, 2)
    # longest first, each to the lighter shard (a 10, b 7, c 6 -> 13, new.py as the median 6 -> 16,
    # d 4 -> 17, e 3 -> 19): 19 s and 17 s
    assert groups == [["a.py", "e.py", "new.py"], ["b.py", "c.py", "d.py"]]
    assert shards.split(sorted(durations), durations, 2) == shards.split(list(durations)[::-1], durations, 2)
    assert shards.split(["a.py"], durations, 3) == [["a.py"], [], []]


def test_shard_files_within_a_path_and_the_durations_file_lists_real_test_files() -> None:
    spec = _shard_files(1, 2, "tests/spec") + _shard_files(2, 2, "tests/spec")
    assert sorted(spec) == _shards().test_files(ROOT, ["tests/spec"]) and spec
    assert all(f.startswith("tests/spec/") for f in spec)
    durations = json.loads((ROOT / ".ci" / "test-durations.json").read_text())
    files = set(_shards().test_files(ROOT))
    # measured for most test files (stale or missing entries only unbalance the shards a little:
    # refresh with `python .ci/shards.py durations reports/shards/*/junit.xml`)
    assert len(files & set(durations)) >= 0.9 * len(files)


def test_lockfiles_pin_every_runtime_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for dep in project["dependencies"]:
        name = re.split(r"[<>=!~\[ ]", dep, maxsplit=1)[0].lower()
        assert name in locked, f"{name} is not in requirements.lock"
        assert ">=" in dep, f"{dep} has no lower bound"


def _pins(lock: str) -> dict[str, str]:
    return {
        name.lower(): version
        for line in (ROOT / lock).read_text().splitlines()
        if "==" in line and not line.startswith("#")
        for name, version in [line.split("==", 1)]
    }


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower()


def test_base_install_is_light_and_the_server_is_an_extra() -> None:
    """numpy/scipy are test oracles only; FastAPI/uvicorn come with ``buildyard[server]``."""
    import tomllib

    from buildyard.extras import EXTRAS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = {"numpy", "scipy", "fastapi", "uvicorn", "starlette", "pydantic"}
    assert heavy.isdisjoint(_name(d) for d in project["dependencies"])
    assert heavy.isdisjoint(_pins("requirements.lock"))
    extras = project["optional-dependencies"]
    assert {_name(d).replace("-", "_") for d in extras["server"]} == set(EXTRAS["server"])
    assert "buildyard[server]" in extras["test"]


def test_test_lock_pins_the_base_lock_and_every_test_and_server_dependency() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    base, test = _pins("requirements.lock"), _pins("requirements-test.lock")
    assert {name: test.get(name) for name in base} == base
    wanted = {_name(d) for d in extras["test"] + extras["server"]} - {"buildyard"}
    assert sorted(wanted - set(test)) == []


def test_server_lock_is_the_base_lock_plus_the_server_extra_as_tested() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = (ROOT / "requirements-server.lock").read_text().splitlines()
    assert "-r requirements.lock" in lines
    server, test = _pins("requirements-server.lock"), _pins("requirements-test.lock")
    assert {_name(d) for d in extras["server"]} <= set(server)
    assert {name: test.get(name) for name in server} == server  # the versions the tests ran with


def test_only_files_collects_the_listed_files_as_a_whole_run_would(tmp_path: Path) -> None:
    """Named on the command line, these two fail to import (tests/cache's ``from conftest import`` gets
    tests/server_web's conftest.py, loaded up front); listed with --only-files they collect."""
    listed = ["tests/cache/test_cache_server.py", "tests/server_web/test_data.py"]
    (tmp_path / "files").write_text("\n".join(listed) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", f"--only-files={tmp_path / 'files'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    files = {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}
    assert files == set(listed)
