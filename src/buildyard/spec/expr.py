"""Expressions for ``if:`` and ``${{ … }}``: GitHub Actions' expression language, never Python ``eval``.

One evaluator serves ``buildyard.yml`` and the GitHub Actions importer. The grammar is in
``exprparse``, the values (coercion, comparison, truthiness, string form) in ``exprvalues``, the
functions in ``exprfuncs``; this module compiles a parsed expression into nested closures (cached
per text) and holds the public API:

- ``evaluate(text, context, functions=…)`` → a Python value; ``truthy`` and ``to_string`` as GitHub;
- ``interpolate(text, context)`` replaces each ``${{ expr }}``;
- ``is_true`` (buildyard's ``if:``: the value must be a boolean), ``check``, ``roots``, ``members``,
  ``interpolations``, ``is_runtime`` for validation.

Buildyard's extensions on top of GitHub's language (see ``exprparse``): double-quoted strings,
``[a, b]`` lists, ``x in y``, ``x.startsWith(y)``/``endsWith``/``contains``/``matches(re)`` and
``size(x)``; ``extensions=False`` refuses them (for GitHub files). Context (documented in the
README): ``event``, ``branch``, ``tag``, ``ref``, ``sha``, ``vars``, ``env``, ``matrix`` and, in
``if:`` only, ``needs.<job>.status``. A missing property is null, as in GitHub, except a job missing
directly under ``needs`` (not one this job needs): an error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import Any, Final

from buildyard.spec import exprfuncs as fn
from buildyard.spec.exprparse import (
    Call,
    Compare,
    Index,
    ListLit,
    Lit,
    Logic,
    Name,
    Node,
    Not,
    Star,
    parse,
    show,
    walk,
)
from buildyard.spec.exprvalues import (
    ExprError,
    equals,
    fold,
    get_key,
    greater,
    index_value,
    less,
    star_value,
    to_string,
    truthy,
)
from buildyard.termtext import safe_text

__all__ = [
    "CONTEXT_ROOTS",
    "FUNCTIONS",
    "RUNTIME_ROOTS",
    "ExprError",
    "calls",
    "check",
    "evaluate",
    "interpolate",
    "interpolations",
    "is_runtime",
    "is_true",
    "members",
    "render",
    "roots",
    "to_string",
    "truthy",
]

CONTEXT_ROOTS = frozenset({"event", "branch", "tag", "ref", "sha", "vars", "env", "matrix", "needs"})
#: Roots whose values are only known once dependencies finished.
RUNTIME_ROOTS = frozenset({"needs"})
#: Roots holding a string: ``branch.name`` is a mistake ``check`` reports.
SCALAR_ROOTS = frozenset({"event", "branch", "tag", "ref", "sha"})
#: Roots where a missing first-level key is an error: a job that is not a dependency.
STRICT_ROOTS = frozenset({"needs"})
#: Functions a ``buildyard.yml`` expression may call (GitHub's that need no outside world, and ours).
FUNCTIONS = frozenset(
    {spelling for _f, _lo, _hi, spelling in (*fn.BUILTINS.values(), *fn.EXTENSIONS.values())}
)
#: GitHub's functions (those the caller supplies included), for GitHub files.
GITHUB_FUNCTIONS = frozenset(
    {spelling for _f, _lo, _hi, spelling in fn.BUILTINS.values()}
    | {spelling for _lo, _hi, spelling in fn.SUPPLIED.values()}
)

Functions = Mapping[str, Callable[..., Any]]
_Eval = Callable[["_Env"], Any]
_MISSING: Final = object()


class _Env:
    """What one evaluation reads: the context and the functions (lower-case names)."""

    __slots__ = ("context", "functions")

    def __init__(self, context: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> None:
        self.context = context
        self.functions = functions


#: Texts longer than this are not kept in the caches (bounded memory: 1,024 × 2,000 characters at most).
_CACHED_LENGTH: Final = 2000


def _syntax(text: str, extensions: bool) -> Node:
    return (
        _syntax_cached(text, extensions)
        if len(text) <= _CACHED_LENGTH
        else parse(text, extensions=extensions)
    )


@lru_cache(maxsize=1024)
def _syntax_cached(text: str, extensions: bool) -> Node:
    return parse(text, extensions=extensions)


def _parsed(text: str, extensions: bool) -> Node:
    """The syntax tree, with each call's name and number of arguments checked."""
    node = _syntax(text, extensions)
    for n in walk(node):
        if isinstance(n, Call):
            _check_call(text, n, extensions)
    return node


def _check_call(text: str, call: Call, extensions: bool) -> None:
    name = call.name.lower()
    if call.method and (name not in fn.METHODS or not extensions):
        known = ", ".join(sorted(("startsWith", "endsWith", "contains", "matches")))
        raise ExprError(f"invalid expression {show(text)}: unknown method '{call.name}' (methods: {known})")
    spec = fn.BUILTINS.get(name) or (fn.EXTENSIONS.get(name) if extensions else None)
    lo, hi, spelling = (spec[1], spec[2], spec[3]) if spec else fn.SUPPLIED.get(name, (0, 255, call.name))
    if not lo <= len(call.args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 255 else f"at least {lo}"
        raise ExprError(
            f"invalid expression {show(text)}: {spelling}() takes {want} argument{'s' if hi != 1 else ''}, "
            f"got {len(call.args)}"
        )


def _compiled(text: str, extensions: bool) -> _Eval:
    if len(text) <= _CACHED_LENGTH:
        return _compiled_cached(text, extensions)
    return _compile(_parsed(text, extensions), extensions)


@lru_cache(maxsize=1024)
def _compiled_cached(text: str, extensions: bool) -> _Eval:
    return _compile(_parsed(text, extensions), extensions)


def _compile(node: Node, extensions: bool) -> _Eval:
    if isinstance(node, Lit):
        value = node.value
        return lambda _e: value
    if isinstance(node, Name):
        return _root(node.name)
    if isinstance(node, Index):
        obj = _compile(node.obj, extensions)
        if isinstance(node.obj, Name) and node.obj.name.lower() in STRICT_ROOTS and isinstance(node.key, Lit):
            key = to_string(node.key.value)

            def strict(e: _Env) -> Any:
                container = obj(e)
                value = get_key(container, key, _MISSING) if isinstance(container, Mapping) else None
                if value is _MISSING:
                    raise ExprError(f"no field {show(key)}")
                return value

            return strict
        if isinstance(node.key, Lit):
            key_value = node.key.value
            return lambda e: index_value(obj(e), key_value)
        key_node = _compile(node.key, extensions)
        return lambda e: index_value(obj(e), key_node(e))
    if isinstance(node, Star):
        obj = _compile(node.obj, extensions)
        return lambda e: star_value(obj(e))
    if isinstance(node, Not):
        operand = _compile(node.operand, extensions)
        return lambda e: not truthy(operand(e))
    if isinstance(node, Compare):
        return _comparison(node.op, _compile(node.left, extensions), _compile(node.right, extensions))
    if isinstance(node, Logic):
        args = tuple(_compile(a, extensions) for a in node.args)
        return _and(args) if node.op == "&&" else _or(args)
    if isinstance(node, ListLit):
        items = tuple(_compile(a, extensions) for a in node.items)
        return lambda e: [item(e) for item in items]
    return _call(node, tuple(_compile(a, extensions) for a in node.args), extensions)


def _root(name: str) -> _Eval:
    def read(e: _Env) -> Any:
        value = e.context.get(name, _MISSING)
        if value is _MISSING:
            value = get_key(e.context, name, _MISSING)
            if value is _MISSING:
                raise ExprError(f"unknown name '{name}'")
        return value

    return read


def _comparison(op: str, left: _Eval, right: _Eval) -> _Eval:
    if op == "==":
        return lambda e: equals(left(e), right(e))
    if op == "!=":
        return lambda e: not equals(left(e), right(e))
    if op == "<":
        return lambda e: less(left(e), right(e))
    if op == ">":
        return lambda e: greater(left(e), right(e))
    if op == "<=":

        def le(e: _Env) -> bool:
            a, b = left(e), right(e)
            return less(a, b) or equals(a, b)

        return le
    if op == ">=":

        def ge(e: _Env) -> bool:
            a, b = left(e), right(e)
            return greater(a, b) or equals(a, b)

        return ge
    return lambda e: fn.in_(left(e), right(e))


def _and(args: tuple[_Eval, ...]) -> _Eval:
    def run(e: _Env) -> Any:
        value: Any = None
        for arg in args:
            value = arg(e)
            if not truthy(value):
                return value
        return value

    return run


def _or(args: tuple[_Eval, ...]) -> _Eval:
    def run(e: _Env) -> Any:
        value: Any = None
        for arg in args:
            value = arg(e)
            if truthy(value):
                return value
        return value

    return run


def _call(node: Call, args: tuple[_Eval, ...], extensions: bool) -> _Eval:
    name = node.name.lower()
    spec = fn.BUILTINS.get(name) or (fn.EXTENSIONS.get(name) if extensions else None)
    builtin = spec[0] if spec else None

    def call(e: _Env) -> Any:
        func = e.functions.get(name) if e.functions else None
        if func is None:
            func = builtin
            if func is None:
                what = "is not available here" if name in fn.SUPPLIED else "is not a known function"
                raise ExprError(f"'{node.name}()' {what}")
        values = [arg(e) for arg in args]
        try:
            return func(*values)
        except ExprError:
            raise
        except (TypeError, ValueError, ArithmeticError, LookupError, OSError) as exc:
            # a function the caller supplied (hashFiles reads files) failed: one line, no traceback
            raise ExprError(f"{node.name}(): {safe_text(str(exc))[:200]}") from None

    return call


def _functions(functions: Functions | None) -> dict[str, Callable[..., Any]]:
    return {k.lower(): f for k, f in functions.items()} if functions else {}


def evaluate(
    text: str,
    context: Mapping[str, Any],
    *,
    functions: Functions | None = None,
    extensions: bool = True,
) -> Any:
    """Evaluate one expression (no ``${{ }}``) against ``context`` (plain JSON-like values).

    ``functions`` (name → callable taking the evaluated arguments) extend or override the built-ins:
    ``hashFiles``, ``success``… Raises ``ExprError`` (a one-line message) on any problem.
    """
    text = text.strip()
    return _run(text, _compiled(text, extensions), _Env(context, _functions(functions)))


def _run(text: str, run: _Eval, env: _Env) -> Any:
    """Run a compiled expression; a problem becomes one ``cannot evaluate 'text': why`` line."""
    try:
        return run(env)
    except ExprError as exc:
        raise ExprError(f"cannot evaluate {show(text)}: {exc}") from None


def is_true(text: str, context: Mapping[str, Any], *, functions: Functions | None = None) -> bool:
    """Evaluate a ``buildyard.yml`` condition; it must produce a boolean."""
    value = evaluate(text, context, functions=functions)
    if not isinstance(value, bool):
        raise ExprError(f"condition {show(text.strip())} must be true or false, got {show(to_string(value))}")
    return value


def render(value: Any) -> str:
    """How an interpolated value is written into a string (GitHub's string conversion)."""
    return to_string(value)


def _spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each ``${{ … }}`` in ``text``; a ``}}`` in a quoted string does not close it."""
    out: list[tuple[int, int]] = []
    i = text.find("${{")
    while i >= 0:
        j, n, quote = i + 3, len(text), ""
        while j < n:
            c = text[j]
            if quote:
                if c == "\\" and quote == '"':
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "}" and text.startswith("}}", j):
                break
            j += 1
        if j >= n:  # unterminated: left as written
            break
        out.append((i, j + 2))
        i = text.find("${{", j + 2)
    return out


def interpolations(text: str) -> list[str]:
    """The expressions inside ``${{ … }}`` in ``text``."""
    if "${{" not in text:
        return []
    return [text[a + 3 : b - 2].strip() for a, b in _spans(text)]


def interpolate(
    text: str,
    context: Mapping[str, Any],
    *,
    functions: Functions | None = None,
    extensions: bool = True,
) -> str:
    """Replace every ``${{ expr }}`` in ``text`` with its value as a string (``to_string``)."""
    if "${{" not in text:
        return text
    env = _Env(context, _functions(functions))
    out: list[str] = []
    last = 0
    for a, b in _spans(text):
        out.append(text[last:a])
        inner = text[a + 3 : b - 2].strip()
        out.append(to_string(_run(inner, _compiled(inner, extensions), env)))
        last = b
    out.append(text[last:])
    return "".join(out)


def _tree(text: str, extensions: bool = True) -> Node:
    return _parsed(text.strip(), extensions)


def roots(text: str) -> set[str]:
    """Context names an expression refers to (``needs.build.status`` → ``needs``)."""
    return {n.name for n in walk(_tree(text)) if isinstance(n, Name)}


def calls(text: str, *, extensions: bool = True) -> set[str]:
    """Functions an expression calls, lower case (GitHub's ``if:`` adds ``success() &&`` unless it
    calls one of ``success``, ``failure``, ``always``, ``cancelled``)."""
    return {n.name.lower() for n in walk(_tree(text, extensions)) if isinstance(n, Call) and not n.method}


def members(text: str, root: str) -> set[str]:
    """Fields read directly on ``root`` (``matrix.python`` or ``matrix['python']`` → ``{"python"}``)."""
    want = fold(root)
    return {
        to_string(n.key.value)
        for n in walk(_tree(text))
        if isinstance(n, Index)
        and isinstance(n.obj, Name)
        and fold(n.obj.name) == want
        and isinstance(n.key, Lit)
    }


def check(
    text: str,
    *,
    names: Collection[str] = CONTEXT_ROOTS,
    scalars: Collection[str] = SCALAR_ROOTS,
    functions: Collection[str] | None = None,
    extensions: bool = True,
) -> str | None:
    """A problem with ``text`` (syntax, unknown name or function), or ``None`` if it is valid.

    ``names``: the contexts, ``scalars`` those holding a string; ``functions``: the callable names
    (default: ``FUNCTIONS`` for ``buildyard.yml``, ``GITHUB_FUNCTIONS`` with ``extensions=False``).
    """
    if functions is None:
        functions = FUNCTIONS if extensions else GITHUB_FUNCTIONS
    try:
        nodes = walk(_syntax(text.strip(), extensions))
    except ExprError as exc:
        return str(exc)
    allowed = {f.lower() for f in functions}
    for n in nodes:
        if isinstance(n, Call) and not n.method and n.name.lower() not in allowed:
            listed = ", ".join(sorted(functions))
            return f"unknown function '{n.name}' in expression (functions: {listed})"
    try:
        _tree(text, extensions)
    except ExprError as exc:
        return str(exc)
    known = {fold(name): name for name in names}
    for n in nodes:
        if isinstance(n, Name) and fold(n.name) not in known:
            import difflib  # noqa: PLC0415 - error path only

            close = difflib.get_close_matches(n.name, sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(names))}"
            return f"unknown name '{n.name}' in expression ({hint})"
        if isinstance(n, Index) and isinstance(n.obj, Name) and n.obj.name in scalars:
            field = to_string(n.key.value) if isinstance(n.key, Lit) else "…"
            return (
                f"cannot evaluate {show(text.strip())}: '{n.obj.name}' is a string, it has no field '{field}'"
            )
    return None


def is_runtime(text: str) -> bool:
    """True when the expression needs values only known at run time (``needs``)."""
    return any(fold(name) == "NEEDS" for name in roots(text))
