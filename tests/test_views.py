"""One view model of a run: ``run --json`` and ``show --json`` give the same object; views need no engine."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from buildyard.model import JobStatus, RunStatus
from buildyard.store.history import DeploymentRecord, GateRecord, JobRecord, RunRecord, StepRecord
from buildyard.testing import MemoryHistory
from buildyard.views import JobView, Remote, RunView, load_run
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
      - echo second step
  flaky: {needs: [build], script: "exit 3", allow_failure: true}
  never:
    if: event == 'tag'
    script: echo never
  deploy:
    needs: [test]
    environment: staging
    script:
      - echo "$BUILDYARD_DEPLOY_VERSION" >> .buildyard/deployed.log
"""


def test_run_json_and_show_json_of_one_run_are_the_same_object(cli, make_project) -> None:
    root = make_project({"buildyard.yml": PIPELINE, "app.txt": "v1\n"}, commit=False)
    (root / ".gitignore").write_text(".buildyard/\ndist/\nreports/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    assert cli("-C", root, "keys", "generate").code == 0
    ran = cli("-C", root, "run", "--json")
    assert ran.code == 0, ran.err
    shown = cli("-C", root, "show", "1", "--json")
    assert shown.code == 0, shown.err
    run, show = json.loads(ran.out), json.loads(shown.out)
    assert run == show
    jobs = {j["name"]: j for j in run["jobs"]}
    assert run["status"] == "success" and run["run_id"] == run["id"] and run["number"] == 1
    assert [(s["name"], s["status"]) for s in jobs["test[3.11]"]["steps"]] == [("script", "success")]
    assert jobs["flaky"]["status"] == "failed" and jobs["flaky"]["allow_failure"] is True
    assert jobs["never"]["skip_reason"] == "condition_false" and jobs["never"]["log"] is None
    assert jobs["build"]["published"] == jobs["deploy"]["deployed"]
    assert str(jobs["build"]["published"]).startswith("shop-api@1.0.0+build.1.")
    assert [d["environment"] for d in jobs["deploy"]["deployments"]] == ["staging"]
    assert Path(jobs["build"]["log"]).is_file()
    [gate] = [g for j in run["jobs"] for g in j["gates"]]
    assert (gate["gate"], gate["status"]) == ("tests", "passed")
    listed = json.loads(cli("-C", root, "history", "--json").out)
    assert listed == [{k: v for k, v in run.items() if k != "jobs"}]
    deployed = json.loads(cli("-C", root, "deploy", "history", "staging", "--json").out)
    [short] = jobs["deploy"]["deployments"]
    assert [{k: d[k] for k in short} for d in deployed] == [short]
    assert deployed[0]["run_number"] == 1 and deployed[0]["job"] == "deploy"


def test_views_of_records_are_typed_and_ordered() -> None:
    history = MemoryHistory()
    run = history.create_run(
        RunRecord(id="a" * 32, pipeline="p", number=0, status="failed", event="push", created_at=1.0)
    )
    history.save_jobs(
        [
            JobRecord(run.id, "b", "b", "failed", log_path="/nonexistent"),
            JobRecord(run.id, "a", "a", "cached"),
        ],
        insert=True,
    )
    history.save_steps(
        [StepRecord(run.id, "b", 1, "two", "failed"), StepRecord(run.id, "b", 0, "one", "success")]
    )
    history.save_gates([GateRecord(run.id, "b", 0, "cov", "coverage", "failed", "low", {"line": 50.0})])
    d1 = history.start_deployment(DeploymentRecord("prod", "x", "2", run.id, "b", "running", 2.0))
    d2 = history.start_deployment(DeploymentRecord("prod", "x", "1", run.id, "b", "success", 1.0))
    view = load_run(history, None, log_exists=lambda path: path == "/nonexistent")
    assert view.status is RunStatus.FAILED and view.jobs is not None
    b, a = view.jobs
    assert (b.status, a.status) == (JobStatus.FAILED, JobStatus.CACHED)
    assert [s.name for s in b.steps] == ["one", "two"] and [d.id for d in b.deployments] == [d1, d2]
    assert b.to_json()["log"] == "/nonexistent" and a.to_json()["log"] is None
    assert b.to_json()["gates"] == [
        {"line": 50.0, "gate": "cov", "kind": "coverage", "status": "failed", "reason": "low"}
    ]
    assert "jobs" not in RunView.summary(run).to_json()
    miss = JobRecord(
        run.id, "c", "c", "success", cache_status="miss", cache_key="k", miss_reasons=["input_changed"]
    )
    assert JobView.from_record(miss).cache_json() == {
        "job": "c",
        "status": "success",
        "cache": "miss",
        "cache_key": "k",
        "saved_s": 0.0,
        "reasons": ["input_changed"],
    }


def test_a_remote_reader_gets_log_urls_and_no_server_paths() -> None:
    history = MemoryHistory()
    run = history.create_run(
        RunRecord(
            id="b" * 32,
            pipeline="p",
            number=1,
            status="success",
            event="push",
            created_at=1.0,
            project_dir="/srv/p",
            pipeline_file="/srv/p/buildyard.yml",
        )
    )
    history.save_jobs(
        [
            JobRecord(run.id, "t[a/b]", "t", "success", log_path="/srv/p/.buildyard/logs/t.log"),
            JobRecord(run.id, "c", "c", "cached", log_path="/gone.log"),
        ],
        insert=True,
    )
    history.start_deployment(DeploymentRecord("prod", "x", "2", run.id, "c", "success", 2.0))
    view = load_run(history, None, log_exists=lambda path: path.endswith("t.log"))
    local, remote = view.to_json(), view.to_json(Remote("my proj"))
    assert set(local) == set(remote) and local["project_dir"] == "/srv/p"
    assert (remote["project_dir"], remote["pipeline_file"]) == (None, None)
    [t_local, c_local] = local["jobs"]
    [t_remote, c_remote] = remote["jobs"]
    assert t_local["log"] == t_local["log_path"] == "/srv/p/.buildyard/logs/t.log"
    assert t_remote["log"] == f"/api/v1/projects/my%20proj/runs/{run.id}/jobs/t%5Ba%2Fb%5D/log"
    assert t_remote["log_path"] is None and c_remote["log"] is None and c_remote["log_path"] is None
    strip = ("log", "log_path")
    assert {k: v for k, v in t_local.items() if k not in strip} == {
        k: v for k, v in t_remote.items() if k not in strip
    }
    assert c_remote["deployments"] == c_local["deployments"]
    [d] = c_local["deployments"]
    assert d["environment"] == "prod" and "what" not in d  # the short form in a job
    assert view.jobs is not None and view.jobs[1].deployments[0].to_json()["what"] == "x@2"


def test_the_views_module_does_not_import_the_engine() -> None:
    banned = ("buildyard.engine", "buildyard.cli", "sqlalchemy")
    code = f"import sys, buildyard.views; print(sorted(m for m in sys.modules if m.startswith({banned!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_what_a_gate_quotes_is_masked_in_the_history_and_the_views(cli, make_project, tmp_path) -> None:
    secret = "s3cr3t-t0ken-qq"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f'TOKEN="{secret}"\n')
    junit = (
        '<testsuite tests="1" failures="1"><testcase classname="c" name="t">'
        '<failure message="got %s"/></testcase></testsuite>'
    )
    root = make_project(
        {
            "buildyard.yml": f"""\
gates:
  - tests: {{junit: "reports/junit.xml", max_failures: 0}}
jobs:
  test:
    secrets: [TOKEN]
    script:
      - mkdir -p reports
      - printf '{junit}' "$TOKEN" > reports/junit.xml
"""
        }
    )
    ran = cli("-C", root, "run", "--json", "--secrets-file", secrets)
    assert ran.code == 1, ran.err
    shown = cli("-C", root, "show", "--json")
    [gate] = [g for j in json.loads(shown.out)["jobs"] for g in j["gates"]]
    assert gate["status"] == "failed" and gate["details"] == ["failed: c::t: got ***"]
    assert secret not in shown.out and secret not in ran.out
    db = sqlite3.connect(root / ".buildyard" / "buildyard.db")
    try:
        assert secret not in "\n".join(db.iterdump())
    finally:
        db.close()
