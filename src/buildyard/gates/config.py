"""The ``gates:`` section of ``buildyard.yml``: one frozen pydantic model per gate kind.

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
warning). The spec loader embeds :data:`GateList` (``list[GateSpec]``) at pipeline level and per job;
validated items are the concrete models below, discriminated by ``kind``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from buildyard.gates.errors import GateConfigError
from buildyard.gates.units import parse_duration, parse_percent, parse_size


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


class Severity(StrEnum):
    """Vulnerability severities, least to most severe (``unknown`` ranks as ``high`` by default)."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (none) … 4 (critical)."""
        return list(Severity).index(self)


def _patterns(value: Any) -> Any:
    """A glob or a list of globs -> tuple of non-empty strings."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("needs at least one path or glob")
        if all(isinstance(v, str) and v.strip() for v in value):
            return tuple(value)
    raise ValueError("must be a path/glob string or a list of them")


def _percent(value: Any) -> float:
    return parse_percent(value)


def _growth(value: Any) -> float:
    return parse_percent(value, maximum=None)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r}: the maximum duration must be positive")
    return seconds


_PERCENT_TEXT = {"type": "string", "pattern": r"^\d+(\.\d+)?\s?%$"}
Patterns = Annotated[
    tuple[str, ...],
    BeforeValidator(_patterns),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    ),
]
Percent = Annotated[
    float,
    BeforeValidator(_percent),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, _PERCENT_TEXT]}),
]
Growth = Annotated[
    float,
    BeforeValidator(_growth),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, _PERCENT_TEXT]}),
]
Seconds = Annotated[
    float,
    BeforeValidator(_positive_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
            ]
        }
    ),
]
Bytes = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"},
            ]
        }
    ),
]
NonNegative = Annotated[StrictInt, Field(ge=0)]


class _Gate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, description="Label in results (default: the kind).")
    allow_failure: StrictBool = Field(default=False, description="Report a failure as a warning.")

    @property
    def label(self) -> str:
        """The name shown in results: ``name`` or the gate kind."""
        kind: str = getattr(self, "kind", "gate")
        return self.name or kind


class TestsGate(_Gate):
    """JUnit XML results: at most ``max_failures`` failed or errored tests, at least ``min_tests``."""

    __test__ = False

    kind: Literal["tests"] = "tests"
    junit: Patterns
    max_failures: NonNegative = 0
    min_tests: NonNegative = 1
    allow_flaky: StrictBool = Field(
        default=True, description="Count tests that passed on a rerun as passed (false: as failures)."
    )


class CoverageGate(_Gate):
    """Line/branch coverage minimums (percent) and, with ``no_decrease``, no drop from the baseline."""

    kind: Literal["coverage"] = "coverage"
    report: Patterns
    format: Literal["auto", "cobertura", "lcov", "coverage-json", "jacoco"] = "auto"
    min_line: Percent | None = None
    min_branch: Percent | None = None
    no_decrease: StrictBool = False


class BenchmarksGate(_Gate):
    """No benchmark slower than the baseline by more than ``max_regression`` (statistically clear)."""

    kind: Literal["benchmarks"] = "benchmarks"
    results: Patterns
    format: Literal["auto", "pytest-benchmark", "google-benchmark", "hyperfine", "generic"] = "auto"
    baseline: str = Field(
        min_length=1, description="Baseline branch (from history) or a committed result file."
    )
    max_regression: Growth = 5.0
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, strict=True)


class VulnerabilitiesGate(_Gate):
    """No open vulnerability above ``max_severity`` (findings come from the deps scan)."""

    kind: Literal["vulnerabilities"] = "vulnerabilities"
    max_severity: Literal["none", "low", "medium", "high", "critical"]
    ignore: tuple[str, ...] = Field(default=(), description="Vulnerability ids accepted on purpose.")

    @property
    def severity(self) -> Severity:
        """``max_severity`` as a :class:`Severity`."""
        return Severity(self.max_severity)


class LicensesGate(_Gate):
    """Dependency licenses judged by the deps service under ``policy``: ``denied`` fails the gate."""

    kind: Literal["licenses"] = "licenses"
    policy: str = Field(default="default", min_length=1)
    warn_on_review: StrictBool = Field(
        default=True, description="Warn on licenses needing review or unknown."
    )


class SarifGate(_Gate):
    """No SARIF result above ``max_level`` (``warning`` allows warnings, fails on errors)."""

    kind: Literal["sarif"] = "sarif"
    files: Patterns
    max_level: Literal["none", "note", "warning", "error"] = "warning"


class DurationGate(_Gate):
    """The pipeline (or, under a job, the job) took at most ``max``."""

    kind: Literal["duration"] = "duration"
    max: Seconds


class ArtifactSizeGate(_Gate):
    """The files matching ``paths`` weigh at most ``max`` in total."""

    kind: Literal["artifact_size"] = "artifact_size"
    paths: Patterns
    max: Bytes


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


def _unwrap(value: Any) -> Any:
    """``{"coverage": {...}}`` (YAML form) -> ``{"kind": "coverage", ...}`` (model form)."""
    if isinstance(value, BaseModel) or (isinstance(value, Mapping) and "kind" in value):
        return value
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError("each gate is a mapping with exactly one key, the gate kind (e.g. '- tests: {...}')")
    ((kind, options),) = value.items()
    kinds = [k.value for k in GateKind]
    if kind not in kinds:
        close = difflib.get_close_matches(str(kind), kinds, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(kinds)}"
        raise ValueError(f"unknown gate {kind!r} ({hint})")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"the options of gate '{kind}' must be a mapping")  # noqa: TRY004 - pydantic reports ValueError only
    return {"kind": kind, **options}


_MODELS: tuple[type[_Gate], ...] = (
    TestsGate,
    CoverageGate,
    BenchmarksGate,
    VulnerabilitiesGate,
    LicensesGate,
    SarifGate,
    DurationGate,
    ArtifactSizeGate,
)


def _yaml_item_schema() -> dict[str, Any]:
    """JSON Schema of one gate as written in YAML (``{kind: {options}}``), for editors and docs."""
    choices = []
    for model in _MODELS:
        schema = model.model_json_schema()
        schema["properties"].pop("kind")
        schema.pop("title", None)
        kind = model.model_fields["kind"].default
        options = schema if schema.get("required") else {"anyOf": [schema, {"type": "null"}]}
        choices.append(
            {
                "type": "object",
                "properties": {kind: options},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    return {"oneOf": choices}


GateSpec = Annotated[
    AnyGate, Field(discriminator="kind"), BeforeValidator(_unwrap), WithJsonSchema(_yaml_item_schema())
]
"""One validated gate; embed ``list[GateSpec]`` in pipeline and job models (its JSON Schema is the
YAML form)."""

GateList = list[GateSpec]

_ADAPTER: TypeAdapter[list[AnyGate]] = TypeAdapter(GateList)


def gates_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the ``gates:`` list in its YAML form."""
    return _ADAPTER.json_schema()


def parse_gates(
    data: Any, *, source: str = "buildyard.yml", lines: Mapping[int, int] | None = None
) -> list[AnyGate]:
    """Validate the raw ``gates:`` value; every problem is reported in one ``GateConfigError``.

    ``lines`` maps a gate's index to its line in ``source`` (for messages), when known.
    """
    if data is None:
        return []
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            index = loc[0] if loc and isinstance(loc[0], int) else None
            field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
            line = lines.get(index) if lines is not None and index is not None else None
            where = f"{source}:{line}" if line is not None else source
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: gates{field}: {message}")
        raise GateConfigError("\n".join(problems)) from None
