"""The ``gates:`` section of ``buildyard.yml``: one frozen msgspec Struct per gate kind (core, pure).

In YAML every list item is a one-key mapping naming the gate kind::

    gates:
      - tests: {junit: "reports/*.xml", max_failures: 0}
      - coverage: {report: coverage.xml, min_line: 90, min_branch: 80, no_decrease: true}
      - benchmarks: {results: "bench/*.json", baseline: main, max_regression: 5%}
      - vulnerabilities: {max_severity: medium}
      - licenses: {policy: default}
      - sarif: {files: "reports/*.sarif", max_level: warning}
      - duration: {max: 10m}
      - artifact_size: {paths: ["dist/*"], max: 50MB}

Every gate also takes ``name`` (defaults to its kind) and ``allow_failure`` (a failure becomes a
warning). Validated gates are msgspec Structs tagged by ``kind`` (like the spec structs, and for the
same reason: msgspec imports in milliseconds), so a pipeline or job struct can hold
``gates: list[AnyGate]`` and encode/decode it. :func:`validate_gates` turns the raw YAML list into
gates plus ``(relative path, message)`` problems -- the shape ``spec.load`` locates with its source
map. The definitions live with the spec (the core) so that loading a pipeline never imports the gates
service; :mod:`buildyard.gates.config` adds ``parse_gates`` (problems raised as one ``GateConfigError``)
for the gates service's standalone use.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import msgspec

from buildyard.model import Severity
from buildyard.spec.durations import parse_duration
from buildyard.spec.quantities import parse_percent, parse_size

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]


class GateKind(StrEnum):
    """The kinds of gate, as written in ``buildyard.yml``."""

    TESTS = "tests"
    COVERAGE = "coverage"
    BENCHMARKS = "benchmarks"
    VULNERABILITIES = "vulnerabilities"
    LICENSES = "licenses"
    SARIF = "sarif"
    DURATION = "duration"
    ARTIFACT_SIZE = "artifact_size"


class _Unit(NamedTuple):
    """How a raw field value is read (``"50MB"`` -> bytes) and how the JSON Schema describes it."""

    parse: Callable[[Any], Any]
    schema: dict[str, Any]


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not value:
            raise ValueError("needs at least one path or glob")
        if all(isinstance(v, str) and v.strip() for v in value):
            return value
    raise ValueError("must be a path/glob string or a list of them")


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r}: the maximum duration must be positive")
    return seconds


_PERCENT_TEXT = {"type": "string", "pattern": r"^\d+(\.\d+)?\s?%$"}
PATTERNS = _Unit(
    _patterns, {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
)
PERCENT = _Unit(parse_percent, {"anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, _PERCENT_TEXT]})
GROWTH = _Unit(
    lambda v: parse_percent(v, maximum=None), {"anyOf": [{"type": "number", "minimum": 0}, _PERCENT_TEXT]}
)
SECONDS = _Unit(
    _positive_duration,
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
        ]
    },
)
BYTES = _Unit(
    parse_size,
    {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"},
        ]
    },
)

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Gate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Fields every gate has. ``units`` says which raw fields are read as sizes, percentages, ..."""

    KIND: ClassVar[GateKind]
    units: ClassVar[Mapping[str, _Unit]] = {}

    name: NonEmpty | None = None
    allow_failure: bool = False

    @property
    def kind(self) -> GateKind:
        """The gate kind (the YAML key)."""
        return self.KIND

    @property
    def label(self) -> str:
        """The name shown in results: ``name`` or the gate kind."""
        return self.name or self.KIND.value

    @property
    def report_patterns(self) -> tuple[str, ...]:
        """The file patterns (relative to the job's directory) this gate reads after the job."""
        return tuple(
            p for field, unit in self.units.items() if unit is PATTERNS for p in getattr(self, field)
        )


class TestsGate(Gate, frozen=True, kw_only=True, tag="tests"):
    """JUnit XML results: at most ``max_failures`` failed or errored tests, at least ``min_tests`` run.

    ``allow_flaky`` (default true) counts tests that passed on a rerun as passed; false counts them
    as failures.
    """

    __test__ = False
    KIND = GateKind.TESTS
    units = {"junit": PATTERNS}

    junit: tuple[str, ...]
    max_failures: NonNegative = 0
    min_tests: NonNegative = 1
    allow_flaky: bool = True


class CoverageGate(Gate, frozen=True, kw_only=True, tag="coverage"):
    """Line/branch coverage minimums (percent) and, with ``no_decrease``, no drop from the baseline."""

    KIND = GateKind.COVERAGE
    units = {"report": PATTERNS, "min_line": PERCENT, "min_branch": PERCENT}

    report: tuple[str, ...]
    format: Literal["auto", "cobertura", "lcov", "coverage-json", "jacoco"] = "auto"
    min_line: float | None = None
    min_branch: float | None = None
    no_decrease: bool = False


class BenchmarksGate(Gate, frozen=True, kw_only=True, tag="benchmarks"):
    """No benchmark slower than ``baseline`` by more than ``max_regression`` (statistically clear).

    ``baseline`` is a branch (results of its latest successful run, from history) or a result file.
    """

    KIND = GateKind.BENCHMARKS
    units = {"results": PATTERNS, "max_regression": GROWTH}

    results: tuple[str, ...]
    baseline: NonEmpty
    format: Literal["auto", "pytest-benchmark", "google-benchmark", "hyperfine", "generic"] = "auto"
    max_regression: float = 5.0
    confidence: Annotated[float, msgspec.Meta(gt=0.5, lt=1.0)] = 0.95


class VulnerabilitiesGate(Gate, frozen=True, kw_only=True, tag="vulnerabilities"):
    """No open vulnerability above ``max_severity`` (findings come from the deps scan)."""

    KIND = GateKind.VULNERABILITIES

    max_severity: Literal["none", "low", "medium", "high", "critical"]
    ignore: tuple[str, ...] = ()

    @property
    def severity(self) -> Severity:
        """``max_severity`` as a :class:`Severity`."""
        return Severity(self.max_severity)


class LicensesGate(Gate, frozen=True, kw_only=True, tag="licenses"):
    """No dependency license ``denied`` under ``policy``; ``review``/``unknown`` verdicts warn
    unless ``warn_on_review`` is false."""

    KIND = GateKind.LICENSES

    policy: NonEmpty = "default"
    warn_on_review: bool = True


class SarifGate(Gate, frozen=True, kw_only=True, tag="sarif"):
    """No SARIF result above ``max_level`` (``warning`` allows warnings, fails on errors)."""

    KIND = GateKind.SARIF
    units = {"files": PATTERNS}

    files: tuple[str, ...]
    max_level: Literal["none", "note", "warning", "error"] = "warning"


class DurationGate(Gate, frozen=True, kw_only=True, tag="duration"):
    """The pipeline (or, under a job, the job) took at most ``max``."""

    KIND = GateKind.DURATION
    units = {"max": SECONDS}

    max: float


class ArtifactSizeGate(Gate, frozen=True, kw_only=True, tag="artifact_size"):
    """The files matching ``paths`` weigh at most ``max`` in total."""

    KIND = GateKind.ARTIFACT_SIZE
    units = {"paths": PATTERNS, "max": BYTES}

    paths: tuple[str, ...]
    max: int


AnyGate = (
    TestsGate
    | CoverageGate
    | BenchmarksGate
    | VulnerabilitiesGate
    | LicensesGate
    | SarifGate
    | DurationGate
    | ArtifactSizeGate
)
"""One validated gate (a msgspec tagged union: encodes with a ``kind`` field)."""

GateSpec = AnyGate
GateList = list[AnyGate]

_MODELS: dict[str, type[Gate]] = {
    cls.KIND.value: cls
    for cls in (
        TestsGate,
        CoverageGate,
        BenchmarksGate,
        VulnerabilitiesGate,
        LicensesGate,
        SarifGate,
        DurationGate,
        ArtifactSizeGate,
    )
}


def validate_gates(raw: Any) -> tuple[list[AnyGate], list[Problem]]:
    """The raw YAML ``gates:`` value -> valid gates and every problem as ``(path, message)``.

    Paths are relative to the ``gates`` key and follow the YAML: ``(2, "coverage", "min_line")``.
    Invalid gates are left out of the returned list.
    """
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [((), "'gates' must be a list of gates (e.g. '- tests: {junit: ...}')")]
    gates: list[AnyGate] = []
    problems: list[Problem] = []
    for index, item in enumerate(raw):
        gate = _gate(index, item, problems)
        if gate is not None:
            gates.append(gate)
    return gates, problems


def _gate(index: int, item: Any, problems: list[Problem]) -> Any:
    if not isinstance(item, dict) or len(item) != 1:
        problems.append(
            ((index,), "each gate is a mapping with one key, the gate kind (e.g. '- tests: {...}')")
        )
        return None
    ((kind, options),) = item.items()
    cls = _MODELS.get(str(kind))
    if cls is None:
        close = difflib.get_close_matches(str(kind), list(_MODELS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(_MODELS)}"
        problems.append(((index,), f"unknown gate {kind!r} ({hint})"))
        return None
    if options is None:
        options = {}
    if not isinstance(options, dict):
        problems.append(((index, kind), f"the options of gate '{kind}' must be a mapping"))
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    values: dict[str, Any] = {}
    ok = True
    for key, given in options.items():
        path = (index, kind, str(key))
        field = fields.get(str(key))
        if field is None:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(fields)}"
            problems.append((path, f"unknown key '{key}' ({hint})"))
            ok = False
            continue
        try:
            value = cls.units[key].parse(given) if key in cls.units and given is not None else given
            values[field.name] = msgspec.convert(value, field.type, strict=True)
        except ValueError as exc:  # msgspec.ValidationError is a ValueError
            problems.append((path, _message(str(exc), field.type)))
            ok = False
    for name, field in fields.items():
        if field.required and name not in options:
            problems.append(((index, kind, name), f"missing required key '{name}'"))
            ok = False
    return cls(**values) if ok else None


def _message(text: str, tp: Any) -> str:
    message = text.split(" - at `$", 1)[0]
    choices = _literal_choices(tp)
    if choices:
        message += f" (one of: {', '.join(choices)})"
    return message


def _literal_choices(tp: Any) -> list[str]:
    if typing.get_origin(tp) is Literal:
        return [str(a) for a in typing.get_args(tp)]
    return []


def gates_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the ``gates:`` list in its YAML form (``- kind: {options}``)."""
    choices = []
    for kind, cls in _MODELS.items():
        schema = msgspec.json.schema(cls)
        body: dict[str, Any] = schema["$defs"][cls.__name__]
        body["properties"].pop("kind", None)
        body["required"] = [r for r in body.get("required", []) if r != "kind"]
        if not body["required"]:
            del body["required"]
        for name, unit in cls.units.items():
            body["properties"][name] = unit.schema
        body.pop("title", None)
        options = body if body.get("required") else {"anyOf": [body, {"type": "null"}]}
        choices.append(
            {
                "type": "object",
                "properties": {kind: options},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    return {"type": "array", "items": {"oneOf": choices}}
