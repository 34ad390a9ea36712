"""Exporters: a buildyard pipeline written as another CI service's file (GitLab CI, GitHub Actions).

:func:`export` turns a loaded :class:`~buildyard.spec.models.Pipeline` into the target's document and
the located notes about every construct the target cannot carry (they point at ``buildyard.yml``).
Pure: the caller loads the pipeline and writes the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import yaml

from buildyard.errors import Diagnostic

if TYPE_CHECKING:
    from buildyard.spec.models import Pipeline


class Target(StrEnum):
    """The formats ``buildyard export --to`` writes."""

    GITLAB = "gitlab-ci"
    GITHUB = "github-actions"


@dataclass(frozen=True)
class Exported:
    """An export: the target's document (plain data), its YAML text and what was not carried."""

    target: Target
    document: dict[str, Any]
    text: str
    notes: tuple[Diagnostic, ...]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks; ``None`` as an empty value (``push:``)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(c in value for c in "\r\t") and not value.endswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _none(dumper: yaml.SafeDumper, _value: None) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:null", "")


_Dumper.add_representer(str, _str)
_Dumper.add_representer(type(None), _none)


def export(pipeline: Pipeline, target: Target) -> Exported:
    """``pipeline`` as a ``target`` file."""
    from buildyard.exporters import github, gitlab  # noqa: PLC0415 - one of the two is used
    from buildyard.exporters.shape import Notes  # noqa: PLC0415

    notes = Notes(pipeline)
    builder = gitlab.export if target is Target.GITLAB else github.export
    document = builder(pipeline, notes)
    header = [f"# Exported from {pipeline.file} by 'buildyard export --to {target}'."]
    if notes.items:
        header.append("# Not carried (buildyard would honour these):")
        header += [f"#   {n}" for n in notes.items]
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return Exported(target, document, "\n".join(header) + "\n" + str(body), tuple(notes.items))
