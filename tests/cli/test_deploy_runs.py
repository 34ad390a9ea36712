"""Deployments (``environment:``) in real runs: verified pulls, approvals, health checks, rollbacks."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buildyard.artifacts import open_repository

BUILD = """\
name: shop
jobs:
  build:
    script:
      - mkdir -p dist
      - echo "shop-api build $BUILDYARD_RUN_NUMBER" > dist/app.txt
      - if [ "${BROKEN:-}" = 1 ]; then touch dist/broken; fi
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
"""

DEPLOY_SCRIPT = """\
    script:
      - env | grep -E '^BUILDYARD_(ARTIFACT|ENVIRONMENT|DEPLOY)' | sort > deployed.env
      - cp "$BUILDYARD_ARTIFACT_DIR/app.txt" live.txt
"""


def pipeline(environment: str, *, needs: str = "[build]", extra: str = "") -> str:
    return BUILD + extra + f"  deploy:\n    needs: {needs}\n    environment: {environment}\n" + DEPLOY_SCRIPT


@pytest.fixture
def project(make_project, cli) -> Callable[[str], Path]:
    def make(text: str) -> Path:
        root = make_project({"buildyard.yml": text, ".gitignore": ".buildyard/\ndist/\n*.txt\n*.env\n"})
        assert cli("-C", root, "keys", "generate").code == 0
        return root

    return make


def run(cli, root: Path, *args: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = cli("-C", root, "run", "--json", *args)
    assert result.out, result.err
    return result.code, {j["name"]: j for j in json.loads(result.out)["jobs"]}


def env_file(root: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (root / "deployed.env").read_text().splitlines())


def history(cli, root: Path, environment: str) -> list[dict[str, object]]:
    result = cli("-C", root, "deploy", "history", environment, "--json")
    assert result.code == 0, result.err
    rows: list[dict[str, object]] = json.loads(result.out)
    return rows


def test_deployment_gets_the_verified_artifact_and_is_recorded(cli, project) -> None:
    root = project(pipeline("{name: dev, url: 'https://dev.example.com'}"))
    code, jobs = run(cli, root)
    assert code == 0, jobs
    version = str(jobs["build"]["published"]).split("@", 1)[1]
    assert version.startswith("1.0.0+build.1.") and jobs["deploy"]["deployed"] == f"shop-api@{version}"
    env = env_file(root)
    assert env["BUILDYARD_ARTIFACT_NAME"] == "shop-api" and env["BUILDYARD_ARTIFACT_VERSION"] == version
    assert env["BUILDYARD_DEPLOY_VERSION"] == version and env["BUILDYARD_ENVIRONMENT"] == "dev"
    assert env["BUILDYARD_ENVIRONMENT_URL"] == "https://dev.example.com"
    assert env["BUILDYARD_ARTIFACT_DIR"] == str(root / ".buildyard" / "deploy" / "shop" / "1" / "deploy")
    assert (root / "live.txt").read_text() == "shop-api build 1\n"
    assert jobs["deploy"]["cache"] == "off"
    log = Path(str(jobs["deploy"]["log"])).read_text()
    assert f"pulled shop-api@{version} (verified)" in log  # already in dev: published there
    assert open_repository(root).channel_state().current("shop-api", "dev") == version  # promoted

    code, jobs = run(cli, root)  # deployments are never served from the job cache: it runs again
    assert code == 0 and jobs["deploy"]["status"] == "success", jobs["build"]
    rows = history(cli, root, "dev")
    assert [(r["run_number"], r["status"], r["job"]) for r in rows] == [
        (2, "success", "deploy"),
        (1, "success", "deploy"),
    ]
    assert rows[1]["version"] == version and rows[0]["url"] == "https://dev.example.com"
    shown = json.loads(cli("-C", root, "show", "1", "--json").out)
    deploy = next(j for j in shown["jobs"] if j["id"] == "deploy")
    assert deploy["deployments"] == [
        {
            "environment": "dev",
            "artifact": "shop-api",
            "version": version,
            "status": "success",
            "url": "https://dev.example.com",
            "approved_by": None,
            "rollback_of": None,
        }
    ]
    text = cli("-C", root, "show", "1").out
    assert f"deploy success     deploy → dev: shop-api@{version}" in text
    table = cli("-C", root, "deploy", "history", "dev").out
    assert f"shop-api@{version}" in table and "success" in table


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def job_status(cli, root: Path, job: str) -> str:
    shown = cli("-C", root, "show", "1", "--json")
    if shown.code != 0:
        return ""
    return next((j["status"] for j in json.loads(shown.out)["jobs"] if j["id"] == job), "")


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``buildyard ARGS`` in a subprocess (stopped at teardown if still running)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "buildyard", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


APPROVED = "{name: production, approval: required, promote: false}"


def test_approval_from_another_process_without_holding_a_slot(cli, project, background, monkeypatch) -> None:
    other = "  other:\n    needs: [build]\n    script: echo other > other.txt\n"
    root = project(pipeline(APPROVED, extra=other))
    proc = background("-C", root, "run", "-j", "1")
    wait_for(lambda: job_status(cli, root, "deploy") == "waiting", "deploy to wait for approval")
    # with one slot, 'other' runs while the deployment waits: waiting holds no slot
    wait_for(lambda: job_status(cli, root, "other") == "success", "other to run meanwhile")
    assert not (root / "deployed.env").exists()
    assert "deploy                           waiting" in cli("-C", root, "show", "1").out
    assert "waiting for approval" in cli("-C", root, "show", "1").out
    refused = cli("-C", root, "approve", "1", "other")
    assert refused.code == 2 and "job 'other' of run #1 is not waiting for approval (success)" in refused.err
    monkeypatch.setenv("BUILDYARD_ACTOR", "alice")
    ok = cli("-C", root, "approve", "1", "deploy", "--comment", "ship it")
    assert ok.code == 0 and "approved deploy of run #1 (as alice)" in ok.out
    again = cli("-C", root, "reject", "1", "deploy")
    assert again.code == 2 and ("already approved by alice" in again.err or "not waiting" in again.err)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "deploy waiting for approval: buildyard approve 1 deploy" in out
    assert (root / "live.txt").read_text() == "shop-api build 1\n"
    assert history(cli, root, "production")[0]["approved_by"] == "alice"


def test_rejected_deployment_is_skipped_with_the_reason(cli, project, background, monkeypatch) -> None:
    root = project(pipeline(APPROVED))
    proc = background("-C", root, "run")
    wait_for(lambda: job_status(cli, root, "deploy") == "waiting", "deploy to wait for approval")
    monkeypatch.setenv("BUILDYARD_ACTOR", "bob")
    assert cli("-C", root, "reject", "1", "deploy", "--comment", "not on a Friday").code == 0
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    deploy = next(
        j for j in json.loads(cli("-C", root, "show", "1", "--json").out)["jobs"] if j["id"] == "deploy"
    )
    assert (deploy["status"], deploy["skip_reason"]) == ("skipped", "rejected")
    assert deploy["message"] == "rejected by bob: not on a Friday"
    assert not (root / "deployed.env").exists() and history(cli, root, "production") == []


def test_ctrl_c_while_waiting_cancels_cleanly(cli, project, background) -> None:
    root = project(pipeline(APPROVED))
    proc = background("-C", root, "run")
    wait_for(lambda: job_status(cli, root, "deploy") == "waiting", "deploy to wait for approval")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert job_status(cli, root, "deploy") == "cancelled"
    late = cli("-C", root, "approve", "1", "deploy")
    assert late.code == 2 and "is not waiting for approval (cancelled, run cancelled)" in late.err


def test_approval_timeout_and_manual_pre_approval(cli, project, monkeypatch) -> None:
    root = project(pipeline("{name: production, approval: required, approval_timeout: 1s}"))
    code, jobs = run(cli, root)
    assert code == 0
    assert (jobs["deploy"]["status"], jobs["deploy"]["skip_reason"]) == ("skipped", "approval_timeout")
    assert jobs["deploy"]["message"] == "no decision within approval_timeout 1.0s"
    monkeypatch.setenv("USER", "carol")
    code, jobs = run(cli, root, "--manual", "deploy")
    assert code == 0 and jobs["deploy"]["status"] == "success"
    [row] = history(cli, root, "production")
    assert row["approved_by"] == "carol" and row["run_number"] == 2
    # production requires staging first (the repository's default policy): deployed, not promoted
    log = Path(str(jobs["deploy"]["log"])).read_text()
    assert "not promoted to channel production" in log and "never been in 'staging'" in log


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_health_check_pass_and_fail(cli, project, health_server) -> None:
    healthy = f"{{name: qa, health_check: {{url: '{health_server}/ok', timeout: 5s, interval: 200ms}}}}"
    root = project(pipeline(healthy))
    code, jobs = run(cli, root)
    assert code == 0 and jobs["deploy"]["status"] == "success"
    assert "health check passed (HTTP 200" in Path(str(jobs["deploy"]["log"])).read_text()

    sick = f"{{name: qa, health_check: {{url: '{health_server}/bad', timeout: 1s, interval: 200ms}}}}"
    (root / "buildyard.yml").write_text(pipeline(sick))
    code, jobs = run(cli, root)
    assert code == 1 and jobs["deploy"]["status"] == "failed"
    assert str(jobs["deploy"]["message"]).startswith(
        f"health check failed: HTTP 503 from {health_server}/bad after "
    )
    assert [r["status"] for r in history(cli, root, "qa")] == ["failed", "success"]


ROLLBACK_CMD = """{name: dev, auto_rollback: true,
      health_check: {run: 'test ! -f "$BUILDYARD_ARTIFACT_DIR/broken"', timeout: 2s, interval: 200ms},
      rollback: 'echo "$BUILDYARD_ARTIFACT_VERSION" > "$BUILDYARD_PROJECT_DIR/rolled_back_to.txt"'}"""


def test_auto_rollback_runs_the_rollback_command_with_the_previous_version(cli, project) -> None:
    root = project(pipeline(ROLLBACK_CMD))
    code, jobs = run(cli, root)
    assert code == 0
    good = str(jobs["deploy"]["deployed"]).split("@", 1)[1]
    code, jobs = run(cli, root, "--var", "BROKEN=1", "--no-cache")
    assert code == 1 and jobs["deploy"]["status"] == "failed"
    bad = str(jobs["deploy"]["deployed"]).split("@", 1)[1]
    assert re.fullmatch(
        rf"health check failed: step 'health check' exited with code 1 after \d+ tries in 2s; "
        rf"rolled back to {re.escape(good)}",
        str(jobs["deploy"]["message"]),
    )
    assert (root / "rolled_back_to.txt").read_text() == good + "\n"
    rows = history(cli, root, "dev")
    assert [(r["version"], r["status"], r["run_number"]) for r in rows] == [
        (good, "success", 2),
        (bad, "rolled_back", 2),
        (good, "success", 1),
    ]
    assert rows[0]["rollback_of"] == rows[1]["id"]
    log = Path(str(jobs["deploy"]["log"])).read_text()
    assert "──── rollback: exit 0 ────" in log and f"rolled back dev to shop-api@{good}" in log


ROLLBACK_STEPS = """{name: dev, auto_rollback: true,
      health_check: {run: 'test ! -f "$BUILDYARD_ARTIFACT_DIR/broken"', timeout: 1s, interval: 200ms}}"""


def test_deploy_rollback_command_and_auto_rollback_through_the_jobs_steps(cli, project) -> None:
    root = project(pipeline(ROLLBACK_STEPS))
    assert run(cli, root)[0] == 0
    only = cli("-C", root, "deploy", "rollback", "dev")
    assert (
        only.code == 2
        and "dev has no successful deployment of shop-api other than the live 1.0.0+" in only.err
    )
    (root / "README").write_text("second commit\n")  # a new commit: build runs and publishes again
    assert run(cli, root, "--no-cache")[0] == 0
    assert (root / "live.txt").read_text() == "shop-api build 2\n"
    v1, v2 = (str(r["version"]) for r in reversed(history(cli, root, "dev")))

    back = cli("-C", root, "deploy", "rollback", "dev")
    assert back.code == 0, back.out + back.err
    assert f"rolling back dev to shop-api@{v1} (job deploy; live: {v2})" in back.out
    assert (root / "live.txt").read_text() == "shop-api build 1\n"
    shown = json.loads(cli("-C", root, "show", "3", "--json").out)
    assert shown["trigger"] == "rollback" and shown["event"] == "manual"
    assert [j["id"] for j in shown["jobs"]] == ["deploy"]  # alone, without its needs
    assert history(cli, root, "dev")[0]["version"] == v1

    # a broken version: its health check fails, the job's own steps redeploy the previous good one
    code, jobs = run(cli, root, "--var", "BROKEN=1", "--no-cache")
    assert code == 1 and str(jobs["deploy"]["message"]).endswith(f"rolled back to {v1}")
    assert (root / "live.txt").read_text() == "shop-api build 1\n"
    assert env_file(root)["BUILDYARD_ARTIFACT_VERSION"] == v1

    to = cli("-C", root, "deploy", "rollback", "dev", "--to", v2)
    assert to.code == 0 and (root / "live.txt").read_text() == "shop-api build 2\n"
    nothing = cli("-C", root, "deploy", "rollback", "staging")
    assert nothing.code == 2 and "no deployments to staging recorded yet" in nothing.err


def test_a_tampered_artifact_is_never_deployed(cli, project) -> None:
    root = project(pipeline("{name: dev}"))
    _, jobs = run(cli, root)
    v1 = str(jobs["deploy"]["deployed"]).split("@", 1)[1]
    (root / "README").write_text("second commit\n")
    assert run(cli, root, "--no-cache")[0] == 0
    repo = open_repository(root)
    [entry] = [f for f in repo.manifest(repo.resolve(f"shop-api@{v1}")).files if f.path == "app.txt"]
    blob = repo.cas.path_for(entry.blob)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    back = cli("-C", root, "deploy", "rollback", "dev")
    assert back.code == 1
    deploy = next(
        j for j in json.loads(cli("-C", root, "show", "3", "--json").out)["jobs"] if j["id"] == "deploy"
    )
    assert deploy["status"] == "failed" and deploy["message"].startswith("deploy to dev refused: shop-api@")
    assert (root / "live.txt").read_text() == "shop-api build 2\n"  # nothing was deployed
    assert [r["run_number"] for r in history(cli, root, "dev")] == [2, 1]


GATES = """\
gates:
  - tests: {junit: "reports/junit.xml", max_failures: 0}
"""
TEST_JOB = "  test:\n    script:\n      - mkdir -p reports\n      - echo '{junit}' > reports/junit.xml\n"
JUNIT = (
    '<testsuite name="s" tests="1" failures="1"><testcase classname="c" name="t">'
    '<failure message="boom"/></testcase></testsuite>'
)


def test_a_failed_gate_blocks_the_deployment(cli, project) -> None:
    tests = TEST_JOB.format(junit=JUNIT)
    root = project(
        GATES + pipeline("{name: dev}", needs="[build, gates]", extra=tests).replace("name: shop\n", "")
    )
    code, jobs = run(cli, root)
    assert code == 1 and jobs["gates"]["status"] == "failed"
    assert (jobs["deploy"]["status"], jobs["deploy"]["skip_reason"]) == ("skipped", "dependency_failed")
    assert not (root / "deployed.env").exists() and history(cli, root, "dev") == []
    # and promotion to a channel that requires the source run's gates asks the history: refused
    config = {"channels": [{"name": "dev"}, {"name": "production", "requires_gates": True}]}
    (root / ".buildyard" / "artifacts" / "config.json").write_text(json.dumps(config))
    ref = str(jobs["build"]["published"])
    refused = cli("-C", root, "artifacts", "promote", ref, "--to", "production")
    assert refused.code == 2 and "the source run's gates failed: run #1 failed gate(s): tests" in refused.err


def test_environment_variables_stay_out_of_other_jobs(cli, project) -> None:
    root = project(pipeline("{name: dev}", extra="  lint:\n    script: env > lint.env\n"))
    assert run(cli, root)[0] == 0
    assert "BUILDYARD_ARTIFACT_" not in (root / "lint.env").read_text()
    assert os.environ.get("BUILDYARD_ENVIRONMENT") is None


PASSING_JUNIT = '<testsuite name="s" tests="1"><testcase classname="c" name="t"/></testsuite>'


def test_passed_gates_let_a_healthy_deployment_promote_to_a_gated_channel(cli, project) -> None:
    tests = TEST_JOB.format(junit=PASSING_JUNIT)
    text = GATES + pipeline("production", needs="[build, gates]", extra=tests).replace("name: shop\n", "")
    root = project(text)
    config = {"channels": [{"name": "dev"}, {"name": "production", "requires_gates": True}]}
    (root / ".buildyard" / "artifacts").mkdir(parents=True, exist_ok=True)
    (root / ".buildyard" / "artifacts" / "config.json").write_text(json.dumps(config))
    code, jobs = run(cli, root)
    assert code == 0 and jobs["gates"]["status"] == "success", jobs
    version = str(jobs["deploy"]["deployed"]).split("@", 1)[1]
    assert open_repository(root).channel_state().current("shop-api", "production") == version


def test_an_unusable_health_check_url_is_reported_not_raised() -> None:
    import asyncio

    from buildyard.engine.deploying import _get

    assert asyncio.run(_get("http://localhost:99999/health", 1.0)).endswith(
        "for http://localhost:99999/health"
    )
    assert asyncio.run(_get("http://[::1/health", 1.0)).startswith("InvalidURL for")


def test_two_runs_never_deploy_to_one_environment_at_once(project) -> None:
    script = """\
    script:
      - echo "start $BUILDYARD_RUN_NUMBER $(date +%s.%N)" >> intervals.txt
      - sleep 1
      - echo "end $BUILDYARD_RUN_NUMBER $(date +%s.%N)" >> intervals.txt
"""
    # redeploy: always — two runs sharing one working tree may publish the same files (the same
    # version, which the second run would not deploy again); this test is about the lock
    env = "{name: prod, redeploy: always}"
    root = project(BUILD + f"  deploy:\n    needs: [build]\n    environment: {env}\n" + script)
    cmd = [sys.executable, "-m", "buildyard", "-C", str(root), "run"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    events = [line.split() for line in (root / "intervals.txt").read_text().splitlines()]
    spans: dict[str, list[float]] = {}
    for _kind, run_number, at in events:
        spans.setdefault(run_number, []).append(float(at))
    (a_start, a_end), (b_start, b_end) = sorted(spans.values())
    assert a_end <= b_start, events  # the second deployment started after the first had ended
    logs = [p.read_text() for p in (root / ".buildyard" / "logs" / "shop").glob("*/deploy.log")]
    assert any("for another run's deployment to prod" in log for log in logs), logs


def test_only_the_newest_pulled_copies_are_kept(tmp_path: Path) -> None:
    from buildyard.engine.deploying import prune_deploy_dirs

    for n in (1, 2, 3, 4, 5, 9):
        (tmp_path / str(n) / "deploy").mkdir(parents=True)
    (tmp_path / "locks").mkdir()
    removed = prune_deploy_dirs(tmp_path, current=5, keep=3)
    assert sorted(p.name for p in removed) == ["1", "2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "4", "5", "9", "locks"]  # 9: a newer run


def test_a_deployment_of_what_is_already_live_needs_no_approval(cli, project) -> None:
    """A fully cached run does not stop at an approval for a deployment that would change nothing."""
    build = BUILD.replace(" $BUILDYARD_RUN_NUMBER", "")  # the same files every run
    root = project(
        build + "  deploy:\n    needs: [build]\n    environment: {name: production, approval: "
        "required, approval_timeout: 1s}\n" + DEPLOY_SCRIPT
    )
    code, jobs = run(cli, root, "--manual", "deploy")
    assert code == 0 and jobs["deploy"]["status"] == "success"
    code, jobs = run(cli, root)  # nothing changed: the same version is live
    assert code == 0
    assert jobs["deploy"]["status"] == "success", jobs["deploy"]["message"]  # no approval_timeout skip
    assert str(jobs["deploy"]["message"]).startswith("not redeployed: shop-api@1.0.0+build.1.")
    assert [row["run_number"] for row in history(cli, root, "production")] == [1]
    code, jobs = run(cli, root, "--force")  # a redeployment does change something: it needs approval
    assert (jobs["deploy"]["status"], jobs["deploy"]["skip_reason"]) == ("skipped", "approval_timeout")


def test_an_unapproved_deployment_deploys_nothing_if_the_environment_changed(cli, project) -> None:
    """Started unapproved because its version was live, then another version went live first: it fails."""
    import asyncio

    from buildyard.engine.deploying import DeployingExecutor
    from buildyard.engine.request import DeployRequest, JobRequest
    from buildyard.engine.runner import RunOptions, open_history
    from buildyard.testing.executors import FakeExecutor

    root = project(pipeline("production"))
    code, jobs = run(cli, root)
    first = str(jobs["build"]["published"])
    code, jobs = run(cli, root)  # a new build (its file names the run number) is deployed: now live
    assert code == 0 and jobs["deploy"]["deployed"] != first
    store = open_history(RunOptions(project_dir=root))
    inner = FakeExecutor()
    try:
        spec = DeployRequest(environment="production", artifact=first, dest=str(root / "d"), unapproved=True)
        request = JobRequest(
            run_id="r", job_id="deploy", attempt=1, steps=(), env=(), cwd=str(root),
            log_path=str(root / "deploy.log"), deploy=spec,
        )  # fmt: skip
        outcome = asyncio.run(DeployingExecutor(inner, project=root, history=store).execute(request))
    finally:
        store.close()
    assert outcome.status == "failed" and "needs its approval" in outcome.message
    assert inner.calls == []  # no step ran
    assert [row["run_number"] for row in history(cli, root, "production")] == [2, 1]  # nothing recorded
