"""buildyard ``if:`` conditions and ``${{ }}`` interpolations translated to GitLab CI and GitHub Actions.

A small parser of its own reads the subset both services can express — ``&&``, ``||``, ``!``,
parentheses, ``==``/``!=`` against a string or ``null``, a bare name (truthiness), the methods
``startsWith``/``endsWith``/``contains``/``matches`` with a string argument — over the trigger context
(``event``, ``branch``, ``tag``, ``ref``, ``sha``, ``vars.X``, ``env.X``). Anything else (``needs``,
``matrix`` in a job condition, ``size``, ``in``, numbers…) raises :class:`Untranslatable`; the
exporter then lets buildyard decide the condition itself (a ``buildyard run JOB`` job) and says so.
Pure: no I/O. It does not evaluate anything, so it stays independent of the evaluator in
``buildyard.spec.expr``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from buildyard.errors import BuildyardError

#: Deepest nesting of parentheses and ``!`` read (a condition is a line, not a program).
MAX_DEPTH = 50


class Untranslatable(BuildyardError, ValueError):
    """A condition or interpolation the target service cannot express; the message says why (the
    exporters turn it into a note, never an error)."""


@dataclass(frozen=True)
class Name:
    """A context value: ``branch``, ``vars.DEPLOY``."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Lit:
    """A literal: a string, ``true``/``false`` or ``null``."""

    value: str | bool | None


@dataclass(frozen=True)
class Not:
    """``!x``."""

    operand: Node


@dataclass(frozen=True)
class BoolOp:
    """``a && b`` (``op`` ``&&``) or ``a || b``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    """``name == 'text'`` / ``name != null`` (the name always on the left)."""

    op: str
    name: Name
    value: str | None


@dataclass(frozen=True)
class Method:
    """``name.startsWith('x')`` and its siblings."""

    method: str
    name: Name
    arg: str


Node = Name | Lit | Not | BoolOp | Compare | Method

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*'|\"[^\"]*\")|(?P<op>&&|\|\||==|!=|!|\(|\)|\.|,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_-]*)|(?P<other>\S))"
)
METHODS = ("startsWith", "endsWith", "contains", "matches")
ROOTS = frozenset({"event", "branch", "tag", "ref", "sha"})


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        kind = m.lastgroup or "other"
        value = m.group(kind)
        if kind == "other":
            raise Untranslatable(f"'{value}' cannot be translated")
        if kind == "str":
            if "\\" in value:  # an escape in one evaluator, a plain backslash in GitHub's: ambiguous
                raise Untranslatable("a backslash in a string")
            value = value[1:-1].replace("''", "'") if value[0] == "'" else value[1:-1]
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise Untranslatable(f"expected {value or 'more'}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise Untranslatable(f"unexpected '{self.peek()}'")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            node = BoolOp("||", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            node = BoolOp("&&", node, self.unary())
        return node

    def unary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Untranslatable("nested too deeply")
        try:
            if self.peek() == ("op", "!"):
                self.take()
                return Not(self.unary())
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Node:
        left = self.primary()
        token = self.peek()
        if token is not None and token[1] in ("==", "!="):
            self.take()
            right = self.primary()
            if isinstance(left, Lit) and isinstance(right, Name):
                left, right = right, left
            if isinstance(left, Name) and isinstance(right, Lit) and not isinstance(right.value, bool):
                return Compare(token[1], left, right.value)
            raise Untranslatable("only a name compared with a string or null can be translated")
        return left

    def primary(self) -> Node:
        kind, value = self.take()
        if value == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind == "str":
            return Lit(value)
        if kind != "word":
            raise Untranslatable(f"unexpected '{value}'")
        if value in ("true", "false", "null"):
            return Lit({"true": True, "false": False, "null": None}[value])
        path = [value]
        while self.peek() == ("op", "."):
            self.take()
            _, part = self.take()
            if part in METHODS and self.peek() == ("op", "("):
                self.take()
                arg_kind, arg = self.take()
                self.take(")")
                if arg_kind != "str":
                    raise Untranslatable(f"{part} takes a string here")
                return Method(part, _name(path), arg)
            path.append(part)
        if self.peek() == ("op", "("):
            raise Untranslatable(f"function '{value}' cannot be translated")
        return _name(path)


def _name(path: list[str]) -> Name:
    if (len(path) == 1 and path[0] in ROOTS) or (len(path) == 2 and path[0] in ("vars", "env")):
        return Name(tuple(path))
    shown = ".".join(path)
    if path[0] in ("needs", "matrix"):
        raise Untranslatable(f"'{shown}' is only known while the pipeline runs")
    raise Untranslatable(f"'{shown}' has no equivalent")


def parse(text: str) -> Node:
    """The condition as a tree; :class:`Untranslatable` when it uses more than both services can say."""
    return _Parser(text.strip()).parse()


def _push_not(node: Node, negate: bool = False) -> Node:
    """The same condition with ``!`` only in front of names (De Morgan): GitLab has no ``!``."""
    if isinstance(node, Not):
        return _push_not(node.operand, not negate)
    if isinstance(node, BoolOp):
        op = ({"&&": "||", "||": "&&"}[node.op]) if negate else node.op
        return BoolOp(op, _push_not(node.left, negate), _push_not(node.right, negate))
    if isinstance(node, Compare) and negate:
        return Compare("!=" if node.op == "==" else "==", node.name, node.value)
    if isinstance(node, Lit) and negate:
        return Lit(not node.value)
    if negate:
        return Not(node)
    return node


# -- GitLab --

#: buildyard's events as ``$CI_PIPELINE_SOURCE`` (a tag push is a push with ``$CI_COMMIT_TAG``).
GITLAB_SOURCES = {
    "push": "push",
    "tag": "push",
    "pull_request": "merge_request_event",
    "schedule": "schedule",
}
GITLAB_SOURCES["manual"] = "web"
GITLAB_VARIABLES = {
    "branch": "CI_COMMIT_BRANCH",
    "tag": "CI_COMMIT_TAG",
    "ref": "CI_COMMIT_REF_NAME",
    "sha": "CI_COMMIT_SHA",
    "event": "CI_PIPELINE_SOURCE",
}
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def _gitlab_string(value: str) -> str:
    if any(c in value for c in "\"'\\\n\r"):
        raise Untranslatable(f"the string {value!r} cannot be written in a GitLab rule")
    return f'"{value}"'


def _gitlab_var(name: Name) -> str:
    return f"${GITLAB_VARIABLES[name.path[0]]}" if len(name.path) == 1 else f"${name.path[1]}"


def _gitlab_regex(pattern: str) -> str:
    if "\n" in pattern:
        raise Untranslatable("a multi-line pattern")
    return "/" + pattern.replace("/", "\\/") + "/"


def _gitlab(node: Node, parent: str = "") -> str:
    if isinstance(node, BoolOp):
        text = f"{_gitlab(node.left, node.op)} {node.op} {_gitlab(node.right, node.op)}"
        return f"({text})" if parent == "&&" and node.op == "||" else text
    if isinstance(node, Compare):
        var = _gitlab_var(node.name)
        if node.value is None:
            return f"{var} {node.op} null"
        if node.name.path == ("event",):
            return _gitlab_event(node.value, negate=node.op == "!=", parent=parent)
        return f"{var} {node.op} {_gitlab_string(node.value)}"
    if isinstance(node, Method):
        var = _gitlab_var(node.name)
        escaped = _REGEX_SPECIAL.sub(r"\\\1", node.arg)
        pattern = {
            "startsWith": f"^{escaped}",
            "endsWith": f"{escaped}$",
            "contains": escaped,
            "matches": node.arg,
        }[node.method]
        return f"{var} =~ {_gitlab_regex(pattern)}"
    if isinstance(node, Name):
        var = _gitlab_var(node)
        return f'({var} != null && {var} != "")' if parent == "&&" else f'{var} != null && {var} != ""'
    if isinstance(node, Not):
        inner = node.operand
        if isinstance(inner, Method):
            return _gitlab(inner).replace(" =~ ", " !~ ", 1)
        if isinstance(inner, Name):
            var = _gitlab_var(inner)
            text = f'{var} == null || {var} == ""'
            return f"({text})" if parent == "&&" else text
    raise Untranslatable("true/false on their own cannot be a GitLab rule")


def _gitlab_event(event: str, *, negate: bool, parent: str) -> str:
    source = GITLAB_SOURCES.get(event)
    if source is None:
        raise Untranslatable(f"event {event!r} is not one buildyard knows")
    op = "!=" if negate else "=="
    text = f'$CI_PIPELINE_SOURCE {op} "{source}"'
    if event in ("push", "tag"):
        tag = ("==" if event == "push" else "!=") if not negate else ("!=" if event == "push" else "==")
        joiner = " || " if negate else " && "
        text = f"{text}{joiner}$CI_COMMIT_TAG {tag} null"
        if negate or parent == "&&":
            return f"({text})"
    return text


def to_gitlab(text: str) -> str:
    """A ``rules: - if:`` expression with GitLab's ``CI_*`` variables for the buildyard condition."""
    return _gitlab(_push_not(parse(text)))


# -- GitHub --

GITHUB_EVENTS = {
    "push": "github.event_name == 'push' && github.ref_type == 'branch'",
    "tag": "github.event_name == 'push' && github.ref_type == 'tag'",
    "pull_request": "github.event_name == 'pull_request'",
    "schedule": "github.event_name == 'schedule'",
    "manual": "github.event_name == 'workflow_dispatch'",
}
#: buildyard's trigger values in GitHub's contexts (a pull request's branch is its head branch).
GITHUB_VALUES = {
    "branch": "(github.head_ref || (github.ref_type == 'branch' && github.ref_name || ''))",
    "tag": "(github.ref_type == 'tag' && github.ref_name || '')",
    "ref": "github.ref",
    "sha": "github.sha",
}


def _github_string(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise Untranslatable("a multi-line string")
    return "'" + value.replace("'", "''") + "'"


def _github_value(name: Name, defaults: Mapping[str, str]) -> str:
    if len(name.path) == 1:
        if name.path[0] == "event":
            raise Untranslatable("the event is compared with a string, not used as a value")
        return GITHUB_VALUES[name.path[0]]
    root, field = name.path
    if root == "env":
        raise Untranslatable("the machine's environment is not known when GitHub decides a job")
    if field in defaults:  # a pipeline variable: its value, unless the repository's variable overrides it
        return f"(vars.{field} || {_github_string(defaults[field])})"
    return f"vars.{field}"


def _github(node: Node, defaults: Mapping[str, str], parent: str = "") -> str:
    if isinstance(node, BoolOp):
        text = f"{_github(node.left, defaults, node.op)} {node.op} {_github(node.right, defaults, node.op)}"
        return f"({text})" if parent else text
    if isinstance(node, Not):
        return f"!({_github(node.operand, defaults)})"
    if isinstance(node, Compare):
        if node.name.path == ("event",):
            if node.value not in GITHUB_EVENTS:
                raise Untranslatable(f"event {node.value!r} is not one buildyard knows")
            text = GITHUB_EVENTS[node.value]
            return f"({text})" if node.op == "==" else f"!({text})"
        value = "null" if node.value is None else _github_string(node.value)
        return f"{_github_value(node.name, defaults)} {node.op} {value}"
    if isinstance(node, Method):
        if node.method == "matches":
            raise Untranslatable("GitHub expressions have no regular expressions")
        return f"{node.method}({_github_value(node.name, defaults)}, {_github_string(node.arg)})"
    if isinstance(node, Name):
        return _github_value(node, defaults)
    return "true" if node.value is True else "false" if node.value is False else "null"


def to_github(text: str, variables: Mapping[str, str] | None = None) -> str:
    """A job ``if:`` expression with GitHub's contexts; ``variables`` are the pipeline's (their values
    are the defaults of the repository variables of the same name)."""
    return _github(parse(text), variables or {})


# -- interpolations in scripts and environment values --

_INTERP = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def interpolate_gitlab(text: str) -> str:
    """``${{ matrix.X }}`` / ``${{ vars.X }}`` / ``${{ sha }}``… as shell variables GitLab sets."""

    def sub(m: re.Match[str]) -> str:
        path: tuple[str, ...] = tuple(str(m.group(1)).strip().split("."))
        if len(path) == 2 and path[0] in ("matrix", "vars", "env") and re.fullmatch(r"\w+", path[1]):
            return "${" + path[1] + "}"
        if len(path) == 1 and path[0] in GITLAB_VARIABLES and path[0] != "event":
            return "${" + GITLAB_VARIABLES[path[0]] + "}"
        raise Untranslatable(f"${{{{ {m.group(1).strip()} }}}} has no GitLab equivalent")

    return _INTERP.sub(sub, text)


def interpolate_github(text: str) -> str:
    """``${{ … }}`` with GitHub's contexts (pipeline variables are in the workflow's ``env``)."""

    def sub(m: re.Match[str]) -> str:
        path: tuple[str, ...] = tuple(str(m.group(1)).strip().split("."))
        if len(path) == 2 and path[0] in ("matrix", "vars", "env") and re.fullmatch(r"\w+", path[1]):
            return "${{ " + ("matrix" if path[0] == "matrix" else "env") + "." + path[1] + " }}"
        if len(path) == 1 and path[0] in GITHUB_VALUES:
            return "${{ " + GITHUB_VALUES[path[0]] + " }}"
        raise Untranslatable(f"${{{{ {m.group(1).strip()} }}}} has no GitHub equivalent")

    return _INTERP.sub(sub, text)
