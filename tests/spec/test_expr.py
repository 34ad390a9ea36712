"""Expressions: CEL-style operators over the trigger context, evaluated without Python eval."""

from __future__ import annotations

import pytest

from buildyard.spec import expr

CTX = {
    "event": "push",
    "branch": "release/1.2",
    "tag": "",
    "ref": "refs/heads/release/1.2",
    "sha": "abc",
    "vars": {"TARGET": "prod", "N": "3"},
    "env": {"HOME": "/root"},
    "matrix": {"python": "3.12"},
    "needs": {"build": {"status": "success"}, "lint": {"status": "failed"}},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event == 'push' && branch.startsWith('release/')", True),
        ("event != 'push' || tag == ''", True),
        ("!(event == 'tag')", True),
        ("branch.endsWith('1.2') && branch.contains('ease')", True),
        # GitHub strings have no backslash escapes ('' is a quote): the regex is written as is
        ("branch.matches('^release/[0-9]+\\.[0-9]+$')", True),
        ("matrix.python in ['3.11', '3.12']", True),
        ("'prod' == vars.TARGET && size(vars) == 2", True),
        ("needs.build.status == 'success' && needs.lint.status == 'failed'", True),
        ('event == "tag"', False),
        ("true && !false && null == null", True),
    ],
)
def test_evaluate(source: str, expected: bool) -> None:
    assert expr.check(source) is None
    assert expr.is_true(source, CTX) is expected


def test_interpolate_renders_values() -> None:
    assert expr.interpolate("py${{ matrix.python }}-${{ event == 'push' }}", CTX) == "py3.12-true"
    assert expr.interpolate("no braces", CTX) == "no braces"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("__import__('os').system('true')", "unknown function '__import__'"),
        ("event.__class__", "cannot evaluate"),
        ("evnt == 'push'", "did you mean 'event'?"),
        ("event ==", "invalid expression"),
        ("a ? b : c", "unexpected '?'"),
        ("[x for x in vars]", "'for' is not an operator"),
    ],
)
def test_rejects_unsafe_or_invalid(source: str, problem: str) -> None:
    found = expr.check(source)
    if found is None:  # syntactically fine but must not evaluate to anything dangerous
        with pytest.raises(expr.ExprError, match=problem):
            expr.evaluate(source, CTX)
    else:
        assert problem in found


def test_runtime_errors_are_expr_errors() -> None:
    with pytest.raises(expr.ExprError, match="no field 'deploy'"):
        expr.evaluate("needs.deploy.status == 'success'", CTX)
    with pytest.raises(expr.ExprError, match="must be true or false"):
        expr.is_true("vars.TARGET", CTX)


def test_roots_and_runtime() -> None:
    assert expr.roots("needs.a.status == 'x' && size(vars) > 0") == {"needs", "vars"}
    assert expr.is_runtime("needs.a.status == 'x'") and not expr.is_runtime("event == 'push'")
    assert expr.interpolations("a ${{ x }} b ${{y}}") == ["x", "y"]
