"""``buildyard gates check``: evaluate a pipeline file's gates against report files already on disk."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildyard.gates.configfile import load_gates_file
from buildyard.gates.evaluation import GateContext, evaluate, load_benchmarks, load_coverage
from buildyard.gates.findings import load_findings
from buildyard.gates.results import GateResult, GateStatus


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """Results of a standalone check and the overall status (worst of the gates)."""

    config: Path
    results: tuple[GateResult, ...]

    @property
    def status(self) -> GateStatus:
        """FAILED if any gate failed, else WARNING if any warned, else PASSED."""
        return GateStatus.worst([r.status for r in self.results])


def check_gates(
    config: Path,
    *,
    root: Path,
    coverage_baseline: Path | None = None,
    benchmark_baselines: Mapping[str, Path] | None = None,
    findings: Path | None = None,
    duration: float | None = None,
    strict: bool = False,
    seed: int = 0,
    scan: Callable[[Sequence[Any]], Sequence[Any] | None] | None = None,
) -> CheckOutcome:
    """Evaluate the ``gates:`` of ``config`` with paths relative to ``root``.

    Baselines come from files here (``coverage_baseline``: a coverage report of the baseline;
    ``benchmark_baselines``: result files per baseline branch name). Gates whose non-file input is
    not given (findings, duration) warn, or fail with ``strict``; vulnerabilities not in ``findings``
    come from ``scan(gates)`` (the run's offline OSV scan), and without either the gate fails as in a
    run. Bad baseline or findings files raise ``ReportError`` (a usage problem, exit 2), unlike bad
    reports, which fail their gate.
    """
    gates = load_gates_file(config)
    loaded = load_findings(root / findings) if findings is not None else None
    vulnerabilities: Sequence[Any] | None = loaded.vulnerabilities if loaded else None
    if vulnerabilities is None and scan is not None:
        vulnerabilities = scan(gates)
    context = GateContext(
        root=root,
        coverage_baseline=load_coverage(root, (str(coverage_baseline),)).totals
        if coverage_baseline
        else None,
        benchmark_baselines={
            ref: load_benchmarks(root, (str(path),)) for ref, path in (benchmark_baselines or {}).items()
        },
        vulnerabilities=vulnerabilities,
        licenses=loaded.licenses if loaded else None,
        duration=duration,
        seed=seed,
        unavailable=GateStatus.FAILED if strict else GateStatus.WARNING,
    )
    return CheckOutcome(config=config, results=tuple(evaluate(gates, context)))
