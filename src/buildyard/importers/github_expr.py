"""GitHub Actions expressions for the GitHub importer: the shared evaluator in GitHub mode.

A thin adapter over :mod:`buildyard.spec.expr` (one evaluator serves ``buildyard.yml`` and the
importer) with buildyard's extensions turned off, so a workflow is read exactly as GitHub reads it,
plus what the importer needs around it: the context names and functions an expression uses
(to decide what can be known before a run), ``if:`` values written as ``${{ … }}``, and YAML values
whose strings hold expressions. ``hashFiles`` and the status functions (``success()``,
``failure()``, ``always()``, ``cancelled()``) depend on where an expression is evaluated: callers
pass them in ``functions``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from buildyard.spec import expr as _expr
from buildyard.spec.exprparse import Name, Node, parse, walk
from buildyard.spec.exprvalues import ExprError, to_string, truthy

__all__ = [
    "STATUS_FUNCTIONS",
    "ExprError",
    "Function",
    "called",
    "evaluate",
    "interpolate",
    "interpolations",
    "names",
    "strip_wrapper",
    "to_string",
    "truthy",
    "value_of",
]

STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})

Function = Callable[..., Any]


def evaluate(
    text: str, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None
) -> Any:
    """Evaluate an expression (without ``${{ }}``) as GitHub does."""
    return _expr.evaluate(text, context, functions=functions, extensions=False)


def interpolate(
    text: str, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None
) -> str:
    """Replace every ``${{ expr }}`` in ``text`` with its value as text."""
    return _expr.interpolate(text, context, functions=functions, extensions=False)


def interpolations(text: str) -> list[str]:
    """The expressions inside ``${{ … }}`` in ``text``."""
    return _expr.interpolations(text)


def _tree(text: str) -> Node:
    return parse(text.strip(), extensions=False)


def called(text: str) -> set[str]:
    """Lower-cased names of the functions ``text`` calls."""
    return _expr.calls(text, extensions=False)


def names(text: str) -> set[str]:
    """Lower-cased context names ``text`` reads (``needs.a.result`` -> ``needs``)."""
    return {n.name.lower() for n in walk(_tree(text)) if isinstance(n, Name)}


def strip_wrapper(text: str) -> str:
    """An ``if:`` written as ``${{ expr }}`` (the whole value) -> ``expr``."""
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}") and _expr.interpolations(text) == [text[3:-2].strip()]:
        return text[3:-2].strip()
    return text


def value_of(raw: Any, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None) -> Any:
    """A YAML value with expressions: ``${{ x }}`` alone keeps x's type; other text is interpolated;
    lists and mappings are evaluated item by item."""
    if isinstance(raw, str):
        stripped = raw.strip()
        inner = strip_wrapper(stripped)
        if inner != stripped:
            return evaluate(inner, context, functions=functions)
        return interpolate(raw, context, functions=functions)
    if isinstance(raw, list):
        return [value_of(v, context, functions=functions) for v in raw]
    if isinstance(raw, dict):
        return {k: value_of(v, context, functions=functions) for k, v in raw.items()}
    return raw
