"""GitHub Actions expressions (``${{ … }}``) with GitHub's semantics, for the GitHub importer.

The adapter this importer codes against: ``evaluate(text, context, *, functions=None)``,
``truthy(value)``, ``to_string(value)``, ``interpolate(text, context, *, functions=None)``, contexts as
plain dicts. It is the API the shared evaluator of ``buildyard.spec.expr`` is being rewritten to
(branch ``ghexpr``); until that lands, this module implements it: a tokenizer and a recursive-descent
parser (never ``eval``), GitHub's operator precedence (``()`` ``[]`` ``.`` ``!`` ``< <= > >=``
``== !=`` ``&&`` ``||``), the ``*`` object filter, loose equality (different types compare as
numbers: null 0, booleans 1/0, strings parsed as JSON numbers else NaN; strings case-insensitively),
``&&``/``||`` returning an operand, case-insensitive context and property names (a missing property is
null), and the functions ``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``,
``toJSON``, ``fromJSON``. ``hashFiles`` and the status functions (``success()``, ``failure()``,
``always()``, ``cancelled()``) depend on where an expression is evaluated: the caller passes them in
``functions``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from buildyard.errors import UserError

#: Longest expression text accepted (GitHub's own limit is 21,000 characters).
MAX_EXPRESSION = 21_000
#: Deepest nesting of parentheses, calls and indexes.
MAX_DEPTH = 100
STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})

Function = Callable[..., Any]


class ExprError(UserError, ValueError):
    """An expression that does not parse or cannot be evaluated."""


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      |(?P<str>'(?:[^']|'')*')
      |(?P<num>-?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
      |(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\[|\]|\.|,|\*)
      |(?P<word>[A-Za-z_][A-Za-z0-9_-]*)""",
    re.VERBOSE,
)
_INTERP = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    value: str
    at: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise ExprError(f"invalid expression {text!r}: unexpected {text[i]!r} at position {i + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), i))
        i = m.end()
    return out


class _Filtered(list[Any]):
    """The result of a ``*`` filter: further dereferences apply to each element."""


# -- the tree: tuples, so parsing is cheap and evaluation a small match --
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self, value: str | None = None) -> _Tok | None:
        tok = self.toks[self.i] if self.i < len(self.toks) else None
        if value is not None and (tok is None or tok.kind != "op" or tok.value != value):
            return None
        return tok

    def expect(self, value: str) -> None:
        if self.peek(value) is None:
            tok = self.peek()
            got = f"'{tok.value}'" if tok else "the end"
            raise ExprError(f"invalid expression {self.text!r}: expected '{value}', got {got}")
        self.i += 1

    def parse(self) -> Node:
        if not self.toks:
            raise ExprError("empty expression")
        node = self.or_()
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            raise ExprError(f"invalid expression {self.text!r}: unexpected '{tok.value}' at {tok.at + 1}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek("||"):
            self.i += 1
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.eq()
        while self.peek("&&"):
            self.i += 1
            node = ("and", node, self.eq())
        return node

    def eq(self) -> Node:
        node = self.rel()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value in ("==", "!="):
            self.i += 1
            node = ("cmp", tok.value, node, self.rel())
        return node

    def rel(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value in ("<", "<=", ">", ">="):
            self.i += 1
            node = ("cmp", tok.value, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek("!"):
            self.i += 1
            return ("not", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.i += 1
                tok = self.peek()
                if tok is not None and tok.kind == "op" and tok.value == "*":
                    self.i += 1
                    node = ("star", node)
                elif tok is not None and tok.kind == "word":
                    self.i += 1
                    node = ("get", node, ("lit", tok.value))
                else:
                    raise ExprError(f"invalid expression {self.text!r}: expected a property name after '.'")
            elif self.peek("["):
                self.i += 1
                self.nest()
                if self.peek("*"):
                    self.i += 1
                    node = ("star", node)
                else:
                    node = ("get", node, self.or_())
                self.depth -= 1
                self.expect("]")
            else:
                return node

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise ExprError(f"invalid expression {self.text!r}: unexpected end")
        self.i += 1
        if tok.kind == "str":
            return ("lit", tok.value[1:-1].replace("''", "'"))
        if tok.kind == "num":
            return ("lit", _number(tok.value))
        if tok.kind == "op" and tok.value == "(":
            self.nest()
            node = self.or_()
            self.depth -= 1
            self.expect(")")
            return node
        if tok.kind == "word":
            word = tok.value
            if self.peek("("):
                self.i += 1
                self.nest()
                args: list[Node] = []
                if not self.peek(")"):
                    args.append(self.or_())
                    while self.peek(","):
                        self.i += 1
                        args.append(self.or_())
                self.depth -= 1
                self.expect(")")
                return ("call", word.lower(), tuple(args))
            lowered = word.lower()
            if lowered in ("true", "false"):
                return ("lit", lowered == "true")
            if lowered == "null":
                return ("lit", None)
            if lowered in ("nan", "infinity"):
                return ("lit", math.nan if lowered == "nan" else math.inf)
            return ("name", word)
        raise ExprError(f"invalid expression {self.text!r}: unexpected '{tok.value}' at {tok.at + 1}")


def _number(text: str) -> float:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    value = float(int(body, 16)) if body.lower().startswith("0x") else float(body)
    return -value if neg else value


_CACHE: dict[str, Node] = {}


def parse(text: str) -> Node:
    """The syntax tree of ``text`` (cached); raise ``ExprError`` when it does not parse."""
    text = text.strip()
    node = _CACHE.get(text)
    if node is None:
        if len(text) > MAX_EXPRESSION:
            raise ExprError(f"expression longer than {MAX_EXPRESSION} characters")
        node = _Parser(text).parse()
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[text] = node
    return node


def called(text: str) -> set[str]:
    """Lower-cased names of the functions ``text`` calls."""
    out: set[str] = set()
    _walk(parse(text), lambda n: out.add(n[1]) if n[0] == "call" else None)
    return out


def names(text: str) -> set[str]:
    """Lower-cased top-level context names ``text`` reads (``needs.a.result`` -> ``needs``)."""
    out: set[str] = set()
    _walk(parse(text), lambda n: out.add(str(n[1]).lower()) if n[0] == "name" else None)
    return out


def _walk(node: Node, visit: Callable[[Node], None]) -> None:
    visit(node)
    for part in node[1:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            _walk(part, visit)
        elif isinstance(part, tuple):
            for sub in part:
                if isinstance(sub, tuple):
                    _walk(sub, visit)


# -- values --


def truthy(value: Any) -> bool:
    """GitHub's truthiness: null, false, 0, NaN and '' are false; everything else true."""
    if value is None or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def to_string(value: Any) -> str:
    """How a value is written into text: null '', booleans 'true'/'false', integral numbers without
    a fraction, arrays and objects as 'Array'/'Object'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num_text(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "Array"
    return "Object"


def _num_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return _number(text) if re.fullmatch(r"-?0x[0-9a-fA-F]+", text) else float(json.loads(text))
        except (ValueError, TypeError):
            return math.nan
    return math.nan


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return "obj"


def _compare(op: str, left: Any, right: Any) -> bool:
    lk, rk = _kind(left), _kind(right)
    if lk == rk == "str":
        a, b = str(left).casefold(), str(right).casefold()
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if lk == rk == "obj":
        same = left is right
        return {"==": same, "!=": not same}.get(op, False)
    if lk == rk == "null":
        return op in ("==", "<=", ">=")
    x, y = _to_number(left), _to_number(right)
    if op == "!=":
        return x != y
    return {"==": x == y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, _Filtered):
        out = _Filtered()
        for item in value:
            got = _get(item, key)
            if got is not None:
                out.append(got)
        return out
    if isinstance(value, Mapping):
        if not isinstance(key, str):
            return None
        if key in value:
            return value[key]
        folded = key.casefold()
        for k, v in value.items():
            if str(k).casefold() == folded:
                return v
        return None
    if isinstance(value, list) and isinstance(key, int | float) and not isinstance(key, bool):
        if math.isnan(key) or key != int(key):
            return None
        index = int(key)
        return value[index] if 0 <= index < len(value) else None
    return None


def _star(value: Any) -> _Filtered:
    if isinstance(value, _Filtered):
        out = _Filtered()
        for item in value:
            out.extend(_star(item))
        return out
    if isinstance(value, Mapping):
        return _Filtered(value.values())
    if isinstance(value, list):
        return _Filtered(value)
    return _Filtered()


def _contains(search: Any, item: Any) -> bool:
    if isinstance(search, list):
        return any(_compare("==", element, item) for element in search)
    return to_string(item).casefold() in to_string(search).casefold()


def _format(template: Any, *args: Any) -> str:
    text = to_string(template)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            out.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            out.append("}")
            i += 2
        elif ch == "{":
            end = text.find("}", i)
            index = text[i + 1 : end] if end > 0 else ""
            if not index.isdigit() or int(index) >= len(args):
                raise ExprError(f"format: invalid placeholder in {text!r}")
            out.append(to_string(args[int(index)]))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _join(value: Any, separator: Any = ",") -> str:
    if isinstance(value, list):
        return to_string(separator).join(to_string(v) for v in value)
    return to_string(value)


def _to_json(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, _Filtered) else value, indent=2)


def _from_json(value: Any) -> Any:
    try:
        return json.loads(to_string(value))
    except ValueError as exc:
        raise ExprError(f"fromJSON: not JSON: {to_string(value)[:80]!r} ({exc.args[0]})") from None


BUILTINS: dict[str, Function] = {
    "contains": _contains,
    "startswith": lambda s, p: to_string(s).casefold().startswith(to_string(p).casefold()),
    "endswith": lambda s, p: to_string(s).casefold().endswith(to_string(p).casefold()),
    "format": _format,
    "join": _join,
    "tojson": _to_json,
    "fromjson": _from_json,
}


def evaluate(
    text: str, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None
) -> Any:
    """Evaluate an expression (without ``${{ }}``) against ``context`` (plain JSON-like values)."""
    node = parse(text)
    table = dict(BUILTINS)
    for name, fn in (functions or {}).items():
        table[name.lower()] = fn
    ctx = {str(k).casefold(): v for k, v in context.items()}
    value = _eval(node, ctx, table, text)
    return list(value) if isinstance(value, _Filtered) else value


def _eval(node: Node, ctx: dict[str, Any], fns: dict[str, Function], text: str) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        key = str(node[1]).casefold()
        if key not in ctx:
            raise ExprError(f"unrecognized named-value '{node[1]}' in {text!r}")
        return ctx[key]
    if kind == "get":
        return _get(_eval(node[1], ctx, fns, text), _eval(node[2], ctx, fns, text))
    if kind == "star":
        return _star(_eval(node[1], ctx, fns, text))
    if kind == "not":
        return not truthy(_eval(node[1], ctx, fns, text))
    if kind == "and":
        left = _eval(node[1], ctx, fns, text)
        return _eval(node[2], ctx, fns, text) if truthy(left) else left
    if kind == "or":
        left = _eval(node[1], ctx, fns, text)
        return left if truthy(left) else _eval(node[2], ctx, fns, text)
    if kind == "cmp":
        return _compare(node[1], _eval(node[2], ctx, fns, text), _eval(node[3], ctx, fns, text))
    if kind == "call":
        fn = fns.get(node[1])
        if fn is None:
            where = (
                " (only in if: conditions)" if node[1] in STATUS_FUNCTIONS or node[1] == "hashfiles" else ""
            )
            raise ExprError(f"unknown function '{node[1]}' in {text!r}{where}")
        args = [_eval(a, ctx, fns, text) for a in node[2]]
        try:
            return fn(*args)
        except TypeError:
            raise ExprError(f"wrong number of arguments to {node[1]}() in {text!r}") from None
    raise AssertionError(kind)  # pragma: no cover - the parser makes no other node


def strip_wrapper(text: str) -> str:
    """An ``if:`` written as ``${{ expr }}`` (the whole value) -> ``expr``."""
    text = text.strip()
    m = _INTERP.fullmatch(text)
    return m.group(1).strip() if m else text


def interpolate(
    text: str, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None
) -> str:
    """Replace every ``${{ expr }}`` in ``text`` with its value as text."""
    if "${{" not in text:
        return text
    return _INTERP.sub(lambda m: to_string(evaluate(m.group(1), context, functions=functions)), text)


def interpolations(text: str) -> list[str]:
    """The expressions inside ``${{ … }}`` in ``text``."""
    return [m.strip() for m in _INTERP.findall(text)]


def value_of(raw: Any, context: Mapping[str, Any], *, functions: Mapping[str, Function] | None = None) -> Any:
    """A YAML value with expressions: ``${{ x }}`` alone keeps x's type; other text is interpolated;
    lists and mappings are evaluated item by item."""
    if isinstance(raw, str):
        m = _INTERP.fullmatch(raw.strip())
        if m is not None:
            return evaluate(m.group(1), context, functions=functions)
        return interpolate(raw, context, functions=functions)
    if isinstance(raw, list):
        return [value_of(v, context, functions=functions) for v in raw]
    if isinstance(raw, dict):
        return {k: value_of(v, context, functions=functions) for k, v in raw.items()}
    return raw
