"""Invalid GitLab files: one located line per problem (``.gitlab-ci.yml:LINE:COL: path: message``),
exit 2, no traceback; constructs not carried are warnings naming them (errors with ``--strict``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

CASES = [
    (
        "unknown key",
        "build:\n  script: make\n  scirpt: again\n",
        r".gitlab-ci.yml:3:3: build.scirpt: unknown key 'scirpt' (did you mean 'script'?)",
    ),
    (
        "YAML syntax",
        "build:\n  script: [make\n",
        ".gitlab-ci.yml:3:1: YAML syntax error",
    ),
    (
        "unknown need",
        "a:\n  script: x\nb:\n  needs: [c]\n  script: y\n",
        ".gitlab-ci.yml:4:11: b.needs.0: needs 'c', which is not a job of this file",
    ),
    (
        "need excluded by rules",
        "a:\n  script: x\n  rules:\n    - when: never\nb:\n  needs: [a]\n  script: y\n",
        ".gitlab-ci.yml:6:11: b.needs.0: needs 'a', which is not in this pipeline (its rules exclude it)",
    ),
    (
        "rules syntax",
        'a:\n  script: x\n  rules:\n    - if: $X = "1"\n',
        ".gitlab-ci.yml:4:7: a.rules.0: invalid rules:if expression",
    ),
    (
        "extends cycle",
        "a:\n  extends: b\n  script: x\nb:\n  extends: a\n  script: y\n",
        "extends forms a cycle",
    ),
    (
        "unknown extends",
        ".tpl:\n  script: x\njob:\n  extends: .tlp\n",
        ".gitlab-ci.yml:4:12: job.extends: unknown job '.tlp' in extends (did you mean '.tpl'?)",
    ),
    (
        "missing include",
        "include: ci/nothing.yml\njob:\n  script: x\n",
        ".gitlab-ci.yml:1:10: include: included file 'ci/nothing.yml' does not exist",
    ),
    (
        "remote include",
        "include:\n  - remote: https://example.com/ci.yml\njob:\n  script: x\n",
        "include: remote is not supported",
    ),
    (
        "no script",
        "job:\n  stage: test\n",
        ".gitlab-ci.yml:2:3: job: job 'job' has no script",
    ),
    (
        "stage not declared",
        "stages: [build]\njob:\n  stage: test\n  script: x\n",
        ".gitlab-ci.yml:3:10: job.stage: stage 'test' is not in stages",
    ),
    (
        "bad timeout",
        "job:\n  script: x\n  timeout: soon\n",
        ".gitlab-ci.yml:3:12: job.timeout: invalid duration 'soon'",
    ),
    (
        "unknown reference",
        "job:\n  script: !reference [.nothing, script]\n",
        ".gitlab-ci.yml:2:11: job: !reference [.nothing] names nothing in this pipeline",
    ),
    (
        "parallel out of range",
        "job:\n  parallel: 201\n  script: x\n",
        ".gitlab-ci.yml:2:13: job.parallel: parallel must be between 1 and 200, got 201",
    ),
    (
        # found by buildyard's own validation (spec.from_raw), located in the GitLab file
        "invalid variable name",
        "variables:\n  bad-name: x\njob:\n  script: x\n",
        ".gitlab-ci.yml:2:3: variables.bad-name: variable name 'bad-name' must be an environment",
    ),
    (
        "workflow creates nothing",
        "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\njob:\n  script: x\n",
        ".gitlab-ci.yml:3:5: workflow.rules: workflow:rules create no pipeline for this trigger",
    ),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_invalid_file_is_one_located_line_and_exit_2(
    text: str, message: str, make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    root = make_project({".gitlab-ci.yml": text})
    for args in (["run", "-f", ".gitlab-ci.yml"], ["import", ".gitlab-ci.yml"]):
        result = cli("-C", root, *args)
        assert result.code == 2, result.err
        assert "Traceback" not in result.err
        line = result.err.strip().splitlines()[-1]
        assert message in line, line


def test_image_and_services_warn_and_strict_makes_them_errors(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    text = (
        "job:\n  image: python:3.12\n  services: [postgres:16]\n  resource_group: prod\n  script: echo ran\n"
    )
    root = make_project({".gitlab-ci.yml": text})
    result = cli("-C", root, "run", "-f", ".gitlab-ci.yml", "--no-cache")
    assert result.code == 0, result.err
    assert ".gitlab-ci.yml:2:10: job.image: image python:3.12: no container engine here" in result.err
    assert ".gitlab-ci.yml:3:13: job.services: services postgres:16" in result.err
    assert "job.resource_group: resource_group: jobs of one resource group are not serialised" in result.err
    strict = cli("-C", root, "run", "-f", ".gitlab-ci.yml", "--strict")
    assert strict.code == 2
    assert ".gitlab-ci.yml:2:10: job.image: image python:3.12" in strict.err


def test_import_writes_a_valid_buildyard_file_listing_what_it_did_not_carry(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    text = (
        "build:\n  script: echo built\n  interruptible: true\n  artifacts:\n    paths: [out/]\n"
        "    expire_in: 1 week\n"
    )
    root = make_project({".gitlab-ci.yml": text})
    result = cli("-C", root, "import", ".gitlab-ci.yml", "-o", "buildyard.yml")
    assert result.code == 0, result.err
    assert "not carried: .gitlab-ci.yml:3:18: build.interruptible: interruptible" in result.err
    assert "build.artifacts.expire_in: artifacts:expire_in" in result.err
    written = (root / "buildyard.yml").read_text()
    assert "#   .gitlab-ci.yml:3:18: build.interruptible" in written
    assert cli("-C", root, "validate").code == 0
    run = cli("-C", root, "run", "--no-cache", "--stream")
    assert run.code == 0
    assert "built" in run.out


def test_the_format_is_recognised_from_the_name_or_the_content(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    gitlab = "stages: [build]\ncompile:\n  stage: build\n  script: echo compiled\n"
    plain = "compile:\n  script: echo plain\n"
    native = "jobs:\n  compile: {script: echo native}\n"
    root = make_project({"ci/pipeline.yml": gitlab, "plain.yml": plain, "native.yml": native})
    for file, text in (("ci/pipeline.yml", "compiled"), ("plain.yml", "plain"), ("native.yml", "native")):
        result = cli("-C", root, "run", "-f", file, "--no-cache", "--stream")
        assert result.code == 0, result.err
        assert text in result.out
        assert cli("-C", root, "validate", "-f", file).code == 0


def test_unsupported_rule_and_include_options_are_errors_not_ignored(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    text = "a:\n  script: x\n  rules:\n    - changes: {paths: [src/*], compare_to: main}\n"
    root = make_project({".gitlab-ci.yml": text})
    result = cli("-C", root, "run", "-f", ".gitlab-ci.yml")
    assert result.code == 2
    assert "a.rules.0: rules:changes:compare_to is not supported" in result.err
    text = "include:\n  - local: ci.yml\n    rules: [{if: $X}]\na:\n  script: x\n"
    root = make_project({".gitlab-ci.yml": text, "ci.yml": "b:\n  script: y\n"}, name="p2")
    result = cli("-C", root, "run", "-f", ".gitlab-ci.yml")
    assert result.code == 2
    assert ".gitlab-ci.yml:2:5: include: include: rules is not supported" in result.err


def test_a_huge_parallel_matrix_is_refused_before_it_is_expanded(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    values = "[" + ", ".join(str(i) for i in range(1000)) + "]"
    text = f"job:\n  parallel:\n    matrix:\n      - {{A: {values}, B: {values}, C: {values}}}\n  script: x\n"
    root = make_project({".gitlab-ci.yml": text})
    result = cli("-C", root, "run", "-f", ".gitlab-ci.yml")
    assert result.code == 2
    assert ".gitlab-ci.yml:4:7: job.parallel.matrix: parallel:matrix makes more than 200 jobs" in result.err


def test_every_problem_is_reported_at_once_in_the_file_that_wrote_it(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    main = "include: ci/jobs.yml\n.tpl:\n  scirpt: x\nb:\n  extends: .tpl\n  script: y\n"
    root = make_project({".gitlab-ci.yml": main, "ci/jobs.yml": "a:\n  script: x\n  timeout: soon\n"})
    result = cli("-C", root, "run", "-f", ".gitlab-ci.yml")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, lines
    assert ".gitlab-ci.yml:3:3: b.scirpt: unknown key 'scirpt' (did you mean 'script'?)" in lines[0]
    assert "ci/jobs.yml:3:12: a.timeout: invalid duration 'soon'" in lines[1]


def test_an_environment_is_a_recorded_deployment_each_run_and_other_names_are_notes(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    text = (
        "deploy:\n  environment: {name: production, url: 'https://example.com'}\n  script: echo deploying\n"
        "review:\n  environment: {name: review/$CI_COMMIT_REF_SLUG}\n  script: echo review\n"
    )
    root = make_project({".gitlab-ci.yml": text})
    first = cli("-C", root, "run", "-f", ".gitlab-ci.yml")
    assert first.code == 0, first.err
    assert (
        "review.environment: environment 'review/main' ('review/main' is not a buildyard environment"
        in first.err
    )
    assert cli("-C", root, "run", "-f", ".gitlab-ci.yml").code == 0  # GitLab deploys again every pipeline
    history = cli("-C", root, "deploy", "history", "production")
    assert history.code == 0
    assert [line.split()[4] for line in history.out.splitlines()[1:]] == ["2", "1"]


def test_a_gitlab_file_alone_is_pointed_at_when_no_buildyard_file_exists(
    make_project: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    root = make_project({".gitlab-ci.yml": "job:\n  script: x\n"})
    result = cli("-C", root, "run")
    assert result.code == 2
    assert (
        "(run the GitLab file with -f .gitlab-ci.yml, or convert it: buildyard import .gitlab-ci.yml)"
        in result.err
    )
