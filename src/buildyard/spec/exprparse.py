"""Tokenizer and recursive-descent parser of the expression language (GitHub Actions' grammar).

Precedence, loosest first (as GitHub): ``||``, ``&&``, ``== !=``, ``< <= > >=`` (and buildyard's
``in``), ``!``, then postfix ``.name``, ``.*``, ``[index]``, ``[*]`` on a context, a call or a
parenthesised expression. Literals: ``null``, ``true``, ``false``, numbers (decimal, exponent,
``0x`` hex and ``0o`` octal within 32 bits, ``NaN``, ``Infinity``), single-quoted strings (``''`` is
a quote).

Buildyard's extensions, refused when ``extensions=False``: double-quoted strings with backslash
escapes, list literals ``[a, b]``, the ``in`` operator and member calls ``x.startsWith(y)``.

Bounds: an expression is at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels deep (GitHub's
own limits); deeper input is an ``ExprError``, never a ``RecursionError``. Pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from buildyard.spec.exprvalues import ExprError, parse_number

#: GitHub's limits on one expression.
MAX_LENGTH: Final = 21_000
MAX_DEPTH: Final = 50
#: Words that are operators in Python or CEL, not here.
_NOT_OPERATORS: Final = frozenset(
    {"and", "or", "not", "is", "lambda", "if", "else", "for", "import", "True", "False", "None"}
)
_KEYWORDS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
}


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal value."""

    value: Any


@dataclass(frozen=True, slots=True)
class Name:
    """A context (``github``, ``matrix``, ``vars``…), read from the evaluation context."""

    name: str


@dataclass(frozen=True, slots=True)
class Index:
    """``obj[key]``; ``obj.name`` is ``Index(obj, Lit('name'), dot=True)``."""

    obj: Node
    key: Node
    dot: bool = False


@dataclass(frozen=True, slots=True)
class Star:
    """``obj.*`` or ``obj[*]``: an object filter."""

    obj: Node


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args…)``; ``receiver.name(args…)`` (an extension) is the call with the receiver first."""

    name: str
    args: tuple[Node, ...]
    method: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    """``!operand``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` for ``== != < <= > >= in``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic:
    """``a && b && …`` or ``a || b || …``: evaluates to the deciding operand's value."""

    op: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListLit:
    """``[a, b]`` (an extension)."""

    items: tuple[Node, ...]


Node = Lit | Name | Index | Star | Call | Not | Compare | Logic | ListLit

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      |(?P<num>(?:0x[0-9a-fA-F]+|0o[0-7]+|-?(?:[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|Infinity))(?![\w.-]))
      |(?P<str>'(?:[^']|'')*')
      |(?P<dstr>"(?:[^"\\]|\\.)*")
      |(?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\].,*])
      |(?P<word>[A-Za-z_][A-Za-z0-9_-]*)
      |(?P<bad>.)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind (``num str op word end``), text, value and 0-based column."""

    kind: str
    text: str
    pos: int
    value: Any = None


def show(text: str) -> str:
    """``text`` quoted for a one-line message (escaped, shortened)."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body, flags=re.DOTALL)


def tokenize(text: str, *, extensions: bool = True) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"invalid expression: longer than {MAX_LENGTH} characters")
    out: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the last alternative matches any character
            raise _error(text, pos, "unexpected character")
        kind, tok = m.lastgroup or "bad", m.group()
        if kind == "num":
            value = parse_number(tok)
            if value != value:  # noqa: PLR0124 - NaN: a hex or octal literal beyond 32 bits, as the runner
                raise _error(text, pos, f"invalid number {tok[:40]!r}")
            exact = _is_int_literal(tok) and abs(value) < 2**53
            out.append(Token("num", tok, pos, int(value) if exact else value))
        elif kind == "str":
            out.append(Token("str", tok, pos, tok[1:-1].replace("''", "'")))
        elif kind == "dstr":
            if not extensions:
                raise _error(text, pos, "strings take single quotes ('), not double quotes")
            out.append(Token("str", tok, pos, _unescape(tok[1:-1])))
        elif kind in ("op", "word"):
            out.append(Token(kind, tok, pos))
        elif kind == "bad":
            if tok in "'\"":
                raise _error(text, pos, "unterminated string")
            raise _error(text, pos, f"unexpected {tok!r}")
        pos = m.end()
    out.append(Token("end", "", n))
    return out


def _is_int_literal(tok: str) -> bool:
    return tok[:2] in ("0x", "0o") or tok.lstrip("-").isdigit()


def _error(text: str, pos: int, what: str) -> ExprError:
    return ExprError(f"invalid expression {show(text)}: {what} at column {pos + 1}")


class _Parser:
    __slots__ = ("depth", "extensions", "i", "text", "tokens")

    def __init__(self, text: str, *, extensions: bool) -> None:
        self.text = text
        self.extensions = extensions
        self.tokens = tokenize(text, extensions=extensions)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def accept(self, *ops: str) -> Token | None:
        tok = self.tokens[self.i]
        if tok.kind == "op" and tok.text in ops:
            self.i += 1
            return tok
        return None

    def fail(self, tok: Token, what: str | None = None) -> ExprError:
        if what is None:
            if tok.kind == "end":
                what = "the expression ends too early"
            elif tok.kind == "word" and tok.text in ("True", "False", "None"):
                what = f"'{tok.text}' is Python: write true, false or null"
            elif tok.kind == "word" and tok.text in _NOT_OPERATORS:
                what = f"'{tok.text}' is not an operator here (use &&, ||, !)"
            else:
                what = f"unexpected {tok.text!r}"
        return _error(self.text, tok.pos, what)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(self.peek(), f"nested more than {MAX_DEPTH} levels deep")

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExprError("empty expression")
        node = self.expression()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == "word" and tok.text not in _NOT_OPERATORS and tok.text != "in":
                raise self.fail(tok, f"'{tok.text}' is not an operator here (use &&, ||, !)")
            raise self.fail(tok)
        return node

    def expression(self) -> Node:
        self.enter()
        node = self.logic("||", self.logic_and)
        self.depth -= 1
        return node

    def logic_and(self) -> Node:
        return self.logic("&&", self.equality)

    def logic(self, op: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        if not (self.peek().kind == "op" and self.peek().text == op):
            return first
        args = [first]
        while self.accept(op):
            args.append(operand())
        return Logic(op, tuple(args))

    def equality(self) -> Node:
        node = self.comparison()
        entered = 0
        while tok := self.accept("==", "!="):
            self.enter()  # a == b == c nests to the left: bounded like any nesting
            entered += 1
            node = Compare(tok.text, node, self.comparison())
        self.depth -= entered
        return node

    def comparison(self) -> Node:
        node = self.unary()
        entered = 0
        while True:
            tok = self.accept("<", "<=", ">", ">=")
            if tok is None and self.extensions and self.peek().kind == "word" and self.peek().text == "in":
                tok = self.take()
            if tok is None:
                self.depth -= entered
                return node
            self.enter()
            entered += 1
            node = Compare(tok.text, node, self.unary())

    def unary(self) -> Node:
        if self.accept("!"):
            self.enter()
            node: Node = Not(self.unary())
            self.depth -= 1
            return node
        return self.postfix()

    def postfix(self) -> Node:
        tok = self.peek()
        node = self.primary()
        if not isinstance(node, Name | Call) and not (tok.kind == "op" and tok.text == "("):
            return node
        entered = 0
        while True:
            if self.accept("["):
                self.enter()
                entered += 1
                node = Star(node) if self.accept("*") else Index(node, self.expression())
                self.expect("]")
            elif self.accept("."):
                self.enter()
                entered += 1
                name = self.take()
                if name.kind == "op" and name.text == "*":
                    node = Star(node)
                elif name.kind != "word":
                    raise self.fail(name, f"expected a property name after '.', got {name.text!r}")
                elif self.extensions and self.accept("("):
                    node = Call(name.text, (node, *self.arguments()), method=True)
                else:
                    node = Index(node, Lit(name.text), dot=True)
            else:
                self.depth -= entered
                return node

    def arguments(self) -> list[Node]:
        args: list[Node] = []
        while not self.accept(")"):
            args.append(self.expression())
            if self.peek().text != ")":
                self.expect(",")
        return args

    def expect(self, op: str) -> None:
        if not self.accept(op):
            tok = self.peek()
            if tok.kind == "word":
                raise self.fail(tok, f"expected {op!r}: '{tok.text}' is not an operator here (use &&, ||, !)")
            raise self.fail(tok, f"expected {op!r}" + (f", got {tok.text!r}" if tok.kind != "end" else ""))

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            return Lit(tok.value)
        if tok.kind == "word":
            if tok.text in _KEYWORDS:
                return Lit(_KEYWORDS[tok.text])
            if self.accept("("):
                return Call(tok.text, tuple(self.arguments()))
            if tok.text in _NOT_OPERATORS:
                raise self.fail(tok)
            return Name(tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text == "[" and self.extensions:
            self.enter()
            items: list[Node] = []
            while not self.accept("]"):
                items.append(self.expression())
                if self.peek().text != "]":
                    self.expect(",")
            self.depth -= 1
            return ListLit(tuple(items))
        raise self.fail(tok)


def parse(text: str, *, extensions: bool = True) -> Node:
    """The syntax tree of one expression (no ``${{ }}``); ``ExprError`` with the column when invalid."""
    return _Parser(text, extensions=extensions).parse()


def walk(node: Node) -> list[Node]:
    """Every node of a tree, parents before children, left to right (iterative)."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        children: tuple[Node, ...]
        if isinstance(n, Index):
            children = (n.obj, n.key)
        elif isinstance(n, Star):
            children = (n.obj,)
        elif isinstance(n, Call | Logic):
            children = n.args
        elif isinstance(n, ListLit):
            children = n.items
        elif isinstance(n, Not):
            children = (n.operand,)
        elif isinstance(n, Compare):
            children = (n.left, n.right)
        else:
            children = ()
        stack.extend(reversed(children))
    return out
