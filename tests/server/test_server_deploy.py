"""Approvals that hold no runner, retries, secrets kept by the server, and /metrics, through a real server."""

from __future__ import annotations

import io
import json
import stat

from prometheus_client.parser import text_string_to_metric_families
from server_testutil import wait_for

PIPELINE = """\
name: shop
jobs:
  build:
    secrets: [API_KEY]
    script:
      - echo "key=$API_KEY"
      - mkdir -p dist
      - echo "shop-api build $BUILDYARD_RUN_NUMBER" > dist/app.txt
    artifacts: {paths: [dist/]}
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
  deploy:
    needs: [build]
    if: vars.DEPLOY == 'yes'
    environment: {name: production, approval: required, promote: false}
    script:
      - cp "$BUILDYARD_ARTIFACT_DIR/app.txt" "$LIVE"
"""
SECRET = "s3cr3t-value-4711"


def final(server, token: str, entry_id: str) -> dict | None:
    e = server.client(token or None).get(f"/api/v1/projects/proj/queue/{entry_id}").json()
    return e if e["status"] not in ("queued", "running", "waiting", "resuming", "cancelling") else None


def status_of(server, token: str, entry_id: str) -> str:
    return str(server.client(token or None).get(f"/api/v1/projects/proj/queue/{entry_id}").json()["status"])


def test_waiting_deployment_holds_no_runner_and_a_maintainer_approves_it(
    make_project, serve, cli, monkeypatch, tmp_path
) -> None:
    live = tmp_path / "live.txt"
    root = make_project({"buildyard.yml": PIPELINE.replace("$LIVE", str(live))})
    tokens = {}
    for role in ("viewer", "operator", "maintainer", "admin"):
        made = cli("-C", root, "token", "create", "--name", role, "--role", role)
        tokens[role] = made.out.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    assert cli("-C", root, "secrets", "set", "API_KEY", "--value-stdin").code == 0
    server = serve(root, "--runners", "1", "--metrics-refresh", "0")
    maint = server.client(tokens["maintainer"])
    # secrets: names only, maintainers only
    assert server.client(tokens["operator"]).get("/api/v1/projects/proj/secrets").status_code == 403
    assert maint.get("/api/v1/projects/proj/secrets").json()["secrets"][0]["name"] == "API_KEY"
    assert SECRET not in maint.get("/api/v1/projects/proj/secrets").text
    put = maint.put("/api/v1/projects/proj/secrets/OTHER", json={"value": "other-value-0815"})
    assert put.status_code == 200 and put.json() == {"name": "OTHER"}
    assert [s["name"] for s in maint.get("/api/v1/projects/proj/secrets").json()["secrets"]] == [
        "API_KEY",
        "OTHER",
    ]
    assert maint.delete("/api/v1/projects/proj/secrets/OTHER").status_code == 200
    assert maint.delete("/api/v1/projects/proj/secrets/OTHER").json()["code"] == "not_found"

    op = server.client(tokens["operator"])
    first = op.post("/api/v1/projects/proj/runs", json={"variables": {"DEPLOY": "yes"}}).json()["queued"]
    wait_for(lambda: status_of(server, tokens["viewer"], first["id"]) == "waiting", "the deployment to wait")
    # one runner, but the waiting run holds none: the next run executes meanwhile
    second = op.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    done = wait_for(lambda: final(server, tokens["viewer"], second["id"]), "the second run to finish")
    assert done["status"] == "success" and status_of(server, tokens["viewer"], first["id"]) == "waiting"
    run = server.client(tokens["viewer"]).get(f"/api/v1/projects/proj/runs/{first['id']}").json()
    assert {j["id"]: j["status"] for j in run["jobs"]}["deploy"] == "waiting"
    # a viewer (and an operator) may not approve; a maintainer may
    path = f"/api/v1/projects/proj/runs/{run['number']}/jobs/deploy/approve"
    denied = server.client(tokens["viewer"]).post(path, json={})
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert op.post(path, json={}).status_code == 403
    approved = maint.post(path, json={"comment": "ship it"})
    assert approved.status_code == 200 and approved.json() == {"job": "deploy", "decision": "approve"}
    again = maint.post(path, json={})
    assert (
        again.status_code == 400
        and again.json()["message"] == "job 'deploy' was already approved by token:maintainer"
    )
    ended = wait_for(lambda: final(server, tokens["viewer"], first["id"]), "the approved run to finish")
    assert ended["status"] == "success"
    assert live.read_text() == "shop-api build 1\n"
    history = maint.get("/api/v1/projects/proj/environments/production/deployments").json()["deployments"]
    assert [(d["status"], d["approved_by"]) for d in history] == [("success", "token:maintainer")]

    # the secret reached the job, masked in its log; never stored in clear
    log = maint.get(f"/api/v1/projects/proj/runs/{run['number']}/jobs/build/log").text
    assert "key=***" in log and SECRET not in log
    data = root / ".buildyard" / "server"
    assert SECRET.encode() not in (data / "server.db").read_bytes()
    assert stat.S_IMODE((data / "secrets.key").stat().st_mode) == 0o600
    audit = server.client(tokens["admin"]).get("/api/v1/audit").json()["entries"]
    assert SECRET not in str(audit) and "other-value-0815" not in str(audit)
    assert ("token:maintainer", "secret.set", "proj/OTHER") in [
        (e["actor"], e["action"], e["object"]) for e in audit
    ]
    assert ("token:maintainer", "deploy.approve", "ok") in [
        (e["actor"], e["action"], e["result"]) for e in audit
    ]
    assert ("token:maintainer", "deploy.approve", "error:UsageError") in [
        (e["actor"], e["action"], e["result"]) for e in audit
    ]

    # retry the run, and retry one job (the rest comes from the cache)
    retried = op.post(f"/api/v1/projects/proj/runs/{run['number']}/retry", json={}).json()["queued"]
    assert retried["sha"] == first["sha"] and retried["variables"] == {"DEPLOY": "yes"}
    assert op.post(f"/api/v1/projects/proj/runs/{retried['id']}/cancel", json={}).status_code == 200
    wait_for(lambda: final(server, tokens["viewer"], retried["id"]), "the retried run to be cancelled")
    one = op.post("/api/v1/projects/proj/runs/2/jobs/build/retry", json={}).json()["queued"]
    job_run = wait_for(lambda: final(server, tokens["viewer"], one["id"]), "the job retry to finish")
    jobs = (
        server.client(tokens["viewer"])
        .get(f"/api/v1/projects/proj/runs/{job_run['run_id']}/jobs")
        .json()["jobs"]
    )
    assert [(j["id"], j["status"]) for j in jobs] == [("build", "cached")]

    # rollback: nothing older to go back to
    nothing = maint.post("/api/v1/projects/proj/environments/production/rollback", json={})
    assert nothing.status_code == 404 and nothing.json()["code"] == "not_found"

    # /metrics, read by a real Prometheus parser
    text = server.client(tokens["viewer"]).get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("buildyard_runs_total", (("pipeline", "shop"), ("status", "success")))] >= 3
    assert samples[("buildyard_jobs_total", (("pipeline", "shop"), ("status", "cached")))] == 1
    assert samples[("buildyard_cache_lookups_total", (("pipeline", "shop"), ("result", "hit")))] == 1
    assert (
        samples[("buildyard_deployments_total", (("environment", "production"), ("outcome", "success")))] == 1
    )
    assert samples[("buildyard_runs_queued", (("project", "proj"),))] == 0
    assert families["buildyard_run_duration_seconds"].type == "histogram"
    # the first, second and job-retry runs started; the retried one was cancelled at once, maybe unstarted
    assert samples[("buildyard_queue_wait_seconds_count", (("project", "proj"),))] >= 3
    assert all("run_id" not in labels and "sha" not in labels for _name, labels in samples)


def test_rollback_is_queued_and_redeploys_the_previous_good_version(
    make_project, serve, tmp_path, cli
) -> None:
    from by_testutil import git

    live = tmp_path / "live.txt"
    pipeline = PIPELINE.replace("$LIVE", str(live)).replace("    if: vars.DEPLOY == 'yes'\n", "")
    pipeline = pipeline.replace("secrets: [API_KEY]", "secrets: []").replace(
        "{name: production, approval: required, promote: false}", "{name: dev, promote: false}"
    )
    root = make_project({"buildyard.yml": pipeline})
    server = serve(root)
    api = server.api
    first = api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    assert wait_for(lambda: final(server, "", first["id"]), "run 1")["status"] == "success"
    (root / "README").write_text("second commit\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "second")
    second = api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]
    assert second["sha"] != first["sha"]
    assert wait_for(lambda: final(server, "", second["id"]), "run 2")["status"] == "success"
    assert live.read_text() == "shop-api build 2\n"
    back = api.post("/api/v1/projects/proj/environments/dev/rollback", json={})
    assert back.status_code == 201, back.text
    entry = back.json()["queued"]
    assert entry["event"] == "manual"
    done = wait_for(lambda: final(server, "", entry["id"]), "the rollback run")
    assert done["status"] == "success", done
    assert live.read_text() == "shop-api build 1\n"
    run = api.get(f"/api/v1/projects/proj/runs/{done['run_id']}").json()
    assert run["trigger"] == "rollback" and [j["id"] for j in run["jobs"]] == ["deploy"]
    deployed = api.get("/api/v1/projects/proj/environments/dev/deployments").json()["deployments"]
    assert [d["run_number"] for d in deployed] == [3, 2, 1]
    assert deployed[1]["status"] == "rolled_back"
    # the same objects as `deploy history --json`
    listed = cli("-C", root, "deploy", "history", "dev", "--json")
    assert listed.code == 0, listed.err
    assert json.loads(listed.out) == deployed and deployed[0]["what"].startswith("shop-api@")


BOUNDED = """\
name: shop
jobs:
  build:
    script:
      - mkdir -p dist
      - echo "shop-api build $BUILDYARD_RUN_NUMBER" > dist/app.txt
    artifacts: {paths: [dist/]}
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
  work:
    if: vars.DEPLOY != 'yes'
    script: [sleep 4]
  deploy:
    needs: [build]
    if: vars.DEPLOY == 'yes'
    environment: {name: production, approval: required, promote: false}
    script:
      - sleep 1
      - cp "$BUILDYARD_ARTIFACT_DIR/app.txt" "$LIVE"
"""


def test_an_approved_run_waits_for_a_free_runner(make_project, serve, tmp_path) -> None:
    """With one runner, a run approved while another executes goes on only once that one ended:
    at no moment do two runs execute jobs (their jobs' recorded times never overlap)."""
    live = tmp_path / "live.txt"
    root = make_project({"buildyard.yml": BOUNDED.replace("$LIVE", str(live))})
    server = serve(root, "--runners", "1")
    api = server.api
    first = api.post("/api/v1/projects/proj/runs", json={"variables": {"DEPLOY": "yes"}}).json()["queued"]
    wait_for(lambda: status_of(server, "", first["id"]) == "waiting", "the deployment to wait")
    second = api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]

    def work_started() -> bool:
        entry = api.get(f"/api/v1/projects/proj/queue/{second['id']}").json()
        if entry["run_id"] is None:
            return False
        jobs = api.get(f"/api/v1/projects/proj/runs/{entry['run_id']}/jobs").json()["jobs"]
        return any(j["id"] == "work" and j["status"] == "running" for j in jobs)

    wait_for(work_started, "the second run's job to start")
    number = api.get(f"/api/v1/projects/proj/runs/{first['id']}").json()["number"]
    assert api.post(f"/api/v1/projects/proj/runs/{number}/jobs/deploy/approve", json={}).status_code == 200
    seen = set()  # what the approved run's entry says while the other run executes

    def second_done() -> dict | None:
        seen.add(status_of(server, "", first["id"]))
        return final(server, "", second["id"])

    assert wait_for(second_done, "the second run")["status"] == "success"
    assert wait_for(lambda: final(server, "", first["id"]), "the approved run")["status"] == "success"
    assert live.read_text() == "shop-api build 1\n"

    spans: dict[str, list[tuple[float, float]]] = {}
    for entry in (first, second):
        run_id = api.get(f"/api/v1/projects/proj/queue/{entry['id']}").json()["run_id"]
        jobs = api.get(f"/api/v1/projects/proj/runs/{run_id}/jobs").json()["jobs"]
        spans[entry["id"]] = [
            (j["started_at"], j["finished_at"]) for j in jobs if j["status"] == "success" and j["started_at"]
        ]
    assert [len(spans[first["id"]]), len(spans[second["id"]])] == [2, 2]  # build+deploy, build+work
    overlaps = [
        (a, b) for a in spans[first["id"]] for b in spans[second["id"]] if a[0] < b[1] and b[0] < a[1]
    ]
    assert not overlaps, f"two runs executed jobs at once with --runners 1: {overlaps}"
    # approved, it asked for its runner back and waited while the other run held the only one
    assert "resuming" in seen, seen
