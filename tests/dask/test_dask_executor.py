"""The dask executor against a real scheduler and two agent processes on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

Cluster = Any

pytestmark = pytest.mark.integration


def _run(cli, root: Path, cluster: Cluster, *args: str | Path):
    result = cli(
        "-C", root, "run", "--json", "--executor", f"dask://{cluster.address.removeprefix('tcp://')}", *args
    )
    return result, json.loads(result.out) if result.out.strip().startswith("{") else {}


def test_dag_runs_on_agents_from_content_and_outputs_come_back(cli, make_project, cluster, tmp_path) -> None:
    secret = "s3cr3t-v4lue-on-agent"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f'TOKEN="{secret}"\n')
    root = make_project(
        {
            "src/input.txt": "hello from the project\n",
            "buildyard.yml": """\
jobs:
  build:
    secrets: [TOKEN]
    steps:
      - run: mkdir -p out && cat src/input.txt > out/a.txt && echo "pwd=$PWD" && echo "tok=$TOKEN"
      - run: echo "uncommitted=$(cat src/extra.txt)"
    artifacts: {paths: [out/]}
  test:
    needs: [build]
    matrix: {n: ["1", "2"]}
    steps:
      - run: echo "seen=$(cat out/a.txt) n=$n"
""",
        }
    )
    (root / "src" / "extra.txt").write_text("not committed yet\n")  # untracked, not ignored: an input
    (root / ".gitignore").write_text(".buildyard/\nout/\nprivate.txt\n")
    (root / "private.txt").write_text("ignored: never shipped\n")
    result, summary = _run(cli, root, cluster, "--secrets-file", secrets)
    assert result.code == 0, result.out + result.err
    jobs = {j["id"]: j for j in summary["jobs"]}
    assert {j["status"] for j in jobs.values()} == {"success"}, jobs
    assert (root / "out" / "a.txt").read_text() == "hello from the project\n"
    build_log = Path(jobs["build"]["log"]).read_text()
    assert "uncommitted=not committed yet" in build_log
    pwd = next(line for line in build_log.splitlines() if line.startswith("pwd="))[4:]
    assert not pwd.startswith(str(root)), "the job ran in the project, not on an agent"
    assert any(pwd.startswith(str(work)) for _pid, work in cluster.agents.values()), pwd
    assert secret not in build_log and "tok=***" in build_log
    for job_id, job in jobs.items():
        if job_id.startswith("test"):
            assert "seen=hello from the project" in Path(job["log"]).read_text()
    # the agents' disks hold neither the secret nor the ignored file; the workspaces are gone
    for _pid, work in cluster.agents.values():
        for path in work.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret.encode() not in data, path
                assert b"ignored: never shipped" not in data, path
        assert not any((work / "buildyard" / "jobs").glob("*/ws")), "workspace left on the agent"


def test_failure_and_retry_and_timeout_on_agents(cli, make_project, cluster, tmp_path) -> None:
    marker = tmp_path / "tries"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  flaky:
    retry: {{max: 2}}
    steps:
      - run: echo x >> {marker}; test "$(wc -l < {marker})" -ge 2
  broken:
    steps:
      - run: echo failing; exit 7
  slow:
    timeout: 1s
    steps:
      - run: sleep 30
  after:
    needs: [broken]
    steps:
      - run: echo never
""",
        }
    )
    result, summary = _run(cli, root, cluster)
    assert result.code == 1
    jobs = {j["id"]: j for j in summary["jobs"]}
    assert jobs["flaky"]["status"] == "success"
    assert marker.read_text().count("x") == 2
    assert jobs["broken"]["status"] == "failed" and "code 7" in jobs["broken"]["message"]
    assert jobs["slow"]["status"] == "timed_out"
    assert jobs["after"]["status"] == "skipped"
