"""What a gate decides: :class:`GateStatus` and the immutable :class:`GateResult`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from buildyard.gates.stats import BenchmarkComparison
from buildyard.spec.gates import GateKind

Metric = float | int | str | None


class GateStatus(StrEnum):
    """Outcome of one gate; ``WARNING`` never fails a run (allowed failure, inconclusive data)."""

    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"

    @classmethod
    def worst(cls, statuses: Sequence[GateStatus]) -> GateStatus:
        """The most severe of ``statuses`` (``PASSED`` for none)."""
        order = list(cls)
        return max(statuses, key=order.index, default=cls.PASSED)


@dataclass(frozen=True, slots=True)
class GateResult:
    """The decision of one gate with a one-line ``reason`` and the numbers behind it.

    ``details`` lists offending items (failing tests, findings, files), ``benchmarks`` the
    benchmark table rows, ``metrics`` the measured values (e.g. ``line``, ``failures``).
    """

    gate: str
    kind: GateKind
    status: GateStatus
    reason: str
    metrics: Mapping[str, Metric] = field(default_factory=dict, hash=False)
    details: tuple[str, ...] = ()
    benchmarks: tuple[BenchmarkComparison, ...] = ()
    allowed_failure: bool = False

    @property
    def failed(self) -> bool:
        """True when this gate fails the run."""
        return self.status is GateStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (stable keys, for ``--json`` and the history store)."""
        return {
            "gate": self.gate,
            "kind": self.kind.value,
            "status": self.status.value,
            "reason": self.reason,
            "allowed_failure": self.allowed_failure,
            "metrics": dict(self.metrics),
            "details": list(self.details),
            "benchmarks": [
                {
                    "name": b.name,
                    "verdict": b.verdict.value,
                    "baseline": b.baseline,
                    "current": b.current,
                    "change": b.change,
                    "ci_low": b.ci_low,
                    "ci_high": b.ci_high,
                    "p_value": b.p_value,
                    "method": b.method,
                    "note": b.note,
                }
                for b in self.benchmarks
            ],
        }
