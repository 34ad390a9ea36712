"""The generated pipeline as ``buildyard.yml`` text: YAML with a comment above every job and section."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from buildyard.scaffold.model import Scaffold
from buildyard.termtext import safe_text

WIDTH = 110  # comments; YAML values are never folded (a script line stays one line)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks; lists of scalars inline when short."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    short = all(isinstance(v, str) and "\n" not in v for v in value) and sum(len(v) + 2 for v in value) < 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=short)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def _dump(value: Any, indent: int) -> str:
    text = str(yaml.dump(value, Dumper=_Dumper, sort_keys=False, width=100_000, allow_unicode=True))
    return textwrap.indent(text, " " * indent)


def _comment(text: str, indent: int) -> str:
    prefix = " " * indent + "# "
    return "\n".join(
        textwrap.wrap(safe_text(text), WIDTH - len(prefix), initial_indent=prefix, subsequent_indent=prefix)
    )


def render(result: Scaffold) -> str:
    """The document as commented YAML (what ``buildyard init`` writes)."""
    doc = result.document
    found = (
        ", ".join(f"{c.stack.value} ({c.tool}) in {c.path or 'the root'}" for c in result.components)
        or "no known stack"
    )
    parts = [
        _comment(f"Written by 'buildyard init' for {doc['name']}: {found}.", 0),
        _comment(
            "Every job declares its inputs (the files its cache key hashes) and its outputs (restored on a "
            "cache hit), so a second run with nothing changed restores every job from the cache. "
            "Edit freely; 'buildyard validate' checks the file, 'buildyard explain JOB' says why a job "
            "ran again.",
            0,
        ),
    ]
    for note in result.notes:
        parts.append(_comment(f"Note: {note}.", 0))
    head = {k: doc[k] for k in ("name", "variables", "defaults") if k in doc}
    parts.append(_dump(head, 0).rstrip())
    parts.append("")
    parts.append(
        _comment(
            "Gates, checked after the jobs that write their reports: test results (no failure), coverage "
            "(never lower than the last good run of the branch: add min_line: 80 for a floor), no "
            "committed secret, and no known vulnerability above low severity once an OSV database "
            "exists ('buildyard deps db update').",
            0,
        )
    )
    parts.append(_dump({"gates": doc["gates"]}, 0).rstrip())
    parts.append("")
    parts.append("jobs:")
    for name, job in doc["jobs"].items():
        comment = result.comments.get(name)
        if comment:
            parts.append(_comment(comment, 2))
        parts.append(_dump({name: job}, 2).rstrip())
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
