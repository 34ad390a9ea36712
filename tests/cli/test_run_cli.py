"""``buildyard run`` end to end: real git repos, real processes, the real history store."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PIPELINE = """\
name: shop
variables: {APP: shop}
stages: [build, test, deploy]
jobs:
  build:
    stage: build
    steps:
      - run: mkdir -p dist && echo "$APP $BUILDYARD_JOB $CI $BUILDYARD_BRANCH" > dist/app.txt
      - {name: show env, run: 'echo "step=$BUILDYARD_STEP sha=$BUILDYARD_COMMIT_SHA"'}
    artifacts: {paths: [dist/]}
  test:
    needs: [build]
    matrix: {python: ["3.11", "3.12"]}
    script: ["echo testing ${{ matrix.python }} $MATRIX_PYTHON", "test ${{ matrix.python }} != 3.12"]
    allow_failure: true
  lint:
    stage: test
    script: echo lint
  deploy:
    stage: deploy
    if: event == 'push' && branch == 'main'
    secrets: [DEPLOY_TOKEN]
    script: echo "deploying with $DEPLOY_TOKEN"
"""


def run_json(cli, root: Path, *args: str):
    result = cli("-C", root, "run", "--json", *args)
    return result, json.loads(result.out)


def test_run_executes_the_dag_and_records_it(cli, make_project, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-123-secret")
    root = make_project({"buildyard.yml": PIPELINE})
    result, summary = run_json(cli, root)
    assert result.code == 0, result.err
    assert summary["status"] == "success" and summary["number"] == 1 and summary["branch"] == "main"
    jobs = {j["name"]: j for j in summary["jobs"]}
    assert set(jobs) == {"build", "test[3.11]", "test[3.12]", "lint", "deploy"}
    assert jobs["test[3.12]"]["status"] == "failed" and jobs["test[3.12]"]["exit_code"] == 1
    assert jobs["deploy"]["status"] == "success"  # allow_failure does not block
    for job in jobs.values():
        assert {"attempts", "exit_code", "started_at", "finished_at", "duration_s"} <= set(job)
        assert job["duration_s"] >= 0 and job["attempts"] == 1
    assert (root / "dist" / "app.txt").read_text() == "shop build true main\n"
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    assert summary["sha"] == sha
    assert f"step=2 sha={sha}" in Path(jobs["build"]["log"]).read_text()
    assert "testing 3.11 3.11" in Path(jobs["test[3.11]"]["log"]).read_text()

    shown = json.loads(cli("-C", root, "show", "1", "--json").out)
    assert shown["status"] == "success" and shown["event"] == "push"
    rows = {j["id"]: j for j in shown["jobs"]}
    assert rows["test[3.12]"]["status"] == "failed" and rows["build"]["cpu_seconds"] is not None
    assert [s["name"] for s in rows["build"]["steps"]] == ["step 1", "show env"]
    history = json.loads(cli("-C", root, "history", "--json").out)
    assert [r["number"] for r in history] == [1]
    logs = cli("-C", root, "logs", "1", "deploy")
    assert logs.code == 0 and logs.out == "deploying with ***\n"


def test_a_job_skips_itself_and_jobs_see_the_statuses_of_their_needs(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
jobs:
  check: {script: "echo nothing to do; exit 78", skip_exit_codes: [78]}
  build: {script: echo built}
  after: {needs: [check], script: echo never}
  report: {needs: [check, build], when: always, script: 'echo "needs=$BUILDYARD_NEEDS"'}
"""
        }
    )
    result = cli("-C", root, "run", "--json")
    assert result.code == 0, result.err
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert {n: j["status"] for n, j in jobs.items()} == {
        "check": "skipped",
        "build": "success",
        "after": "skipped",
        "report": "success",
    }
    assert "nothing to do" in Path(jobs["check"]["log"]).read_text()
    log = Path(jobs["report"]["log"]).read_text()
    assert 'needs={"build": "success", "check": "skipped"}' in log, log


def test_failure_exit_code_skip_reasons_and_log_tail(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
jobs:
  compile: {script: ["echo compiling", "echo 'error: boom' >&2", "exit 4"]}
  package: {needs: [compile], script: echo pkg}
  docs: {script: echo docs}
"""
        }
    )
    result = cli("-C", root, "run")
    assert result.code == 1
    assert "✗ compile failed (exit 4)" in result.out
    assert "│ error: boom" in result.out  # tail of the failed log, in CI (non-TTY) output
    assert "○ package skipped" in result.out and "dependency 'compile' failed" in result.out
    assert "✓ docs success" in result.out
    assert "run #1 failed" in result.out


def test_secrets_are_masked_everywhere(cli, make_project, tmp_path) -> None:
    secret = "p4ss-w0rd-xyz"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f'TOKEN="{secret}"\n')
    b64 = base64.b64encode(secret.encode()).decode()
    half = len(secret) // 2
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  leak:
    secrets: [TOKEN]
    steps:
      - run: echo "plain $TOKEN"
      - run: printf '{secret[:half]}'; sleep 0.2; printf '{secret[half:]}\\n'
      - run: echo "b64 $(printf %s "$TOKEN" | base64)"
      - run: echo "$TOKEN" >&2; exit 3
"""
        }
    )
    result = cli("-C", root, "run", "--json", "--secrets-file", secrets, "--stream")
    assert result.code == 1
    log = Path(json.loads(result.out)["jobs"][0]["log"]).read_text()
    assert secret not in log and b64 not in log
    assert log.count("***") == 4
    assert secret not in result.out and secret not in result.err
    db = sqlite3.connect(root / ".buildyard" / "buildyard.db")
    dump = "\n".join(db.iterdump())
    assert secret not in dump


def test_missing_secret_fails_the_job_with_a_reason(cli, make_project, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    root = make_project({"buildyard.yml": "jobs:\n  d: {secrets: [NOPE_TOKEN], script: echo}\n"})
    result, summary = run_json(cli, root)
    assert result.code == 1
    assert "secret NOPE_TOKEN is not set" in summary["jobs"][0]["message"]


def test_timeout_kills_the_whole_tree(cli, make_project, tmp_path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{c.pid}}')\n"
        "time.sleep(60)\n"
    )
    root = make_project(
        {
            "stubborn.py": script,
            "buildyard.yml": f"""\
jobs:
  hang: {{timeout: 1s, script: "{sys.executable} stubborn.py"}}
  after: {{needs: [hang], script: echo never}}
""",
        }
    )
    start = time.monotonic()
    result, summary = run_json(cli, root)
    assert time.monotonic() - start < 10
    jobs = {j["name"]: j for j in summary["jobs"]}
    assert jobs["hang"]["status"] == "timed_out" and "timed out after 1s" in jobs["hang"]["message"]
    assert jobs["after"]["status"] == "skipped"
    assert result.code == 1
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_retry_then_success(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
jobs:
  flaky:
    retry: {max: 2, backoff: 0.05}
    script: ["n=$(cat .count 2>/dev/null || echo 0); echo $((n+1)) > .count", "test $n -ge 2"]
"""
        }
    )
    result, summary = run_json(cli, root)
    assert result.code == 0
    assert summary["jobs"][0]["attempts"] == 3 and summary["jobs"][0]["status"] == "success"
    log = Path(summary["jobs"][0]["log"]).read_text()
    assert "attempt 2" in log and "attempt 3" in log


def test_selection_manual_vars_and_dry_run(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
variables: {TARGET: dev}
jobs:
  build: {script: echo build}
  unrelated: {script: echo other}
  deploy: {needs: [build], when: manual, script: 'echo "to $TARGET" > deployed.txt'}
"""
        }
    )
    plan = cli("-C", root, "run", "--dry-run")
    assert plan.code == 0 and "deploy ← build  [manual" in plan.out
    result, summary = run_json(cli, root, "--var", "TARGET=prod", "--manual", "deploy")
    assert {j["name"]: j["status"] for j in summary["jobs"]}["deploy"] == "success"
    assert (root / "deployed.txt").read_text() == "to prod\n"
    result, summary = run_json(cli, root, "build")
    assert [j["name"] for j in summary["jobs"]] == ["build"]
    manual = run_json(cli, root)[1]
    assert {j["name"]: j["status"] for j in manual["jobs"]}["deploy"] == "manual"


def test_events_and_conditions(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
jobs:
  release: {if: "event == 'tag' && tag.startsWith('v')", script: echo release}
  nightly: {if: "event == 'schedule'", script: echo nightly}
"""
        }
    )
    summary = run_json(cli, root, "--event", "tag", "--tag", "v1.2.0")[1]
    statuses = {j["name"]: (j["status"], j["skip_reason"]) for j in summary["jobs"]}
    assert statuses == {"release": ("success", None), "nightly": ("skipped", "condition_false")}


def test_working_directory_and_defaults(cli, make_project) -> None:
    root = make_project(
        {
            "sub/x.txt": "hello\n",
            "buildyard.yml": """\
defaults: {shell: "bash -eu"}
jobs:
  a: {working_directory: sub, script: 'cat x.txt > ../out.txt'}
  b: {working_directory: missing, script: 'true'}
  c: {shell: "python3 {0}", script: ['print("from python")']}
""",
        }
    )
    result, summary = run_json(cli, root)
    jobs = {j["name"]: j for j in summary["jobs"]}
    assert (root / "out.txt").read_text() == "hello\n"
    assert "working_directory 'missing' does not exist" in jobs["b"]["message"]
    assert Path(jobs["c"]["log"]).read_text() == "from python\n"


def test_bad_input_is_one_located_line_exit_2(cli, make_project, tmp_path) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a:\n    scrpit: x\n"})
    result = cli("-C", root, "run")
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().splitlines() == [
        "buildyard: error: " + str(root / "buildyard.yml") + ":2:3: jobs.a: a job needs 'steps' or 'script'",
        "buildyard: error: " + str(root / "buildyard.yml") + ":3:5: jobs.a.scrpit: unknown key 'scrpit' "
        "(did you mean 'script'?)",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("-C", empty, "run")
    assert missing.code == 2 and "no pipeline file here" in missing.err and len(missing.err.splitlines()) == 1
    usage = cli("-C", root, "run", "-j", "0")
    assert usage.code == 2 and "Traceback" not in usage.err
    badvar = cli("-C", root, "run", "--var", "novalue")
    assert badvar.code == 2
    validate = cli("-C", root, "validate")
    assert validate.code == 2 and "scrpit" in validate.err


def test_unknown_run_and_job_for_show_and_logs(cli, make_project) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo a}\n"})
    assert cli("-C", root, "show").code == 2
    cli("-C", root, "run")
    assert cli("-C", root, "show", "99").code == 2
    result = cli("-C", root, "logs", "1", "b")
    assert result.code == 2 and "has no job 'b'" in result.err


def test_ctrl_c_cancels_cleanly_with_no_orphans(make_project, tmp_path) -> None:
    pids = tmp_path / "pids"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  long: {{script: "sleep 60 & echo $! >> {pids}; sleep 60"}}
  other: {{script: "echo $$ >> {pids}; sleep 60"}}
  next: {{needs: [long], script: echo never}}
"""
        }
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, (out, err)
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    db = sqlite3.connect(root / ".buildyard" / "buildyard.db")
    assert db.execute("select status from runs").fetchall() == [("cancelled",)]
    statuses = dict(db.execute("select id, status from jobs").fetchall())
    assert statuses == {"long": "cancelled", "other": "cancelled", "next": "cancelled"}


def test_two_concurrent_runs_get_distinct_numbers(make_project) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: sleep 0.2}\n"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "buildyard", "-C", str(root), "run", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _out, err in outputs]
    numbers = sorted(json.loads(out)["number"] for out, _err in outputs)
    assert numbers == [1, 2, 3]


def test_version_and_schema(cli) -> None:
    assert cli("--version").out.startswith("buildyard ")
    schema = json.loads(cli("schema").out)
    assert schema["title"] == "buildyard.yml"


@pytest.mark.parametrize("flag", ["--stream"])
def test_stream_prefixes_output(cli, make_project, flag) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  alpha: {script: 'echo one; echo two'}\n"})
    result = cli("-C", root, "run", flag)
    assert "alpha | one" in result.out and "alpha | two" in result.out


def test_logs_follow_streams_a_running_job_until_it_ends(make_project) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  slow: {script: 'for i in 1 2 3; do echo line $i; sleep 0.4; done'}\n"}
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        db = root / ".buildyard" / "buildyard.db"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if (
                    sqlite3.connect(db)
                    .execute("select count(*) from jobs where status = 'running'")
                    .fetchone()[0]
                ):
                    break
            except sqlite3.OperationalError:  # not created or not migrated yet
                pass
            time.sleep(0.05)
        follow = subprocess.run(
            [sys.executable, "-m", "buildyard", "-C", str(root), "logs", "last", "slow", "-f"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert follow.returncode == 0
        assert follow.stdout.splitlines() == ["line 1", "line 2", "line 3"]
    finally:
        runner.wait(timeout=30)
