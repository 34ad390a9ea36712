"""The expression language against GitHub's documentation ("Evaluate expressions in workflows and actions").

Tables: literals, operators and precedence, the loose-equality coercion rules, truthiness, every
function's examples from the docs, object filters, string conversion; then edge cases (NaN,
case, ``&&``/``||`` values, limits) and buildyard's extensions on top of GitHub's language.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildyard.spec import expr
from buildyard.spec.exprparse import MAX_DEPTH, MAX_LENGTH
from buildyard.spec.exprvalues import MAX_RESULT

# The contexts of the documentation's examples.
GITHUB = {
    "event_name": "push",
    "ref": "refs/heads/main",
    "event": {"issue": {"labels": [{"name": "bug"}, {"name": "help wanted"}]}},
}
FRUITS = [
    {"name": "apple", "quantity": 1},
    {"name": "orange", "quantity": 2},
    {"name": "pear", "quantity": 1},
]
VEGETABLES = {
    "scallions": {"colors": ["green", "white", "red"], "ediblePortions": ["roots", "stems"]},
    "beets": {
        "colors": ["purple", "red", "gold", "white", "pink"],
        "ediblePortions": ["roots", "stems", "leaves"],
    },
    "artichokes": {
        "colors": ["green", "purple", "red", "black"],
        "ediblePortions": ["hearts", "stems", "leaves"],
    },
}
CTX: dict[str, Any] = {
    "github": GITHUB,
    "env": {"continue": "true", "time": "3", "EMPTY": ""},
    "needs": {"job1": {"result": "success", "outputs": {"matrix": '{"include":[{"project":"foo"}]}'}}},
    "job": {"status": "success"},
    "fruits": FRUITS,
    "vegetables": VEGETABLES,
    "obj": {"a": 1},
    "arr": [1, 2],
}


def ev(text: str, ctx: dict[str, Any] | None = None, **kw: Any) -> Any:
    return expr.evaluate(text, CTX if ctx is None else ctx, **kw)


@pytest.mark.parametrize(
    ("source", "value", "text"),
    [  # the documentation's "Example of literals", and what ${{ }} writes for each
        ("null", None, ""),
        ("false", False, "false"),
        ("true", True, "true"),
        ("711", 711, "711"),
        ("-9.2", -9.2, "-9.2"),
        ("0xff", 255, "255"),
        ("-2.99e-2", -0.0299, "-0.0299"),
        ("'It''s open source!'", "It's open source!", "It's open source!"),
        ("''", "", ""),
        ("0o17", 15, "15"),
        ("1.5e3", 1500.0, "1500"),
        ("-Infinity", -math.inf, "-Infinity"),
        ("0xFFFFFFFF", -1, "-1"),  # 32 bits, as the runner's Int32
        ("'a\\b'", "a\\b", "a\\b"),  # no backslash escapes in GitHub strings
    ],
)
def test_literals(source: str, value: Any, text: str) -> None:
    assert ev(source) == value and type(ev(source)) is type(value)
    assert expr.interpolate("${{ " + source + " }}", CTX) == text


def test_nan_literal() -> None:
    assert math.isnan(ev("NaN")) and expr.interpolate("${{ NaN }}", {}) == "NaN"


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # precedence, loosest first: || && (== !=) (< <= > >=) ! then . [ ]
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("false && false || true", True),
        ("!true == false", True),  # (!true) == false
        ("!(1 == 1)", False),
        ("1 < 2 == true", True),  # (1 < 2) == true
        ("2 > 1 != false", True),
        ("1 == 1 && 2 == 2", True),
        ("!!'x'", True),
        ("!''", True),
        ("github.event.issue.labels[1].name == 'HELP WANTED'", True),
        ("(github.event).issue['labels'][0]['name']", "bug"),
        ("fromJSON('[1, [2, 3]]')[1][0]", 2),
    ],
)
def test_operators_and_precedence(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # "GitHub performs loose equality comparisons": the documented coercion table
        ("null == 0", True),
        ("null == false", True),
        ("null == ''", True),
        ("null == 'null'", False),  # 'null' is NaN as a number
        ("true == 1", True),
        ("false == 0", True),
        ("true == 2", False),
        ("true == 'true'", False),  # 'true' → NaN
        ("'1' == true", True),
        ("'' == 0", True),
        ("' 123.5 ' == 123.5", True),
        ("' +1 ' == 1", True),
        ("'0x10' == 16", True),
        ("'0X10' == 16", False),  # only a lower-case 0x, as the runner
        ("'0x1FFFFFFFF' == 8589934591", False),  # beyond 32 bits: NaN
        ("'+Infinity' == Infinity", False),
        ("' 0o10 ' == 8", True),
        ("'1e3' == 1000", True),
        ("'1_000' == 1000", False),
        ("'inf' == Infinity", False),
        ("'Infinity' == Infinity", True),
        ("'abc' == 0", False),
        ("'abc' != 0", True),
        ("arr == 0", False),  # arrays and objects are not converted
        ("obj == obj", True),  # … and equal only themselves
        ("obj == fromJSON('{\"a\": 1}')", False),
        ("fromJSON('[]') == fromJSON('[]')", False),
        ("arr != arr", False),
        ("'ABC' == 'abc'", True),  # "GitHub ignores case when comparing strings"
        ("'Straße' == 'STRASSE'", True),
        ("'b' > 'A'", True),
        ("'a' < 'B'", True),
        ("true > false", True),
        ("false < true", True),
        ("1.002 > 1.001", True),
        ("'2' < 10", True),  # mixed kinds compare as numbers
        ("'10' < '2'", True),  # strings compare as strings
        ("null < 1", True),
        ("arr < arr", False),
        ("obj > obj", False),
        ("1 <= 1", True),
        ("'a' >= 'A'", True),
        ("true >= 1", True),
    ],
)
def test_loose_equality_and_comparison(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    "source",
    [
        "NaN == NaN",
        "NaN < 1",
        "NaN > 1",
        "NaN <= NaN",
        "NaN >= 1",
        "'x' < 1",
        "'x' >= 0",
        "1 > 'x'",
        "arr == 'x'",
    ],
)
def test_nan_is_never_equal_less_or_greater(source: str) -> None:
    assert ev(source) is False
    assert ev(f"!({source})") is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [  # "falsy values (false, 0, -0, "", '', null) are coerced to false", and NaN
        (False, False),
        (0, False),
        (-0.0, False),
        ("", False),
        (None, False),
        (math.nan, False),
        (True, True),
        (1, True),
        (-1.5, True),
        ("false", True),
        ("0", True),
        ([], True),
        ({}, True),
    ],
)
def test_truthiness(value: Any, expected: bool) -> None:
    assert expr.truthy(value) is expected
    assert ev("!!x", {"x": value}) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # && and || return the deciding operand's value, as JavaScript
        ("'a' && 'b'", "b"),
        ("'' && 'b'", ""),
        ("null && 'b'", None),
        ("0 || 'fallback'", "fallback"),
        ("env.UNSET || 'default'", "default"),
        ("env.EMPTY || null", None),
        ("'x' || error()", "x"),  # short-circuit: the right side is never evaluated
        ("false && error()", False),
        ("github.event_name == 'push' && 'deploy' || 'skip'", "deploy"),
    ],
)
def test_and_or_return_operand_values(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # each function's examples from the documentation
        ("contains('Hello world', 'llo')", True),
        ("contains('Hello world', 'LLO')", True),
        ("contains(github.event.issue.labels.*.name, 'bug')", True),
        ("contains(github.event.issue.labels.*.name, 'feature')", False),
        ('contains(fromJSON(\'["push", "pull_request"]\'), github.event_name)', True),
        ("contains(fromJSON('[1, 2]'), '2')", True),  # array items compare loosely
        ("contains(obj, 'a')", False),
        ("contains(123, 2)", True),
        ("startsWith('Hello world', 'He')", True),
        ("startsWith('Hello world', 'he')", True),
        ("startsWith('Hello world', 'world')", False),
        ("endsWith('Hello world', 'ld')", True),
        ("endsWith('Hello world', 'LD')", True),
        ("endsWith(arr, '2')", False),
        ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
        ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
        ("format('{0}{0}-{1}', 1.5, null)", "1.51.5-"),
        ("format('{1}', 'a', true)", "true"),
        ("format('no args')", "no args"),
        ("join(github.event.issue.labels.*.name, ', ')", "bug, help wanted"),
        ("join(fromJSON('[1, true, null, \"x\"]'))", "1,true,,x"),
        ("join('abc', '-')", "abc"),
        ("join(obj)", ""),
        ("join(arr, obj)", "1,2"),
        ("toJSON(job)", '{\n  "status": "success"\n}'),
        ("toJSON(fromJSON('[1.0, 2.5]'))", "[\n  1,\n  2.5\n]"),
        ("toJSON('é')", '"é"'),
        ("toJSON(null)", "null"),
        ("toJSON(fromJSON('[12345678901234567890, 1e400]'))", "[\n  12345678901234600000,\n  null\n]"),
        ("fromJSON(env.continue)", True),
        ("fromJSON(env.time)", 3),
        ("fromJSON(needs.job1.outputs.matrix).include[0].project", "foo"),
        ("fromJSON('null')", None),
        ("always()", True),
        ("ALWAYS()", True),
        ("Contains('abc', 'B')", True),
    ],
)
def test_functions_as_documented(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # "Object filters": the documentation's fruits and vegetables
        ("fruits.*.name", ["apple", "orange", "pear"]),
        ("fruits[*].quantity", [1, 2, 1]),
        (
            "vegetables.*.ediblePortions",
            [["roots", "stems"], ["roots", "stems", "leaves"], ["hearts", "stems", "leaves"]],
        ),
        (
            "vegetables.*.ediblePortions.*",
            ["roots", "stems", "roots", "stems", "leaves", "hearts", "stems", "leaves"],
        ),
        ("vegetables.*.colors[0]", ["green", "purple", "green"]),
        ("vegetables.*.nope", []),
        ("fruits.*.name[0]", []),  # an index on strings in a filter yields nothing
        ("github.ref.*", []),
        ("contains(vegetables.*.colors.*, 'GOLD')", True),
    ],
)
def test_object_filters(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # a missing property is null; keys and context names ignore case
        ("github.nope", None),
        ("github.nope.deeper[3]", None),
        ("github.ref.length", None),
        ("arr[5]", None),
        ("arr[-1]", None),
        ("arr['1']", 2),
        ("arr[1.7]", 2),
        ("obj[1]", None),
        ("GITHUB.EVENT_NAME", "push"),
        ("github['Event_Name']", "push"),
        ("(null).x", None),
    ],
)
def test_property_access(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_status_and_hashfiles_come_from_the_caller() -> None:
    calls: list[tuple[Any, ...]] = []

    def hash_files(*patterns: Any) -> str:
        calls.append(patterns)
        return "abc123"

    functions = {
        "success": lambda: False,
        "failure": lambda: True,
        "hashFiles": hash_files,
        "cancelled": lambda: False,
    }
    assert ev("failure() && !cancelled()", functions=functions) is True
    assert ev("success() || 'no'", functions=functions) == "no"
    assert (
        ev("format('deps-{0}', HASHFILES('**/package-lock.json', 'x'))", functions=functions) == "deps-abc123"
    )
    assert calls == [("**/package-lock.json", "x")]
    with pytest.raises(expr.ExprError, match=r"'hashFiles\(\)' is not available here"):
        ev("hashFiles('x')")
    with pytest.raises(expr.ExprError, match=r"'success\(\)' is not available here"):
        ev("success()")
    # the caller's functions override the built-ins (names ignore case)
    assert ev("contains('a', 'b')", functions={"CONTAINS": lambda a, b: "mine"}) == "mine"
    # an error inside a supplied function is an ExprError, not a traceback
    with pytest.raises(expr.ExprError, match="cannot evaluate"):
        ev("hashFiles('x')", functions={"hashFiles": int})

    def unreadable(*_patterns: Any) -> str:
        raise PermissionError("denied: \x1b[31mred")

    with pytest.raises(expr.ExprError) as caught:
        ev("format('{0}', hashFiles('x'))", functions={"hashFiles": unreadable})
    message = str(caught.value)
    assert (
        message.count("cannot evaluate") == 1 and "hashFiles(): denied" in message and "\x1b" not in message
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [  # GitHub's string conversion (the runner's ConvertToString), as ${{ }} writes values
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (3.0, "3"),
        (0.0, "0"),
        (-0.0, "-0"),  # .NET (Core 3+) keeps the sign of zero
        (-1e-16, "-0"),
        (0.1 + 0.2, "0.3"),
        (1 / 3, "0.3333333"),  # the runner's format, 0.#######: at most 7 decimals
        (2.5e-7, "0.0000003"),  # rounded half away from zero, never an exponent
        (1e-16, "0"),
        (1e21, "1000000000000000000000"),
        (123456789012345680000.0, "123456789012346000000"),  # 15 significant digits
        (123456789.123456789, "123456789.123457"),
        (12345678901234, "12345678901234"),
        (math.inf, "Infinity"),
        ("text", "text"),
        ([1, "a"], '[\n  1,\n  "a"\n]'),
        ({"k": [True, None]}, '{\n  "k": [\n    true,\n    null\n  ]\n}'),
        ({}, "{}"),
    ],
)
def test_string_conversion(value: Any, text: str) -> None:
    assert expr.to_string(value) == text
    assert expr.interpolate("${{ v }}", {"v": value}) == text


def test_interpolate() -> None:
    assert expr.interpolate("a ${{ github.event_name }} b ${{ env.UNSET }}.", CTX) == "a push b ."
    # a }} inside a string does not end the expression
    assert expr.interpolate("${{ format('{{0}} {0}}}', 1) }}!", CTX) == "{0} 1}!"
    assert expr.interpolations("x ${{ format('}}') }} y ${{a}}") == ["format('}}')", "a"]
    assert expr.interpolate("unclosed ${{ x", CTX) == "unclosed ${{ x"
    assert expr.interpolate("${{ 1 }}${{ 2 }}", CTX, functions={}) == "12"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("format('{0} {1}', 'a')", "refers to argument 1 but 1 were given"),
        ("format('{0}', format('{1}', 'a'))", "^cannot evaluate [^:]*: format: .* refers to argument 1"),
        ("format('{x}', 'a')", "invalid format string"),
        ("format('{0', 'a')", "invalid format string"),
        ("format('a } b')", "a lone '}'"),
        ("fromJSON('{')", "fromJSON: invalid JSON"),
        ("fromJSON('NaN')", "invalid JSON"),
        ("fromJSON(arr)", "fromJSON takes a string"),
        ("nope()", r"'nope\(\)' is not a known function"),
        ("unknown.x", "unknown name 'unknown'"),
        ("needs.deploy.result", "no field 'deploy'"),
        ("contains('a')", r"contains\(\) takes 2 arguments, got 1"),
        ("always(1)", r"always\(\) takes 0 arguments"),
        ("join()", r"join\(\) takes 1 to 2 arguments"),
        ("format()", r"format\(\) takes at least 1 argument"),
    ],
)
def test_evaluation_errors_are_one_line_expr_errors(source: str, problem: str) -> None:
    with pytest.raises(expr.ExprError, match=problem) as caught:
        ev(source)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("1 +", r"unexpected '\+' at column 3"),
        ("a ==", "the expression ends too early at column 5"),
        ("(1", r"expected '\)' at column 3"),
        ("'open", "unterminated string at column 1"),
        ("a.", "expected a property name after '.'"),
        ("a.1", "expected a property name after '.'"),
        ("1.", "unexpected"),
        ("0x" + "f" * 300, "invalid number '0xfff"),
        ("0X1F", "unexpected '0'"),
        ("a b", "'b' is not an operator here"),
        ("a and b", "'and' is not an operator here (use &&, ||, !)"),
        ("not a", "'not' is not an operator here"),
        ("a == True", "'True' is Python: write true, false or null"),
        ("a = b", "unexpected '='"),
        ("a ? b : c", "unexpected '?'"),
        ("", "empty expression"),
        ("[1, 2]", "unexpected '\\['"),  # with extensions=False below
    ],
)
def test_syntax_errors_name_the_column(source: str, problem: str) -> None:
    with pytest.raises(expr.ExprError, match=problem) as caught:
        expr.evaluate(source, CTX, extensions=False)
    assert "\n" not in str(caught.value)


def test_control_characters_in_errors_are_escaped() -> None:
    with pytest.raises(expr.ExprError) as caught:
        ev("'a\nb' ?\x1b[31m")
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message and "\\n" in message


def test_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1)
    assert ev(ok) == 1
    for deep in (
        "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
        "(" * 5000 + "1" + ")" * 5000,
        "!" * 5000 + "true",
        "a" + "[0]" * 5000,
        "format(" * 2000 + "'x'" + ")" * 2000,
        "[" * 3000 + "]" * 3000,
        "1 == " * 4000 + "1",  # left-nested chains too
        "1 < " * 5000 + "1",
    ):
        with pytest.raises(expr.ExprError, match=f"nested more than {MAX_DEPTH} levels deep"):
            ev(deep)
        assert expr.check(deep) is not None


def test_long_expressions_and_results_are_bounded() -> None:
    long_chain = " && ".join(["true"] * 4000)  # 31,996 characters
    with pytest.raises(expr.ExprError, match=f"longer than {MAX_LENGTH} characters"):
        ev(long_chain)
    wide = " || ".join(["false"] * 2000)  # flat, not deep: fine
    assert len(wide) < MAX_LENGTH and ev(wide) is False
    # format of format… would grow exponentially: capped
    blowup = "format('{0}{0}{0}{0}{0}{0}{0}{0}', " * 12 + "'xxxxxxxx'" + ")" * 12
    with pytest.raises(expr.ExprError, match=f"longer than {MAX_RESULT} characters"):
        ev(blowup)
    deep_json = "[" * 100_000 + "]" * 100_000
    with pytest.raises(expr.ExprError, match="nested too deeply"):
        ev("fromJSON(env.j)", {"env": {"j": deep_json}})
    with pytest.raises(expr.ExprError, match="fromJSON input longer than"):
        ev("fromJSON(env.j)", {"env": {"j": " " * (MAX_RESULT + 1)}})


@pytest.mark.parametrize(
    ("source", "expected"),
    [  # buildyard's extensions on top of GitHub's language
        ("\"double\" == 'DOUBLE'", True),
        ('"tab\\there"', "tab\there"),
        ("'b' in ['a', 'B']", True),
        ('2 in fromJSON(\'["1", "2"]\')', True),
        ("'x' in ['a']", False),
        ("'a' in obj", True),
        ("'ell' in 'HELLO'", True),
        ("github.ref.startsWith('refs/HEADS/')", True),
        ("github.ref.endsWith('main')", True),
        ("github.ref.contains('heads')", True),
        ("github.ref.matches('^refs/heads/[a-z]+$')", True),
        ("github.ref.matches('MAIN')", False),  # regular expressions keep their case
    ],
)
def test_buildyard_extensions(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('"double"', "strings take single quotes"),
        ("['a']", "unexpected '\\['"),
        ("'a' in arr", "'in' is not an operator here|unexpected 'in'"),
        ("github.ref.startsWith('r')", r"unexpected '\(' at column 22"),
        ("size(arr)", "'size\\(\\)' is not a known function"),
    ],
)
def test_github_files_refuse_the_extensions(source: str, problem: str) -> None:
    with pytest.raises(expr.ExprError, match=problem):
        ev(source, extensions=False)
    assert expr.check(source, names={"github", "arr"}, extensions=False) is not None


def test_size_and_unknown_methods() -> None:
    assert ev("size(fruits) == 3 && size('abc') == 3 && size(obj) == 1") is True
    with pytest.raises(expr.ExprError, match="size\\(\\) takes a string, array or object"):
        ev("size(env.UNSET)")
    with pytest.raises(expr.ExprError, match="unknown method 'lower'"):
        ev("github.ref.lower()")
    with pytest.raises(expr.ExprError, match="invalid regular expression"):
        ev("github.ref.matches('(')")


def test_check_for_buildyard_files() -> None:
    assert expr.check("branch == 'main' && size(vars) > 0 && vars.X.startsWith('a')") is None
    assert expr.check("branch.name == 'x'") == (
        "cannot evaluate \"branch.name == 'x'\": 'branch' is a string, it has no field 'name'"
    )
    assert "unknown function 'hashFiles'" in (expr.check("hashFiles('x') != ''") or "")
    assert "did you mean 'matrix'?" in (expr.check("matirx.os == 'x'") or "")
    assert "contains() takes 2 arguments" in (expr.check("contains(branch)") or "")
    assert expr.roots("github.ref == x && FORMAT('{0}', y.z)") == {"github", "x", "y"}
    assert expr.members("matrix.os == matrix['py'] && matrix[vars.k] && MATRIX.arch", "matrix") == {
        "os",
        "py",
        "arch",
    }
    assert expr.calls("Always() || contains(x, y.startsWith('a'))") == {"always", "contains"}
    assert expr.calls("failure()", extensions=False) == {"failure"}
    assert expr.is_runtime("needs.a.result") and expr.is_runtime("NEEDS.a.result")
    assert not expr.is_runtime("'needs' == vars.needs")


def test_is_true_requires_a_boolean_but_truthy_is_githubs() -> None:
    assert expr.is_true("vars.A == 'x' && vars.B != null", {"vars": {"A": "X", "B": "b"}}) is True
    assert expr.is_true("vars.B == null", {"vars": {"B": ""}}) is True  # '' == null: both are 0
    with pytest.raises(expr.ExprError, match="must be true or false, got 'x'"):
        expr.is_true("vars.A || 'y'", {"vars": {"A": "x"}})
    assert expr.truthy(expr.evaluate("vars.A || 'y'", {"vars": {"A": ""}}))


def test_contexts_are_read_not_changed() -> None:
    ctx = json.loads(json.dumps({"github": GITHUB, "fruits": FRUITS}))
    before = json.dumps(ctx, sort_keys=True)
    ev("toJSON(github) != '' && join(fruits.*.name) != '' && fruits[0] == fruits[0]", ctx)
    assert json.dumps(ctx, sort_keys=True) == before
    assert ev("fruits[0] == fruits[0]", ctx) is True  # the same object: identity


PRIMITIVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["", " 1 ", "0x1f", "1e2", "abc", "ABC", "true", "NaN"]),
)


@given(PRIMITIVES, PRIMITIVES)
def test_equality_is_symmetric_and_not_equal_is_its_negation(a: Any, b: Any) -> None:
    ctx = {"a": a, "b": b}
    assert ev("a == b", ctx) is ev("b == a", ctx)
    assert ev("a != b", ctx) is (not ev("a == b", ctx))
    assert ev("a < b", ctx) is ev("b > a", ctx)
    assert ev("a <= b", ctx) is (ev("a < b", ctx) or ev("a == b", ctx))


@given(PRIMITIVES)
def test_not_not_is_truthiness_and_numbers_round_trip(a: Any) -> None:
    assert ev("!!a", {"a": a}) is expr.truthy(a)
    if isinstance(a, float) and 1e-6 < abs(a) < 1e300:
        text = expr.to_string(a)
        assert math.isclose(float(text), a, rel_tol=1e-14, abs_tol=1e-7)  # 15 digits, 7 decimals
        assert ev("a == b", {"a": a, "b": text}) is (float(text) == a)


@given(st.text(alphabet="ab01.*[](),'\"!=<>&| -xe", max_size=40))
def test_any_input_gives_a_value_or_an_expr_error(source: str) -> None:
    ctx = {"a": {"b": [1, {"x": "y"}]}, "b": [None, True, "s"]}
    try:
        value = expr.evaluate(source, ctx)
    except expr.ExprError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(expr.to_string(value), str)
