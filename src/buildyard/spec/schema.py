"""JSON Schema of ``buildyard.yml``, generated from the spec structs plus the shorthands users may write."""

from __future__ import annotations

from typing import Any

import msgspec

from buildyard.spec.models import INTERNAL_FIELDS, Pipeline
from buildyard.spec.schemadocs import describe

_DURATION = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
    ],
    "description": "Seconds, or a duration such as 30s, 10m, 1h30m.",
}
_SCALAR = {"type": ["string", "number", "boolean"]}


def json_schema() -> dict[str, Any]:
    """The schema (draft 2020-12) editors use to validate and complete pipeline files."""
    schema: dict[str, Any] = msgspec.json.schema(Pipeline)
    defs = schema["$defs"]
    names = ("Step", "Retry", "Artifacts", "Resources", "Matrix", "Job", "Defaults", "Pipeline")
    for name in (*names, "EnvironmentSpec", "HealthCheck"):
        props = defs[name].get("properties", {})
        for key in INTERNAL_FIELDS:
            props.pop(key, None)
        for key in ("timeout", "backoff", "max_backoff", "interval", "approval_timeout"):
            if key in props:
                props[key] = _DURATION
        for key in ("env", "variables"):
            if key in props:
                props[key] = {"type": "object", "additionalProperties": _SCALAR}
    from buildyard.spec.gates import gates_json_schema  # noqa: PLC0415 - only for `buildyard schema`

    gates = gates_json_schema()
    for name in ("Job", "Pipeline"):
        defs[name]["properties"]["gates"] = dict(gates)
    job = defs["Job"]["properties"]
    job["steps"] = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/Step"}]}}
    job["script"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    job["retry"] = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 10}, {"$ref": "#/$defs/Retry"}]}
    job["environment"] = {
        "anyOf": [{"type": "string"}, {"$ref": "#/$defs/EnvironmentSpec"}],
        "description": "Makes the job a deployment to this environment (a name, or the full mapping).",
    }
    environment = defs["EnvironmentSpec"]["properties"]
    environment["approval"] = {"enum": ["none", "required"], "default": "none"}
    defs["Pipeline"]["properties"]["on"] = {
        "anyOf": [
            {"enum": ["push", "pull_request", "schedule", "manual"]},
            {"type": "array", "items": {"enum": ["push", "pull_request", "manual"]}},
            {"$ref": "#/$defs/OnSpec"},
        ]
    }
    on = defs["OnSpec"]["properties"]
    for key in ("push", "pull_request"):
        on[key] = {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/EventFilter"}]}
    on["manual"] = {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/ManualSpec"}]}
    notify_on = defs["NotifySpec"]["properties"]["on"]
    defs["NotifySpec"]["properties"]["on"] = {"anyOf": [notify_on["items"], notify_on]}
    matrix = defs["Matrix"]
    matrix["properties"].pop("axes", None)
    matrix["additionalProperties"] = {"type": "array", "items": _SCALAR, "minItems": 1}
    describe(defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "buildyard.yml", **schema}
