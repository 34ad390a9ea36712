"""The deployments and approvals tables: migration from revision 0004, queries, first decision wins."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import buildyard.store.history as history_module
from buildyard.errors import UsageError
from buildyard.store.deployments import ApprovalRecord, DeploymentRecord
from buildyard.store.history import HEAD_REVISION, GateRecord, RunRecord, SqlHistory


def _run(store: SqlHistory, run_id: str) -> RunRecord:
    return store.create_run(
        RunRecord(
            id=run_id, pipeline="shop", number=0, status="running", event="push", created_at=time.time()
        )
    )


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


def test_deployments_rollback_target_approvals_and_gate_verdict(history_url: str) -> None:
    store = SqlHistory(history_url)
    try:
        one, two = _run(store, "a" * 32), _run(store, "b" * 32)

        def deploy(run: RunRecord, version: str, status: str, environment: str = "prod") -> int:
            rec = DeploymentRecord(environment, "shop-api", version, run.id, "deploy", "running", time.time())
            ident = store.start_deployment(rec)
            store.finish_deployment(ident, status)
            return ident

        deploy(one, "1.0.0", "success")
        deploy(one, "1.0.0", "success", environment="dev")
        failed = deploy(two, "2.0.0", "failed")
        assert store.last_good_version("prod", artifact="shop-api").version == "1.0.0"
        assert store.last_good_version("prod", artifact="shop-api", exclude="1.0.0") is None
        assert store.last_good_version("prod", artifact="other") is None
        later = deploy(two, "2.0.1", "success")
        assert store.last_good_version("prod", artifact="shop-api", before=later).version == "1.0.0"
        rows = store.deployments("prod")
        assert [(r.version, r.status, r.run_number) for r in rows] == [
            ("2.0.1", "success", 2),
            ("2.0.0", "failed", 2),
            ("1.0.0", "success", 1),
        ]
        assert rows[1].id == failed and rows[0].finished_at is not None
        assert [r.environment for r in store.deployments(run_id=one.id)] == ["dev", "prod"]
        with pytest.raises(ValueError, match="unknown deployment status"):
            store.finish_deployment(later, "great")

        assert store.approval(two.id, "deploy") is None
        store.decide(ApprovalRecord(two.id, "deploy", "approve", "alice", "ok", time.time()))
        with pytest.raises(UsageError, match="job 'deploy' was already approved by alice"):
            store.decide(ApprovalRecord(two.id, "deploy", "reject", "bob", "", time.time()))
        assert store.approval(two.id, "deploy").actor == "alice"

        assert store.gate_verdict(one.id) == (False, "run #1 evaluated no gates")
        assert store.gate_verdict("f" * 32)[0] is False
        store.save_gates([GateRecord(one.id, "gates", 0, "tests", "tests", "passed", "ok")])
        assert store.gate_verdict(one.id) == (True, "run #1 passed 1 gate(s)")
        store.save_gates([GateRecord(one.id, "gates", 1, "coverage", "coverage", "failed", "low")])
        store.save_gates(
            [
                GateRecord(one.id, "gates", 0, "tests", "tests", "passed", "ok"),
                GateRecord(one.id, "gates", 1, "coverage", "coverage", "failed", "low"),
            ]
        )
        assert store.gate_verdict(one.id) == (False, "run #1 failed gate(s): coverage")
    finally:
        store.close()


def test_a_deployment_ends_once_and_a_replaced_one_is_no_rollback_target(history_url: str) -> None:
    store = SqlHistory(history_url)
    try:
        run = _run(store, "c" * 32)

        def start(version: str) -> int:
            return store.start_deployment(
                DeploymentRecord("prod", "shop-api", version, run.id, "deploy", "running", time.time())
            )

        good = start("1.0.0")
        store.finish_deployment(good, "success")
        store.finish_deployment(good, "failed")  # a late cancellation does not undo a recorded success
        newer = start("2.0.0")
        store.finish_deployment(newer, "failed")
        store.finish_deployment(newer, "rolled_back")  # failed → rolled back is the one later change
        statuses = {r.id: r.status for r in store.deployments("prod")}
        assert statuses == {good: "success", newer: "rolled_back"}
        third = start("3.0.0")
        store.finish_deployment(third, "success")
        store.mark_rolled_back(third)  # replaced by a manual rollback to 1.0.0
        assert store.last_good_version("prod", artifact="shop-api").version == "1.0.0"
        assert store.last_good_version("prod", artifact="shop-api", exclude="1.0.0") is None
    finally:
        store.close()
