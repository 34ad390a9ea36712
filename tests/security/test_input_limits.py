"""Hardening of pipeline loading: alias bombs, deep nesting, huge files and huge variables are refused
with one located line (exit 2) before they cost memory or time, by every command that loads a pipeline."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildyard.spec.load import loads
from buildyard.spec.yamlpos import MAX_FILE_BYTES

JOBS = "jobs:\n  build: {script: [echo hi]}\n"
GIB = 1 << 30


def _alias_bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n" + JOBS


def _limited() -> None:
    """Child side: at most 1 GiB of address space, so a blow-up ends in MemoryError, not the OOM killer."""
    resource.setrlimit(resource.RLIMIT_AS, (GIB, GIB))


def _buildyard(root: Path, *args: str) -> tuple[int, str, float]:
    env = {**os.environ, "BUILDYARD_DAEMON": "0", "HOME": str(root.parent)}
    env.pop("PYTEST_CURRENT_TEST", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "buildyard", "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
        check=False,
    )
    return proc.returncode, proc.stderr, time.monotonic() - started


def _assert_one_located_line(err: str, *words: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "MemoryError" not in err and "RecursionError" not in err
    assert lines[0].startswith("buildyard: error: "), err
    assert "buildyard.yml:" in lines[0], err
    for word in words:
        assert word in lines[0], err


@pytest.mark.parametrize("command", ["validate", "run", "gates check -c"])
def test_alias_bomb_is_refused_quickly_within_a_memory_limit(make_project, command) -> None:
    bomb = _alias_bomb(9)
    assert len(bomb) < 700
    root = make_project({"buildyard.yml": bomb})
    args = [*command.split(), str(root / "buildyard.yml")] if "-c" in command else [command]
    code, err, took = _buildyard(root, *args)
    assert code == 2, err
    _assert_one_located_line(err, "alias", "limit")
    assert took < 10


@pytest.mark.parametrize("command", ["validate", "run"])
def test_deep_nesting_is_a_located_error(make_project, command) -> None:
    deep = "x: " + "[" * 20_000 + "]" * 20_000 + "\n" + JOBS
    root = make_project({"buildyard.yml": deep})
    code, err, took = _buildyard(root, command)
    assert code == 2, err
    _assert_one_located_line(err, "nest", "limit")
    assert "buildyard.yml:1:" in err
    assert took < 10


def test_deep_block_nesting_is_a_located_error() -> None:
    text = JOBS + "variables:\n" + "".join(" " * (2 + i) + f"k{i}:\n" for i in range(300)) + " " * 303 + "x\n"
    with pytest.raises(Exception, match=r"buildyard.yml:\d+:\d+: .*nested more than") as info:
        loads(text)
    assert type(info.value).__name__ == "SpecError"


def test_too_big_file_is_refused(make_project) -> None:
    filler = "# " + "x" * 1000 + "\n"
    text = JOBS + filler * (MAX_FILE_BYTES // len(filler) + 1)
    assert len(text) > MAX_FILE_BYTES
    root = make_project({"buildyard.yml": text})
    code, err, took = _buildyard(root, "validate")
    assert code == 2, err
    _assert_one_located_line(err, "MiB", "limit")
    assert took < 10


def test_too_many_nodes_is_refused_even_without_aliases() -> None:
    text = JOBS + "variables: {" + ", ".join(f"V{i}: x" for i in range(200_000)) + "}\n"
    assert len(text) < MAX_FILE_BYTES
    with pytest.raises(Exception, match=r"buildyard.yml:\d+:\d+: .*more than .* values") as info:
        loads(text)
    assert type(info.value).__name__ == "SpecError"


def test_variables_stored_per_run_are_bounded() -> None:
    text = JOBS + "variables:\n" + "".join(f"  V{i}: {'y' * 1000}\n" for i in range(100))
    with pytest.raises(Exception, match=r"buildyard.yml:\d+:\d+: variables: .*limit of 64 KiB") as info:
        loads(text)
    assert type(info.value).__name__ == "SpecError"


def test_variables_given_on_the_command_line_are_bounded(cli, make_project) -> None:
    root = make_project({"buildyard.yml": JOBS})
    result = cli("-C", root, "run", "--dry-run", "--var", "BIG=" + "x" * 70_000)
    assert result.code == 2
    assert "--var values take more than 64 KiB" in result.err and len(result.err.splitlines()) == 1


def test_recursive_alias_is_refused() -> None:
    text = JOBS + "x: &r [1, *r]\n"
    with pytest.raises(Exception, match=r"buildyard.yml:\d+:\d+: .*alias") as info:
        loads(text)
    assert type(info.value).__name__ == "SpecError"


def test_gitlab_style_anchors_and_merge_keys_still_work() -> None:
    text = """\
variables: &vars {A: one}
jobs:
  build: &defaults
    timeout: 5m
    env: *vars
    script: [echo build]
  test:
    <<: *defaults
    script: [echo test]
"""
    pipeline = loads(text)
    assert pipeline.jobs["test"].timeout == pipeline.jobs["build"].timeout
    assert dict(pipeline.jobs["test"].env) == {"A": "one"}


def test_a_tab_is_named() -> None:
    with pytest.raises(Exception, match=r"buildyard.yml:3:1: .*tab") as info:
        loads("jobs:\n  a:\n\tscript: [x]\n")
    assert type(info.value).__name__ == "SpecError"


def test_a_bad_matrix_value_is_reported_at_its_real_path() -> None:
    with pytest.raises(Exception, match=r"buildyard.yml:5:\d+: jobs\.a\.matrix\.py\[1\]: ") as info:
        loads("jobs:\n  a:\n    script: [x]\n    matrix:\n      py: [3.1, {x: 1}]\n")
    assert "..." not in str(info.value)
