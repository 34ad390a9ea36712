"""The repository promises of the README: quick-start commands, CI entry point, lockfiles."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_three_commands_and_ci_runs_the_test_command() -> None:
    commands = quick_start()
    assert len(commands) == 3
    assert "examples/shop run" in commands[0] and "requirements.lock" in commands[0]
    assert "requirements-test.lock" in commands[1] and "coverage run -m pytest &&" in commands[1]
    assert commands[1].endswith("coverage report")  # its exit code enforces the floor
    assert commands[2].endswith("buildyard -C examples/shop serve")
    assert "requirements-server.lock" in commands[2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_coverage_floor_is_branch_coverage_of_the_package() -> None:
    import tomllib

    coverage = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert coverage["run"]["branch"] is True and coverage["run"]["source"] == ["buildyard"]
    assert 50 <= coverage["report"]["fail_under"] < 100


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
