"""Helpers the stack planners share: job names, declared inputs from a file listing, shell quoting."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Sequence

from buildyard.scaffold.model import Component, RepoListing

#: Files that describe a project of their own: a directory holding one is listed entry by entry,
#: so the dependency and build trees beside it (node_modules/, target/, dist/) are never globbed.
PROJECT_FILES = frozenset(
    {"package.json", "pyproject.toml", "Cargo.toml", "pom.xml", "go.mod", "build.gradle", "build.gradle.kts"}
)
#: Never an input: the pipeline file (its jobs' own definitions are in their keys already) and git's.
NOT_INPUTS = frozenset({"buildyard.yml", ".gitignore", ".gitattributes"})


def slug(text: str) -> str:
    """A job-name-safe version of ``text`` (``my app/web`` -> ``my-app-web``)."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return out or "app"


def q(text: str) -> str:
    """``text`` quoted for bash."""
    return shlex.quote(text)


def glob_word(pattern: str) -> str:
    """``pattern`` as one bash word that still expands its ``*``/``?`` (everything else quoted)."""
    return "".join(part if part in ("*", "?") else q(part) for part in re.split(r"([*?])", pattern) if part)


def inputs_for(files: Sequence[str], excludes: Iterable[str] = ()) -> tuple[str, ...]:
    """Input globs covering ``files`` (relative paths) without matching what jobs write next to them.

    Top-level files by name, directories as ``dir/**`` — except directories holding a project file
    (a workspace member), which are listed entry by entry the same way. ``excludes`` are names of
    in-tree build products (``__pycache__``, ``*.o``) left out of every directory glob.
    """
    excludes = tuple(excludes)
    result: list[str] = []
    _inputs(sorted(f for f in files if f not in NOT_INPUTS), "", excludes, result)
    return tuple(result)


def _inputs(files: list[str], prefix: str, excludes: tuple[str, ...], out: list[str]) -> None:
    groups: dict[str, list[str]] = {}
    for path in files:
        head, _, rest = path.partition("/")
        if rest:
            groups.setdefault(head, []).append(rest)
        elif f"{prefix}{head}" not in out:
            out.append(f"{prefix}{head}")
    for head, below in groups.items():
        if _holds_project(below):
            _inputs(below, f"{prefix}{head}/", excludes, out)
            continue
        out.append(f"{prefix}{head}/**")
        out.extend(f"!{prefix}{head}/**/{name}" for name in excludes)


def _holds_project(files: list[str]) -> bool:
    return any(f.rsplit("/", 1)[-1] in PROJECT_FILES for f in files)


def unreadable(listing: RepoListing, path: str) -> str | None:
    """A note when the manifest ``path`` (TOML or JSON, by its name) does not parse, else None:
    init then plans as if it were empty, and says so with the parser's line and message."""
    text = listing.text(path)
    if not text:
        return None
    try:
        if path.endswith(".json"):
            json.loads(text)
        else:
            tomllib.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"{path}:{exc.lineno}: not valid JSON ({exc.msg})"
    except tomllib.TOMLDecodeError as exc:
        problem = f"{path}: not valid TOML ({exc})"
    else:
        return None
    return f"{problem}: its settings were not used; fix it and run init again"


def job_name(component: Component, kind: str, several: bool) -> str:
    """``kind`` alone for a one-component repository, else prefixed by the component
    (its directory's name, or its stack for one at the root)."""
    if not several:
        return kind
    base = component.path.rsplit("/", 1)[-1] if component.path else component.stack.value
    return f"{slug(base)}-{kind}"


def present(files: Iterable[str], names: Iterable[str]) -> list[str]:
    """The ``names`` that are among ``files``, in the order of ``names``."""
    have = set(files)
    return [n for n in names if n in have]
