"""Test analytics of a run: recorded test results turned into the gates service's analytics values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from buildyard.store.history import RunRecord, SqlHistory, TestRecord

if TYPE_CHECKING:
    from buildyard.gates.analytics import TestResult


def convert(rows: Sequence[TestRecord]) -> list[TestResult]:
    """History rows → ``TestResult`` values for ``buildyard.gates.analytics``."""
    from buildyard.gates.analytics import TestResult  # noqa: PLC0415 - only when tests were recorded
    from buildyard.gates.reports.model import TestOutcome  # noqa: PLC0415

    return [
        TestResult(
            r.suite,
            r.classname,
            r.name,
            TestOutcome(r.outcome),
            r.duration,
            r.sha,
            dt.datetime.fromtimestamp(r.at, dt.UTC),
            attempt=r.attempt,
            run_id=r.run_id,
        )
        for r in rows
    ]


def analytics_step(history: SqlHistory, run: RunRecord, created: float) -> tuple[Any, list[Any]]:
    """Failure triage against the branch's last successful run, and flaky tests (None, [] without tests)."""
    current = history.tests_of_run(run.id)
    if not current:
        return None, []
    from buildyard.gates.analytics import find_flaky, triage_failures  # noqa: PLC0415

    baseline_id = history.latest_run_id(
        pipeline=run.pipeline, branch=run.branch, status="success", before=created
    )
    baseline = convert(history.tests_of_run(baseline_id)) if baseline_id else []
    triage = triage_failures(convert(current), baseline)
    window = history.tests_since(created - 14 * 86400)
    flaky = find_flaky(convert(window), now=dt.datetime.now(dt.UTC))
    return triage, flaky
