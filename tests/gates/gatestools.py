"""Helpers for the gates tests: run real tools, write files (imported as ``gatestools``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "COVERAGE_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_tool(
    args: list[str], cwd: Path, *, ok_codes: tuple[int, ...] = (0,), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a real tool; fail the test with its output if the exit code is unexpected."""
    full_env = _clean_env() | (env or {})
    proc = subprocess.run(
        args, check=False, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode not in ok_codes:
        pytest.fail(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def hyperfine_or_skip() -> str:
    path = shutil.which("hyperfine")
    if path is None:
        pytest.skip("hyperfine is not installed (apt-get install -y hyperfine)")
    return path


def hyperfine_json(work: Path, name: str, commands: list[str], runs: int = 10) -> Path:
    """Run real hyperfine without a shell and export JSON."""
    out = work / name
    run_tool(
        [
            hyperfine_or_skip(),
            "--runs",
            str(runs),
            "-N",
            "--style",
            "none",
            "--export-json",
            str(out),
            *commands,
        ],
        work,
    )
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path
