"""The SQLite fast path (stdlib driver) and the SQLAlchemy path store and read exactly the same rows."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from buildyard.store.history import GateRecord, JobRecord, RunRecord, SqlHistory, StepRecord, TestRecord


def _engine_only(url: str) -> SqlHistory:
    store = SqlHistory(url)
    assert store.raw is not None
    store.raw.close()
    store.raw = None  # every call now goes through SQLAlchemy Core
    return store


def _record(store: SqlHistory, n: int) -> RunRecord:
    run = store.create_run(
        RunRecord(
            id=f"{n:032x}",
            pipeline="p",
            number=0,
            status="running",
            event="push",
            created_at=1000.0 + n,
            branch="main",
            variables={"A": "1", "é": "ü"},
            selected=["x"],
            jobs_total=2,
        )
    )
    pending = [
        JobRecord(run.id, "build", "build", "pending", matrix={"py": "3.11"}, allow_failure=True),
        JobRecord(run.id, "test", "test", "pending"),
    ]
    store.save_jobs(pending, insert=True)
    store.save_jobs(
        [
            JobRecord(
                run.id,
                "build",
                "build",
                "success",
                matrix={"py": "3.11"},
                allow_failure=True,
                attempts=2,
                exit_code=0,
                duration_s=1.5 * n,
                cache_status="miss",
                miss_reasons=["input_changed"],
                peak_rss=123,
            ),
            JobRecord(run.id, "test", "test", "failed", exit_code=3, duration_s=2.0, message="boom"),
        ]
    )
    store.save_steps(
        [StepRecord(run.id, "build", 0, "s1", "failed", 1), StepRecord(run.id, "build", 1, "s2", "ok")]
    )
    store.save_steps([StepRecord(run.id, "build", 0, "s1", "success", 0)])  # a retry replaces the attempt
    store.save_gates([GateRecord(run.id, "gates", 0, "cov", "coverage", "passed", "ok", {"line": 81.5})])
    store.save_tests([TestRecord(run.id, "test", 0, "s", "c", "t", "failed", 0.25, 1, "abc", 2000.0 + n)])
    store.update_run(run.id, status="success", duration_s=3.5, finished_at=1010.0 + n)
    return run


@pytest.mark.parametrize("reader", ["fast", "engine"])
def test_both_write_paths_store_the_same_rows(tmp_path: Path, reader: str) -> None:
    fast = SqlHistory(f"sqlite:///{tmp_path / 'fast.db'}")
    slow = _engine_only(f"sqlite:///{tmp_path / 'slow.db'}")
    for n in (1, 2):
        assert _record(fast, n) == _record(slow, n)
    fast.close()
    slow.close()
    # read each database through one path (the fast one where it has a read, SQLAlchemy otherwise)
    open_ = SqlHistory if reader == "fast" else _engine_only
    a, b = open_(f"sqlite:///{tmp_path / 'fast.db'}"), open_(f"sqlite:///{tmp_path / 'slow.db'}")
    try:
        run_id = f"{2:032x}"
        assert a.get_run(run_id) == b.get_run(run_id)
        assert a.get_run(run_id).variables == {"A": "1", "é": "ü"}
        assert [r.number for r in a.list_runs()] == [2, 1] == [r.number for r in b.list_runs()]
        assert a.jobs(run_id) == b.jobs(run_id)
        assert a.jobs(run_id)[0].allow_failure is True
        assert a.jobs(run_id)[0].miss_reasons == ["input_changed"]
        assert a.steps(run_id) == b.steps(run_id)
        assert [s.status for s in a.steps(run_id)] == ["success"]
        assert a.gates(run_id) == b.gates(run_id)
        assert a.gates(run_id)[0].data == {"line": 81.5}
        assert a.tests_of_run(run_id) == b.tests_of_run(run_id) != []
        assert a.durations("p") == b.durations("p") == {"build": 2.25}  # failed jobs do not count
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("path", ["fast", "engine"])
def test_an_update_sets_only_what_can_change(tmp_path: Path, path: str) -> None:
    """The plan's fields (name, stage, matrix, allow_failure) stay as inserted; results are updated.

    Updates leave them out so that they never rewrite an index entry (``store/rawsqlite.py``).
    """
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = SqlHistory(url) if path == "fast" else _engine_only(url)
    try:
        run = store.create_run(
            RunRecord(id="r" * 32, pipeline="p", number=0, status="running", event="push", created_at=1.0)
        )
        store.save_jobs(
            [JobRecord(run.id, "t[a]", "t", "pending", stage="test", matrix={"a": "1"}, allow_failure=True)],
            insert=True,
        )
        store.save_jobs([JobRecord(run.id, "t[a]", "other", "failed", stage="x", exit_code=2, message="m")])
        (job,) = store.jobs(run.id)
        assert (job.job, job.stage, job.matrix, job.allow_failure) == ("t", "test", {"a": "1"}, True)
        assert (job.status, job.exit_code, job.message) == ("failed", 2, "m")
    finally:
        store.close()


def test_concurrent_runs_get_distinct_numbers(history_url: str) -> None:
    url = history_url
    SqlHistory(url).close()  # migrate once
    numbers: list[int] = []

    def create(i: int) -> None:
        store = SqlHistory(url)
        try:
            for j in range(10):
                run = store.create_run(
                    RunRecord(
                        id=f"{i:016x}{j:016x}",
                        pipeline="p",
                        number=0,
                        status="running",
                        event="push",
                        created_at=float(j),
                    )
                )
                numbers.append(run.number)
        finally:
            store.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(1, 41))


@pytest.mark.postgres
def test_postgres_stores_the_same_rows_as_sqlite(tmp_path: Path, postgres_url: str) -> None:
    lite, pg = _engine_only(f"sqlite:///{tmp_path / 'h.db'}"), SqlHistory(postgres_url)
    assert pg.raw is None and not pg.is_sqlite
    try:
        for n in (1, 2):
            assert _record(lite, n) == _record(pg, n)
        run_id = f"{2:032x}"
        assert pg.get_run(run_id) == lite.get_run(run_id)
        assert pg.get_run("2") == lite.get_run("2")  # by number
        assert pg.get_run(None) == lite.get_run(None)  # the latest
        assert [r.number for r in pg.list_runs()] == [2, 1]
        assert pg.jobs(run_id) == lite.jobs(run_id)
        assert pg.steps(run_id) == lite.steps(run_id)
        assert pg.gates(run_id) == lite.gates(run_id)
        assert pg.tests_of_run(run_id) == lite.tests_of_run(run_id) != []
        assert pg.durations("p") == lite.durations("p") == {"build": 2.25}
    finally:
        lite.close()
        pg.close()
