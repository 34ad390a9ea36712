"""A job's cache key covers its own definition, not the text of the whole pipeline file."""

from __future__ import annotations

import json

from by_testutil import git

PIPELINE = """\
jobs:
  a:
    script: echo a > a.txt
  b:
    script: echo b > b.txt
"""


def statuses(cli, root) -> dict[str, str]:
    result = cli("-C", root, "run", "--json")
    assert result.code == 0, result.err
    return {j["name"]: j["status"] for j in json.loads(result.out)["jobs"]}


def test_editing_one_job_reruns_only_that_job(make_project, cli) -> None:
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": "*.txt\n"})
    (root / ".gitignore").write_text(".buildyard/\n*.txt\n")
    assert statuses(cli, root) == {"a": "success", "b": "success"}
    assert statuses(cli, root) == {"a": "cached", "b": "cached"}
    (root / "buildyard.yml").write_text(PIPELINE.replace("echo b", "echo bee"))  # uncommitted edit of b
    assert statuses(cli, root) == {"a": "cached", "b": "success"}
    git(root, "commit", "-qam", "edit b")  # committing it changes nothing more
    assert statuses(cli, root) == {"a": "cached", "b": "cached"}
    (root / "buildyard.yml").write_text(PIPELINE.replace("echo b", "echo bee") + "# a comment\n")
    assert statuses(cli, root) == {"a": "cached", "b": "cached"}


def test_a_pipeline_variable_still_reaches_every_key(make_project, cli) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    (root / ".gitignore").write_text(".buildyard/\n*.txt\n")
    assert statuses(cli, root) == {"a": "success", "b": "success"}
    (root / "buildyard.yml").write_text("variables: {MODE: fast}\n" + PIPELINE)
    assert statuses(cli, root) == {"a": "success", "b": "success"}
