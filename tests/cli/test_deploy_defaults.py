"""What new users hit with deployments: gates first by default, script deployments, no-op reruns."""

from __future__ import annotations

import json
from pathlib import Path

from buildyard.artifacts import open_repository
from by_testutil import git

BUILD = """\
  build:
    script:
      - mkdir -p dist
      - cp app.txt dist/app.txt
    artifacts: {paths: [dist/]}
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
"""
JUNIT = '<testsuite tests="1" failures="1"><testcase classname="c" name="t"><failure/></testcase></testsuite>'
FAILING_TESTS = f"""\
  test:
    script:
      - mkdir -p reports
      - echo '{JUNIT}' > reports/junit.xml
"""
DEPLOY = """\
  deploy:
    needs: [build]
    environment: {environment}
    script:
      - echo "$BUILDYARD_DEPLOY_VERSION" >> .buildyard/deployed.log
"""
GATES = 'gates:\n  - tests: {junit: "reports/junit.xml", max_failures: 0}\n'


def make(make_project, cli, text: str) -> Path:
    root = make_project({"buildyard.yml": text, "app.txt": "v1\n"}, commit=False)
    (root / ".gitignore").write_text(".buildyard/\ndist/\nreports/\n")  # outputs are not inputs
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    assert cli("-C", root, "keys", "generate").code == 0
    return root


def run(cli, root: Path, *args: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = cli("-C", root, "run", "--json", *args)
    assert result.out, result.err
    return result.code, {j["name"]: j for j in json.loads(result.out)["jobs"]}


def deployments(cli, root: Path, environment: str) -> list[dict[str, object]]:
    result = cli("-C", root, "deploy", "history", environment, "--json")
    assert result.code == 0, result.err
    rows: list[dict[str, object]] = json.loads(result.out)
    return rows


def test_a_failed_pipeline_gate_stops_a_deployment_that_needs_only_the_build(make_project, cli) -> None:
    text = GATES + "jobs:\n" + BUILD + FAILING_TESTS + DEPLOY.format(environment="production")
    root = make(make_project, cli, text)
    plan = json.loads(cli("-C", root, "run", "--dry-run", "--json").out)
    assert {j["name"]: j["needs"] for j in plan["jobs"]}["deploy"] == ["build", "gates"]
    code, jobs = run(cli, root)
    assert code == 1 and jobs["gates"]["status"] == "failed"
    assert (jobs["deploy"]["status"], jobs["deploy"]["skip_reason"]) == ("skipped", "dependency_failed")
    assert not (root / ".buildyard" / "deployed.log").exists() and deployments(cli, root, "production") == []


def test_a_jobs_own_failed_gate_stops_a_deployment_without_pipeline_gates(make_project, cli) -> None:
    gated = FAILING_TESTS + '    gates:\n      - tests: {junit: "reports/junit.xml", max_failures: 0}\n'
    root = make(make_project, cli, "jobs:\n" + BUILD + gated + DEPLOY.format(environment="staging"))
    code, jobs = run(cli, root)
    assert code == 1 and jobs["test"]["status"] == "failed"
    assert jobs["deploy"]["status"] == "skipped" and not (root / ".buildyard" / "deployed.log").exists()


def test_opting_out_deploys_before_the_gates_and_validate_warns_for_production(make_project, cli) -> None:
    env = "{name: production, wait_for_gates: false}"
    root = make(make_project, cli, GATES + "jobs:\n" + BUILD + FAILING_TESTS + DEPLOY.format(environment=env))
    checked = cli("-C", root, "validate")
    assert checked.code == 0
    assert "jobs.deploy.environment: warning: the deployment to production can run before" in checked.err
    assert checked.err.count("\n") == 1 and checked.err.startswith(f"{root / 'buildyard.yml'}:")
    code, jobs = run(cli, root)
    assert code == 1 and jobs["deploy"]["status"] == "success"  # deployed; the run still fails
    staging = make_project(
        {"buildyard.yml": (root / "buildyard.yml").read_text().replace("production", "staging")}, name="st"
    )
    assert cli("-C", staging, "validate").err == ""  # only production deployments are warned about


def test_a_script_deployment_without_an_artifact_is_tracked_by_commit(make_project, cli) -> None:
    text = "jobs:\n" + DEPLOY.format(environment="{name: staging}").replace("    needs: [build]\n", "")
    root = make(make_project, cli, text)
    sha = git(root, "rev-parse", "HEAD").strip()
    code, jobs = run(cli, root)
    assert code == 0, jobs
    assert jobs["deploy"]["status"] == "success" and jobs["deploy"]["deployed"] is None
    assert (root / ".buildyard" / "deployed.log").read_text() == f"{sha}\n"
    rows = deployments(cli, root, "staging")
    assert [(r["artifact"], r["version"], r["status"]) for r in rows] == [("", sha, "success")]
    assert f"commit {sha[:12]}" in cli("-C", root, "deploy", "history", "staging").out
    refused = cli("-C", root, "deploy", "rollback", "staging")
    assert refused.code == 2 and "script deployment of commit" in refused.err and refused.err.count("\n") == 1


def test_a_no_op_rerun_reuses_the_version_and_does_not_redeploy(make_project, cli) -> None:
    root = make(make_project, cli, "jobs:\n" + BUILD + DEPLOY.format(environment="staging"))
    code, first = run(cli, root)
    assert code == 0 and first["deploy"]["status"] == "success", first
    ref = str(first["build"]["published"])

    code, second = run(cli, root)  # nothing changed: the build is cached, the version is reused
    assert code == 0 and second["build"]["status"] == "cached"
    assert second["build"]["published"] == ref
    assert "already published" in Path(str(second["build"]["log"])).read_text()
    assert second["deploy"]["status"] == "success"
    assert str(second["deploy"]["message"]).startswith(f"not redeployed: {ref} already runs in staging")
    assert [r.name for r in open_repository(root).records("shop-api")] == [ref]
    assert len(deployments(cli, root, "staging")) == 1
    assert (root / ".buildyard" / "deployed.log").read_text().count("\n") == 1

    code, forced = run(cli, root, "--force")  # asked for: deployed again, same version
    assert code == 0 and forced["deploy"]["deployed"] == ref and forced["deploy"]["message"] in ("", None)
    assert len(deployments(cli, root, "staging")) == 2

    (root / "app.txt").write_text("v2\n")  # a real change: a new version, deployed
    git(root, "commit", "-qam", "v2")
    code, changed = run(cli, root)
    assert code == 0 and changed["build"]["published"] != ref
    assert changed["deploy"]["deployed"] == changed["build"]["published"]
    assert len(open_repository(root).records("shop-api")) == 2


def test_redeploy_always_deploys_every_time(make_project, cli) -> None:
    env = "{name: staging, redeploy: always}"
    root = make(make_project, cli, "jobs:\n" + BUILD + DEPLOY.format(environment=env))
    assert run(cli, root)[0] == 0 and run(cli, root)[0] == 0
    assert len(deployments(cli, root, "staging")) == 2


def test_the_first_publish_creates_the_signing_key_and_ci_refuses_to(make_project, cli, monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    root = make_project({"buildyard.yml": "jobs:\n" + BUILD, "app.txt": "v1\n"})
    shown = cli("-C", root, "run")
    assert shown.code == 0 and (shown.out + shown.err).count("created signing key 'default'") == 1
    code, jobs = run(cli, root)
    assert code == 0, jobs
    log = cli("-C", root, "logs", "1", "build").out
    assert "created signing key 'default'" in log and "back it up" in log
    assert (root / ".buildyard" / "keys" / "private" / "default.pem").is_file()
    assert cli("-C", root, "artifacts", "verify", str(jobs["build"]["published"])).code == 0

    monkeypatch.setenv("CI", "true")
    ci = make_project({"buildyard.yml": "jobs:\n" + BUILD, "app.txt": "v1\n"}, name="ci")
    code, jobs = run(cli, ci)
    assert code == 1 and jobs["build"]["status"] == "failed"
    message = str(jobs["build"]["message"])
    assert message.startswith("publish failed: no signing key 'default'") and "keys import" in message
    assert not (ci / ".buildyard" / "keys" / "private" / "default.pem").exists()


def test_a_staging_deployment_promotes_a_fresh_version_through_dev(make_project, cli) -> None:
    root = make(make_project, cli, "jobs:\n" + BUILD + DEPLOY.format(environment="staging"))
    code, jobs = run(cli, root)
    assert code == 0, jobs
    ref = str(jobs["build"]["published"])
    log = Path(str(jobs["deploy"]["log"])).read_text()
    assert f"promoted {ref} to channel staging" in log and "not promoted" not in log
    state = open_repository(root).channel_state()
    version = ref.split("@", 1)[1]
    assert state.current("shop-api", "dev") == version and state.current("shop-api", "staging") == version
