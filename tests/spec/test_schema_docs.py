"""Editors show the schema's text: every key of buildyard.yml has a description and a valid example."""

from __future__ import annotations

import jsonschema

from buildyard.spec.schema import json_schema
from buildyard.spec.schemadocs import DOCS


def test_every_key_has_a_description_and_an_example_that_the_schema_accepts() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # once: each example is checked without it
    defs = schema["$defs"]
    seen = 0
    for name, definition in defs.items():
        for key, prop in definition.get("properties", {}).items():
            seen += 1
            assert prop.get("description"), f"{name}.{key} has no description"
            assert prop.get("examples"), f"{name}.{key} has no example"
            for example in prop["examples"]:
                jsonschema.Draft202012Validator({"$defs": defs, **prop}).validate(example)
    assert seen >= 76
    assert all(key in defs[name]["properties"] for name, key in DOCS), "a documented key no longer exists"


def test_a_whole_pipeline_made_of_the_examples_is_valid() -> None:
    schema = json_schema()
    jobs = DOCS[("Pipeline", "jobs")][1]
    jsonschema.validate({"name": "shop", "jobs": jobs}, schema)
