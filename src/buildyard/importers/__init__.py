"""Importers: pipeline files of other CI systems run and converted as buildyard pipelines.

Each importer reads a foreign file (bounded like ``buildyard.yml``), converts it into buildyard's raw
document plus a ``SourceMap`` into the original file, and validates it with
:func:`buildyard.spec.from_raw`, so every error points at the user's own file and line. Constructs
buildyard cannot carry come back as located notes. :func:`detect` tells which format a file is in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.errors import Diagnostic

if TYPE_CHECKING:
    from buildyard.spec.models import Pipeline


class Format(StrEnum):
    """The pipeline formats ``run -f`` and ``import`` understand."""

    BUILDYARD = "buildyard"
    GITLAB = "gitlab"
    GITHUB = "github"


_GITLAB_NAMES = (".gitlab-ci.yml", ".gitlab-ci.yaml")
_GITLAB_KEYWORDS = re.compile(r"^(stages|include|workflow|default):", re.MULTILINE)
_TOP_LEVEL_JOB_WITH_SCRIPT = re.compile(r"^[^\s#][^:\n]*:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+script:", re.MULTILINE)


_GITHUB_ON = re.compile(r"^[\"']?on[\"']?:", re.MULTILINE)
#: ``runs-on`` (buildyard's own key is ``runs_on``; a buildyard file may have ``on:`` and ``steps:`` too).
_GITHUB_JOB_KEYS = re.compile(r"^[ \t]+runs-on:", re.MULTILINE)


def detect(path: Path) -> Format:
    """The format of the pipeline file at ``path``: GitLab CI by its name (``*.gitlab-ci.yml``), GitHub
    Actions by its place (``.github/workflows/*.yml``), else by a look at its first 64 KiB: a
    top-level ``on:`` and ``jobs:`` with ``runs-on`` is a workflow; GitLab keywords or
    top-level jobs with ``script`` (no ``jobs:``) are GitLab's."""
    if path.name in ("buildyard.yml", "buildyard.yaml"):
        return Format.BUILDYARD
    if path.name.endswith(_GITLAB_NAMES):
        return Format.GITLAB
    parts = path.parts
    if len(parts) >= 3 and parts[-3:-1] == (".github", "workflows") and path.suffix in (".yml", ".yaml"):
        return Format.GITHUB
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return Format.BUILDYARD  # the loader reports the problem
    if re.search(r"^jobs:", head, re.MULTILINE):
        if _GITHUB_ON.search(head) and _GITHUB_JOB_KEYS.search(head):
            return Format.GITHUB
        return Format.BUILDYARD
    if _GITLAB_KEYWORDS.search(head) or _TOP_LEVEL_JOB_WITH_SCRIPT.search(head):
        return Format.GITLAB
    return Format.BUILDYARD


@dataclass(frozen=True)
class Imported:
    """A foreign pipeline converted for one trigger: the validated pipeline, the buildyard document
    it came from, and the located notes about what was not carried."""

    format: Format
    pipeline: Pipeline
    document: dict[str, Any]
    notes: tuple[Diagnostic, ...]


def load_foreign(
    path: Path,
    project: Path,
    *,
    event: str = "push",
    branch: str | None = None,
    tag: str | None = None,
    variables: Mapping[str, str] | None = None,
    strict: bool = False,
    force: bool = False,
) -> Imported | None:
    """Convert ``path`` when it is a foreign pipeline (``force``: whatever its name, as GitLab's unless
    it looks like a GitHub workflow); ``None`` for buildyard's own format. Raise a ``SpecError``
    located in the foreign file."""
    found = detect(path)
    if found is Format.GITHUB:
        from buildyard.importers import github  # noqa: PLC0415

        gctx = github.context_for(
            project, event=event, branch=branch, tag=tag, variables=variables, strict=strict
        )
        gpipeline, gconversion = github.load(path, gctx)
        return Imported(Format.GITHUB, gpipeline, gconversion.document, tuple(gconversion.notes))
    if not force and found is not Format.GITLAB:
        return None
    from buildyard.importers import gitlab  # noqa: PLC0415

    ctx = gitlab.context_for(project, event=event, branch=branch, tag=tag, variables=variables, strict=strict)
    pipeline, conversion = gitlab.load(path, ctx)
    return Imported(Format.GITLAB, pipeline, conversion.document, tuple(conversion.notes))
