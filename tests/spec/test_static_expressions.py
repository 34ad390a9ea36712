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


def test_needs_of_a_job_that_is_not_needed_is_a_validate_error(make_project, cli) -> None:
    text = (
        "jobs:\n  a: {script: 'true'}\n  c: {script: 'true'}\n"
        "  b:\n    needs: [a]\n    if: needs.a.status == 'success' && needs['c'].status == 'success'\n"
        "    script: 'true'\n"
    )
    checked = cli("-C", make_project({"buildyard.yml": text}), "validate")
    assert checked.code == 2 and checked.err.count("\n") == 1
    assert "buildyard.yml:6:" in checked.err
    assert "jobs.b.if: 'needs.c': 'c' is not in this job's needs (a)" in checked.err
    fixed = text.replace("needs: [a]", "needs: [a, c]")
    assert cli("-C", make_project({"buildyard.yml": fixed}, name="fixed"), "validate").code == 0


def test_githubs_language_in_a_real_run(make_project, cli) -> None:
    """Functions, loose comparison, case-insensitive strings and value-returning || through `run`."""
    text = (
        "jobs:\n  build:\n    matrix: {os: [linux, macos]}\n"
        "    if: startsWith(branch, 'MA') && contains(fromJSON('[\"push\", \"tag\"]'), event)"
        " && matrix.os != 'MACOS'\n"
        "    script: echo \"${{ format('{0}-{{x}}', matrix.os) }} ${{ vars.N > 9 }}"
        " ${{ join(fromJSON('[1.0, 2]'), '+') }} ${{ vars.MODE || 'fast' }}\" > out.txt\n"
    )
    root = make_project({"buildyard.yml": text})
    assert cli("-C", root, "validate").code == 0
    result = cli("-C", root, "run", "--json", "--var", "N=10")
    statuses = {j["name"]: (j["status"], j["skip_reason"]) for j in json.loads(result.out)["jobs"]}
    assert result.code == 0
    assert statuses == {"build[linux]": ("success", None), "build[macos]": ("skipped", "condition_false")}
    # '10' > 9 compares as numbers (a string against a number), not as strings ('10' < '9')
    assert (root / "out.txt").read_text() == "linux-{x} true 1+2 fast\n"
