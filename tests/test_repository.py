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
    assert commands[1].endswith("pytest") and "requirements-test.lock" in commands[1]
    assert commands[2].endswith("buildyard -C examples/shop serve") and "requirements.lock" in commands[2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


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
