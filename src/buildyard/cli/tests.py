"""``buildyard tests flaky|slowest|history``: test analytics over the recorded test results."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import click

from buildyard.cli._common import db_option, json_option, print_json
from buildyard.cli.history import _open

if TYPE_CHECKING:
    from buildyard.gates.analytics import TestResult


def _results(ctx: click.Context, db: str | None, days: float) -> list[TestResult]:
    """Recorded test results of the last ``days``."""
    from buildyard.engine.analytics import convert  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        return convert(store.tests_since(time.time() - days * 86400))
    finally:
        store.close()


@click.group(name="tests")
def app() -> None:
    """Test analytics: flaky tests, slowest tests, one test's history."""


@app.command()
@click.option("--days", type=float, default=14, show_default=True, help="Window of evidence.")
@click.option(
    "--clear-after",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Consistent results in a row that clear a flaky test.",
)
@json_option
@db_option
@click.pass_context
def flaky(ctx: click.Context, days: float, clear_after: int, as_json: bool, db: str | None) -> None:
    """Tests that both passed and failed on the same commit (retries or separate runs)."""
    from buildyard.gates.analytics import find_flaky  # noqa: PLC0415

    found = find_flaky(
        _results(ctx, db, days),
        now=dt.datetime.now(dt.UTC),
        window=dt.timedelta(days=days),
        clear_after=clear_after,
    )
    if as_json:
        print_json(
            [
                {
                    "test": f.display_name,
                    "commits": list(f.commits),
                    "passes": f.passes,
                    "failures": f.failures,
                    "last_evidence": f.last_evidence.isoformat(),
                }
                for f in found
            ]
        )
        return
    if not found:
        print(f"no flaky tests in the last {days:g} days")
    for f in found:
        commits = ", ".join(c[:12] for c in f.commits)
        print(f"{f.display_name}  passed {f.passes}× and failed {f.failures}× on {commits}")


@app.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--days", type=float, default=14, show_default=True)
@json_option
@db_option
@click.pass_context
def slowest(ctx: click.Context, limit: int, days: float, as_json: bool, db: str | None) -> None:
    """Tests with the highest median duration."""
    from buildyard.gates.analytics import slowest as rank  # noqa: PLC0415

    rows = rank(_results(ctx, db, days), limit=limit)
    if as_json:
        print_json(
            [
                {"test": "::".join(s.test), "median_s": s.median, "max_s": s.maximum, "runs": s.count}
                for s in rows
            ]
        )
        return
    for s in rows:
        print(f"{s.median:8.3f}s median  {s.maximum:8.3f}s max  {s.count:4d} runs  {'::'.join(s.test)}")


@app.command()
@click.argument("name")
@click.option("--days", type=float, default=90, show_default=True)
@json_option
@db_option
@click.pass_context
def history(ctx: click.Context, name: str, days: float, as_json: bool, db: str | None) -> None:
    """Every recorded result of the test NAME (name, class::name or suite::class::name), newest first."""
    from buildyard.gates.analytics import history_of  # noqa: PLC0415

    rows = history_of(_results(ctx, db, days), name)
    if as_json:
        print_json(
            [
                {
                    "test": f"{r.classname}::{r.name}",
                    "outcome": str(r.outcome),
                    "duration_s": r.duration,
                    "attempt": r.attempt,
                    "commit": r.commit,
                    "time": r.time.isoformat(),
                    "run_id": r.run_id,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        print(f"no recorded results for '{name}'")
    for r in rows:
        print(
            f"{r.time:%Y-%m-%d %H:%M:%S}  {r.outcome!s:<8} {r.duration:7.3f}s  try {r.attempt}  "
            f"{r.commit[:12]}  {r.classname}::{r.name}"
        )
