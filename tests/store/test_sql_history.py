"""The history tables in SQL: migration from revision 0004, rows as the SQLAlchemy schema reads them."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import buildyard.store.history as history_module
from buildyard.server.web import queries
from buildyard.store.history import HEAD_REVISION, GateRecord, JobRecord, RunRecord, SqlHistory


def test_a_0004_database_is_migrated_and_keeps_its_runs(history_url: str) -> None:
    url = history_url
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(history_module.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.commit()
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, pipeline, number, status, event, ref, branch, tag, sha, trigger,"
                " project_dir, pipeline_file, variables, selected, created_at, jobs_total, message) VALUES"
                " ('r1', 'shop', 1, 'success', 'push', '', '', '', '', 'cli', '', '', '{}', '[]', 1.0, 0, '')"
            )
        )
        conn.commit()
    engine.dispose()
    store = SqlHistory(url)
    try:
        assert store.get_run("1").id == "r1"
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        # 0006: the unused index on jobs.job is gone (it cost every run ~350 page writes per 500 jobs)
        assert "ix_jobs_job" not in {ix["name"] for ix in sa.inspect(store.engine).get_indexes("jobs")}
        assert store.deployments("production") == []
    finally:
        store.close()


def test_rows_written_by_the_stdlib_driver_read_back_through_the_sqlalchemy_schema(tmp_path: Path) -> None:
    """The embedded store writes with ``sqlite3``; Alembic migrations and backups see the rows through
    ``store/schema.py``: JSON columns as JSON, booleans as booleans, in the same form."""
    from buildyard.store import schema
    from buildyard.store.history import TestRecord

    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = SqlHistory(url)
    try:
        run = store.create_run(
            RunRecord(
                id="a" * 32,
                pipeline="p",
                number=0,
                status="running",
                event="push",
                created_at=1.0,
                variables={"é": "ü"},
                selected=["x"],
            )
        )
        store.save_jobs(
            [JobRecord(run.id, "j", "j", "success", matrix={"py": "3"}, allow_failure=True)], insert=True
        )
        store.save_gates([GateRecord(run.id, "gates", 0, "cov", "coverage", "passed", "ok", {"line": 81.5})])
        store.save_tests(
            [TestRecord(run.id, "j", 0, "s", "c", "t", "passed", 0.1, 1, "abc", 2.0, restored=True)]
        )
    finally:
        store.close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.select(schema.runs.c.variables, schema.runs.c.selected)).one()
            jobs = conn.execute(sa.select(schema.jobs.c.matrix, schema.jobs.c.allow_failure)).one()
            gate = conn.execute(sa.select(schema.gate_results.c.data)).scalar_one()
            restored = conn.execute(sa.select(schema.test_results.c.restored)).scalar_one()
    finally:
        engine.dispose()
    assert tuple(runs) == ({"é": "ü"}, ["x"])
    assert tuple(jobs) == ({"py": "3"}, True)
    assert (gate, restored) == ({"line": 81.5}, True)


def test_a_0007_database_keeps_its_jobs_readable_in_their_order(history_url: str) -> None:
    engine = sa.create_engine(history_url)
    with engine.connect() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(history_module.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, pipeline, number, status, event, ref, branch, tag, sha, trigger,"
                " project_dir, pipeline_file, variables, selected, created_at, jobs_total, message) VALUES"
                " ('r1', 'shop', 1, 'success', 'push', '', '', '', '', 'cli', '', '', '{}', '[]', 1.0, 0, '')"
            )
        )
        for job, ready in (("b", 1.0), ("a", 2.0)):
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (run_id, id, job, matrix, status, attempts, allow_failure, ready_at,"
                    " message, log_path, cache_status, cache_key, saved_s, miss_reasons) VALUES"
                    " ('r1', :job, :job, '{}', 'success', 1, false, :ready, '', '', 'off', '', 0, '[]')"
                ),
                {"job": job, "ready": ready},
            )
        conn.commit()
    engine.dispose()
    store = SqlHistory(history_url)
    try:
        jobs = store.jobs("r1")
        assert [(j.id, j.published, j.deployed) for j in jobs] == [("b", "", ""), ("a", "", "")]
        store.save_jobs([JobRecord("r1", "c", "c", "pending")], insert=True)
        assert [j.id for j in store.jobs("r1")][-1] == "c"
    finally:
        store.close()


def test_the_sqlite_file_is_read_and_written_without_importing_sqlalchemy(tmp_path: Path) -> None:
    """The embedded store's hot path and the readers (``show``, analytics) stay on the stdlib driver:
    importing SQLAlchemy costs ~200 ms of CPU, more than a whole cached run."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'h.db'}"
    SqlHistory(url).close()  # migrated here (Alembic needs SQLAlchemy)
    code = f"""
import sys
from buildyard.store.history import GateRecord, JobRecord, RunRecord, SqlHistory, StepRecord, TestRecord
s = SqlHistory({url!r})
r = s.create_run(RunRecord(id="a" * 32, pipeline="p", number=0, status="running", event="push", created_at=1))
s.save_jobs([JobRecord(r.id, "j", "j", "pending")], insert=True)
s.save_jobs([JobRecord(r.id, "j", "j", "success")])
s.save_steps([StepRecord(r.id, "j", 0, "s", "success")])
s.save_gates([GateRecord(r.id, "j", 0, "g", "tests", "passed", "ok")])
s.save_tests([TestRecord(r.id, "j", 0, "s", "c", "t", "passed", 0.1, 1, "abc", 2.0)])
s.update_run(r.id, status="success", finished_at=3.0)
s.get_run(None); s.get_run("1"); s.list_runs(); s.jobs(r.id); s.steps(r.id); s.gates(r.id); s.durations("p")
s.deployments(run_id=r.id); s.gate_verdict(r.id); s.approval(r.id, "j"); s.tests_of_run(r.id)
s.tests_for_flakiness(run_id=r.id, pipeline="p", since=0.0); s.tests_since(0.0); s.recorded_reports({{"x"}})
s.latest_gate_data(pipeline="p", branch="", gate="g", before=9.0)
s.latest_run_id(pipeline="p", branch="", status="success", before=9.0)
s.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_0023_covers_the_dashboards_range_aggregates_and_downgrades(history_url: str) -> None:
    """0022 → head: ``ix_runs_created_cover`` replaces ``ix_runs_created`` and SQLite answers the
    per-hour fingerprints from the index alone; downgrading to 0022 brings the old index back."""
    engine = sa.create_engine(history_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(history_module.__file__).parent / "migrations"))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0022")
        conn.commit()
    store = SqlHistory(history_url)
    try:
        for n in range(3):
            store.create_run(
                RunRecord(
                    id=f"r{n}",
                    pipeline="shop",
                    number=0,
                    status="success",
                    event="push",
                    created_at=100.0 + n,
                    branch="main",
                )
            )
        names = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("runs")}
        assert "ix_runs_created_cover" in names and "ix_runs_created" not in names
        prints = queries.fingerprints(store, 0.0)
        assert sum(p[0] for p in prints.values()) == 3
        if store.is_sqlite:
            with store.engine.connect() as conn:
                plan = " ".join(
                    str(row[-1])
                    for row in conn.execute(
                        sa.text(
                            "EXPLAIN QUERY PLAN SELECT count(*), sum(duration_s), max(finished_at),"
                            " sum(queue_s), sum(status = 'success') FROM runs WHERE created_at >= 0"
                        )
                    )
                )
            assert "COVERING INDEX ix_runs_created_cover" in plan, plan
    finally:
        store.close()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0022")
        conn.commit()
        names = {ix["name"] for ix in sa.inspect(conn).get_indexes("runs")}
    engine.dispose()
    assert "ix_runs_created" in names and "ix_runs_created_cover" not in names
