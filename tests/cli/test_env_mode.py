"""``env_mode: strict``: jobs see a base set of the machine's variables plus ``pass_env``; so do keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

STRICT = """\
name: strict
env_mode: strict
pass_env: [TOOLCHAIN_*]
variables: {DECLARED: here}
jobs:
  look:
    script:
      - echo -n "path=${PATH:+set} home=${HOME:+set} leak=${LEAKY_SECRET:-none} " > seen.txt
      - echo "tc=${TOOLCHAIN_VERSION:-none} own=${JOB_ONLY:-none} declared=$DECLARED" >> seen.txt
    artifacts: {paths: [seen.txt]}
  other:
    pass_env: [JOB_ONLY]
    script: ['echo "own=${JOB_ONLY:-none}" > other.txt']
"""


def _run(cli: Callable[..., object], root: Path) -> dict[str, str]:
    result = cli("-C", root, "run", "--json")
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    return {j["name"]: j["status"] for j in json.loads(result.out)["jobs"]}  # type: ignore[attr-defined]


def test_strict_mode_passes_only_the_base_set_and_declared_patterns(
    cli: Callable[..., object], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project({"buildyard.yml": STRICT})
    (root / ".gitignore").write_text(".buildyard/\nseen.txt\nother.txt\n")  # outputs are not inputs
    monkeypatch.setenv("LEAKY_SECRET", "s3cr3t")
    monkeypatch.setenv("TOOLCHAIN_VERSION", "1.2")
    monkeypatch.setenv("JOB_ONLY", "mine")
    assert _run(cli, root) == {"look": "success", "other": "success"}
    assert (root / "seen.txt").read_text() == "path=set home=set leak=none tc=1.2 own=none declared=here\n"
    assert (root / "other.txt").read_text() == "own=mine\n"

    # an undeclared variable does not enter the key: still cached
    monkeypatch.setenv("LEAKY_SECRET", "changed")
    assert _run(cli, root) == {"look": "cached", "other": "cached"}
    # a passed-through one does (pipeline-level pass_env: for every job), and jobs see the new value
    monkeypatch.setenv("TOOLCHAIN_VERSION", "1.3")
    assert _run(cli, root) == {"look": "success", "other": "success"}
    assert "tc=1.3" in (root / "seen.txt").read_text()
    monkeypatch.setenv("JOB_ONLY", "yours")  # a job's own pass_env: that job only
    assert _run(cli, root) == {"look": "cached", "other": "success"}
    assert (root / "other.txt").read_text() == "own=yours\n"


def test_loose_mode_passes_the_machine_environment(
    cli: Callable[..., object], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = STRICT.replace("env_mode: strict\n", "")
    root = make_project({"buildyard.yml": loose})
    monkeypatch.setenv("LEAKY_SECRET", "visible")
    _run(cli, root)
    assert "leak=visible" in (root / "seen.txt").read_text()


def test_a_bad_env_mode_is_a_located_error(
    cli: Callable[..., object], make_project: Callable[..., Path]
) -> None:
    root = make_project({"buildyard.yml": "name: x\nenv_mode: hermetic\njobs:\n  a: {script: [true]}\n"})
    result = cli("-C", root, "validate")
    assert result.code == 2  # type: ignore[attr-defined]
    assert "buildyard.yml:2" in result.err and "'strict'" in result.err  # type: ignore[attr-defined]


def test_buildyard_settings_reach_a_job_only_when_a_pass_env_names_them(
    cli: Callable[..., object], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """buildyard's own settings stay out of jobs, unless named exactly (a job running ``buildyard scan``
    needs BUILDYARD_OSV_DB); a glob never brings them in."""
    text = """\
name: settings
env_mode: strict
pass_env: [BUILDYARD_*]
jobs:
  scan:
    pass_env: [BUILDYARD_OSV_DB]
    script: ['echo "osv=${BUILDYARD_OSV_DB:-none} log=${BUILDYARD_LOG_LIMIT:-none}" > scan.txt']
  other:
    script: ['echo "osv=${BUILDYARD_OSV_DB:-none}" > other.txt']
"""
    root = make_project({"buildyard.yml": text})
    (root / ".gitignore").write_text(".buildyard/\nscan.txt\nother.txt\n")
    monkeypatch.setenv("BUILDYARD_OSV_DB", "/data/osv")
    monkeypatch.setenv("BUILDYARD_LOG_LIMIT", "5M")
    assert _run(cli, root) == {"scan": "success", "other": "success"}
    assert (root / "scan.txt").read_text() == "osv=/data/osv log=none\n"
    assert (root / "other.txt").read_text() == "osv=none\n"
