"""``workspace: isolated``: jobs (and colliding matrix instances) run in their own copy of the project."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from buildyard.engine.workspace import METHOD_ENV, overlay_supported

COVERAGE_JOB = """\
name: ws
jobs:
  cov:
    matrix: {{py: [a, b]}}
{workspace}    script:
      - echo "$MATRIX_PY" >> .coverage
      - sleep 1
      - test "$(cat .coverage)" = "$MATRIX_PY"
      - mkdir -p out && cp .coverage out/cov.txt
    artifacts: {{paths: [out/]}}
"""
IGNORE = ".buildyard/\n.coverage\nout/\n"


@pytest.fixture(autouse=True, params=["copy", "overlay"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both ways of making a workspace (overlay where this machine can)."""
    if request.param == "overlay" and not overlay_supported(tempfile.gettempdir()):
        pytest.skip("no overlayfs in a user namespace here (unshare -Urm)")
    monkeypatch.setenv(METHOD_ENV, request.param)
    return str(request.param)


def run(cli, root: Path, *args: str) -> tuple[int, dict[str, dict]]:
    result = cli("-C", root, "run", "--json", "-j", "2", *args)
    return result.code, {j["name"]: j for j in json.loads(result.out)["jobs"]}


def project(make_project, pipeline: str, **files: str) -> Path:
    root = make_project({"buildyard.yml": pipeline, **files}, commit=False)
    (root / ".gitignore").write_text(IGNORE)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True)
    return root


def test_matrix_instances_sharing_the_checkout_corrupt_each_others_file(cli, make_project) -> None:
    root = project(make_project, COVERAGE_JOB.format(workspace="    workspace: shared\n"))
    code, jobs = run(cli, root)
    assert code != 0
    assert "failed" in {j["status"] for j in jobs.values()}  # one saw the other's line (or both did)


def test_isolated_matrix_instances_each_see_their_own_file(cli, make_project) -> None:
    root = project(make_project, COVERAGE_JOB.format(workspace="    workspace: isolated\n"))
    code, jobs = run(cli, root)
    assert code == 0, jobs
    assert {j["status"] for j in jobs.values()} == {"success"}
    assert not (root / ".coverage").exists()  # written in the workspaces only
    assert (root / "out/cov.txt").read_text() in ("a\n", "b\n")  # the instance that finished last


def test_colliding_outputs_isolate_matrix_instances_automatically(cli, make_project) -> None:
    root = project(make_project, COVERAGE_JOB.format(workspace=""))
    result = cli("-C", root, "run", "-j", "2")
    assert result.code == 0, result.out
    lines = [line for line in result.out.splitlines() if "isolated workspace" in line]
    assert len(lines) == 1 and "cov" in lines[0], result.out
    # each instance keeps its own outputs (what its cache entry stores)
    kept = {p.parent.parent.name: p.read_text() for p in (root / ".buildyard/outputs").glob("*/out/cov.txt")}
    assert sorted(kept.values()) == ["a\n", "b\n"], kept


def test_edits_stay_in_the_workspace_and_declared_outputs_come_back(cli, make_project, method: str) -> None:
    pipeline = """\
name: ws
jobs:
  build:
    workspace: isolated
    working_directory: app
    script:
      - echo changed >> main.txt
      - echo stray > stray.txt
      - mkdir -p ../out && cp main.txt ../out/main.txt
      - test ! -e ../.buildyard && test -f ../.git
      - git rev-parse HEAD > ../out/head
      - git status --porcelain > /dev/null
      - echo "$BUILDYARD_WORKSPACE $CI_PROJECT_DIR $PWD" > ../out/where
    artifacts: {paths: [../out/]}
"""
    root = project(make_project, pipeline, **{"app/main.txt": "main\n"})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    code, jobs = run(cli, root)
    assert code == 0, jobs
    assert (root / "app/main.txt").read_text() == "main\n"  # the project's tracked file is untouched
    assert not (root / "app/stray.txt").exists()  # undeclared files stay behind
    assert (root / "out/main.txt").read_text() == "main\nchanged\n"
    assert (root / "out/head").read_text() == head
    ws, ci_dir, cwd = (root / "out/where").read_text().split()
    assert ws == ci_dir and cwd == f"{ws}/app" and ".buildyard/work/" in ws
    log = (root / ".buildyard/logs/ws/1/build.log").read_text()
    assert f"({method}" in log or (method == "copy" and "(reflink" in log), log
    assert not Path(ws).exists()  # removed after the job succeeded
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    assert status.stdout == ""  # nothing written into the real repository or its index


def test_isolated_job_sees_the_outputs_of_the_jobs_it_needs(cli, make_project) -> None:
    pipeline = """\
name: ws
jobs:
  gen:
    script: ["mkdir -p out", "echo generated > out/gen.txt"]
    artifacts: {paths: [out/gen.txt]}
  use:
    needs: [gen]
    workspace: isolated
    script: ["cat out/gen.txt > final.txt"]
    artifacts: {paths: [final.txt]}
"""
    root = project(make_project, pipeline)
    code, jobs = run(cli, root)
    assert code == 0, jobs
    assert (root / "final.txt").read_text() == "generated\n"


def test_cached_isolated_job_restores_into_the_project_with_the_shared_key(cli, make_project) -> None:
    pipeline = """\
name: ws
jobs:
  build:
    workspace: {mode}
    script: ["mkdir -p out", "cat src.txt > out/b.txt"]
    artifacts: {{paths: [out/b.txt]}}
"""
    root = project(make_project, pipeline.format(mode="isolated"), **{"src.txt": "v1\n"})
    _, first = run(cli, root)
    assert first["build"]["cache"] == "miss" and (root / "out/b.txt").read_text() == "v1\n"
    (root / "out/b.txt").unlink()
    _, second = run(cli, root)
    assert second["build"]["status"] == "cached"
    assert (root / "out/b.txt").read_text() == "v1\n"  # restored into the project tree
    (root / "buildyard.yml").write_text(pipeline.format(mode="shared"))
    _, shared = run(cli, root)
    assert shared["build"]["status"] == "cached"  # same key as when it ran isolated


def test_failed_workspace_is_removed_or_kept_with_the_flag(cli, make_project) -> None:
    pipeline = """\
name: ws
jobs:
  broken:
    workspace: isolated
    script: ["echo partial > partial.txt", "exit 3"]
"""
    root = project(make_project, pipeline)
    code, jobs = run(cli, root)
    assert code != 0 and jobs["broken"]["status"] == "failed"
    assert not any((root / ".buildyard/work").glob("*/*"))
    result = cli("-C", root, "run", "--keep-workspaces")
    assert result.code != 0
    line = next(line for line in result.out.splitlines() if "workspace kept at" in line)
    kept = Path(line.split("workspace kept at ")[1].split()[0])
    assert (kept / "partial.txt").read_text() == "partial\n"
    assert not (root / "partial.txt").exists()


def test_a_deleted_output_is_not_collected_from_the_layer_below(cli, make_project) -> None:
    pipeline = """\
name: ws
jobs:
  gen:
    workspace: isolated
    script: ["rm gen/old.txt", "echo new > gen/new.txt"]
    artifacts: {paths: [gen/old.txt, gen/new.txt]}
"""
    root = project(make_project, pipeline, **{"gen/old.txt": "old\n"})
    code, jobs = run(cli, root)
    assert code == 0, jobs
    own = root / ".buildyard/outputs/gen/gen"
    assert sorted(p.name for p in own.iterdir()) == ["new.txt"]
    assert (root / "gen/new.txt").read_text() == "new\n"
    assert (root / "gen/old.txt").read_text() == "old\n"  # a collect adds and replaces, never deletes


def test_an_isolated_job_gets_and_gives_back_its_dependency_cache(cli, make_project) -> None:
    pipeline = """\
name: ws
defaults:
  workspace: isolated
jobs:
  install:
    cache:
      key: {files: [package-lock.json], prefix: node}
      paths: [node_modules/]
    script:
      - test ! -e node_modules/left-pad/index.js || echo restored > node_modules/seen
      - mkdir -p node_modules/left-pad
      - echo "module.exports = 1" > node_modules/left-pad/index.js
  use:
    needs: [install]
    cache:
      key: {files: [package-lock.json], prefix: node}
      paths: [node_modules/]
      policy: pull
    script: ["test -f node_modules/left-pad/index.js"]
"""
    root = project(make_project, pipeline, **{"package-lock.json": "{}\n"})
    (root / ".gitignore").write_text(IGNORE + "node_modules/\n")
    code, jobs = run(cli, root)
    assert code == 0, jobs
    assert (root / "node_modules/left-pad/index.js").is_file()  # back in the project, saved by the cache
    subprocess.run(["rm", "-rf", str(root / "node_modules")], check=True)  # a fresh checkout
    code, jobs = run(cli, root)
    assert code == 0 and jobs["install"]["status"] == "cached", jobs
    assert (root / "node_modules/left-pad/index.js").is_file()  # the saved dependency cache
