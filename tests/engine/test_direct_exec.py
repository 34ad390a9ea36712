"""Plain one-line commands are executed without a shell; everything else keeps the shell."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from buildyard.engine.local import direct_argv
from buildyard.engine.request import StepRequest

BASH = "bash -eo pipefail"


def _step(script: str, shell: str = BASH) -> StepRequest:
    return StepRequest(name="s", shell=shell, script=script)


@pytest.mark.parametrize(
    "script",
    [
        "echo hi",  # builtin
        "true",
        "cd sub",
        "FOO=1 printenv FOO",  # assignment
        "printenv $HOME",  # expansion
        "ls *.txt",  # glob
        "printenv > out",  # redirection
        "git status; git log",  # separator
        "git status && git log",
        "grep 'a b' f",  # quoting
        "printenv\nprintenv",  # two lines
        "./run.sh",  # a path: relative to the job's directory
        "no-such-program-here --x",  # not found: the shell says so (exit 127)
        "ls ~",  # tilde
        "cat f # comment",
    ],
)
def test_anything_a_shell_must_interpret_keeps_the_shell(script: str) -> None:
    assert direct_argv(_step(script), os.environ.get("PATH")) is None


def test_plain_commands_run_directly_with_the_jobs_path(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    argv = direct_argv(_step("mytool run build:prod --flag=1 @scope/pkg"), str(tool.parent))
    assert argv == [str(tool), "run", "build:prod", "--flag=1", "@scope/pkg"]
    assert direct_argv(_step("mytool"), "/nonexistent") is None
    assert direct_argv(_step("printenv", shell="python3 {0}"), os.environ.get("PATH")) is None


def test_a_direct_command_behaves_like_the_shell_would(
    cli: Callable[..., object], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {
            "buildyard.yml": (
                "name: direct\njobs:\n"
                "  plain: {script: printenv SHLVL}\n"  # no shell: SHLVL is the caller's, not bash's + 1
                "  shelled: {script: 'printenv SHLVL; true'}\n"
                "  missing: {script: no-such-program-here, allow_failure: true}\n"
                "  failing: {script: 'false', allow_failure: true}\n"
            )
        }
    )
    monkeypatch.setenv("SHLVL", "5")
    result = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}  # type: ignore[attr-defined]
    logs = root / ".buildyard" / "logs" / "direct" / "1"
    assert (logs / "plain.log").read_text().strip() == "5"
    assert (logs / "shelled.log").read_text().strip() == "6"
    assert jobs["missing"]["exit_code"] == 127
    assert "command not found" in (logs / "missing.log").read_text()
    assert jobs["failing"]["exit_code"] == 1
