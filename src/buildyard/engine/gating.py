"""Quality gates around any executor: a job's own gates after it succeeds, and the ``gates`` node.

``GatingExecutor`` sits outside the job cache (see ``engine.stack``). After a job succeeds (or is
restored from the cache), its ``gates:`` are evaluated against the reports in its working directory;
a failed gate turns the job into a failure whose message names the gate, so its dependents are
skipped with that reason. The synthetic ``gates`` node of the plan runs no process: it evaluates
the pipeline-level gates against the project once every job it waits for is done. Results go to
the job's log and to the outcome (``gate_results``), from where the history store records them.
The gate definitions are the wrapper's (``GatedJob`` per instance, from the plan), never part of a
``JobRequest``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from buildyard.engine.request import Executor, GateOutcome, JobOutcome, JobRequest, OutputSink, TestCaseRun
from buildyard.model import JobStatus
from buildyard.plan.build import Plan


@dataclass(frozen=True, slots=True)
class GatedJob:
    """The gates of one job instance: its own ``gates:``, or the pipeline's for the ``gates`` node."""

    gates: tuple[Any, ...]  # gate definitions (msgspec structs from buildyard.gates.config)
    node: bool = False  # the plan's gates node: evaluate the pipeline's gates, run no process
    needs: tuple[str, ...] = ()  # for the node: the jobs it waits for (failed ones fail it)


def gated_jobs(plan: Plan) -> dict[str, GatedJob]:
    """The instances of ``plan`` that have gates (or are its gates node), by instance id."""
    return {
        iid: GatedJob(tuple(inst.gates), inst.gate_node, tuple(inst.needs))
        for iid, inst in plan.instances.items()
        if inst.gates or inst.gate_node
    }


def scan_vulnerabilities(gates: Sequence[Any], project: Path) -> list[Any] | None:
    """Findings of an offline OSV scan when a vulnerabilities gate asks for them (None: no gate, or no
    database -- ``$BUILDYARD_OSV_DB`` or the one ``deps db update`` wrote; the gate then fails)."""
    from buildyard.gates.config import VulnerabilitiesGate  # noqa: PLC0415 - only with gates
    from buildyard.gates.findings import Vulnerability  # noqa: PLC0415

    if not any(isinstance(g, VulnerabilitiesGate) for g in gates):
        return None
    from buildyard.deps.osvdb import gate_db_dir  # noqa: PLC0415

    db = gate_db_dir(project)
    if db is None:
        return None
    from buildyard.deps.api import scan  # noqa: PLC0415 - the scanner is heavy

    result = scan([project], project=project, db_dir=db)
    return [
        Vulnerability(
            id=f.id, package=f"{f.package.name}@{f.package.version}", severity=str(f.rating.severity)
        )
        for f in result.findings
        if f.ignored_by is None
    ]


BaselineLookup = Callable[[str, str], "dict[str, Any] | None"]
"""``(gate label, branch or "") -> recorded data`` of that gate in the latest successful run (or None)."""


def _baselines(gates: Sequence[Any], root: Path, lookup: BaselineLookup | None) -> dict[str, Any]:
    """Coverage and benchmark baselines from history, for the gates that need them."""
    from buildyard.gates.config import BenchmarksGate, CoverageGate  # noqa: PLC0415
    from buildyard.gates.evaluation import baselines_needed  # noqa: PLC0415
    from buildyard.gates.serialize import benchmarks_from_dict, coverage_from_dict  # noqa: PLC0415

    out: dict[str, Any] = {"coverage_baseline": None, "benchmark_baselines": {}}
    if lookup is None:
        return out
    for gate in gates:
        if isinstance(gate, CoverageGate) and gate.no_decrease:
            data = lookup(gate.label, "")
            if data and "report" in data:
                out["coverage_baseline"] = coverage_from_dict(data["report"])
    needed = baselines_needed(gates, root)
    for gate in gates:
        if isinstance(gate, BenchmarksGate) and gate.baseline in needed:
            data = lookup(gate.label, gate.baseline)
            if data and "report" in data:
                out["benchmark_baselines"][gate.baseline] = benchmarks_from_dict(data["report"])
    return out


def _current_reports(gates: Sequence[Any], root: Path) -> dict[str, Any]:
    """The coverage totals and benchmark results measured now, recorded as future baselines."""
    from buildyard.gates.config import BenchmarksGate, CoverageGate  # noqa: PLC0415
    from buildyard.gates.errors import ReportError  # noqa: PLC0415
    from buildyard.gates.evaluation import load_benchmarks, load_coverage  # noqa: PLC0415
    from buildyard.gates.serialize import benchmarks_to_dict, coverage_to_dict  # noqa: PLC0415

    out: dict[str, Any] = {}
    for gate in gates:
        try:
            if isinstance(gate, CoverageGate):
                out[gate.label] = coverage_to_dict(load_coverage(root, gate.report, gate.format).totals)
            elif isinstance(gate, BenchmarksGate):
                out[gate.label] = benchmarks_to_dict(load_benchmarks(root, gate.results, gate.format))
        except ReportError:
            continue  # the gate itself reports the broken file
    return out


def _licenses(gates: Sequence[Any], project: Path) -> list[Any] | None:
    """License verdicts of every dependency under the project's policy, when a licenses gate asks."""
    from buildyard.gates.config import LicensesGate  # noqa: PLC0415 - only with gates
    from buildyard.gates.findings import LicenseVerdict  # noqa: PLC0415

    if not any(isinstance(g, LicensesGate) for g in gates):
        return None
    from buildyard.deps.api import licenses  # noqa: PLC0415 - the scanner is heavy
    from buildyard.deps.licenses import resolve_policy  # noqa: PLC0415

    report = licenses([project], resolve_policy(project), project=project)
    verdicts = {"allowed": "allowed", "exception": "allowed", "denied": "denied", "unknown": "unknown"}
    return [
        LicenseVerdict(
            package=f"{r.package.name}@{r.package.version}",
            license=str(r.license),
            verdict=verdicts.get(str(r.verdict), "review"),
        )
        for r in report.results
    ]


def evaluate_gates(
    gates: Sequence[Any],
    *,
    root: Path,
    project: Path,
    duration: float | None,
    baselines: BaselineLookup | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Evaluate ``gates`` with reports under ``root``: ``(GateResult list, reports to record by gate)``."""
    from buildyard.gates.evaluation import GateContext, evaluate  # noqa: PLC0415 - only with gates

    context = GateContext(
        root=root,
        duration=duration,
        vulnerabilities=scan_vulnerabilities(gates, project),
        licenses=_licenses(gates, project),
        **_baselines(gates, root, baselines),
    )
    return evaluate(gates, context), _current_reports(gates, root)


def collect_tests(gates: Sequence[Any], *, root: Path) -> tuple[TestCaseRun, ...]:
    """Every test case (per attempt) of the JUnit reports the ``tests`` gates read, for analytics.

    Each carries ``report``, a digest of its report files' bytes (which hold the run's timestamp): a
    report restored from the cache, or left over from an earlier run, digests the same as when it was
    first recorded, so history can tell it is not a new execution.
    """
    from buildyard.gates.config import TestsGate  # noqa: PLC0415 - only with gates
    from buildyard.gates.errors import ReportError  # noqa: PLC0415
    from buildyard.gates.evaluation import expand, load_junit  # noqa: PLC0415
    from buildyard.gates.reports.model import TestOutcome  # noqa: PLC0415

    out: list[TestCaseRun] = []
    for gate in gates:
        if not isinstance(gate, TestsGate):
            continue
        try:
            report = load_junit(root, gate.junit)
        except ReportError:
            continue  # the gate itself reports the broken file
        digest = _files_digest(root, expand(root, gate.junit))
        for case in report.cases:
            outcomes = [TestOutcome.FAILED] * case.failed_attempts + [case.outcome]
            out.extend(
                TestCaseRun(
                    suite=case.suite,
                    classname=case.classname,
                    name=case.name,
                    outcome=outcome,
                    duration=case.duration,
                    attempt=attempt,
                    report=digest,
                )
                for attempt, outcome in enumerate(outcomes, start=1)
            )
    return tuple(out)


def _files_digest(root: Path, paths: Sequence[Path]) -> str:
    """Digest of the names (relative to ``root``) and bytes of ``paths`` (streamed)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = path.relative_to(root) if path.is_relative_to(root) else path
        digest.update(str(name).encode(errors="surrogateescape") + b"\0")
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 16):
                    digest.update(chunk)
        except OSError:
            digest.update(b"\0unreadable")
    return digest.hexdigest()[:32]


def _report(results: Sequence[Any]) -> bytes:
    lines = ["", "──── gates ────"]
    for r in results:
        lines.append(f"{r.status.value:<8} {r.gate}: {r.reason}")
        lines.extend(f"           {d}" for d in r.details[:20])
    return ("\n".join(lines) + "\n").encode()


class GatingExecutor:
    """Evaluates gates around ``inner``'s jobs and runs the pipeline's ``gates`` node."""

    def __init__(
        self,
        inner: Executor,
        *,
        project: Path,
        run_started: float,
        jobs: Mapping[str, GatedJob],
        failed: Set[str] = frozenset(),
        baselines: BaselineLookup | None = None,
    ) -> None:
        """``jobs``: the gated instances (``gated_jobs``); ``failed``: the ids of the jobs that failed the
        run so far (a live set, read when the gates node runs)."""
        self.inner = inner
        self.project = project
        self.run_started = run_started
        self.jobs = jobs
        self.failed = failed
        self.baselines = baselines

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run the job (or evaluate the gates node), then apply its gates."""
        gated = None if request.side else self.jobs.get(request.job_id)
        if gated is not None and gated.node:
            return await self._gate_node(request, gated, sink)
        outcome = await self.inner.execute(request, sink)
        if gated is None or not gated.gates or outcome.status not in (JobStatus.SUCCESS, JobStatus.CACHED):
            return outcome
        results, reports = await asyncio.to_thread(
            evaluate_gates,
            gated.gates,
            root=Path(request.cwd),
            project=self.project,
            duration=outcome.duration_s,
            baselines=self.baselines,
        )
        tests = await asyncio.to_thread(collect_tests, gated.gates, root=Path(request.cwd))
        return replace(self._apply(request, outcome, results, reports, sink), test_results=tests)

    async def _gate_node(self, request: JobRequest, gated: GatedJob, sink: OutputSink | None) -> JobOutcome:
        started_at, start = time.time(), time.monotonic()
        results, reports = await asyncio.to_thread(
            evaluate_gates,
            gated.gates,
            root=self.project,
            project=self.project,
            duration=time.time() - self.run_started,
            baselines=self.baselines,
        )
        Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(request.log_path).write_bytes(b"")
        outcome = JobOutcome(
            job_id=request.job_id,
            attempt=request.attempt,
            status=JobStatus.SUCCESS,
            exit_code=0,
            started_at=started_at,
            finished_at=time.time(),
            duration_s=time.monotonic() - start,
            log_path=request.log_path,
        )
        tests = await asyncio.to_thread(collect_tests, gated.gates, root=self.project)
        outcome = replace(self._apply(request, outcome, results, reports, sink), test_results=tests)
        failed_needs = [d for d in gated.needs if d in self.failed]
        if failed_needs and outcome.status == JobStatus.SUCCESS:
            names = ", ".join(failed_needs)
            outcome = replace(
                outcome, status=JobStatus.FAILED, exit_code=None, message=f"failed jobs: {names}"
            )
        return outcome

    @staticmethod
    def _apply(
        request: JobRequest,
        outcome: JobOutcome,
        results: Sequence[Any],
        reports: dict[str, Any],
        sink: OutputSink | None,
    ) -> JobOutcome:
        report = _report(results)
        with Path(request.log_path).open("ab") as log:
            log.write(report)
        if sink is not None:
            sink(request.job_id, report)
        records = tuple(GateOutcome(r, reports.get(r.gate)) for r in results)
        failed = [r for r in results if r.failed]
        if not failed:
            return replace(outcome, gate_results=records)
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return replace(
            outcome,
            status=JobStatus.FAILED,
            exit_code=None,
            gate_results=records,
            message=f"gate {first.gate} failed: {first.reason}{more}",
        )
