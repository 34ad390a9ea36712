"""The ``History`` contract, one suite for every backend: SQLite (stdlib driver), SQLite through
SQLAlchemy (a URL with options), PostgreSQL (a real server) and the in-memory ``MemoryHistory``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from buildyard.errors import NotFoundError, StoreError, UsageError
from buildyard.store.history import (
    FLAKINESS_ROWS_PER_TEST,
    ApprovalRecord,
    DeploymentRecord,
    GateRecord,
    History,
    JobRecord,
    RunRecord,
    SqlHistory,
    StepRecord,
    TestRecord,
)
from buildyard.testing import MemoryHistory

BACKENDS = ["sqlite", "sqlite-sqlalchemy", pytest.param("postgres", marks=pytest.mark.postgres), "memory"]


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], History]:
    """Opens the same history again and again (one database; one shared fake)."""
    if request.param == "memory":
        shared = MemoryHistory()
        return lambda: shared
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    elif request.param == "sqlite-sqlalchemy":
        url = f"sqlite:///{tmp_path / 'history.db'}?timeout=30"  # options: not the stdlib fast path
    else:
        url = str(request.getfixturevalue("postgres_url"))
    return lambda: SqlHistory(url)


@pytest.fixture
def history(opener: Callable[[], History]) -> Iterator[History]:
    """One open history of each backend."""
    store = opener()
    yield store
    store.close()


def _run(history: History, n: int, pipeline: str = "p", **values: object) -> RunRecord:
    fields: dict[str, object] = {"status": "success", "event": "push", "created_at": 1000.0 + n}
    fields.update(values)
    return history.create_run(RunRecord(id=f"{n:032x}", pipeline=pipeline, number=0, **fields))  # type: ignore[arg-type]


# --- runs -----------------------------------------------------------------------------------------


def test_runs_are_numbered_per_pipeline_and_read_back_as_stored(history: History) -> None:
    first = _run(history, 1, variables={"A": "1", "é": "ü\x1b"}, selected=["x", "y"], branch="main")
    assert first.number == 1
    assert [_run(history, n, "p").number for n in (2, 3)] == [2, 3]
    assert _run(history, 4, "q").number == 1
    assert history.get_run(first.id) == first
    assert first.variables == {"A": "1", "é": "ü\x1b"} and first.selected == ["x", "y"]
    history.update_run(first.id, status="failed", finished_at=1009.5, duration_s=9.5, message="boom")
    updated = history.get_run(first.id)
    assert (updated.status, updated.finished_at, updated.duration_s, updated.message) == (
        "failed",
        1009.5,
        9.5,
        "boom",
    )
    assert updated.variables == first.variables
    with pytest.raises(ValueError, match="not updatable"):
        history.update_run(first.id, colour="red")


def test_a_run_id_is_stored_once(history: History) -> None:
    _run(history, 1)
    with pytest.raises(StoreError):
        _run(history, 1)


def test_list_runs_newest_first_filtered_and_limited(history: History) -> None:
    for n, pipeline in enumerate(["p", "q", "p", "p"]):
        _run(history, n, pipeline)
    assert [r.id[-1] for r in history.list_runs()] == ["3", "2", "1", "0"]
    assert [r.id[-1] for r in history.list_runs(pipeline="p", limit=2)] == ["3", "2"]
    assert history.list_runs(pipeline="none") == []


def test_get_run_by_every_kind_of_ref(history: History) -> None:
    with pytest.raises(NotFoundError, match="no runs recorded yet"):
        history.get_run(None)
    a = history.create_run(
        RunRecord(id="ab" + "0" * 30, pipeline="p", number=0, status="success", event="push", created_at=1.0)
    )
    b = history.create_run(
        RunRecord(id="ac" + "0" * 30, pipeline="p", number=0, status="success", event="push", created_at=2.0)
    )
    c = history.create_run(
        RunRecord(id="bd" + "0" * 30, pipeline="q", number=0, status="failed", event="push", created_at=3.0)
    )
    assert history.get_run(None) == history.get_run("last") == history.get_run("latest") == c
    assert history.get_run(None, pipeline="p") == b
    assert history.get_run("2") == b  # only p has a run #2
    assert history.get_run("p#1") == a and history.get_run("q#1") == c
    assert history.get_run("1", pipeline="q") == c
    with pytest.raises(NotFoundError, match=r"run #1 is ambiguous: pipelines p and q .* give PIPELINE#1"):
        history.get_run("1")
    assert history.get_run(a.id) == a  # a whole id
    assert history.get_run("ab") == a and history.get_run("bd0") == c  # unique prefixes
    with pytest.raises(NotFoundError, match="prefix 'a' is ambiguous"):
        history.get_run("a")
    with pytest.raises(NotFoundError, match="no run 'AB'"):
        history.get_run("AB")  # ids are case-sensitive everywhere
    with pytest.raises(NotFoundError, match="no run 'a%'"):
        history.get_run("a%")  # no wildcards
    with pytest.raises(NotFoundError, match="no run '9'"):
        history.get_run("9")
    with pytest.raises(NotFoundError):
        history.get_run(a.id, pipeline="q")  # the id is p's


def test_durations_average_successful_jobs_of_the_last_finished_runs(history: History) -> None:
    for n, (status, build_s) in enumerate(
        [("success", 9.0), ("success", 1.0), ("failed", 3.0), ("running", 7.0)]
    ):
        run = _run(history, n, status=status)
        history.save_jobs(
            [
                JobRecord(run.id, "build", "build", "success", duration_s=build_s),
                JobRecord(run.id, "test", "test", "failed", duration_s=5.0),
                JobRecord(run.id, "lint", "lint", "success", duration_s=None),
            ],
            insert=True,
        )
    _run(history, 9, "other")
    assert history.durations("p", limit_runs=2) == {"build": 2.0}  # runs 2 and 1; the running one not
    assert history.durations("p") == {"build": pytest.approx(13.0 / 3)}
    assert history.durations("none") == {}


def test_latest_run_id_by_pipeline_branch_status_and_time(history: History) -> None:
    _run(history, 1, branch="main")
    _run(history, 2, branch="main", status="failed")
    _run(history, 3, branch="dev")
    _run(history, 4, "q", branch="main")
    assert history.latest_run_id(pipeline="p", branch="main", status="success", before=2000.0) == f"{1:032x}"
    assert history.latest_run_id(pipeline="p", branch="main", status="failed", before=1002.0) is None
    assert history.latest_run_id(pipeline="p", branch="x", status="success", before=2000.0) is None


# --- jobs and steps -------------------------------------------------------------------------------


def test_jobs_keep_their_planned_fields_and_order(history: History) -> None:
    run = _run(history, 1)
    planned = [
        JobRecord(
            run.id, "z[a]", "z", "pending", stage="test", matrix={"a": "1"}, allow_failure=True, ready_at=3.0
        ),
        JobRecord(run.id, "b", "b", "pending"),
        JobRecord(run.id, "a", "a", "pending", ready_at=1.0, published="x@1", deployed="x@1"),
    ]
    other = _run(history, 2)
    history.save_jobs([JobRecord(other.id, "b", "b", "pending")], insert=True)
    history.save_jobs(planned[:2], insert=True)  # planned order, whatever the readiness
    history.save_jobs(planned[2:], insert=True)  # a later insert comes after
    history.save_jobs(
        [
            replace(
                planned[0],
                job="other",
                stage="x",
                matrix={},
                allow_failure=False,
                status="failed",
                exit_code=2,
            ),
            replace(
                planned[2], status="success", cache_status="miss", miss_reasons=["input_changed"], peak_rss=12
            ),
        ]
    )
    history.save_jobs([JobRecord(run.id, "ghost", "ghost", "success")])  # an update of nothing: nothing
    jobs = history.jobs(run.id)
    assert [j.id for j in jobs] == ["z[a]", "b", "a"]
    assert (jobs[0].job, jobs[0].stage, jobs[0].matrix, jobs[0].allow_failure) == (
        "z",
        "test",
        {"a": "1"},
        True,
    )
    assert (jobs[0].status, jobs[0].exit_code) == ("failed", 2)
    assert jobs[1] == planned[1]
    assert (jobs[2].cache_status, jobs[2].miss_reasons, jobs[2].peak_rss) == ("miss", ["input_changed"], 12)
    assert (jobs[2].published, jobs[2].deployed) == ("x@1", "x@1")
    assert history.jobs("f" * 32) == []
    assert [j.id for j in history.jobs(other.id)] == ["b"]


def test_steps_of_a_retried_attempt_replace_the_earlier_ones(history: History) -> None:
    run = _run(history, 1)
    history.save_jobs(
        [JobRecord(run.id, "b", "b", "running"), JobRecord(run.id, "a", "a", "running")], insert=True
    )
    history.save_steps(
        [StepRecord(run.id, "b", 0, "s1", "failed", 1), StepRecord(run.id, "b", 1, "s2", "skipped")]
    )
    history.save_steps([StepRecord(run.id, "a", 0, "only", "success", 0, 1.0, 2.0, 1.0)])
    history.save_steps([StepRecord(run.id, "b", 0, "s1", "success", 0)])
    history.save_steps([])
    assert [(s.job_id, s.idx, s.status) for s in history.steps(run.id)] == [
        ("a", 0, "success"),
        ("b", 0, "success"),
    ]
    assert history.steps(run.id, "a") == [StepRecord(run.id, "a", 0, "only", "success", 0, 1.0, 2.0, 1.0)]
    assert history.steps(run.id, "c") == []


# --- gates ----------------------------------------------------------------------------------------


def test_gates_replace_per_job_and_give_a_verdict_and_a_baseline(history: History) -> None:
    one = _run(history, 1, branch="main")
    two = _run(history, 2, branch="main", status="failed")
    assert history.gate_verdict(one.id) == (False, "run #1 evaluated no gates")
    assert history.gate_verdict("f" * 32) == (False, f"run {'f' * 12} is not in this history")
    history.save_gates([GateRecord(one.id, "gates", 0, "tests", "tests", "passed", "ok", {"n": 3})])
    assert history.gate_verdict(one.id) == (True, "run #1 passed 1 gate(s)")
    history.save_gates(
        [
            GateRecord(one.id, "gates", 1, "coverage", "coverage", "failed", "low", {"line": 81.5}),
            GateRecord(one.id, "gates", 0, "tests", "tests", "passed", "ok", {"n": 3}),
        ]
    )
    history.save_gates(
        [GateRecord(one.id, "build", 0, "bench", "benchmarks", "passed", "fast", {"ms": [1, 2]})]
    )
    assert [(g.job_id, g.idx, g.gate) for g in history.gates(one.id)] == [
        ("build", 0, "bench"),
        ("gates", 0, "tests"),
        ("gates", 1, "coverage"),
    ]
    assert history.gate_verdict(one.id) == (False, "run #1 failed gate(s): coverage")
    history.save_gates(
        [GateRecord(two.id, "gates", 0, "coverage", "coverage", "passed", "ok", {"line": 99.0})]
    )
    baseline = history.latest_gate_data(pipeline="p", branch="main", gate="coverage", before=5000.0)
    assert baseline == {"line": 81.5}  # run 2 failed: not a baseline
    assert history.latest_gate_data(pipeline="p", branch="main", gate="coverage", before=1001.0) is None
    assert history.latest_gate_data(pipeline="p", branch="dev", gate="coverage", before=5000.0) is None
    assert history.gates("f" * 32) == []


# --- tests ----------------------------------------------------------------------------------------


def _test(run: RunRecord, idx: int, name: str, at: float, **values: object) -> TestRecord:
    record = TestRecord(run.id, "test", idx, "suite", "cls", name, "passed", 0.5, 1, "abc", at)
    return replace(record, **values)  # type: ignore[arg-type]


def test_test_results_replace_per_job_and_are_read_by_run_and_time(history: History) -> None:
    one, two, other = _run(history, 1), _run(history, 2), _run(history, 3, "q")
    history.save_tests([_test(one, 0, "a", 10.0), _test(one, 1, "b", 10.0, report="r1")])
    history.save_tests([_test(one, 0, "a", 11.0, outcome="failed", tree="t" * 32, report="r1")])  # replaces
    history.save_tests([_test(two, 0, "a", 20.0, restored=True, report="r1"), _test(two, 1, "c", 5.0)])
    history.save_tests([_test(other, 0, "a", 15.0)])
    mine = history.tests_of_run(one.id)
    assert [(t.name, t.outcome, t.tree, t.report, t.restored) for t in mine] == [
        ("a", "failed", "t" * 32, "r1", False)
    ]
    assert [(t.run_id[-1], t.name) for t in history.tests_since(0)] == [("2", "c"), ("1", "a"), ("3", "a")]
    assert [t.name for t in history.tests_since(11.0)] == ["a", "a"]  # at or after; restored left out
    assert [t.run_id[-1] for t in history.tests_since(0, pipeline="q")] == ["3"]
    assert history.recorded_reports({"r1", "r9", ""}) == {"r1"}
    assert history.recorded_reports(set()) == set()


def test_flakiness_evidence_is_the_runs_tests_in_its_own_pipeline_only(history: History) -> None:
    old = _run(history, 1, finished_at=50.0)
    mine_before = _run(history, 2, finished_at=120.0)
    other_pipeline = _run(history, 3, "q", finished_at=130.0)
    current = _run(history, 4, finished_at=None)
    history.save_tests([_test(old, 0, "a", 50.0, outcome="failed")])  # before the window
    history.save_tests(
        [
            _test(mine_before, 0, "a", 120.0, outcome="failed"),
            _test(mine_before, 1, "b", 120.0),  # a test the current run did not run
            _test(mine_before, 2, "a", 121.0, suite="other suite"),  # same name, another test
            _test(mine_before, 3, "a", 122.0, restored=True),
        ]
    )
    history.save_tests([_test(other_pipeline, 0, "a", 130.0, outcome="failed")])
    history.save_tests([_test(current, 0, "a", 140.0)])
    found = history.tests_for_flakiness(run_id=current.id, pipeline="p", since=100.0)
    assert [(t.run_id[-1], t.suite, t.name, t.outcome) for t in found] == [
        ("2", "suite", "a", "failed"),
        ("4", "suite", "a", "passed"),
    ]
    assert history.tests_for_flakiness(run_id="f" * 32, pipeline="p", since=0.0) == []


def test_flakiness_evidence_is_bounded_to_the_newest_rows_of_each_test(history: History) -> None:
    run = _run(history, 1)
    rows = [_test(run, i, "a", 1000.0 + i) for i in range(FLAKINESS_ROWS_PER_TEST + 5)]
    history.save_tests([*rows, _test(run, len(rows), "b", 1.0)])
    found = history.tests_for_flakiness(run_id=run.id, pipeline="p", since=0.0)
    assert [t.name for t in found].count("a") == FLAKINESS_ROWS_PER_TEST
    assert [t.at for t in found if t.name == "a"] == [1005.0 + i for i in range(FLAKINESS_ROWS_PER_TEST)]
    assert found[0].name == "b"  # oldest first


# --- deployments and approvals --------------------------------------------------------------------


def test_deployments_rollback_targets_and_run_numbers(history: History) -> None:
    one, two = _run(history, 1, "shop"), _run(history, 2, "shop")

    def deploy(run: RunRecord, version: str, status: str, environment: str = "prod") -> int:
        record = DeploymentRecord(environment, "shop-api", version, run.id, "deploy", "running", time.time())
        ident = history.start_deployment(record)
        history.finish_deployment(ident, status)
        return ident

    deploy(one, "1.0.0", "success")
    deploy(one, "1.0.0", "success", environment="dev")
    failed = deploy(two, "2.0.0", "failed")
    assert history.last_good_version("prod", artifact="shop-api").version == "1.0.0"  # type: ignore[union-attr]
    assert history.last_good_version("prod", artifact="shop-api", exclude="1.0.0") is None
    assert history.last_good_version("prod", artifact="other") is None
    later = deploy(two, "2.0.1", "success")
    assert later > failed
    assert history.last_good_version("prod", artifact="shop-api", before=later).version == "1.0.0"  # type: ignore[union-attr]
    rows = history.deployments("prod")
    assert [(r.version, r.status, r.run_number) for r in rows] == [
        ("2.0.1", "success", 2),
        ("2.0.0", "failed", 2),
        ("1.0.0", "success", 1),
    ]
    assert rows[1].id == failed and rows[0].finished_at is not None and rows[0].what == "shop-api@2.0.1"
    assert [r.environment for r in history.deployments(run_id=one.id)] == ["dev", "prod"]
    assert len(history.deployments(limit=2)) == 2 and len(history.deployments()) == 4
    with pytest.raises(ValueError, match="unknown deployment status"):
        history.finish_deployment(later, "great")


def test_a_deployment_ends_once_and_a_replaced_one_is_no_rollback_target(history: History) -> None:
    run = _run(history, 1, "shop")

    def start(version: str) -> int:
        return history.start_deployment(
            DeploymentRecord("prod", "shop-api", version, run.id, "deploy", "running", time.time())
        )

    good = start("1.0.0")
    history.finish_deployment(good, "success")
    history.finish_deployment(good, "failed")  # a late cancellation does not undo a recorded success
    newer = start("2.0.0")
    history.finish_deployment(newer, "failed")
    history.finish_deployment(newer, "rolled_back")  # failed → rolled back is the one later change
    assert {r.id: r.status for r in history.deployments("prod")} == {good: "success", newer: "rolled_back"}
    third = start("3.0.0")
    history.finish_deployment(third, "success")
    history.mark_rolled_back(third)  # replaced by a manual rollback to 1.0.0
    assert history.last_good_version("prod", artifact="shop-api").version == "1.0.0"  # type: ignore[union-attr]
    assert history.last_good_version("prod", artifact="shop-api", exclude="1.0.0") is None


def test_the_first_approval_decision_wins(history: History) -> None:
    run = _run(history, 1)
    assert history.approval(run.id, "deploy") is None
    decision = ApprovalRecord(run.id, "deploy", "approve", "alice", "ok", 12.5)
    history.decide(decision)
    with pytest.raises(UsageError, match="job 'deploy' was already approved by alice"):
        history.decide(ApprovalRecord(run.id, "deploy", "reject", "bob", "", 13.0))
    assert history.approval(run.id, "deploy") == decision
    assert history.approval(run.id, "other") is None


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_runs_get_distinct_numbers(opener: Callable[[], History]) -> None:
    opener().close()  # create and migrate once
    numbers: list[int] = []

    def create(i: int) -> None:
        store = opener()
        try:
            for j in range(10):
                run = store.create_run(
                    RunRecord(
                        id=f"{i:016x}{j:016x}",
                        pipeline="p",
                        number=0,
                        status="running",
                        event="push",
                        created_at=j,
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


def test_readers_get_copies(history: History) -> None:
    run = _run(history, 1, variables={"A": "1"})
    history.save_jobs([JobRecord(run.id, "a", "a", "pending", matrix={"x": "1"})], insert=True)
    history.get_run(run.id).variables["A"] = "changed"
    history.jobs(run.id)[0].matrix["x"] = "changed"
    assert history.get_run(run.id).variables == {"A": "1"}
    assert history.jobs(run.id)[0].matrix == {"x": "1"}
