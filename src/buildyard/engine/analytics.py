"""Test analytics of a run: the content a run tests, the test rows it records, and the analytics
values (triage, flaky tests) it reports.

Evidence rules: a result is keyed on the content tested (the commit plus :func:`tree_digest` of the
uncommitted changes); rows repeating a report already recorded (a cached job's restored report, a
report left over from an earlier run) are recorded as ``restored`` and are no new execution.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import hashlib
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.model import JobStatus
from buildyard.store.history import History, RunRecord, SqlHistory, TestRecord

if TYPE_CHECKING:
    from buildyard.engine.scheduler import JobResult
    from buildyard.gates.analytics import FlakyTest, TestResult
    from buildyard.spec.models import Pipeline

WINDOW_S = 14 * 86400
#: Untracked files larger than this are digested by size and mtime, not content (bounded cost).
MAX_HASHED_FILE = 8 * 1024 * 1024
_GIT_TIMEOUT_S = 30


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
            tree=r.tree,
        )
        for r in rows
    ]


def declared_outputs(pipeline: Pipeline) -> list[str]:
    """Paths the pipeline writes (job artifacts, gate reports): never part of the content tested."""
    patterns: list[str] = []

    def strings(value: Any) -> Iterable[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for job in pipeline.jobs.values():
        patterns.extend(job.artifacts.paths)
        patterns.extend(strings(job.gates))
    patterns.extend(strings(pipeline.gates))
    return [p.strip("/") for p in patterns if p.strip("/")]


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(prefix, p) for p in patterns for prefix in prefixes)


def tree_digest(project: Path, exclude: Sequence[str] = (), *, home: Path | None = None) -> str:
    """Digest of what a checkout holds beyond its HEAD commit ("" when clean or not a git repository).

    Hashes ``git diff HEAD`` (tracked files, staged or not) and the paths and contents of untracked,
    not ignored files outside ``exclude`` (globs of paths the pipeline itself writes) and ``home``
    (buildyard's own directory). Streamed and bounded: files over ``MAX_HASHED_FILE`` count by size
    and mtime.
    """
    if home is not None:
        with contextlib.suppress(ValueError):  # outside the project: git does not list it
            exclude = [*exclude, home.resolve().relative_to(project.resolve()).as_posix()]
    digest = hashlib.sha256()
    changed = False
    try:
        with subprocess.Popen(
            ["git", "diff", "HEAD", "--binary", "--no-ext-diff", "--no-color"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as diff:
            while chunk := diff.stdout.read(1 << 16) if diff.stdout else b"":
                changed = True
                digest.update(chunk)
        if diff.returncode != 0:
            return ""
        listed = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "-z"],
            cwd=project,
            capture_output=True,
            check=True,
            timeout=_GIT_TIMEOUT_S,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    for rel in sorted(p for p in listed.decode(errors="surrogateescape").split("\0") if p):
        if _excluded(rel, exclude):
            continue
        changed = True
        digest.update(b"\0untracked\0" + rel.encode(errors="surrogateescape") + b"\0")
        _hash_file(project / rel, digest)
    return digest.hexdigest()[:32] if changed else ""


def _hash_file(path: Path, digest: Any) -> None:
    try:
        st = path.lstat()
        if not path.is_file() or path.is_symlink() or st.st_size > MAX_HASHED_FILE:
            digest.update(f"stat:{st.st_size}:{st.st_mtime_ns}".encode())
            return
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                digest.update(chunk)
    except OSError:
        digest.update(b"unreadable")


class TestRows:
    """Turns finished jobs' test results into history rows, telling new executions from restored ones."""

    __test__ = False  # not a pytest test class

    def __init__(self, history: History, run: RunRecord, tree: str) -> None:
        self.history = history
        self.run = run
        self.tree = tree
        self.seen: set[str] = set()  # reports recorded by this run

    def rows(self, batch: Sequence[JobResult], at: float) -> list[TestRecord]:
        """Rows of the final jobs of ``batch``: a cached job's, or a report's already recorded, are
        ``restored``."""
        final = [r for r in batch if r.status.is_final and r.test_results]
        reports = {t.report for r in final for t in r.test_results} - {""}
        fresh = reports - self.seen
        known = self.history.recorded_reports(fresh) if fresh else set()
        out: list[TestRecord] = []
        for r in final:
            for i, t in enumerate(r.test_results):
                report = t.report
                restored = r.status == JobStatus.CACHED or report in known or report in self.seen
                out.append(
                    TestRecord(
                        self.run.id,
                        r.id,
                        i,
                        t.suite,
                        t.classname,
                        t.name,
                        str(t.outcome),
                        float(t.duration),
                        t.attempt,
                        self.run.sha,
                        r.finished_at or at,
                        tree=self.tree,
                        report=report,
                        restored=restored,
                    )
                )
        self.seen.update(reports)
        return out


def analytics_step(history: SqlHistory, run: RunRecord, created: float) -> tuple[Any, list[FlakyTest]]:
    """Failure triage against the branch's last successful run, and the flaky tests among this run's
    (``new`` when this run's results made them flaky); None, [] without tests."""
    current = history.tests_of_run(run.id)
    if not current:
        return None, []
    from buildyard.gates.analytics import find_flaky, triage_failures  # noqa: PLC0415

    baseline_id = history.latest_run_id(
        pipeline=run.pipeline, branch=run.branch, status="success", before=created
    )
    baseline = convert(history.tests_of_run(baseline_id)) if baseline_id else []
    triage = triage_failures(convert(current), baseline)
    window = convert(
        history.tests_for_flakiness(run_id=run.id, pipeline=run.pipeline, since=created - WINDOW_S)
    )
    now = dt.datetime.now(dt.UTC)
    flaky = find_flaky(window, now=now)
    if flaky:
        before = {f.test for f in find_flaky([r for r in window if r.run_id != run.id], now=now)}
        flaky = [f.marked_new(f.test not in before) for f in flaky]
    return triage, flaky
