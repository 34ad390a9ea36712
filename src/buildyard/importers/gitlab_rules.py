"""GitLab's conditions, decided when the pipeline is created (as GitLab does): ``rules``, ``only``/``except``.

Owns the ``rules:if`` expression language (``$VAR``/``${VAR}``, string literals, ``null``, ``/regex/flags``,
``==``, ``!=``, ``=~``, ``!~``, ``&&`` above ``||``, parentheses; a bare variable is true when it is set and
not empty), ``rules:exists`` and ``rules:changes`` (globs against the repository and the files the
trigger changed), and the ref keywords of ``only``/``except``. Pure: the caller gives the
:class:`Trigger` (variables, ref, changed files, existing files).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from buildyard.errors import UserError
from buildyard.importers.gitlab_load import glob_regex

#: Longest regex literal accepted in ``=~`` (the text is untrusted; Python's re can backtrack).
MAX_REGEX = 1000


class RuleError(UserError, ValueError):
    """A GitLab rule or ``rules:if`` expression that does not parse (the converter locates it)."""


@dataclass(frozen=True)
class Trigger:
    """What GitLab knows when it creates the pipeline."""

    variables: Mapping[str, str]
    source: str = "push"
    branch: str = ""
    tag: str = ""
    #: Files changed by the push (``None``: unknown, and ``changes`` is true as GitLab does then).
    changed: tuple[str, ...] | None = None
    exists: Callable[[str], bool] = field(default=lambda _pattern: False)


# --- rules:if ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
     |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
     |(?P<regex>/(?:[^/\\]|\\.)*/[a-z]*)
     |(?P<op>==|!=|=~|!~|&&|\|\||\(|\))
     |(?P<null>null\b)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if m is None or m.end() == i:
            raise RuleError(f"invalid rules:if expression {text!r} at column {i + 1}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        i = m.end()
    return out


class _Parser:
    """Recursive descent over ``||`` → ``&&`` → comparison → operand; evaluates as it parses."""

    def __init__(self, text: str, variables: Mapping[str, str]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.vars = variables

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise RuleError(f"invalid rules:if expression {self.text!r}: it ends too early")
        self.i += 1
        return tok

    def parse(self) -> bool:
        value = self.or_()
        if self.peek() is not None:
            raise RuleError(f"invalid rules:if expression {self.text!r}: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return value

    def or_(self) -> bool:
        value = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            value = value or right
        return value

    def and_(self) -> bool:
        value = self.comparison()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.comparison()
            value = value and right
        return value

    def comparison(self) -> bool:
        """A parenthesised expression, a comparison, or a bare operand (set and not empty)."""
        if self.peek() == ("op", "("):
            self.take()
            value = self.or_()
            if self.take() != ("op", ")"):
                raise RuleError(f"invalid rules:if expression {self.text!r}: missing ')'")
            return value
        left = self.operand()
        tok = self.peek()
        if tok is None or tok[0] != "op" or tok[1] not in ("==", "!=", "=~", "!~"):
            return isinstance(left, str) and left != ""
        op = self.take()[1]
        right = self.operand()
        if op in ("==", "!="):
            if isinstance(right, re.Pattern) or isinstance(left, re.Pattern):
                raise RuleError(f"invalid rules:if expression {self.text!r}: use =~ to match a /regex/")
            return (left == right) == (op == "==")
        if isinstance(right, str):  # a variable holding a /regex/
            right = _regex(right, self.text)
        if not isinstance(right, re.Pattern):
            raise RuleError(f"invalid rules:if expression {self.text!r}: {op} needs a /regex/ on its right")
        matched = isinstance(left, str) and right.search(left) is not None
        return matched == (op == "=~")

    def operand(self) -> str | re.Pattern[str] | None:
        """A variable's value (``None`` when unset), a string, ``null`` or a /regex/."""
        kind, value = self.take()
        if kind == "var":
            return self.vars.get(value.strip("${}"))
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "null":
            return None
        if kind == "regex":
            return _regex(value, self.text)
        raise RuleError(f"invalid rules:if expression {self.text!r}: unexpected {value!r}")


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _regex(literal: str, text: str) -> re.Pattern[str]:
    m = re.fullmatch(r"/(.*)/([a-z]*)", literal, re.DOTALL)
    if m is None:
        raise RuleError(f"invalid rules:if expression {text!r}: {literal!r} is not a /regex/")
    body, flags = m.groups()
    if len(body) > MAX_REGEX:
        raise RuleError(f"regex longer than {MAX_REGEX} characters in {text!r}")
    value = 0
    for flag in flags:
        if flag not in _FLAGS:
            raise RuleError(f"unknown regex flag '{flag}' in {text!r} (GitLab accepts i, m, s)")
        value |= _FLAGS[flag]
    try:
        return re.compile(body.replace("\\/", "/"), value)
    except re.error as exc:
        raise RuleError(f"invalid regex {literal!r} in {text!r}: {exc}") from None


def check_if(text: str, variables: Mapping[str, str]) -> bool:
    """Evaluate a ``rules:if`` (or ``only:variables``) expression."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError('rules:if needs an expression, e.g. $CI_COMMIT_BRANCH == "main"')
    return _Parser(text, variables).parse()


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the first matching rule says about a job (``when == "never"``: not in the pipeline)."""

    when: str
    allow_failure: bool | dict[str, Any] | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    start_in: str | None = None
    needs: list[Any] | None = None
    index: int | None = None


RULE_KEYS = frozenset(
    {"if", "changes", "exists", "when", "allow_failure", "variables", "start_in", "needs", "interruptible"}
)


def _patterns(value: Any, name: str) -> list[str]:
    if isinstance(value, dict):
        if set(value) - {"paths"}:
            extra = sorted(set(value) - {"paths"})[0]
            raise RuleError(f"rules:{name}:{extra} is not supported (list the paths only)")
        value = value.get("paths", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"rules:{name} takes a list of paths or globs")
    return value


def changes_match(value: Any, trigger: Trigger) -> bool:
    """``changes``: true when a changed file matches a glob (always true when the changes are unknown)."""
    patterns = _patterns(value, "changes")
    if trigger.changed is None:
        return True
    regexes = [glob_regex(p.lstrip("/")) for p in patterns]
    return any(rx.fullmatch(path) for rx in regexes for path in trigger.changed)


def exists_match(value: Any, trigger: Trigger) -> bool:
    """``exists``: true when a file of the repository matches one of the globs."""
    return any(trigger.exists(p.lstrip("/")) for p in _patterns(value, "exists"))


def evaluate_rules(
    rules: Any, variables: Mapping[str, str], trigger: Trigger, default_when: str = "on_success"
) -> tuple[Decision, list[tuple[int, str]]]:
    """The first rule whose clauses all match decides; no match means ``never``.

    Returns the decision and problems as ``(rule index, message)`` (a problem makes the rule not match).
    """
    problems: list[tuple[int, str]] = []
    if not isinstance(rules, list):
        return Decision("never"), [(-1, "rules takes a list of rules")]
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            problems.append((i, "each rule is a mapping (if, changes, exists, when, ...)"))
            continue
        unknown = sorted(set(rule) - RULE_KEYS)
        if unknown:
            problems.append(
                (i, f"unknown rules key '{unknown[0]}' (allowed: {', '.join(sorted(RULE_KEYS))})")
            )
            continue
        try:
            matched = True
            if "if" in rule:
                matched = check_if(rule["if"], variables)
            if matched and "changes" in rule:
                matched = changes_match(rule["changes"], trigger)
            if matched and "exists" in rule:
                matched = exists_match(rule["exists"], trigger)
        except RuleError as exc:
            problems.append((i, str(exc)))
            continue
        if matched:
            vars_ = rule.get("variables") or {}
            return (
                Decision(
                    when=str(rule.get("when", default_when)),
                    allow_failure=rule.get("allow_failure"),
                    variables=dict(vars_) if isinstance(vars_, dict) else {},
                    start_in=rule.get("start_in"),
                    needs=rule.get("needs"),
                    index=i,
                ),
                problems,
            )
    return Decision("never"), problems


# --- only / except -------------------------------------------------------------------------------

_REF_KEYWORDS: dict[str, Callable[[Trigger], bool]] = {
    "branches": lambda t: bool(t.branch) and not t.tag and t.source != "merge_request_event",
    "tags": lambda t: bool(t.tag),
    "merge_requests": lambda t: t.source == "merge_request_event",
    "external_pull_requests": lambda t: t.source == "external_pull_request_event",
    "schedules": lambda t: t.source == "schedule",
    "pushes": lambda t: t.source == "push",
    "web": lambda t: t.source == "web",
    "api": lambda t: t.source == "api",
    "triggers": lambda t: t.source == "trigger",
    "pipelines": lambda t: t.source == "pipeline",
    "chat": lambda t: t.source == "chat",
    "external": lambda t: t.source == "external",
}


def _ref_matches(pattern: str, trigger: Trigger) -> bool:
    if pattern in _REF_KEYWORDS:
        return bool(_REF_KEYWORDS[pattern](trigger))
    ref = trigger.tag or trigger.branch
    if pattern.startswith("/") and len(pattern) > 1:
        return _regex(pattern, pattern).search(ref) is not None
    return ref == pattern


def only_except(only: Any, except_: Any, variables: Mapping[str, str], trigger: Trigger) -> bool:
    """Whether ``only``/``except`` keep the job (``only`` defaults to branches and tags)."""

    def normal(value: Any, name: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return {"refs": value}
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"refs", "variables", "changes", "kubernetes"})
            if unknown:
                raise RuleError(f"{name}: unknown key '{unknown[0]}' (allowed: refs, variables, changes)")
            return value
        raise RuleError(f"{name} takes a list of refs or a mapping (refs, variables, changes)")

    def matches(cond: dict[str, Any], *, any_: bool) -> bool:
        results: list[bool] = []
        if "refs" in cond:
            results.append(any(_ref_matches(str(r), trigger) for r in cond["refs"] or []))
        if "variables" in cond:
            results.append(any(check_if(str(v), variables) for v in cond["variables"] or []))
        if "changes" in cond:
            results.append(changes_match(cond["changes"], trigger))
        if "kubernetes" in cond:
            results.append(False)  # no Kubernetes integration here
        return any(results) if any_ else all(results)

    keep = normal(only, "only") or {"refs": ["branches", "tags"]}
    drop = normal(except_, "except")
    return matches(keep, any_=False) and not (drop and matches(drop, any_=True))
