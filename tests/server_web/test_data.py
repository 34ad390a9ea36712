"""The dashboard's view data, read directly from a real project's history (real runs of the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildyard.errors import NotFoundError
from buildyard.server.web import data
from buildyard.server.web.dag import critical_path
from buildyard.server.web.queries import Cursor, RunFilter
from buildyard.server.web.rollups import percentile, percentiles
from buildyard.server.web.source import ProjectDirSource
from buildyard.store.deployments import DeploymentRecord


def test_projects_show_last_run_rate_median_and_sparkline(yard_source: ProjectDirSource) -> None:
    d = data.projects_data(yard_source)
    [p] = d["projects"]
    assert p["name"] == "yard" and p["default_branch"] == "main"
    assert p["last_run"]["number"] == 2 and p["last_run"]["status"] == "failed"
    assert p["runs_30d"] == 2 and p["success_rate_30d"] == 0.5
    assert p["median_duration_s"] > 0 and len(p["sparkline"]) == 1  # successful runs only
    assert p["running"] == [] and p["queued"] == []


def test_runs_filter_and_cursor_pages(yard_source: ProjectDirSource) -> None:
    first = data.runs_data(yard_source, "yard", data.RunsParams(limit=1))
    assert [r["number"] for r in first["runs"]] == [2] and first["next_cursor"]
    second = data.runs_data(yard_source, "yard", data.RunsParams(limit=1, cursor=first["next_cursor"]))
    assert [r["number"] for r in second["runs"]] == [1] and second["next_cursor"] is None
    failed = data.runs_data(yard_source, "yard", data.RunsParams(flt=RunFilter(status="failed")))
    assert [r["number"] for r in failed["runs"]] == [2]
    assert data.runs_data(yard_source, "yard", data.RunsParams(flt=RunFilter(branch="nope")))["runs"] == []
    assert first["choices"] == {
        "branch": ["main"],
        "event": ["push"],
        "status": ["failed", "success"],
        "who": ["cli"],
    }
    with pytest.raises(ValueError, match="invalid cursor"):
        data.runs_data(yard_source, "yard", data.RunsParams(cursor="garbage"))
    with pytest.raises(NotFoundError, match="no project 'other'"):
        data.runs_data(yard_source, "other", data.RunsParams())


def test_run_has_dag_with_critical_path_gantt_gates_artifacts_deployments(
    yard_source: ProjectDirSource,
) -> None:
    d = data.run_data(yard_source, "yard", "2")
    assert d["run"]["status"] == "failed"
    statuses = {j["id"]: j["status"] for j in d["jobs"]}
    assert statuses["test"] == "failed" and statuses["build"] == "success"
    dag = d["dag"]
    assert dag["edges_known"]
    edges = {(e["from"], e["to"]) for e in dag["edges"]}
    assert {("build", "test"), ("build", "deploy")} <= edges
    layers = {n["id"]: n["layer"] for n in dag["nodes"]}
    assert layers["build"] == 0 and layers["test"] == 1 and layers["lint"] == 0
    # the slowest chain is build → test (pytest), not build → deploy (a copy)
    assert dag["critical_path"][:2] == ["build", "test"]
    assert all(n["critical"] == (n["id"] in dag["critical_path"]) for n in dag["nodes"])
    rows = {r["id"]: r for r in d["gantt"]["rows"]}
    assert rows["test"]["segments"][-1]["kind"] == "run"
    assert rows["test"]["segments"][-1]["start_s"] >= rows["build"]["end_s"] - 0.01  # it needs build
    assert [g["status"] for g in d["gates"]] == ["failed"] and "test_add" in d["gates"][0]["reason"]
    [art] = d["artifacts"]
    assert art["ref"].startswith("yard-app@1.0.0+build.2") and art["signature"] == "verified"
    assert [(x["environment"], x["status"]) for x in d["deployments"]] == [("dev", "success")]


def test_log_window_is_rendered_and_escaped(yard_source: ProjectDirSource) -> None:
    d = data.log_data(yard_source, "yard", "1", "build")
    assert d["available"] and not d["live"] and d["first_line"] == 1
    line = next(ln for ln in d["lines"] if "green" in ln["text"])
    assert line["text"] == "green <b>&amp; tag"
    assert line["html"] == '<span class="f2">green</span> &lt;b&gt;&amp;amp; tag'
    with pytest.raises(NotFoundError, match="has no job 'nope'"):
        data.log_data(yard_source, "yard", "1", "nope")


def test_metrics_over_real_runs(yard_source: ProjectDirSource) -> None:
    d = data.metrics_data(yard_source, "yard", days=7)
    assert d["runs"] == 2 and d["success_rate"] == 0.5
    assert 0 < d["duration_p50_s"] <= d["duration_p95_s"]
    assert len(d["daily"]) == 7 and d["daily"][-1]["runs"] == 2
    ids = {j["id"] for j in d["jobs"]}
    assert {"build", "test", "lint", "deploy"} <= ids
    assert all(j["count"] == 2 for j in d["jobs"] if j["id"] in ids)
    history = yard_source.history("yard")
    took = [j.duration_s for r in history.list_runs() for j in history.jobs(r.id) if j.id == "test"]
    # one point a day: both runs were today
    assert d["slowest"][0]["id"] == "test" and d["slowest"][0]["trend"] == [
        [d["since"] + 6 * 86400, pytest.approx(sum(took) / 2)]
    ]
    assert d["dora"]["deployments"] == 2 and d["dora"]["change_failure_rate"] == 0.0
    assert d["dora"]["deployment_frequency_per_day"] == pytest.approx(2 / 7)
    assert d["dora"]["lead_time_s"] > 0


def test_tests_new_failure_slowest_and_history(yard_source: ProjectDirSource) -> None:
    d = data.tests_data(yard_source, "yard", test="test_add")
    assert d["executions"] == 4
    assert d["triage"]["new"] == ["tests.test_a::test_add"] and d["triage"]["known"] == []
    assert {s["test"] for s in d["slowest"]} == {"tests.test_a::test_add", "tests.test_a::test_ok"}
    assert [h["outcome"] for h in d["history"]] == ["failed", "passed"]
    assert d["flaky"] == []  # failed on another commit: not flakiness


def test_artifacts_and_environments(yard_source: ProjectDirSource) -> None:
    d = data.artifacts_data(yard_source, "yard")
    assert [v["signature"] for v in d["versions"]] == ["verified", "verified"]
    assert d["versions"][0]["channels"] == ["dev"]  # the deploy promoted the newest version
    [env] = d["environments"]
    assert env["name"] == "dev" and env["current"]["run_number"] == 2 and len(env["history"]) == 2
    sbom = data.artifact_document(yard_source, "yard", d["versions"][0]["ref"], "sbom")
    assert sbom["document"]["bomFormat"] == "CycloneDX"
    prov = data.artifact_document(yard_source, "yard", d["versions"][0]["ref"], "provenance")
    assert prov["document"]["_type"] == "https://in-toto.io/Statement/v1"


def test_a_project_without_runs_shows_empty_views(tmp_path: Path) -> None:
    from by_testutil import git

    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "trunk")
    source = ProjectDirSource(root)
    try:
        [p] = data.projects_data(source)["projects"]
        assert p["default_branch"] == "trunk" and p["last_run"] is None and p["success_rate_30d"] is None
        assert data.metrics_data(source, "empty")["runs"] == 0
        assert data.tests_data(source, "empty")["triage"] is None
        assert data.artifacts_data(source, "empty")["versions"] == []
    finally:
        source.close()


def test_dora_measures_from_deployment_history() -> None:
    def dep(i: int, env: str, status: str, at: float, *, rollback: int | None = None) -> DeploymentRecord:
        return DeploymentRecord(
            env,
            "app",
            f"1.{i}",
            f"r{i}",
            "deploy",
            status,
            at,
            id=i,
            finished_at=at + 10,
            rollback_of=rollback,
        )

    deps = [
        dep(1, "prod", "success", 1000),
        dep(2, "prod", "failed", 2000),
        dep(3, "prod", "success", 2600, rollback=2),
        dep(4, "dev", "success", 3000),
    ]
    created = {"r1": 900.0, "r2": 1900.0, "r3": 2500.0, "r4": 2700.0}
    d = data.dora(deps, created, 2)
    assert d["deployments"] == 4
    assert d["deployment_frequency_per_day"] == 3 / 2
    assert d["change_failure_rate"] == 2 / 4  # the failure and the rollback it needed
    assert d["time_to_restore_s"] == 600  # failure finished at 2010, restored at 2610
    assert d["lead_time_s"] == 210  # median of 110 (r1) and 310 (r4): a rollback is not a change


def test_critical_path_follows_the_heaviest_chain() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}
    assert critical_path(deps, {"a": 1, "b": 5, "c": 1, "d": 1, "e": 6}) == ["a", "b", "d"]
    assert critical_path(deps, {"a": 1, "b": 1, "c": 1, "d": 1, "e": 9}) == ["e"]
    assert critical_path({}, {}) == []


def test_cursor_round_trip_and_percentiles() -> None:
    c = Cursor(1234.5678901234, "ab" * 16)
    assert Cursor.decode(c.encode()) == c
    for bad in ("", "x_y", "1.0_", "1.0_a'b"):
        with pytest.raises(ValueError, match="invalid cursor"):
            Cursor.decode(bad)
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([float(i) for i in range(101)], 0.95) == 95.0
    assert percentiles([4.0, 1.0, 3.0, 2.0], 0.5, 0.95, 1.0) == [2.5, 3.8499999999999996, 4.0]
    assert percentiles([], 0.5) == [None]


def test_a_cache_hit_shows_the_log_stored_with_its_entry(tmp_path: Path) -> None:
    from dashboard_testutil import buildyard, make_repo

    pipeline = "name: c\njobs:\n  hello:\n    script: printf 'hello \\033[1mworld\\033[0m\\n'\n"
    root = make_repo(tmp_path / "c", {"buildyard.yml": pipeline, ".gitignore": ".buildyard/\n"})
    assert buildyard(root, "run").returncode == 0
    assert buildyard(root, "run").returncode == 0
    source = ProjectDirSource(root)
    try:
        d = data.log_data(source, "c", "2", "hello")
        assert d["job"]["status"] == "cached" and d["from_cache"]
        assert [ln["html"] for ln in d["lines"]] == ['hello <span class="ab">world</span>']
        assert not data.log_data(source, "c", "1", "hello")["from_cache"]
        run = source.history("c").get_run("2").id
        assert data.cached_job_log(source, "c", run, "hello") == b"hello \x1b[1mworld\x1b[0m\n"
    finally:
        source.close()
