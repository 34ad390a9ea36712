"""The API reference page's data, from an OpenAPI document (pure)."""

from __future__ import annotations

from buildyard.server.web.apidocs import reference

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "buildyard server", "version": "1"},
    "paths": {
        "/api/v1/projects/{project}/runs": {
            "get": {
                "tags": ["api"],
                "summary": "Runs",
                "description": "Runs of a project, newest first.",
                "operationId": "runs_get",
                "parameters": [
                    {"name": "project", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                ],
                "responses": {"200": {"description": "Successful Response"}},
            },
            "post": {
                "summary": "Trigger",
                "operationId": "trigger",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}
                },
                "responses": {"201": {"description": "queued"}},
            },
            "parameters": [{"name": "ignored"}],
        }
    },
}


def test_operations_grouped_by_tag_with_parameters_bodies_and_responses() -> None:
    ref = reference(DOC)
    assert (ref["title"], ref["version"], ref["openapi_url"]) == ("buildyard server", "1", "/openapi.json")
    assert [(g["tag"], [op["id"] for op in g["operations"]]) for g in ref["groups"]] == [
        ("api", ["runs_get"]),
        ("other", ["trigger"]),
    ]
    runs = ref["groups"][0]["operations"][0]
    assert (runs["method"], runs["path"], runs["description"]) == (
        "GET",
        "/api/v1/projects/{project}/runs",
        "Runs of a project, newest first.",
    )
    assert [(p["name"], p["in"], p["required"], p["type"], p["default"]) for p in runs["parameters"]] == [
        ("project", "path", True, "string", None),
        ("limit", "query", False, "integer", "50"),
        ("cursor", "query", False, "string | null", None),
    ]
    trigger = ref["groups"][1]["operations"][0]
    assert trigger["body"] == [{"media_type": "application/json", "type": "In"}]
    assert trigger["responses"] == [{"status": "201", "description": "queued"}]
    assert reference({}) == {
        "title": "API",
        "version": "",
        "openapi_version": "",
        "openapi_url": "/openapi.json",
        "groups": [],
    }
