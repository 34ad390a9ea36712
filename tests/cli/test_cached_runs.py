"""``buildyard run`` with the job cache: restored outputs, explain, dependency caches, remote cache."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PIPELINE = """\
name: cached
jobs:
  gen:
    working_directory: lib
    script: ["mkdir -p ../out", "cat *.txt | tr a-z A-Z > ../out/gen.txt", "echo generated"]
    artifacts: {paths: [../out/gen.txt]}  # relative to the working directory
  use:
    needs: [gen]
    inputs: [app/**]
    script: ["cat out/gen.txt app/main.txt > out/final.txt", "echo used"]
    artifacts: {paths: [out/final.txt]}
  always:
    cache: false
    script: echo always >> always.log
  flaky:
    script: "test -f ok"
"""
FILES = {
    "buildyard.yml": PIPELINE,
    "lib/a.txt": "alpha\n",
    "app/main.txt": "main\n",
    ".gitignore": ".buildyard/\nout/\nalways.log\nok\n",
}


def run(cli, root: Path, *args: str) -> dict[str, dict]:
    result = cli("-C", root, "run", "--json", *args)
    return {j["name"]: j for j in json.loads(result.out)["jobs"]}


def test_unchanged_jobs_are_restored_not_rerun(cli, make_project) -> None:
    root = make_project(FILES)
    first = run(cli, root)
    assert {n: j["cache"] for n, j in first.items()} == {
        "gen": "miss",
        "use": "miss",
        "always": "off",
        "flaky": "miss",
    }
    assert first["flaky"]["status"] == "failed"
    shutil.rmtree(root / "out")
    (root / "ok").write_text("")
    second = run(cli, root)
    assert second["gen"]["status"] == "cached" and second["use"]["status"] == "cached"
    assert second["gen"]["saved_s"] > 0 and second["gen"]["cache_key"] == first["gen"]["cache_key"]
    assert (root / "out" / "final.txt").read_text() == "ALPHA\nmain\n"  # outputs restored
    assert second["gen"]["log"] is None  # the log is not copied into the run's directory …
    assert cli("-C", root, "logs", "last", "gen").out == "generated\n"  # … it is read from the entry
    logs = json.loads(cli("-C", root, "logs", "last", "--json").out)
    assert {j["job"]: j["log"] for j in logs}["gen"] == "generated\n"
    assert second["always"]["status"] == "success" and (root / "always.log").read_text() == "always\nalways\n"
    assert second["flaky"]["status"] == "success"  # a failure is never cached
    shown = json.loads(cli("-C", root, "show", "--json").out)
    assert {j["id"]: j["cache_status"] for j in shown["jobs"]}["gen"] == "hit"
    shutil.rmtree(root / ".buildyard" / "cas")  # the entry is gone: logs says so instead of nothing
    assert "no longer in the cache" in cli("-C", root, "logs", "last", "gen").out


def test_changes_invalidate_exactly_the_affected_jobs_and_explain_says_why(cli, make_project) -> None:
    root = make_project(FILES)
    run(cli, root)
    (root / "app" / "main.txt").write_text("main v2\n")
    after_app = run(cli, root)
    assert after_app["gen"]["status"] == "cached" and after_app["use"]["status"] == "success"
    assert after_app["use"]["cache"] == "miss"
    explained = cli("-C", root, "explain", "use")
    assert "input_changed: app/main.txt" in explained.out
    (root / "lib" / "a.txt").write_text("beta\n")
    after_lib = run(cli, root)
    assert after_lib["gen"]["cache"] == "miss" and after_lib["use"]["cache"] == "miss"
    reasons = json.loads(cli("-C", root, "explain", "use", "--json").out)[0]["reasons"]
    assert reasons == ["upstream_changed: gen"]
    assert (root / "out" / "final.txt").read_text() == "BETA\nmain v2\n"
    hit = cli("-C", root, "explain", "gen")
    assert "ran (cache miss" in hit.out and "input_changed: a.txt" in hit.out


def test_no_cache_flag_runs_everything(cli, make_project) -> None:
    root = make_project(FILES)
    run(cli, root)
    again = run(cli, root, "--no-cache")
    assert {j["status"] for n, j in again.items() if n != "flaky"} == {"success"}
    assert {j["cache"] for j in again.values()} == {"off"}


def test_dependency_cache_restores_directories_by_lockfile_key(cli, make_project) -> None:
    root = make_project(
        {
            ".gitignore": ".buildyard/\nvendor/\n",
            "deps.lock": "left-pad==1.0\n",
            "src.txt": "v1\n",
            "buildyard.yml": """\
jobs:
  install:
    cache: {key: {files: [deps.lock], prefix: vendor}, paths: [vendor/]}
    script:
      - test -f vendor/installed || { mkdir -p vendor; cp deps.lock vendor/installed; echo FRESH INSTALL; }
      - cat src.txt
""",
        }
    )
    first = run(cli, root)
    assert "FRESH INSTALL" in Path(first["install"]["log"]).read_text()
    shutil.rmtree(root / "vendor")
    (root / "src.txt").write_text("v2\n")  # job cache misses, dependency cache hits
    second = run(cli, root)
    log = Path(second["install"]["log"]).read_text()
    assert second["install"]["status"] == "success" and "FRESH INSTALL" not in log and "v2" in log
    assert (root / "vendor" / "installed").read_text() == "left-pad==1.0\n"
    shutil.rmtree(root / "vendor")
    (root / "deps.lock").write_text("left-pad==2.0\n")  # new lockfile → new key → fresh install
    third = run(cli, root)
    assert "FRESH INSTALL" in Path(third["install"]["log"]).read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_clones_share_results_through_the_cache_server(cli, make_project, tmp_path, monkeypatch) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buildyard",
            "cache",
            "serve",
            "--port",
            str(port),
            "--token",
            "rw-secret",
            "--cache-dir",
            str(tmp_path / "server-cache"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(
                    f"{url}/v8/artifacts/status", headers={"Authorization": "Bearer rw-secret"}, timeout=1
                )
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        monkeypatch.setenv("BUILDYARD_REMOTE_CACHE_TOKEN", "rw-secret")
        first = make_project(FILES, name="clone1")
        run(cli, first, "--remote-cache", url)
        second = make_project(FILES, name="clone2")
        shared = run(cli, second, "--remote-cache", url)
        assert shared["gen"]["status"] == "cached" and shared["use"]["status"] == "cached"
        assert (second / "out" / "final.txt").read_text() == "ALPHA\nmain\n"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_unreachable_remote_degrades_to_local_with_one_warning(cli, make_project) -> None:
    root = make_project(FILES)
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("-C", root, "run", "--remote-cache", url)
    assert result.code == 1  # only "flaky" fails
    assert result.out.count("warning:") == 1 and "remote" in result.out.lower()
    again = cli("-C", root, "run", "--remote-cache", url, "--json")
    jobs = {j["name"]: j["status"] for j in json.loads(again.out)["jobs"]}
    assert jobs["gen"] == "cached"
    assert os.environ.get("BUILDYARD_REMOTE_CACHE_TOKEN") is None


def test_a_silent_job_has_no_log_file_and_still_caches(cli, make_project) -> None:
    root = make_project(
        {"buildyard.yml": "name: quiet\njobs:\n  q: {script: 'true; true'}\n  talk: {script: echo hi}\n"}
    )
    first = run(cli, root)
    assert first["q"]["status"] == "success" and first["q"]["log"] is None  # nothing printed, no file
    assert Path(first["talk"]["log"]).read_text() == "hi\n"
    assert cli("-C", root, "logs", "last", "q").out == ""
    second = run(cli, root)
    assert second["q"]["status"] == "cached" and second["talk"]["status"] == "cached"
