"""Safe expressions for ``if:`` and ``${{ … }}``, with CEL-style operators, never Python ``eval``.

Syntax: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``&&``, ``||``, ``!``, ``in``, parentheses,
string/number/bool/null literals, lists, ``a.b`` member access, and the string methods
``startsWith``, ``endsWith``, ``contains``, ``matches`` (regex search) plus ``size(x)``.
The CEL operators are translated token by token to a Python expression which ``simpleeval`` (a
well-kept AST-walking evaluator: no ``eval``, no dunder access, no imports) evaluates.

Context (documented in the README): ``event``, ``branch``, ``tag``, ``ref``, ``sha``, ``vars``,
``env``, ``matrix`` and, in ``if:`` only, ``needs.<job>.status``. An unset ``vars.X`` or ``env.X``
is null (empty when interpolated), as in GitHub; an unknown ``matrix.X`` is an error ``validate``
reports, since the matrix of a job is known statically.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from buildyard.errors import UserError

CONTEXT_ROOTS = frozenset({"event", "branch", "tag", "ref", "sha", "vars", "env", "matrix", "needs"})
#: Roots whose values are only known once dependencies finished.
RUNTIME_ROOTS = frozenset({"needs"})
FUNCTIONS = frozenset({"size"})
_INTERP = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<op>&&|\|\||!=|!|==)
      |(?P<word>[A-Za-z_]\w*)
      |(?P<bad>[?:;@`$]|\bis\b)
      |(?P<other>\s+|.)""",
    re.VERBOSE | re.DOTALL,
)
_WORDS = {"true": "True", "false": "False", "null": "None"}
_PY_ONLY = frozenset(
    {"and", "or", "not", "is", "lambda", "if", "else", "for", "True", "False", "None", "import"}
)
_OPS = {"&&": " and ", "||": " or ", "!": " not ", "!=": "!=", "==": "=="}


class ExprError(UserError, ValueError):
    """An expression that does not parse or cannot be evaluated."""


class CelString(str):
    """A string with CEL's methods."""

    __slots__ = ()

    def startsWith(self, prefix: str) -> bool:  # noqa: N802 - CEL's name
        """CEL ``startsWith``."""
        return self.startswith(prefix)

    def endsWith(self, suffix: str) -> bool:  # noqa: N802 - CEL's name
        """CEL ``endsWith``."""
        return self.endswith(suffix)

    def contains(self, part: str) -> bool:
        """CEL ``contains``."""
        return part in self

    def matches(self, pattern: str) -> bool:
        """CEL ``matches``: the regex matches anywhere in the string."""
        return re.search(pattern, self) is not None


def _size(value: Any) -> int:
    return len(value)


def translate(text: str) -> str:
    """CEL-style source → the equivalent Python expression source."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "op":
            out.append(_OPS[value])
        elif kind == "word":
            if value in _PY_ONLY:
                raise ExprError(
                    f"invalid expression {text!r}: '{value}' is not an operator here (use &&, ||, !)"
                )
            out.append(_WORDS.get(value, value))
        elif kind == "bad":
            raise ExprError(f"invalid expression {text!r}: unexpected '{value}' at column {m.start() + 1}")
        else:
            out.append(value)
    return "".join(out).strip()


@lru_cache(maxsize=1024)
def _parse(text: str) -> ast.Expression:
    source = translate(text)
    if not source:
        raise ExprError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"invalid expression {text!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda | ast.comprehension | ast.NamedExpr | ast.Starred | ast.JoinedStr):
            raise ExprError(f"invalid expression {text!r}: unsupported construct")
    return tree


def roots(text: str) -> set[str]:
    """Top-level names an expression refers to (``needs.build.status`` → ``needs``)."""
    tree = _parse(text.strip())
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


def members(text: str, root: str) -> set[str]:
    """Fields read directly on ``root`` (``matrix.python`` → ``{"python"}`` for root ``matrix``)."""
    tree = _parse(text.strip())
    return {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == root
    }


def check(text: str) -> str | None:
    """Return a problem with ``text`` (syntax, unknown name or function), or ``None`` if it is valid."""
    try:
        tree = _parse(text.strip())
        names = roots(text)
    except ExprError as exc:
        return str(exc)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in FUNCTIONS:
            return (
                f"unknown function '{node.func.id}' in expression (functions: {', '.join(sorted(FUNCTIONS))})"
            )
    unknown = sorted(names - CONTEXT_ROOTS)
    if unknown:
        import difflib  # noqa: PLC0415 - error path only

        close = difflib.get_close_matches(unknown[0], CONTEXT_ROOTS, n=1)
        known = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(CONTEXT_ROOTS))}"
        return f"unknown name '{unknown[0]}' in expression ({known})"
    return None


def interpolations(text: str) -> list[str]:
    """The expressions inside ``${{ … }}`` in ``text``."""
    return [m.strip() for m in _INTERP.findall(text)]


def is_runtime(text: str) -> bool:
    """True when the expression needs values only known at run time (``needs``)."""
    return bool(roots(text) & RUNTIME_ROOTS)


#: Roots whose unset fields read as null (GitHub's semantics: ``vars.X == 'yes'`` is an optional switch).
LENIENT_ROOTS = frozenset({"vars", "env"})


class _Lenient(dict[str, Any]):
    """A mapping whose missing keys are null, like an unset variable in GitHub expressions."""

    def __missing__(self, key: str) -> None:
        return None


def _wrap(value: Any, *, lenient: bool = False) -> Any:
    if isinstance(value, str):
        return CelString(value)
    if isinstance(value, Mapping):
        items = {str(k): _wrap(v) for k, v in value.items()}
        return _Lenient(items) if lenient else items
    if isinstance(value, list | tuple):
        return [_wrap(v) for v in value]
    return value


def evaluate(text: str, context: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` against ``context`` (plain JSON-like values) and return a Python value."""
    import simpleeval  # noqa: PLC0415 - only when a pipeline uses expressions

    text = text.strip()
    tree = _parse(text)
    evaluator = simpleeval.EvalWithCompoundTypes(
        names={k: _wrap(v, lenient=k in LENIENT_ROOTS) for k, v in context.items()},
        functions={"size": _size},
    )
    try:
        value = evaluator.eval(text, previously_parsed=tree.body)
    except simpleeval.AttributeDoesNotExist as exc:
        raise ExprError(f"cannot evaluate {text!r}: no field '{exc.attr}'") from None
    except simpleeval.NameNotDefined as exc:
        raise ExprError(f"cannot evaluate {text!r}: unknown name '{exc.name}'") from None
    except (simpleeval.InvalidExpression, TypeError, KeyError, ValueError, IndexError, re.error) as exc:
        raise ExprError(f"cannot evaluate {text!r}: {exc}") from None
    return str(value) if isinstance(value, CelString) else value


def is_true(text: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a condition; it must produce a boolean."""
    value = evaluate(text, context)
    if not isinstance(value, bool):
        raise ExprError(f"condition {text!r} must be true or false, got {value!r}")
    return value


def render(value: Any) -> str:
    """How an interpolated value is written into a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """Replace every ``${{ expr }}`` in ``text`` with its value."""
    if "${{" not in text:
        return text
    return _INTERP.sub(lambda m: render(evaluate(m.group(1).strip(), context)), text)
