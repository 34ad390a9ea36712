"""A local run's event (``buildyard run --event push --changed PATH…``) matched against ``on:``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from buildyard.gitinfo import read_git
from buildyard.model import Event
from buildyard.spec.load import find_file, load
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.match import Match, matches

if TYPE_CHECKING:
    from buildyard.spec.models import Pipeline


def local_event(
    project_dir: Path, event: Event, *, branch: str | None, tag: str | None, changed: Sequence[str]
) -> TriggerEvent:
    """The event a local run stands for: branch and tag default to the checkout's (as the run's own)."""
    git = read_git(project_dir)
    tag = tag if tag is not None else (git.tag if event is Event.TAG else "")
    kind = Event.TAG if event is Event.PUSH and tag else event
    return TriggerEvent(
        kind,
        branch=branch if branch is not None else git.branch,
        tag=tag,
        sha=git.sha,
        changed_paths=tuple(p.removeprefix("./") for p in changed),
    )


def check_local_run(
    project_dir: Path,
    file: Path | None,
    event: Event,
    *,
    branch: str | None,
    tag: str | None,
    changed: Sequence[str],
    pipeline: Pipeline | None = None,
) -> Match:
    """Whether the pipeline's ``on:`` starts a run for this local event (loads the pipeline file
    unless given the ``pipeline``, as converted from a GitLab or GitHub file)."""
    if pipeline is None:
        pipeline = load(find_file(project_dir, file))
    return matches(pipeline.on, local_event(project_dir, event, branch=branch, tag=tag, changed=changed))
