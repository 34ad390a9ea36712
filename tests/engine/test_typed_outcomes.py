"""Typed values across the engine boundary: cache status and miss reasons are enums, gate results and
test cases structs; strings appear only in the history store (and the JSON the CLI prints)."""

from __future__ import annotations

from pathlib import Path

from buildyard.cache import CacheMissReason, MissDetail
from buildyard.engine.request import CacheStatus, GateOutcome, TestCaseRun
from buildyard.engine.runner import RunOptions, execute_run
from buildyard.gates.reports.model import TestOutcome
from buildyard.gates.results import GateStatus
from buildyard.model import JobStatus, SkipReason
from buildyard.store.history import SqlHistory, default_url

JUNIT = """<?xml version="1.0"?>
<testsuite name="suite" tests="2" failures="1">
  <testcase classname="pkg.mod" name="test_ok" time="0.25"/>
  <testcase classname="pkg.mod" name="test_bad" time="0.5"><failure message="no">boom</failure></testcase>
</testsuite>
"""

PIPELINE = """\
name: typed
jobs:
  test:
    script: ["mkdir -p reports", "cp junit.in reports/junit.xml"]
    gates: [{tests: {junit: "reports/junit.xml", max_failures: 0}}]
  after:
    needs: [test]
    script: echo never
  plain:
    inputs: [junit.in]
    script: echo plain
"""


def test_engine_results_are_typed_and_the_store_gets_strings(make_project) -> None:
    root = make_project({"buildyard.yml": PIPELINE, "junit.in": JUNIT})
    first = execute_run(RunOptions(project_dir=root, slots=2))
    jobs = {j.id: j for j in first.jobs}
    test = jobs["test"]
    assert test.status == JobStatus.FAILED
    assert test.cache_status is CacheStatus.MISS
    assert test.miss_reasons == (MissDetail(CacheMissReason.NO_ENTRY),)
    assert all(isinstance(g, GateOutcome) for g in test.gate_results)
    failed = test.failed_gate
    assert failed is not None and failed.result.status is GateStatus.FAILED
    assert test.message.startswith(f"gate {failed.result.gate} failed")
    # the dependent is skipped with the gate's reason, recognised by type (not by message text)
    after = jobs["after"]
    assert after.skip_reason == SkipReason.DEPENDENCY_FAILED
    assert after.message == f"dependency 'test' failed: {test.message}"
    cases = test.test_results
    assert all(isinstance(c, TestCaseRun) for c in cases)
    assert [(c.name, c.outcome, c.attempt) for c in cases] == [
        ("test_ok", TestOutcome.PASSED, 1),
        ("test_bad", TestOutcome.FAILED, 1),
    ]
    assert cases[0].report and cases[0].report == cases[1].report

    second = execute_run(RunOptions(project_dir=root, slots=2))
    plain = {j.id: j for j in second.jobs}["plain"]
    assert plain.cache_status is CacheStatus.HIT and plain.status == JobStatus.CACHED

    history = SqlHistory(default_url(Path(root) / ".buildyard"))
    try:
        assert first.run is not None
        rows = {j.id: j for j in history.jobs(first.run.id)}
        assert rows["test"].cache_status == "miss" and rows["test"].miss_reasons == ["no_entry"]
        gates = history.gates(first.run.id)
    finally:
        history.close()
    assert [(g.job_id, g.status, g.kind) for g in gates] == [("test", "failed", "tests")]
    assert gates[0].data == failed.to_dict()
