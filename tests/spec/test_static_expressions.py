"""``validate`` rejects what ``run`` would reject; unset variables are an optional switch (GitHub)."""

from __future__ import annotations

import json

import pytest

from buildyard.spec import expr

MATRIX_JOB = """\
jobs:
  test:
    matrix: {python: ['3.11', '3.12'], include: [{python: '3.12', extra: cov}]}
    script: echo ${{ USE }}
"""


@pytest.mark.parametrize(
    ("use", "problem"),
    [
        ("matrix.nope", "unknown matrix key 'nope' (this job's matrix: extra, python)"),
        ("matrix.pyton", "unknown matrix key 'pyton'"),
    ],
)
def test_an_unknown_matrix_key_is_a_validate_error(make_project, cli, use: str, problem: str) -> None:
    root = make_project({"buildyard.yml": MATRIX_JOB.replace("USE", use)})
    checked = cli("-C", root, "validate")
    assert checked.code == 2 and checked.err.count("\n") == 1
    assert (
        "buildyard.yml:4:" in checked.err and "jobs.test.script[0]" in checked.err and problem in checked.err
    )
    assert cli("-C", root, "run").code == 2  # and run says the same before running anything


def test_known_matrix_keys_including_include_only_keys_are_fine(make_project, cli) -> None:
    root = make_project({"buildyard.yml": MATRIX_JOB.replace("USE", "matrix.extra")})
    assert cli("-C", root, "validate").code == 0


def test_matrix_in_a_job_without_a_matrix_is_reported(make_project, cli) -> None:
    text = "jobs:\n  a:\n    if: matrix.os == 'linux'\n    script: 'true'\n"
    checked = cli("-C", make_project({"buildyard.yml": text}), "validate")
    assert checked.code == 2 and "jobs.a.if: 'matrix.os': this job has no matrix" in checked.err


def test_an_unset_variable_is_an_optional_switch(make_project, cli) -> None:
    text = (
        "jobs:\n  deploy:\n    if: vars.DEPLOY == 'yes'\n    script: 'true'\n"
        '  echo:\n    script: echo "[${{ vars.UNSET }}]" > out.txt\n'
    )
    root = make_project({"buildyard.yml": text})
    assert cli("-C", root, "validate").code == 0
    result = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert result.code == 0 and jobs["deploy"]["skip_reason"] == "condition_false"
    assert (root / "out.txt").read_text() == "[]\n"
    result = cli("-C", root, "run", "--json", "--var", "DEPLOY=yes")
    assert {j["name"]: j["status"] for j in json.loads(result.out)["jobs"]}["deploy"] == "success"


def test_unset_fields_are_null_only_for_vars_and_env() -> None:
    ctx = {"vars": {}, "env": {}, "needs": {}}
    assert expr.evaluate("vars.X", ctx) is None and expr.is_true("env.HOME == null", ctx)
    with pytest.raises(expr.ExprError, match="no field 'deploy'"):
        expr.evaluate("needs.deploy.status", ctx)
