"""The expression language's built-in functions, with GitHub Actions' semantics.

``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``, ``toJSON``, ``fromJSON`` and
``always`` as GitHub documents them, plus buildyard's ``size`` and ``matches``. Names are
case-insensitive (keys here are lower case). ``hashFiles`` and the status functions ``success``,
``failure`` and ``cancelled`` need the outside world, so the caller supplies them. Pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from buildyard.spec.exprvalues import (
    ARR,
    MAX_RESULT,
    OBJ,
    STR,
    ExprError,
    equals,
    fold,
    from_json,
    get_key,
    is_primitive,
    kind,
    to_json,
    to_string,
)

_MISSING: Final = object()


def contains(search: Any, item: Any) -> bool:
    """``contains(search, item)``: an array holding an equal item, or a string holding ``item`` (any case)."""
    k = kind(search)
    if k == ARR:
        return any(equals(v, item) for v in search)
    if k < ARR and is_primitive(item):
        return fold(to_string(item)) in fold(to_string(search))
    return False


def starts_with(text: Any, prefix: Any) -> bool:
    """``startsWith(text, prefix)``, ignoring case; false unless both are primitives."""
    if not (is_primitive(text) and is_primitive(prefix)):
        return False
    return fold(to_string(text)).startswith(fold(to_string(prefix)))


def ends_with(text: Any, suffix: Any) -> bool:
    """``endsWith(text, suffix)``, ignoring case; false unless both are primitives."""
    if not (is_primitive(text) and is_primitive(suffix)):
        return False
    return fold(to_string(text)).endswith(fold(to_string(suffix)))


def format_(template: Any, *args: Any) -> str:
    """``format('{0} and {1}', a, b)``: ``{N}`` replaced by argument N; ``{{``/``}}`` are braces."""
    fs = to_string(template)
    out: list[str] = []
    size = 0
    i, n = 0, len(fs)
    while i < n:
        lb, rb = fs.find("{", i), fs.find("}", i)
        if lb >= 0 and (rb < 0 or lb < rb):
            if fs.startswith("{", lb + 1):
                out.append(fs[i : lb + 1])
                i = lb + 2
                continue
            digits = fs[lb + 1 : rb] if rb > lb else ""
            if not (digits.isascii() and digits.isdigit()):
                raise ExprError(f"format: invalid format string {fs[:80]!r} (use {{0}}, {{{{ and }}}})")
            index = int(digits)
            if index >= len(args):
                raise ExprError(f"format: {fs[:80]!r} refers to argument {index} but {len(args)} were given")
            piece = fs[i:lb] + to_string(args[index])
            i = rb + 1
        elif rb >= 0:
            if not fs.startswith("}", rb + 1):
                raise ExprError(f"format: invalid format string {fs[:80]!r} (a lone '}}': write '}}}}')")
            piece = fs[i : rb + 1]
            i = rb + 2
        else:
            piece = fs[i:]
            i = n
        size += len(piece)
        if size > MAX_RESULT:
            raise ExprError(f"format: result longer than {MAX_RESULT} characters")
        out.append(piece)
    return "".join(out)


def join(value: Any, separator: Any = ",") -> str:
    """``join(array, sep=',')``: the items as strings; a primitive is returned as a string."""
    k = kind(value)
    if k < ARR:
        return to_string(value)
    if k != ARR:
        return ""
    sep = to_string(separator) if is_primitive(separator) else ","  # the runner keeps its default
    text = sep.join(to_string(v) if is_primitive(v) else "" for v in value)
    if len(text) > MAX_RESULT:
        raise ExprError(f"join: result longer than {MAX_RESULT} characters")
    return text


def from_json_(text: Any) -> Any:
    """``fromJSON(string)``."""
    if kind(text) >= ARR:
        raise ExprError("fromJSON takes a string")
    return from_json(to_string(text))


def size(value: Any) -> int:
    """``size(x)`` (buildyard): length of a string, array or object (null is an error: unset)."""
    if kind(value) in (STR, ARR, OBJ):
        return len(value)
    raise ExprError(f"size() takes a string, array or object, not {to_string(value)!r}")


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExprError(f"matches: invalid regular expression {pattern[:80]!r}: {exc}") from None


def matches(text: Any, pattern: Any) -> bool:
    """``x.matches(re)`` (buildyard): the regular expression matches anywhere in ``x``."""
    return _regex(to_string(pattern)).search(to_string(text)) is not None


def in_(item: Any, container: Any) -> bool:
    """``a in b`` (buildyard): an equal array item, an object key, or a substring (any case)."""
    k = kind(container)
    if k == ARR:
        return any(equals(v, item) for v in container)
    if k == OBJ:
        return is_primitive(item) and get_key(container, to_string(item), _MISSING) is not _MISSING
    return contains(container, item)


def always() -> bool:
    """``always()``: true."""
    return True


#: name (lower case) → (function, min args, max args, GitHub's own spelling).
BUILTINS: Final[dict[str, tuple[Callable[..., Any], int, int, str]]] = {
    "contains": (contains, 2, 2, "contains"),
    "startswith": (starts_with, 2, 2, "startsWith"),
    "endswith": (ends_with, 2, 2, "endsWith"),
    "format": (format_, 1, 255, "format"),
    "join": (join, 1, 2, "join"),
    "tojson": (to_json, 1, 1, "toJSON"),
    "fromjson": (from_json_, 1, 1, "fromJSON"),
    "always": (always, 0, 0, "always"),
}
#: buildyard's additions (refused with ``extensions=False``).
EXTENSIONS: Final[dict[str, tuple[Callable[..., Any], int, int, str]]] = {
    "size": (size, 1, 1, "size"),
    "matches": (matches, 2, 2, "matches"),
}
#: GitHub's functions whose value comes from the caller (no default here).
SUPPLIED: Final[dict[str, tuple[int, int, str]]] = {
    "hashfiles": (1, 255, "hashFiles"),
    "success": (0, 0, "success"),
    "failure": (0, 0, "failure"),
    "cancelled": (0, 0, "cancelled"),
}
#: Functions that a member call ``x.f(y)`` may name (``f(x, y)``).
METHODS: Final = frozenset({"startswith", "endswith", "contains", "matches"})
