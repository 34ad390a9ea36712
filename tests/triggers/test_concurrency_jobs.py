"""Job-level ``concurrency:`` across two real ``buildyard run`` processes of one project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import buildyard

SRC = str(Path(buildyard.__file__).resolve().parents[1])

PIPELINE = """
jobs:
  deploy:
    concurrency: {group: "deploy-${{ branch }}", cancel_in_progress: CANCEL}
    script:
      - echo "start $BUILDYARD_RUN_NUMBER" >> order.txt
      - while [ ! -e release ]; do sleep 0.05; done
      - echo "end $BUILDYARD_RUN_NUMBER" >> order.txt
  other:
    script: echo free
"""


def _run(project: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "BUILDYARD_DAEMON": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(project), "run", "--no-cache", "--branch", "main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str]:
    """The exit code and stderr of ``proc`` (killed after ``timeout``)."""
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return proc.returncode, err


def _wait_for(test: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _lines(project: Path) -> list[str]:
    path = project / "order.txt"
    return path.read_text().splitlines() if path.exists() else []


def _show(cli: Callable[..., Any], project: Path, number: int) -> dict[str, Any]:
    result = cli("-C", project, "show", str(number), "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def test_a_job_waits_for_the_job_of_its_group_in_another_run(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    project = make_project(
        {"buildyard.yml": PIPELINE.replace("CANCEL", "false"), ".gitignore": "order.txt\n"}
    )
    first = _run(project)
    try:
        _wait_for(lambda: _lines(project) == ["start 1"])
        second = _run(project)
        try:
            time.sleep(2.0)  # the second run has started; its job must still wait for the group
            assert _lines(project) == ["start 1"]
            (project / "release").touch()
            code, err = _end(first)
            assert code == 0, err
            code, err = _end(second)
            assert code == 0, err
        finally:
            _end(second, 0.1)
    finally:
        _end(first, 0.1)
    assert _lines(project) == ["start 1", "end 1", "start 2", "end 2"]
    jobs = {j["job"]: j for j in _show(cli, project, 2)["jobs"]}
    assert jobs["deploy"]["status"] == "success"


def test_a_newer_job_cancels_the_job_of_its_group_in_progress(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    project = make_project({"buildyard.yml": PIPELINE.replace("CANCEL", "true"), ".gitignore": "order.txt\n"})
    first = _run(project)
    try:
        _wait_for(lambda: _lines(project) == ["start 1"])
        second = _run(project)
        try:
            _wait_for(lambda: _lines(project) == ["start 1", "start 2"])
            assert _end(first, 30)[0] == 130  # its job was cancelled: the run is cancelled
            (project / "release").touch()
            code, err = _end(second)
            assert code == 0, err
        finally:
            _end(second, 0.1)
    finally:
        _end(first, 0.1)
    assert _lines(project) == ["start 1", "start 2", "end 2"]
    jobs = {j["job"]: j for j in _show(cli, project, 1)["jobs"]}
    assert jobs["deploy"]["status"] == "cancelled"
    assert jobs["deploy"]["message"] == "superseded by job deploy of run 2"
    assert jobs["other"]["status"] == "success"
    assert _show(cli, project, 1)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("x-${{ needs.a.status }}", "'needs' is not known when a concurrency group is decided"),
        ("x-${{ matrix.py }}", "'matrix.py': this job has no matrix"),
        ("   ", "a concurrency group needs a name"),
    ],
)
def test_bad_groups_are_located_errors(
    make_project: Callable[..., Path], cli: Callable[..., Any], group: str, message: str
) -> None:
    text = f'jobs:\n  a:\n    script: "true"\n  b:\n    concurrency: "{group}"\n    script: "true"\n'
    project = make_project({"buildyard.yml": text})
    result = cli("-C", project, "validate")
    assert result.code == 2
    assert f"buildyard.yml:5:18: jobs.b.concurrency.group: {message}" in result.err


def test_pipeline_group_shorthand_and_matrix_refused(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    ok = make_project({"buildyard.yml": 'concurrency: ci-${{ branch }}\njobs:\n  a:\n    script: "true"\n'})
    assert cli("-C", ok, "validate").code == 0
    bad = make_project(
        {"buildyard.yml": 'concurrency: ci-${{ matrix.x }}\njobs:\n  a:\n    script: "true"\n'}, name="bad"
    )
    result = cli("-C", bad, "validate")
    assert result.code == 2
    assert "concurrency.group: a pipeline's concurrency group cannot use 'matrix'" in result.err


def test_of_the_waiting_jobs_only_the_newest_is_kept(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    files = {"buildyard.yml": PIPELINE.replace("CANCEL", "false"), ".gitignore": "order.txt\n"}
    project = make_project(files)
    groups = project / ".buildyard" / "concurrency"

    def pending(number: int) -> bool:
        return any(f"of run {number}" in p.read_text() for p in groups.glob("*.pending"))

    first = _run(project)
    try:
        _wait_for(lambda: _lines(project) == ["start 1"])
        second = _run(project)
        try:
            _wait_for(lambda: pending(2))
            third = _run(project)
            try:
                _wait_for(lambda: pending(3))
                assert _end(second, 30)[0] == 130  # replaced by the newer waiting job: cancelled
                (project / "release").touch()
                for proc in (first, third):
                    code, err = _end(proc)
                    assert code == 0, err
            finally:
                _end(third, 0.1)
        finally:
            _end(second, 0.1)
    finally:
        _end(first, 0.1)
    assert _lines(project) == ["start 1", "end 1", "start 3", "end 3"]
    jobs = {j["job"]: j for j in _show(cli, project, 2)["jobs"]}
    assert jobs["deploy"]["status"] == "cancelled"
    assert jobs["deploy"]["message"] == (
        "superseded by job deploy of run 3 waiting in concurrency group 'deploy-main'"
    )
