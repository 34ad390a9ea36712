"""Filter patterns of ``on:`` (GitHub's glob semantics) and the checks of cron expressions and time zones.

Pure functions used by the loader (to report bad patterns as located errors) and by
``buildyard.triggers`` (to decide whether an event starts the pipeline). GitHub's filter pattern
cheat sheet is the contract:

- ``*`` matches zero or more characters except ``/``; ``**`` matches zero or more of any character;
- ``?`` matches zero or one of the preceding character, ``+`` one or more of it;
- ``[a-z0-9]`` matches one character of the set or range; ``\\`` escapes the next character;
- a pattern starting with ``!`` excludes what earlier patterns matched; patterns apply in order and the
  last one that matches a name decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from buildyard.errors import UserError

#: Most characters of one filter pattern (they are compiled to regular expressions).
MAX_PATTERN_CHARS = 1024


class PatternError(UserError):
    """A filter pattern that cannot be compiled (the message says why)."""


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression matching exactly what ``pattern`` (without a leading ``!``) matches."""
    if not pattern:
        raise PatternError("an empty pattern matches nothing")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"a pattern is limited to {MAX_PATTERN_CHARS} characters")
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c in "?+":
            if not out or out[-1] in (".*", "[^/]*") or out[-1].endswith(("?", "+")):
                raise PatternError(f"'{c}' at position {i + 1} must follow a character it repeats")
            out[-1] = f"(?:{out[-1]}){c}"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise PatternError(f"'[' at position {i + 1} is not closed by ']'")
            body = pattern[i + 1 : end]
            if not body:
                raise PatternError(f"'[]' at position {i + 1} is an empty character set")
            if not re.fullmatch(r"(?:[A-Za-z0-9._-](?:-[A-Za-z0-9])?)+", body):
                raise PatternError(f"character set '[{body}]' may only hold letters, digits and ranges")
            try:
                re.compile(f"[{body}]")
            except re.error as exc:
                raise PatternError(f"character set '[{body}]': {exc}") from None
            out.append(f"[{body}]")
            i = end + 1
            continue
        elif c == "\\":
            if i + 1 >= n:
                raise PatternError("a pattern cannot end with '\\'")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def check_patterns(patterns: Sequence[str], *, negation: bool = True) -> list[tuple[int, str]]:
    """Problems of a pattern list as ``(index, message)``: bad syntax, a ``!`` list with nothing to
    exclude from, or ``!`` where it is not allowed (``*_ignore`` lists)."""
    out: list[tuple[int, str]] = []
    positive_seen = False
    for i, raw in enumerate(patterns):
        negated = raw.startswith("!")
        if negated and not negation:
            out.append(
                (i, f"'!' is not allowed in an ignore list ({raw!r}): drop it or use the positive list")
            )
            continue
        if negated and not positive_seen:
            out.append((i, f"{raw!r} excludes from nothing: put a positive pattern before it"))
        positive_seen = positive_seen or not negated
        try:
            compile_pattern(raw[1:] if negated else raw)
        except PatternError as exc:
            out.append((i, f"bad pattern {raw!r}: {exc}"))
    return out


def matches_any(patterns: Sequence[str], name: str) -> bool:
    """Whether ``name`` is selected by ``patterns`` applied in order (the last matching one decides)."""
    selected = False
    for raw in patterns:
        negated = raw.startswith("!")
        if compile_pattern(raw[1:] if negated else raw).fullmatch(name):
            selected = not negated
    return selected


def check_cron(expression: str) -> str | None:
    """Why ``expression`` is not a valid 5-field cron expression, or ``None`` when it is."""
    fields = expression.split()
    if len(fields) != 5:
        return f"a cron expression has 5 fields (minute hour day month weekday), this one has {len(fields)}"
    import datetime as dt  # noqa: PLC0415

    from cronsim import CronSim, CronSimError  # noqa: PLC0415 - only for pipelines with schedules

    try:
        CronSim(expression, dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        return f"bad cron expression {expression!r}: {exc}"
    return None


def check_timezone(name: str) -> str | None:
    """Why ``name`` is not a known IANA time zone, or ``None`` when it is."""
    import zoneinfo  # noqa: PLC0415 - only for pipelines with schedules

    if not name or name.startswith(("/", ".")) or ".." in name or len(name) > 64:
        return f"unknown time zone {name!r}"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or UTC)"
    return None
