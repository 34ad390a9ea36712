"""``buildyard run --event push --changed PATH…`` honours the pipeline's ``on:`` filters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PIPELINE = """
on:
  push:
    branches: [main, 'release/**']
    paths_ignore: ['docs/**']
  pull_request:
    branches: [main]
jobs:
  build:
    script: "echo built > built.txt"
"""


def test_a_push_touching_only_ignored_paths_starts_nothing(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    project = make_project({"buildyard.yml": PIPELINE})
    result = cli(
        "-C", project, "run", "--branch", "main", "--changed", "docs/index.md", "--changed", "./docs/a"
    )
    assert result.code == 0
    assert result.out.strip() == (
        "not triggered: push to 'main' changes only ignored paths (docs/**): docs/index.md, docs/a"
    )
    assert not (project / "built.txt").exists()
    assert not (project / ".buildyard" / "buildyard.db").exists()  # nothing recorded


def test_a_push_touching_a_source_file_runs(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    project = make_project({"buildyard.yml": PIPELINE})
    result = cli("-C", project, "run", "--branch", "main", "--changed", "docs/x", "--changed", "src/app.py")
    assert result.code == 0, result.err
    assert (project / "built.txt").read_text() == "built\n"
    assert (project / ".buildyard" / "buildyard.db").exists()


def test_other_branches_and_pull_requests(make_project: Callable[..., Path], cli: Callable[..., Any]) -> None:
    project = make_project({"buildyard.yml": PIPELINE})
    result = cli("-C", project, "run", "--branch", "dev", "--changed", "src/app.py")
    assert "not triggered: push to 'dev': the branch matches none of on.push.branches" in result.out
    result = cli("-C", project, "run", "--event", "pull_request", "--branch", "dev", "--changed", "src/a.py")
    assert "not triggered: pull request into 'dev'" in result.out
    assert not (project / "built.txt").exists()
