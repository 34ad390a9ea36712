"""spec.load: valid pipelines become typed structs; every error is located, hinted and reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildyard.errors import NotFoundError, SpecError
from buildyard.model import When
from buildyard.spec.load import find_file, load, loads
from buildyard.spec.schema import json_schema

FULL = """\
name: shop
variables: {APP: shop, PY: 3.10, DEBUG: true}
stages: [build, test, deploy]
jobs:
  build:
    stage: build
    steps:
      - run: make build
      - {name: pack, run: make pack, env: {LEVEL: 9}, timeout: 1m30s, continue_on_error: true}
    artifacts: {paths: [dist/]}
    timeout: 10m
    retry: {max: 2, backoff: 1s, when: [1, timeout]}
  test:
    needs: [build]
    matrix: {python: [3.10, "3.12"], exclude: [{python: "3.12"}], include: [{python: "3.13"}]}
    script: "pytest --python ${{ matrix.python }}"
    allow_failure: true
    resources: {cpus: 2}
  deploy:
    needs: [test]
    if: event == 'push' && branch == 'main'
    when: manual
    secrets: [DEPLOY_TOKEN]
    retry: 3
    script: [./deploy.sh]
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text, "buildyard.yml")
    return [str(d) for d in info.value.diagnostics]


def test_full_pipeline_is_normalized() -> None:
    p = loads(FULL)
    assert p.name == "shop"
    assert p.variables == {"APP": "shop", "PY": "3.10", "DEBUG": "true"}  # source text kept: 3.10 is not 3.1
    build = p.jobs["build"]
    assert [s.run for s in build.steps] == ["make build", "make pack"]
    assert build.steps[1].env == {"LEVEL": "9"} and build.steps[1].timeout == 90.0
    assert build.timeout == 600.0 and build.retry.max == 2 and build.retry.when == [1, "timeout"]
    test = p.jobs["test"]
    assert test.matrix is not None and test.matrix.axes == {"python": ["3.10", "3.12"]}
    assert test.script == ["pytest --python ${{ matrix.python }}"] and test.resources.cpus == 2
    deploy = p.jobs["deploy"]
    assert deploy.when == When.MANUAL and deploy.retry.max == 3 and deploy.if_ is not None
    assert p.position("deploy") == (19, 3)


def test_unknown_key_has_did_you_mean_hint_and_location() -> None:
    errs = errors_of("jobs:\n  a:\n    script: x\n    neds: [b]\n")
    assert errs == ["buildyard.yml:4:5: jobs.a.neds: unknown key 'neds' (did you mean 'needs'?)"]


def test_all_errors_are_reported_at_once() -> None:
    errs = errors_of(
        "jobs:\n"
        "  a:\n    script: x\n    timeout: 10x\n"
        "  b:\n    needs: [c]\n    script: y\n    if: brnch == 'main'\n"
        "  c:\n    scirpt: z\n"
    )
    assert len(errs) == 4, errs
    assert errs[0].startswith("buildyard.yml:4:14: jobs.a.timeout: invalid duration '10x'")
    assert "jobs.b.if: unknown name 'brnch' in expression (did you mean 'branch'?)" in errs[1]
    assert "buildyard.yml:9:3: jobs.c: a job needs 'steps' or 'script'" in errs[2]
    assert "jobs.c.scirpt: unknown key 'scirpt' (did you mean 'script'?)" in errs[3]
    assert "buildyard.yml:6:13: jobs.b.needs[0]" not in " ".join(errs)  # c exists, even though invalid


def test_unknown_needs_target() -> None:
    errs = errors_of("jobs:\n  build: {script: x}\n  test:\n    needs: [biuld]\n    script: y\n")
    assert errs == [
        "buildyard.yml:4:13: jobs.test.needs[0]: unknown job 'biuld' in needs (did you mean 'build'?)"
    ]


def test_cycle_reports_its_path() -> None:
    errs = errors_of(
        "jobs:\n  a: {needs: [c], script: x}\n  b: {needs: [a], script: x}\n  c: {needs: [b], script: x}\n"
    )
    assert len(errs) == 1
    assert "dependency cycle:" in errs[0]
    cycle = errs[0].split("dependency cycle: ")[1].split(" (")[0].split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_self_need() -> None:
    assert "cannot need itself" in errors_of("jobs:\n  a: {needs: [a], script: x}\n")[0]


def test_yaml_syntax_error_is_located() -> None:
    errs = errors_of("jobs:\n  a: {script: [x}\n")
    assert errs[0].startswith("buildyard.yml:2:") and "YAML syntax error" in errs[0]


def test_duplicate_keys_are_errors() -> None:
    errs = errors_of("jobs:\n  a: {script: x}\n  a: {script: y}\n")
    assert errs == [
        "buildyard.yml:3:3: jobs.a: duplicate key 'a' (first defined at line 2) (remove one of them)"
    ]


def test_matrix_limit_and_axes() -> None:
    values = ", ".join(str(i) for i in range(20))
    errs = errors_of(f"jobs:\n  a:\n    matrix: {{x: [{values}], y: [{values}]}}\n    script: s\n")
    assert "matrix expands to 400 jobs, more than the limit of 256" in errs[0]
    errs = errors_of("jobs:\n  a:\n    matrix: {x: [1], exclude: [{z: 1}]}\n    script: s\n")
    assert "jobs.a.matrix.exclude[0].z: 'z' is not a matrix axis" in errs[0]


def test_type_errors_name_the_expected_type() -> None:
    errs = errors_of("jobs:\n  a:\n    needs: 5\n    script: x\n")
    assert errs == ["buildyard.yml:3:12: jobs.a.needs: expected array, got int"]
    errs = errors_of("jobs:\n  a:\n    when: later\n    script: x\n")
    assert "jobs.a.when:" in errs[0] and "'on_success'" in errs[0]


def test_stage_must_be_declared() -> None:
    errs = errors_of("stages: [build, test]\njobs:\n  a: {stage: biuld, script: x}\n")
    assert errs == [
        "buildyard.yml:3:14: jobs.a.stage: stage 'biuld' is not in stages (did you mean 'build'?)"
    ]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{script: x, steps: [y]}", "use either 'steps' or 'script', not both"),
        ("{env: {A: b}}", "a job needs 'steps' or 'script'"),
        ("{script: x, secrets: [bad-name]}", "secret name 'bad-name' must be an environment variable name"),
        ("{script: x, retry: {max: 50}}", "retry.max must be between 0 and 10"),
        ("{script: x, retry: {when: [oops]}}", "retry.when accepts exit codes and 'timeout'"),
        ("{script: 'echo ${{ needs.b.status }}'}", "'needs' is only available in 'if:' conditions"),
        ("{script: x, if: \"event = 'push'\"}", "invalid expression"),
        ("{script: x, if: \"event == 'push' and true\"}", "use &&, ||, !"),
        ("{script: x, resources: {cpus: 0}}", "resources.cpus must be at least 1"),
        ("{script: x, skip_exit_codes: [0]}", "skip_exit_codes[0]: exit code 0 is not between 1 and 255"),
        ("[x]", "expected a mapping, got a list"),
    ],
)
def test_job_level_errors(job: str, message: str) -> None:
    errs = errors_of(f"jobs:\n  a: {job}\n  b: {{script: z}}\n")
    assert any(message in e for e in errs), errs
    assert all(e.startswith("buildyard.yml:") for e in errs)


def test_top_level_shapes() -> None:
    assert errors_of("- a\n- b\n") == [
        "buildyard.yml:1:1: the pipeline file must be a mapping with a 'jobs' key"
    ]
    assert errors_of("name: x\n") == ["buildyard.yml:1:1: jobs: missing required key 'jobs'"]
    assert "a pipeline needs at least one job" in errors_of("jobs: {}\n")[0]
    assert "unknown key 'file'" in errors_of("file: x\njobs: {a: {script: x}}\n")[0]


def test_find_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no pipeline file here"):
        find_file(tmp_path)
    (tmp_path / "buildyard.yaml").write_text("jobs: {a: {script: x}}\n")
    assert find_file(tmp_path).name == "buildyard.yaml"
    assert load(find_file(tmp_path)).jobs["a"].script == ["x"]
    with pytest.raises(NotFoundError, match="pipeline file not found"):
        find_file(tmp_path, Path("nope.yml"))


def test_json_schema_accepts_shorthands() -> None:
    schema = json_schema()
    job = schema["$defs"]["Job"]
    assert job["additionalProperties"] is False
    assert {"if", "needs", "steps", "script", "matrix", "retry"} <= set(job["properties"])
    assert "file" not in schema["$defs"]["Pipeline"]["properties"]
    assert job["properties"]["steps"]["items"]["anyOf"][0] == {"type": "string"}
    json.dumps(schema)


def test_schema_validates_the_example_with_jsonschema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "examples" / "shop" / "buildyard.yml").read_text())
    jsonschema.validate(data, json_schema())
    data["jobs"]["build"]["neds"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema())
