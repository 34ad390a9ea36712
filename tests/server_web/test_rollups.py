"""The metrics view summed from per-day rollups made of hours: exact (equal to one scan of the whole
range), and only the hours whose runs changed are read again."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from buildyard.server.web import data, queries
from buildyard.server.web.rollups import DAY, Rollups, percentile
from buildyard.server.web.source import ProjectDirSource
from buildyard.store.history import JobRecord, RunRecord, SqlHistory, default_url

NOW = 1_796_040_000.0  # pinned "now": 2026-11-30 12:00 UTC
DAYS = 7


def add_run(
    history: SqlHistory, created: float, *, branch: str = "main", status: str = "success", finish: bool = True
) -> str:
    rng = random.Random(created)
    run = history.create_run(
        RunRecord(
            id=uuid.uuid4().hex,
            pipeline="p",
            number=0,
            status=status if finish else "running",
            event="push",
            created_at=created,
            branch=branch,
            sha="a" * 40,
            trigger="cli",
            project_dir="/x",
            pipeline_file="/x/buildyard.yml",
            started_at=created + 1,
            queue_s=rng.uniform(0, 5),
        )
    )
    rows = []
    for i in range(3):
        hit = rng.random() < 0.3
        dur = rng.uniform(1, 20)
        rows.append(
            JobRecord(
                run_id=run.id,
                id=f"job{i}",
                job=f"job{i}",
                status="cached" if hit else "success",
                attempts=1,
                exit_code=0,
                ready_at=created,
                started_at=created + 1,
                finished_at=created + 1 + dur,
                duration_s=dur,
                queue_s=0.1 * i,
                cpu_seconds=dur / 2,
                peak_rss=rng.randint(1, 100) * 1_000_000,
                log_path="",
                cache_status="hit" if hit else "miss",
                saved_s=rng.uniform(1, 9) if hit else 0.0,
            )
        )
    history.save_jobs(rows, insert=True)
    if finish:
        history.update_run(run.id, finished_at=created + 30, duration_s=29.0 + rng.random())
    return run.id


@pytest.fixture
def project(tmp_path: Path) -> tuple[ProjectDirSource, SqlHistory]:
    root = tmp_path / "p"
    (root / ".buildyard").mkdir(parents=True)
    (root / "buildyard.yml").write_text("name: p\njobs:\n  job0: {script: x}\n")
    history = SqlHistory(default_url(root / ".buildyard"))
    rng = random.Random(3)
    for n in range(60):  # over the last 10 days: some before the 7-day range
        add_run(
            history,
            NOW - 10 * DAY + n * (10 * DAY / 60),
            branch=rng.choice(["main", "dev"]),
            status=rng.choice(["success", "success", "failed"]),
        )
    source = ProjectDirSource(root, name="p", default_branch="main")
    yield source, history
    history.close()
    source.close()


def one_scan(source: ProjectDirSource, branch: str = "") -> dict[str, object]:
    """What the metrics view said before the rollups: one scan of the whole range."""
    history = source.history("p")
    since = (NOW // DAY - DAYS + 1) * DAY
    runs = queries.run_points(history, since, branch=branch)
    table, trend = data._job_table(queries.job_daily(history, since, branch=branch))
    durations = [r.duration_s for r in runs if r.duration_s is not None]
    return {
        "runs": len(runs),
        "duration_p50_s": percentile(durations, 0.5),
        "duration_p95_s": percentile(durations, 0.95),
        "jobs": table,
        "trend": {j: [[since + d * DAY, m] for d, m in points] for j, points in trend.items()},
        "days": [
            sum(1 for r in runs if since + d * DAY <= r.created_at < since + (d + 1) * DAY)
            for d in range(DAYS)
        ],
    }


def view(source: ProjectDirSource, rollups: Rollups, branch: str = "") -> dict[str, object]:
    d = data.metrics_data(source, "p", days=DAYS, branch=branch, now=NOW, rollups=rollups)
    return {
        "runs": d["runs"],
        "duration_p50_s": d["duration_p50_s"],
        "duration_p95_s": d["duration_p95_s"],
        "jobs": d["jobs"],
        "trend": {s["id"]: s["trend"] for s in d["slowest"]},
        "days": [day["runs"] for day in d["daily"]],
    }


def rounded(value: object) -> object:
    """``value`` with its floats rounded to 6 places (sums in another order differ in the last bits)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def same(a: dict[str, object], b: dict[str, object]) -> None:
    assert rounded(a) == rounded(b)


def test_rollups_sum_to_one_scan_and_only_changed_days_are_read_again(project) -> None:
    source, history = project
    rollups = Rollups()
    same(view(source, rollups), one_scan(source))
    assert rollups.computed == DAYS  # every day of the range has runs
    same(view(source, rollups, "dev"), one_scan(source, "dev"))
    assert rollups.computed == 2 * DAYS
    view(source, rollups)
    assert rollups.computed == 2 * DAYS  # nothing changed: nothing read again

    # a run of today finishes: today (and only today) is summed again, from one hour read again
    hours = rollups.hours_read
    add_run(history, NOW - 60)
    after = view(source, rollups)
    assert rollups.computed == 2 * DAYS + 1 and rollups.hours_read == hours + 1
    same(after, one_scan(source))
    assert (
        after["days"][-1] == one_scan(source)["days"][-1] and after["runs"] == view(source, Rollups())["runs"]
    )
    view(source, rollups, "dev")
    assert rollups.computed == 2 * DAYS + 1  # a main run: dev's days are unchanged

    # a run that is still running changes when it finishes (its row gets finished_at and a duration)
    running = add_run(history, NOW - 3 * DAY, finish=False)
    view(source, rollups)
    history.update_run(running, status="success", finished_at=NOW - 3 * DAY + 30, duration_s=30.0)
    same(view(source, rollups), one_scan(source))
    assert rollups.computed == 2 * DAYS + 3
    # a run deleted (retention) changes its day too
    with queries.engine_of(history).begin() as conn:
        conn.exec_driver_sql("DELETE FROM runs WHERE id = ?", (running,))
    same(view(source, rollups), one_scan(source))
    assert rollups.computed == 2 * DAYS + 4
