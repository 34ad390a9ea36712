"""The server end to end: a real ``buildyard serve`` process, real runs in child processes, real git."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from server_testutil import wait_for

from by_testutil import gone

PIPELINE = """\
name: demo
jobs:
  hello:
    script:
      - echo "hello $GREETING from $(pwd)"
  second:
    needs: [hello]
    script: echo second; for i in 1 2 3; do echo line $i; done
"""

SLOW = """\
name: demo
jobs:
  slow:
    script:
      - echo $$ > "$PIDS/$BUILDYARD_RUN_NUMBER.pid"
      - echo started
      - sleep 60
"""


def entry(server, project: str, entry_id: str) -> dict:
    response = server.api.get(f"/api/v1/projects/{project}/queue/{entry_id}")
    assert response.status_code == 200, response.text
    return response.json()


def finished(server, project: str, entry_id: str) -> dict | None:
    e = entry(server, project, entry_id)
    return e if e["status"] not in ("queued", "running", "waiting", "resuming", "cancelling") else None


def test_trigger_runs_in_its_own_checkout_and_records_into_the_project_history(
    make_project, serve, cli
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    server = serve(root, "--runners", "2")
    assert "buildyard server: http://127.0.0.1:" in server.log()
    response = server.api.post(
        "/api/v1/projects/proj/runs", json={"variables": {"GREETING": "hi"}, "branch": "main"}
    )
    assert response.status_code == 201, response.text
    queued = response.json()["queued"]
    assert queued["status"] == "queued" and queued["requested_by"] == "local" and len(queued["sha"]) == 40
    done = wait_for(lambda: finished(server, "proj", queued["id"]), "the run to finish")
    assert done["status"] == "success", done
    assert done["queue_s"] is not None and done["queue_s"] >= 0
    run = server.api.get(f"/api/v1/projects/proj/runs/{done['run_id']}").json()
    assert run["number"] == 1 and run["trigger"] == "server" and run["branch"] == "main"
    assert run["sha"] == queued["sha"] and run["variables"] == {"GREETING": "hi"}
    assert run["queue"]["requested_by"] == "local"
    # the run's queue time counts from the trigger: it covers the wait in the server's queue
    assert run["queue_s"] == pytest.approx(run["started_at"] - queued["enqueued_at"])
    assert run["queue_s"] >= done["queue_s"]
    assert [(j["id"], j["status"]) for j in run["jobs"]] == [("hello", "success"), ("second", "success")]
    # the job ran in a checkout under the data directory, removed afterwards
    log = server.api.get("/api/v1/projects/proj/runs/1/jobs/hello/log").text
    where = log.split(" from ")[1].strip()
    assert where.startswith(str(root / ".buildyard" / "server" / "checkouts"))
    assert not Path(where).exists()
    # the CLI reads the same history
    listed = cli("-C", root, "history", "--json")
    assert listed.code == 0 and json.loads(listed.out)[0]["id"] == run["id"]
    # logs: offset and Range tails
    second = server.api.get("/api/v1/projects/proj/runs/1/jobs/second/log")
    assert second.text == "second\nline 1\nline 2\nline 3\n" and second.headers["x-log-final"] == "true"
    size = int(second.headers["x-log-size"])
    tail = server.api.get("/api/v1/projects/proj/runs/1/jobs/second/log", headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.text == "line 3\n"
    assert tail.headers["content-range"] == f"bytes {size - 7}-{size - 1}/{size}"
    offset = server.api.get("/api/v1/projects/proj/runs/1/jobs/second/log", params={"offset": 7, "limit": 7})
    assert offset.text == "line 1\n" and offset.headers["x-log-next"] == "14"
    missing = server.api.get("/api/v1/projects/proj/runs/9/jobs/second/log")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    # listing, filters, OpenAPI
    runs = server.api.get("/api/v1/projects/proj/runs", params={"status": "success"}).json()
    assert [r["number"] for r in runs["runs"]] == [1] and runs["next"] is None
    assert server.api.get("/api/v1/projects/proj/runs", params={"status": "failed"}).json()["runs"] == []
    assert "/api/v1/projects/{project}/runs" in server.api.get("/openapi.json").json()["paths"]
    assert server.api.get("/docs").status_code == 200


def test_cancel_running_and_queued_runs_kills_the_job_tree(make_project, serve, tmp_path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    root = make_project({"buildyard.yml": SLOW.replace("$PIDS", str(pids))})
    server = serve(root)
    first = server.api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    second = server.api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    pid_file = pids / "1.pid"
    wait_for(pid_file.exists, "the job to start")
    job_pid = int(wait_for(lambda: pid_file.read_text().strip(), "the pid"))
    # one runner: the second run waits in the queue
    assert entry(server, "proj", second["id"])["status"] == "queued"
    cancelled = server.api.post(f"/api/v1/projects/proj/runs/{second['id']}/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json()["queue"]["status"] == "cancelled"
    # cancel the running one by its history run number
    response = server.api.post("/api/v1/projects/proj/runs/1/cancel", json={})
    assert response.status_code == 200, response.text
    done = wait_for(lambda: finished(server, "proj", first["id"]), "the cancelled run to end")
    assert done["status"] == "cancelled"
    assert gone(job_pid), "the job's process survived the cancel"
    run = server.api.get("/api/v1/projects/proj/runs/1").json()
    assert run["status"] == "cancelled" and run["jobs"][0]["status"] == "cancelled"
    assert not (pids / "2.pid").exists()
    again = server.api.post(f"/api/v1/projects/proj/runs/{second['id']}/cancel", json={})
    assert again.status_code == 409 and again.json() == {
        "code": "conflict",
        "message": f"run {second['id'][:12]} is already finished (cancelled)",
    }


def test_kill_9_of_the_server_loses_no_queued_run_and_closes_the_running_one(
    make_project, serve, tmp_path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    pipeline = SLOW.replace("$PIDS", str(pids)).replace(
        "sleep 60", 'if [ "$BUILDYARD_RUN_NUMBER" = 1 ]; then sleep 60; fi'
    )
    root = make_project({"buildyard.yml": pipeline})
    data = tmp_path / "state"
    server = serve(root, "--data-dir", data)
    first = server.api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    second = server.api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    wait_for((pids / "1.pid").exists, "the first run's job to start")
    job_pid = int(wait_for(lambda: (pids / "1.pid").read_text().strip(), "the pid"))
    runner = entry(server, "proj", first["id"])["run_id"]
    assert runner
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    assert psutil.pid_exists(job_pid)  # the run went on without its server
    again = serve(root, "--data-dir", data)
    abandoned = wait_for(lambda: finished(again, "proj", first["id"]), "the first entry to be closed")
    assert abandoned["status"] == "abandoned" and "server stopped" in abandoned["message"]
    assert gone(job_pid), "the abandoned run's job was left running"
    run = again.api.get("/api/v1/projects/proj/runs/1").json()
    assert run["status"] == "cancelled" and "abandoned" in run["message"]
    done = wait_for(lambda: finished(again, "proj", second["id"]), "the queued run to run after the restart")
    assert done["status"] == "success" and done["run_number"] == 2
    assert not any((data / "checkouts").iterdir())


def test_refuses_a_public_address_without_authentication(make_project, cli) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    result = cli("-C", root, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "buildyard: error: refusing to bind 0.0.0.0 without authentication: create a user or token first "
        "('buildyard user create NAME --role admin'), or bind 127.0.0.1"
    ]


def test_an_open_server_answers_loopback_host_names_only(make_project, serve) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    server = serve(root)
    rebound = server.api.get("/api/v1/projects", headers={"Host": "attacker.example:8080"})
    assert rebound.status_code == 403 and rebound.json()["code"] == "bad_host"
    me = server.api.get("/api/v1/me").json()
    assert (me["name"], me["role"]) == ("local", "admin")


def test_a_project_in_a_subdirectory_of_its_repository(make_project, serve) -> None:
    repo = make_project(
        {"app/buildyard.yml": "name: app\njobs:\n  where:\n    script: pwd\n", "README": "x\n"}
    )
    server = serve(repo / "app")
    queued = server.api.post("/api/v1/projects/app/runs", json={}).json()["queued"]
    done = wait_for(lambda: finished(server, "app", queued["id"]), "the run to finish")
    assert done["status"] == "success", done
    where = server.api.get("/api/v1/projects/app/runs/1/jobs/where/log").text.strip()
    assert where.endswith(f"/checkouts/{queued['id']}/app")
    assert (repo / "app" / ".buildyard" / "buildyard.db").exists()


def test_the_cli_reads_a_running_server(make_project, serve, cli, monkeypatch, tmp_path) -> None:
    gate = tmp_path / "go"
    pipeline = (
        "name: demo\njobs:\n  talk:\n    script:\n"
        f"      - echo one; while [ ! -e {gate} ]; do sleep 0.1; done; echo two; printf 'three\\n'\n"
    )
    root = make_project({"buildyard.yml": pipeline})
    server = serve(root)
    monkeypatch.setenv("BUILDYARD_SERVER", server.url)
    queued = cli("trigger", "--json")
    assert queued.code == 0, queued.err
    entry_id = json.loads(queued.out)["id"]
    wait_for(lambda: entry(server, "proj", entry_id)["run_id"], "the run to start")
    wait_for(lambda: server.api.get("/api/v1/projects/proj/runs/1/jobs/talk/log").text, "the first line")
    timer = threading.Timer(1.0, gate.touch)  # the job goes on while `logs --follow` follows it
    timer.start()
    started = time.monotonic()
    followed = cli("logs", "1", "talk", "--follow")
    timer.join()
    assert time.monotonic() - started >= 1.0
    assert followed.code == 0 and followed.out == "one\ntwo\nthree\n"
    wait_for(lambda: finished(server, "proj", entry_id), "the run to finish")
    listed = cli("history", "--json")
    assert listed.code == 0 and [r["number"] for r in json.loads(listed.out)] == [1]
    shown = cli("show", "1")
    assert shown.code == 0 and shown.out.startswith("run #1 success  pipeline=demo event=push branch=main")
    assert "talk" in shown.out
    refused = cli("approve", "1", "talk")
    assert refused.code == 2
    assert "job 'talk' of run #1 is not waiting for approval (success, run success)" in refused.err
    missing = cli("show", "7")
    assert (
        missing.code == 2
        and missing.err.strip() == "buildyard: error: server: not_found: no run '7' (see 'buildyard history')"
    )


def test_a_port_in_use_is_one_line(make_project, cli) -> None:
    import socket

    root = make_project({"buildyard.yml": PIPELINE})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("-C", root, "serve", "--port", str(port))
    assert result.code == 2
    expected = f"cannot listen on 127.0.0.1:{port}: Address already in use (give another --port)"
    assert result.err == f"buildyard: error: {expected}\n"


def test_runners_execute_at_once_and_a_stopping_server_cancels_its_runs(
    make_project, serve, tmp_path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    root = make_project({"buildyard.yml": SLOW.replace("$PIDS", str(pids))})
    data = tmp_path / "state"
    server = serve(root, "--runners", "2", "--data-dir", data)
    entries = [server.api.post("/api/v1/projects/proj/runs", json={}).json()["queued"] for _ in range(3)]
    # two runners: two runs execute at once, the third waits
    wait_for(lambda: (pids / "1.pid").exists() and (pids / "2.pid").exists(), "two runs to execute at once")
    jobs = [int(wait_for(lambda n=n: (pids / f"{n}.pid").read_text().strip(), "a pid")) for n in (1, 2)]
    assert entry(server, "proj", entries[2]["id"])["status"] == "queued"
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert all(gone(pid) for pid in jobs), "a job outlived the server's shutdown"
    again = serve(root, "--runners", "1", "--data-dir", data)
    stopped = [entry(again, "proj", e["id"]) for e in entries[:2]]
    assert [(e["status"], e["message"]) for e in stopped] == [
        ("cancelled", "cancelled: the server stopped")
    ] * 2
    # the queued run survived the stop and runs now
    wait_for((pids / "3.pid").exists, "the queued run to start after the restart")
