"""The gates service's view of gate definitions: :func:`parse_gates` for standalone use.

The definitions themselves (one msgspec Struct per gate kind, ``validate_gates``, the JSON Schema)
belong to the pipeline file and live in :mod:`buildyard.spec.gates`; they are re-exported here so the
service's callers keep one import place. ``parse_gates`` raises every problem as one
:class:`GateConfigError` (the error of the gates service), for ``buildyard gates check`` and
library users that hold a raw ``gates:`` list outside a pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildyard.gates.errors import GateConfigError
from buildyard.spec.gates import (
    AnyGate,
    ArtifactSizeGate,
    BenchmarksGate,
    CoverageGate,
    DurationGate,
    Gate,
    GateKind,
    GateList,
    GateSpec,
    LicensesGate,
    SarifGate,
    TestsGate,
    VulnerabilitiesGate,
    gates_json_schema,
    validate_gates,
)

__all__ = [
    "AnyGate",
    "ArtifactSizeGate",
    "BenchmarksGate",
    "CoverageGate",
    "DurationGate",
    "Gate",
    "GateKind",
    "GateList",
    "GateSpec",
    "LicensesGate",
    "SarifGate",
    "TestsGate",
    "VulnerabilitiesGate",
    "gates_json_schema",
    "parse_gates",
    "validate_gates",
]


def parse_gates(
    data: Any, *, source: str = "buildyard.yml", lines: Mapping[int, int] | None = None
) -> list[AnyGate]:
    """Validate the raw ``gates:`` value; every problem is reported in one ``GateConfigError``.

    ``lines`` maps a gate's index to its line in ``source`` (for messages), when known.
    """
    gates, problems = validate_gates(data)
    if problems:
        out = []
        for path, message in problems:
            index = path[0] if path and isinstance(path[0], int) else None
            line = lines.get(index) if lines is not None and index is not None else None
            where = f"{source}:{line}" if line is not None else source
            field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            out.append(f"{where}: gates{field}: {message}")
        raise GateConfigError("\n".join(out))
    return gates
