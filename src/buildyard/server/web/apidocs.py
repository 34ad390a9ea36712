"""The API reference page (``/docs``): the server's OpenAPI document (``/openapi.json``) rendered on the
server as plain HTML, so reading it needs no script and nothing from another host (no CDN).

``reference`` is pure: it turns the OpenAPI document into the page's data (also its JSON), one group
per tag, one entry per operation with its parameters and responses, in the document's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPENAPI_URL = "/openapi.json"
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _type(schema: Any) -> str:
    """A JSON schema's type in short: ``integer``, ``string | null``, ``array of string``, ``Model``."""
    if not isinstance(schema, Mapping):
        return ""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rpartition("/")[2]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return " | ".join(t for t in (_type(o) for o in options) if t)
    kind = schema.get("type")
    if kind == "array":
        inner = _type(schema.get("items"))
        return f"array of {inner}" if inner else "array"
    if isinstance(schema.get("enum"), list):
        return " | ".join(repr(v) for v in schema["enum"])
    text = str(kind) if isinstance(kind, str) else ""
    fmt = schema.get("format")
    return f"{text} ({fmt})" if text and isinstance(fmt, str) else text


def _parameter(param: Mapping[str, Any]) -> dict[str, Any]:
    schema = param.get("schema", {})
    default = schema.get("default") if isinstance(schema, Mapping) else None
    return {
        "name": str(param.get("name", "")),
        "in": str(param.get("in", "")),
        "required": bool(param.get("required", False)),
        "type": _type(schema),
        "default": None if default is None else str(default),
        "description": str(param.get("description", "")),
    }


def _operation(path: str, method: str, op: Mapping[str, Any]) -> dict[str, Any]:
    body = op.get("requestBody")
    content = body.get("content", {}) if isinstance(body, Mapping) else {}
    return {
        "id": str(op.get("operationId") or f"{method}-{path}"),
        "method": method.upper(),
        "path": path,
        "summary": str(op.get("summary", "")),
        "description": str(op.get("description", "")).strip(),
        "parameters": [_parameter(p) for p in op.get("parameters", []) if isinstance(p, Mapping)],
        "body": [
            {"media_type": str(media), "type": _type(spec.get("schema"))}
            for media, spec in content.items()
            if isinstance(spec, Mapping)
        ],
        "responses": [
            {"status": str(code), "description": str(r.get("description", ""))}
            for code, r in op.get("responses", {}).items()
            if isinstance(r, Mapping)
        ],
    }


def reference(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The page's data from the OpenAPI document ``doc``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in doc.get("paths", {}).items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            op = item.get(method)
            if isinstance(op, Mapping):
                tags = op.get("tags") or ["other"]
                groups.setdefault(str(tags[0]), []).append(_operation(str(path), method, op))
    info = doc.get("info", {})
    return {
        "title": str(info.get("title", "API")),
        "version": str(info.get("version", "")),
        "openapi_version": str(doc.get("openapi", "")),
        "openapi_url": OPENAPI_URL,
        "groups": [{"tag": tag, "operations": ops} for tag, ops in groups.items()],
    }
