"""A cache hit restores everything the job would have produced, its dependency caches included."""

from __future__ import annotations

import json
import shutil

PIPELINE = """\
jobs:
  install:
    cache:
      key: {files: [package-lock.json], prefix: node}
      paths: [node_modules/]
    script:
      - mkdir -p node_modules/left-pad
      - echo "module.exports = 1" > node_modules/left-pad/index.js
  build:
    needs: [install]
    cache: false
    script: cat node_modules/left-pad/index.js
"""


def test_a_cached_install_job_brings_node_modules_back(make_project, cli) -> None:
    root = make_project({"buildyard.yml": PIPELINE, "package-lock.json": '{"lockfileVersion": 3}\n'})
    (root / ".gitignore").write_text(".buildyard/\nnode_modules/\n")
    first = cli("-C", root, "run", "--json")
    assert first.code == 0, first.err
    shutil.rmtree(root / "node_modules")  # a fresh checkout, or a `git clean -fdx`
    second = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(second.out)["jobs"]}
    assert second.code == 0, jobs
    assert jobs["install"]["status"] == "cached" and jobs["build"]["status"] == "success"
    assert (root / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 1\n"
