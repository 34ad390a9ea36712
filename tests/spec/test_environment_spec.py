"""``environment:`` in buildyard.yml: shapes, defaults, located errors with hints, JSON Schema."""

from __future__ import annotations

import pytest

from buildyard.errors import SpecError
from buildyard.spec.load import loads
from buildyard.spec.schema import json_schema

BUILD = """\
jobs:
  build:
    script: make
    publish: {name: shop-api, paths: [dist/*]}
"""


def test_string_shorthand_and_defaults() -> None:
    pipeline = loads(
        BUILD + "  deploy:\n    needs: [build]\n    environment: production\n    script: ./deploy\n"
    )
    env = pipeline.jobs["deploy"].environment
    assert env is not None and env.name == "production"
    assert (env.approval, env.approval_timeout, env.promote, env.auto_rollback) == (
        "none",
        86400.0,
        True,
        False,
    )
    assert env.artifact is None and env.health_check is None


def test_full_mapping_with_durations() -> None:
    text = BUILD + (
        "  deploy:\n    needs: [build]\n    script: ./deploy\n    environment:\n"
        "      name: staging\n      url: https://staging.example.com\n      approval: required\n"
        "      approval_timeout: 1h\n      artifact: shop-api@staging\n"
        "      health_check: {url: 'http://127.0.0.1:1/health', timeout: 30s, interval: 500ms}\n"
        "      rollback: ./rollback\n      auto_rollback: true\n      promote: false\n"
    )
    env = loads(text).jobs["deploy"].environment
    assert env is not None and env.approval == "required" and env.approval_timeout == 3600.0
    assert env.health_check is not None and env.health_check.timeout == 30.0
    assert env.health_check.interval == 0.5 and env.rollback == "./rollback" and not env.promote


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return [str(d) for d in info.value.diagnostics]


def test_deployment_keys_at_job_level_point_under_environment() -> None:
    found = errors(
        BUILD + "  deploy:\n    needs: [build]\n    environment: prod\n    script: x\n"
        "    health_check: {run: curl}\n    auto_rollback: true\n"
    )
    assert len(found) == 2
    assert found[0].startswith("buildyard.yml:9:5: jobs.deploy.health_check: unknown key 'health_check'")
    assert "move it under 'environment:'" in found[0] and "auto_rollback" in found[1]


def test_deployment_deploys_at_most_one_published_artifact() -> None:
    # none: a script deployment (kubectl apply, rsync…) tracked by the commit it deploys
    script = loads("jobs:\n  deploy:\n    environment: prod\n    script: x\n")
    assert script.jobs["deploy"].environment is not None
    two = errors(
        BUILD + "  docs:\n    script: make docs\n    publish: {name: docs, paths: [site/*], type: docs}\n"
        "  deploy:\n    needs: [build, docs]\n    environment: prod\n    script: x\n"
    )
    assert len(two) == 1 and "could deploy several artifacts (docs, shop-api)" in two[0]
    # stages count as needs, transitively; a declared artifact needs no publisher
    staged = "stages: [build, deploy]\n" + BUILD.replace("script: make", "stage: build\n    script: make")
    loads(staged + "  deploy:\n    stage: deploy\n    environment: prod\n    script: x\n")
    loads("jobs:\n  deploy:\n    environment: {name: prod, artifact: shop-api@1.2.0}\n    script: x\n")


def test_bad_values_are_located() -> None:
    found = errors(
        "jobs:\n  deploy:\n    script: x\n    environment:\n      name: prod\n      artifact: shop-api\n"
        "      approval: maybe\n      auto_rollback: true\n"
        "      health_check: {run: a, url: 'ftp://x'}\n"
    )
    text = "\n".join(found)
    assert (
        "buildyard.yml:7:17: jobs.deploy.environment.approval: approval must be 'required' or 'none'" in text
    )
    assert "health_check needs exactly one of 'run' (a command) or 'url'" in text
    assert "health_check.url must start with http:// or https://" in text
    matrix = errors(
        "jobs:\n  deploy:\n    script: x\n    matrix: {region: [eu, us]}\n"
        "    environment: {name: prod, artifact: a}\n"
    )
    assert "a deployment job cannot have a matrix" in matrix[0]
    assert "auto_rollback reacts to a failed health check" in "\n".join(
        errors("jobs:\n  d:\n    script: x\n    environment: {name: p, artifact: a, auto_rollback: true}\n")
    )


def test_json_schema_describes_environment() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json_schema()
    good = yaml.safe_load(
        BUILD + "  deploy:\n    needs: [build]\n    script: x\n    environment:\n      name: prod\n"
        "      approval: required\n      approval_timeout: 2h\n"
        "      health_check: {url: 'https://x', interval: 2s}\n"
    )
    jsonschema.validate(good, schema)
    jsonschema.validate({"jobs": {"d": {"script": "x", "environment": "prod"}}}, schema)
    for bad in (
        {"name": "p", "approval": "maybe"},
        {"name": "p", "health_check": {"bogus": 1}},
        {"url": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"jobs": {"d": {"script": "x", "environment": bad}}}, schema)
