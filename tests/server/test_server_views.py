"""One run, three faces: ``show --json``, the REST API and the dashboard's JSON give the same objects.

The differences are the documented ones (``buildyard.views``): a client of the server gets no server
paths (``project_dir``, ``pipeline_file``, ``log_path`` are null) and ``log`` is the REST API's URL of
the job's log; the API's run adds ``queue``; the dashboard's run page holds the run (without its jobs)
and the jobs side by side with its own DAG, timeline, gates and deployments.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from by_testutil import git

PIPELINE = """\
name: shop
gates:
  - tests: {junit: "reports/junit.xml", max_failures: 0}
jobs:
  build:
    script:
      - mkdir -p dist reports
      - cp app.txt dist/app.txt
      - echo '<testsuite tests="1"><testcase classname="c" name="t"/></testsuite>' > reports/junit.xml
    artifacts: {paths: [dist/, reports/]}
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
  test:
    needs: [build]
    matrix: {py: ["3.11", "3.12"]}
    script:
      - echo testing ${{ matrix.py }}
  broken:
    needs: [build]
    script: echo "about to fail"; exit 3
  after:
    needs: [broken]
    script: echo never
"""

SERVER_PATHS = ("project_dir", "pipeline_file", "log_path", "log")


def _without(obj: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def test_show_json_the_api_and_the_dashboard_give_the_same_run_and_jobs(cli, make_project, serve) -> None:
    root = make_project({"buildyard.yml": PIPELINE, "app.txt": "v1\n"}, commit=False)
    (root / ".gitignore").write_text(".buildyard/\ndist/\nreports/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    assert cli("-C", root, "keys", "generate").code == 0
    ran = cli("-C", root, "run", "--json")
    assert ran.code == 1, ran.err  # `broken` fails the run
    shown = cli("-C", root, "show", "1", "--json")
    assert shown.code == 0, shown.err
    show = json.loads(shown.out)
    jobs = {j["id"]: j for j in show["jobs"]}
    # the run has what the comparison is about: a matrix, a failed job, a gate, a publish
    assert show["status"] == "failed" and {"test[3.11]", "test[3.12]"} <= set(jobs)
    assert jobs["broken"]["status"] == "failed" and jobs["broken"]["exit_code"] == 3
    assert jobs["after"]["status"] == "skipped"
    assert [(g["gate"], g["status"]) for g in jobs["gates"]["gates"]] == [("tests", "passed")]
    assert str(jobs["build"]["published"]).startswith("shop-api@1.0.0+build.1.")

    server = serve(root)
    api = server.api.get("/api/v1/projects/proj/runs/1")
    assert api.status_code == 200, api.text
    by_api = api.json()
    dashboard = server.api.get("/p/proj/runs/1", params={"format": "json"})
    assert dashboard.status_code == 200, dashboard.text
    by_dashboard = dashboard.json()

    # the API: the same keys and values, plus `queue`; the server's paths left out, logs by URL
    assert by_api["queue"] is None  # run by the CLI, not from the server's queue
    assert set(by_api) - {"queue"} == set(show)
    assert _without(by_api, ("queue", "jobs", *SERVER_PATHS)) == _without(show, ("jobs", *SERVER_PATHS))
    assert (by_api["project_dir"], by_api["pipeline_file"]) == (None, None)
    assert show["project_dir"] == str(root)
    assert [j["id"] for j in by_api["jobs"]] == [j["id"] for j in show["jobs"]]
    for remote, local in zip(by_api["jobs"], show["jobs"], strict=True):
        assert set(remote) == set(local)
        assert _without(remote, SERVER_PATHS) == _without(local, SERVER_PATHS)
        assert remote["log_path"] is None
        if local["log"] is None:
            assert remote["log"] is None, remote
            continue
        job = urllib.parse.quote(local["id"], safe="")  # test[3.11] → test%5B3.11%5D
        assert remote["log"] == f"/api/v1/projects/proj/runs/{show['id']}/jobs/{job}/log"
        served = server.api.get(remote["log"])
        assert served.status_code == 200 and served.content == Path(local["log"]).read_bytes()
    broken = next(j for j in by_api["jobs"] if j["id"] == "broken")
    assert "about to fail" in server.api.get(broken["log"]).text

    # the API's job routes give the same job objects
    listed = server.api.get("/api/v1/projects/proj/runs/1/jobs").json()["jobs"]
    assert listed == by_api["jobs"]
    one = server.api.get("/api/v1/projects/proj/runs/1/jobs/test[3.12]").json()
    assert one == next(j for j in by_api["jobs"] if j["id"] == "test[3.12]")
    # history: the API's list holds the run as `history --json` does, shown remote
    [summary] = server.api.get("/api/v1/projects/proj/runs").json()["runs"]
    [local_summary] = json.loads(cli("-C", root, "history", "--json").out)
    assert summary == {**local_summary, "project_dir": None, "pipeline_file": None}

    # the dashboard: the API's run (without its jobs and queue entry) and the API's jobs
    assert by_dashboard["run"] == _without(by_api, ("jobs", "queue"))
    assert by_dashboard["jobs"] == by_api["jobs"]
    assert {"dag", "gantt", "gates", "deployments", "artifacts"} <= set(by_dashboard)
    gates = [(g["job"], g["gate"], g["status"]) for g in by_dashboard["gates"]]
    assert gates == [("gates", "tests", "passed")]
    # the dashboard's log page: the same run and job objects beside the log's lines
    page = server.api.get("/p/proj/runs/1/jobs/broken/log", params={"format": "json"}).json()
    assert page["run"] == by_dashboard["run"] and page["job"] == broken
    assert any("about to fail" in str(line) for line in page["lines"])
