"""The dashboard's queries on both history backends (embedded SQLite, real PostgreSQL): the same
seeded history gives the same pages, filters, cursors, day buckets and DORA figures."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

from buildyard.server.web import data
from buildyard.server.web.queries import RunFilter
from buildyard.server.web.source import ProjectDirSource
from buildyard.store.deployments import DeploymentRecord
from buildyard.store.history import JobRecord, RunRecord, SqlHistory
from buildyard.store.schema import deployments

NOW = 1_800_000_000.0  # pinned: day buckets do not depend on when the test runs
DAY = 86_400.0


def _seed(url: str) -> None:
    history = SqlHistory(url)
    today = math.floor(NOW / DAY) * DAY
    try:
        for n in range(6):
            created = today - (5 - n) * DAY + 3600  # one run a day, 01:00 UTC, oldest first
            run = history.create_run(
                RunRecord(
                    id=uuid.uuid4().hex,
                    pipeline="p",
                    number=0,
                    status="failed" if n == 3 else "success",
                    event="push",
                    created_at=created,
                    branch="main" if n % 2 == 0 else "dev",
                    trigger="alice" if n < 3 else "bob",
                    started_at=created + 1,
                    finished_at=created + 11 + n,
                    duration_s=10.0 + n,
                    queue_s=1.0,
                )
            )
            history.save_jobs(
                [
                    JobRecord(
                        run.id,
                        "a",
                        "a",
                        "success",
                        ready_at=created + 1,
                        started_at=created + 1,
                        finished_at=created + 4,
                        duration_s=3.0,
                        cache_status="miss",
                        cpu_seconds=2.0,
                        peak_rss=100,
                    ),
                    JobRecord(
                        run.id,
                        "b",
                        "b",
                        "cached" if n % 2 else "success",
                        ready_at=created + 4,
                        started_at=created + 4,
                        finished_at=created + 5 + n,
                        duration_s=1.0 + n,
                        cache_status="hit" if n % 2 else "miss",
                        saved_s=5.0 if n % 2 else 0.0,
                        peak_rss=200 + n,
                    ),
                ],
                insert=True,
            )
            dep = history.start_deployment(
                DeploymentRecord("prod", "app", f"1.{n}", run.id, "b", "running", created + 12)
            )
            history.finish_deployment(dep, "failed" if n == 3 else "success")
        with history.engine.begin() as conn:  # finishing stamps the real time: pin it 5 s after the start
            conn.execute(deployments.update().values(finished_at=deployments.c.started_at + 5))
    finally:
        history.close()


@pytest.fixture
def seeded(history_url: str, tmp_path: Path):
    _seed(history_url)
    root = tmp_path / "proj"
    root.mkdir()
    source = ProjectDirSource(root, name="p", db_url=history_url, default_branch="main")
    yield source
    source.close()


def test_pages_filters_and_cursors(seeded: ProjectDirSource) -> None:
    first = data.runs_data(seeded, "p", data.RunsParams(limit=4), now=NOW)
    assert [r["number"] for r in first["runs"]] == [6, 5, 4, 3]
    rest = data.runs_data(seeded, "p", data.RunsParams(limit=4, cursor=first["next_cursor"]), now=NOW)
    assert [r["number"] for r in rest["runs"]] == [2, 1] and rest["next_cursor"] is None
    bob_main = data.runs_data(seeded, "p", data.RunsParams(flt=RunFilter(who="bob", branch="main")), now=NOW)
    assert [r["number"] for r in bob_main["runs"]] == [5]
    assert first["choices"]["who"] == ["alice", "bob"] and first["choices"]["branch"] == ["dev", "main"]


def test_metrics_buckets_and_aggregates(seeded: ProjectDirSource) -> None:
    d = data.metrics_data(seeded, "p", days=7, now=NOW)
    assert d["runs"] == 6 and d["success_rate"] == pytest.approx(5 / 6)
    assert [day["runs"] for day in d["daily"]] == [0, 1, 1, 1, 1, 1, 1]
    assert d["duration_p50_s"] == pytest.approx(12.5)
    jobs = {j["id"]: j for j in d["jobs"]}
    assert jobs["a"]["count"] == 6 and jobs["a"]["mean_s"] == pytest.approx(3.0) and jobs["a"]["cpu_s"] == 2.0
    assert jobs["b"]["peak_rss"] == 205 and jobs["b"]["max_s"] == pytest.approx(6.0)
    assert d["cache"] == {"hits": 3, "misses": 9, "hit_rate": 0.25, "saved_s": 15.0}
    b, a = d["slowest"]  # b: mean 3.5 s, a: 3 s
    assert (b["id"], a["id"]) == ("b", "a")
    assert [round(p[1], 3) for p in b["trend"]] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # one point a day
    assert [p[0] for p in a["trend"]] == [d["since"] + i * DAY for i in range(1, 7)]
    assert d["dora"]["deployments"] == 6 and d["dora"]["change_failure_rate"] == pytest.approx(1 / 6)
    assert d["dora"]["time_to_restore_s"] == pytest.approx(DAY)  # failed on day 4, restored on day 5
    assert d["dora"]["lead_time_s"] == pytest.approx(17)  # run created → its deployment finished
    assert d["dora"]["deployment_frequency_per_day"] == pytest.approx(5 / 7)


def test_projects_and_run(seeded: ProjectDirSource) -> None:
    [p] = data.projects_data(seeded, now=NOW)["projects"]
    assert p["last_run"]["number"] == 5 and p["success_rate_30d"] == pytest.approx(5 / 6)
    run = data.run_data(seeded, "p", "6")
    assert [n["id"] for n in run["dag"]["nodes"]] == ["a", "b"] and not run["dag"]["edges_known"]
    assert [r["id"] for r in run["gantt"]["rows"]] == ["a", "b"]
    assert run["gantt"]["rows"][1]["segments"][-1]["kind"] == "restore"  # b was a cache hit
