"""GitLab values: durations (``1h 30m``), ``variables:`` entries, ``$VAR`` expansion, shell quoting, and
the prelude that sets GitLab's predefined variables from buildyard's own. Pure."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

WHEN = ("on_success", "on_failure", "always", "manual", "never", "delayed")
_VAR_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_BAD_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: Sets the predefined variables that depend on the run from buildyard's own (commit, branch, tag, event).
PRELUDE = "\n".join(
    [
        'export CI_PROJECT_DIR="$PWD" CI_BUILDS_DIR="$PWD" CI_COMMIT_SHA="${BUILDYARD_COMMIT_SHA:-}"',
        'export CI_COMMIT_SHORT_SHA="${CI_COMMIT_SHA:0:8}"',
        'export CI_COMMIT_REF_NAME="${BUILDYARD_TAG:-${BUILDYARD_BRANCH:-}}"',
        # the slug in bash itself: no subprocess per job (lowercase, [^a-z0-9] -> '-', 63 characters)
        'CI_COMMIT_REF_SLUG="${CI_COMMIT_REF_NAME,,}"',
        'CI_COMMIT_REF_SLUG="${CI_COMMIT_REF_SLUG//[^a-z0-9]/-}"',
        'export CI_COMMIT_REF_SLUG="${CI_COMMIT_REF_SLUG:0:63}"',
        'export CI_PIPELINE_ID="${BUILDYARD_RUN_NUMBER:-0}" CI_PIPELINE_IID="${BUILDYARD_RUN_NUMBER:-0}"',
        'if [ -n "${BUILDYARD_TAG:-}" ]; then export CI_COMMIT_TAG="$BUILDYARD_TAG"; '
        'else export CI_COMMIT_BRANCH="${BUILDYARD_BRANCH:-}"; fi',
        'case "${BUILDYARD_EVENT:-}" in pull_request) CI_PIPELINE_SOURCE=merge_request_event;; '
        "schedule) CI_PIPELINE_SOURCE=schedule;; manual) CI_PIPELINE_SOURCE=web;; "
        "*) CI_PIPELINE_SOURCE=push;; esac",
        "export CI_PIPELINE_SOURCE",
    ]
)
SOURCES = {
    "push": "push",
    "tag": "push",
    "pull_request": "merge_request_event",
    "schedule": "schedule",
    "manual": "web",
}


def flatten(value: Any) -> list[Any]:
    """GitLab flattens nested lists in scripts (from ``!reference``) up to 10 levels."""
    out: list[Any] = []
    for item in value if isinstance(value, list) else [value]:
        out += flatten(item) if isinstance(item, list) else [item]
    return out


_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)?(?![a-z])\s*,?\s*(?:and\s+)?",
    re.IGNORECASE,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_gitlab_duration(value: Any) -> int:
    """``3600``, ``"1h 30m"``, ``"90 minutes"``, ``"2 hours 10 minutes"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"invalid duration {value!r} (write e.g. '1h 30m' or '90 minutes')")
        unit = (m.group(2) or "s").lower()
        total += float(m.group(1)) * _UNITS["m" if unit.startswith("mi") or unit == "m" else unit[0]]
        pos = m.end()
    if not text:
        raise ValueError("empty duration")
    return int(total)


def variables(raw: Any) -> dict[str, tuple[str, bool]]:
    """``variables:`` -> name -> (value, expand)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("variables takes a mapping of NAME: value")
    out: dict[str, tuple[str, bool]] = {}
    for name, given in raw.items():
        value = given
        expand = True
        if isinstance(value, dict):
            unknown = set(value) - {"value", "description", "expand", "options"}
            if unknown:
                raise ValueError(
                    f"variable {name}: unknown key '{sorted(unknown)[0]}' "
                    "(allowed: value, description, expand, options)"
                )
            expand = value.get("expand", True) is not False
            value = value.get("value", "")
        if isinstance(value, dict | list):
            raise ValueError(f"variable {name}: a value is a string or a number")
        out[str(name)] = (scalar(value), expand)
    return out


def scalar(value: Any) -> str:
    """A YAML scalar as GitLab's variable text (``true``, ``3.10``, empty for null)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand(value: str, env: Mapping[str, str]) -> str:
    """GitLab's expansion of ``$VAR``/``${VAR}`` (``$$`` is a literal ``$``; unset is empty)."""

    def sub(m: re.Match[str]) -> str:
        if m.group() == "$$":
            return "$"
        return env.get(m.group(1) or m.group(2), "")

    return _VAR_REF.sub(sub, value)


def shell_value(value: str, expand_refs: bool) -> str:
    """``value`` as a shell word whose only expansions are GitLab's (``$VAR``, ``${VAR}``)."""
    if not expand_refs:
        return shlex.quote(value)
    out = ['"']
    pos = 0
    for m in _VAR_REF.finditer(value):
        out.append(_dq(value[pos : m.start()]))
        out.append("\\$" if m.group() == "$$" else "${" + (m.group(1) or m.group(2)) + "}")
        pos = m.end()
    out.append(_dq(value[pos:]))
    out.append('"')
    return "".join(out)


def _dq(text: str) -> str:
    return re.sub(r'([\\"`$])', r"\\\1", text)
