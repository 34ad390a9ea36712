"""The dask executor against a real scheduler and two agent processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

Cluster = Any
SRC = Path(__file__).resolve().parents[2] / "src"

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


def _orchestrator(root: Path, cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    """``buildyard run`` on the cluster as its own process (signals reach it as Ctrl-C would)."""
    target = f"dask://{cluster.address.removeprefix('tcp://')}"
    return subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run", "--json", "--executor", target, *args],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, lines: int = 1, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(found := path.read_text().splitlines()) >= lines:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {lines} lines")


def test_a_job_whose_agent_is_killed_reruns_on_another(make_project, cluster, tmp_path) -> None:
    marker = tmp_path / "started"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  long:
    steps:
      - run: echo "$BUILDYARD_AGENT" >> {marker}; sleep 3; mkdir -p out; echo done > out/r.txt
    artifacts: {{paths: [out/]}}
""",
        }
    )
    run = _orchestrator(root, cluster)
    try:
        first = _wait_for(marker)[0]
        victim = next(name for name, address in cluster.addresses().items() if address == first)
        cluster.kill(cluster.agents[victim][0])
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        cluster.restart_missing()
    assert run.returncode == 0, out + err
    agents = marker.read_text().split()
    assert len(agents) == 2 and agents[0] != agents[1]
    job = json.loads(out)["jobs"][0]
    assert job["status"] == "success"
    assert "agent_lost" in Path(job["log"]).read_text()
    assert (root / "out" / "r.txt").read_text() == "done\n"


def test_ctrl_c_of_the_orchestrator_kills_the_job_tree_on_the_agent(make_project, cluster, tmp_path) -> None:
    marker = tmp_path / "started"
    token = f"{time.time_ns() % 1000}.{os.getpid()}"  # this test's own sleep duration: its marker
    root = make_project(
        {
            "buildyard.yml": (
                f"jobs:\n  hang:\n    steps:\n      - run: echo up >> {marker}; sleep {token}; echo over\n"
            )
        }
    )
    run = _orchestrator(root, cluster)
    try:
        _wait_for(marker)
        time.sleep(0.3)
        assert _marked(token), "the job's process is not running on an agent"
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    deadline = time.monotonic() + 10
    while _marked(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _marked(token), "an orphan of the cancelled job is still running"


def _marked(token: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if token in " ".join(proc.info["cmdline"] or ()) and proc.pid != os.getpid():
                found.append(proc.pid)
    return found


def test_the_cache_is_shared_between_a_local_and_a_cluster_run(cli, make_project, cluster) -> None:
    root = make_project(
        {
            "in.txt": "v1\n",
            "buildyard.yml": """\
jobs:
  gen:
    steps:
      - run: mkdir -p out && cp in.txt out/copy.txt && date +%s%N > out/stamp
    artifacts: {paths: [out/]}
""",
        }
    )
    (root / ".gitignore").write_text(".buildyard/\nout/\n")
    local = cli("-C", root, "run", "--json")
    assert local.code == 0, local.err
    stamp = (root / "out" / "stamp").read_text()
    (root / "out" / "stamp").unlink()
    remote, summary = _run(cli, root, cluster)
    assert remote.code == 0, remote.err
    assert summary["jobs"][0]["status"] == "cached"
    assert (root / "out" / "stamp").read_text() == stamp  # restored from the local run's entry
    (root / "in.txt").write_text("v2\n")
    remote, summary = _run(cli, root, cluster)
    assert summary["jobs"][0]["status"] == "success", remote.err
    assert "not cached" not in remote.err, remote.err
    assert (root / "out" / "copy.txt").read_text() == "v2\n"
    (root / "out" / "copy.txt").unlink()
    local = cli("-C", root, "run", "--json")
    job = json.loads(local.out)["jobs"][0]
    assert job["status"] == "cached", job["miss_reasons"]  # the cluster's entry, hit locally
    assert (root / "out" / "copy.txt").read_text() == "v2\n"


def test_cluster_status_lists_the_agents_with_labels_and_slots(cli, cluster) -> None:
    result = cli("cluster", "status", "--scheduler", cluster.address, "--json")
    assert result.code == 0, result.err
    agents = {a["name"]: a for a in json.loads(result.out)}
    assert set(agents) == {"a1", "a2"}
    assert agents["a2"]["labels"] == ["gpu", "linux"] and agents["a1"]["labels"] == ["linux"]
    assert agents["a1"]["resources"] == {"cpus": 2.0} and agents["a1"]["slots"] == 2


def test_an_unreachable_scheduler_fails_the_run_with_one_line(cli, make_project) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo hi}\n"})
    result = cli("-C", root, "run", "--json", "--executor", f"dask://127.0.0.1:{port}")
    assert result.code == 1
    job = json.loads(result.out)["jobs"][0]
    assert job["status"] == "failed" and "cannot reach the Dask scheduler" in job["message"]


def test_runs_on_routes_by_label_and_resources_are_counted(cli, make_project, cluster, tmp_path) -> None:
    spans = tmp_path / "spans"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  gpu:
    runs_on: [gpu, linux]
    steps:
      - run: echo "agent=$BUILDYARD_AGENT"
  here:
    runs_on: local
    steps:
      - run: echo "pwd=$PWD"
  big:
    matrix: {{n: ["1", "2"]}}
    resources: {{cpus: 2}}
    runs_on: [gpu]
    steps:
      - run: echo "start $(date +%s.%N)" >> {spans}; sleep 1; echo "end $(date +%s.%N)" >> {spans}
""",
        }
    )
    result, summary = _run(cli, root, cluster, "-j", "4")
    assert result.code == 0, result.out + result.err
    jobs = {j["id"]: j for j in summary["jobs"]}
    gpu_agent = cluster.addresses()["a2"]
    assert f"agent={gpu_agent}" in Path(jobs["gpu"]["log"]).read_text()
    assert f"pwd={root}" in Path(jobs["here"]["log"]).read_text()  # runs_on: local stays here
    # two cpus=2 jobs on the one cpus=2 agent with the label: one after the other, never together
    events = sorted((float(t), kind) for kind, t in (line.split() for line in spans.read_text().splitlines()))
    assert [kind for _t, kind in events] == ["start", "end", "start", "end"]


def test_an_unknown_label_fails_at_once(cli, make_project, cluster) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  a: {runs_on: [arm64], script: echo hi}\n  b: {script: echo fine}\n"}
    )
    result, summary = _run(cli, root, cluster)
    assert result.code == 1
    jobs = {j["id"]: j for j in summary["jobs"]}
    assert jobs["a"]["status"] == "failed" and "no agent has labels arm64" in jobs["a"]["message"]
    assert jobs["b"]["status"] == "success"


def test_without_a_cluster_labels_are_ignored_with_one_line(cli, make_project) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {runs_on: [gpu], script: echo hi}\n"})
    result = cli("-C", root, "run")
    assert result.code == 0, result.err
    assert (result.out + result.err).count("runs_on labels are ignored") == 1


def test_logs_stream_live_from_the_agent(make_project, cluster, tmp_path) -> None:
    gate = tmp_path / "gate"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  talk:
    steps:
      - run: echo early; while [ ! -e {gate} ]; do sleep 0.05; done; echo late
""",
        }
    )
    run = _orchestrator(root, cluster, "--stream")
    try:
        log = root / ".buildyard" / "logs" / "pipeline" / "1" / "talk.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.exists() and b"early" in log.read_bytes()):
            time.sleep(0.05)
        assert b"early" in log.read_bytes(), "the output did not arrive while the job ran"
        assert b"late" not in log.read_bytes()
        gate.write_text("go")
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err
    assert log.read_text().count("early") == 1 and "late" in log.read_text()
    assert err.count("early") == 1 and err.count("late") == 1  # shown once each (--json: output on stderr)


def test_a_frozen_agent_is_given_up_and_its_job_reruns(make_project, cluster, tmp_path) -> None:
    marker = tmp_path / "started"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  long:
    steps:
      - run: echo "$BUILDYARD_AGENT" >> {marker}; sleep 2; echo finished
""",
        }
    )
    run = _orchestrator(root, cluster)
    victim_pid = 0
    try:
        first = _wait_for(marker)[0]
        victim = next(name for name, address in cluster.addresses().items() if address == first)
        victim_pid = cluster.agents[victim][0]
        os.kill(victim_pid, signal.SIGSTOP)  # frozen: no heartbeat, its connection stays open
        out, err = run.communicate(timeout=120)
    finally:
        if victim_pid:
            cluster.kill(victim_pid)  # a stopped process dies of SIGKILL too
        if run.poll() is None:
            run.kill()
            run.communicate()
        cluster.restart_missing()
    assert run.returncode == 0, out + err
    agents = marker.read_text().split()
    assert len(agents) == 2 and agents[0] != agents[1]
    assert "agent_lost" in Path(json.loads(out)["jobs"][0]["log"]).read_text()
