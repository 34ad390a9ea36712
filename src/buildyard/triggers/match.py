"""``matches(on, event)``: does this event start the pipeline, and why (GitHub's ``on:`` semantics).

Pure. The reason is one line a person can read in the delivery log or the CLI ("push to 'docs-only'
changes only ignored paths (docs/**)").

- No ``on:`` section: every push, tag and pull request starts the pipeline (what ``buildyard run``
  always did); schedules need ``on.schedule``, manual runs ``on.manual``.
- A tag push is matched by ``on.push``'s ``tags``/``tags_ignore``; when only branch filters are
  given, tag pushes start nothing, and when only tag filters are given, branch pushes start nothing.
  Path filters are not evaluated for tags (as on GitHub).
- A pull request's ``branches`` filter its base branch.
- ``paths``: at least one changed path must be selected; ``paths_ignore``: at least one changed path
  must not be ignored. Unknown changed paths (``None``) never hold a run back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from buildyard.model import Event
from buildyard.spec.filters import matches_any
from buildyard.spec.models import EventFilter, OnSpec
from buildyard.termtext import safe_text
from buildyard.triggers.events import TriggerEvent

_SHOWN = 3  # patterns or paths named in a reason
#: Longest reason kept (branch names and paths come from outside: a delivery names them).
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Match:
    """The verdict on one event: ``triggered`` and the one-line ``reason``."""

    triggered: bool
    reason: str

    def __bool__(self) -> bool:
        return self.triggered


def _list(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def matches(on: OnSpec | None, event: TriggerEvent) -> Match:
    """Whether ``event`` starts a pipeline declaring ``on`` (``None``: no ``on:`` section).

    The reason is one line: control characters of names from outside are escaped, its length bounded.
    """
    verdict = _matches(on, event)
    reason = safe_text(verdict.reason)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return Match(verdict.triggered, reason)


def _matches(on: OnSpec | None, event: TriggerEvent) -> Match:
    kind = event.event
    if on is None:
        if kind in (Event.PUSH, Event.TAG, Event.PULL_REQUEST, Event.MANUAL):
            return Match(True, "no 'on:' section: every push, tag and pull request starts the pipeline")
        return Match(False, "no 'on:' section: schedules need on.schedule")
    if kind is Event.SCHEDULE:
        if on.schedule:
            return Match(True, "on.schedule")
        return Match(False, "the pipeline declares no on.schedule")
    if kind is Event.MANUAL:
        if on.manual is not None:
            return Match(True, "on.manual")
        return Match(False, "the pipeline declares no on.manual: it cannot be started by hand")
    if kind is Event.TAG:
        return _tag(on.push, event.tag)
    if kind is Event.PUSH:
        if on.push is None:
            return Match(False, "on: has no push: pushes start nothing")
        return _branch_and_paths(on.push, "push to", event.branch, event.changed_paths, ref_kind="push")
    if on.pull_request is None:
        return Match(False, "on: has no pull_request: pull requests start nothing")
    base = event.base_branch or event.branch
    return _branch_and_paths(
        on.pull_request, "pull request into", base, event.changed_paths, ref_kind="pull_request"
    )


def _tag(flt: EventFilter | None, tag: str) -> Match:
    if flt is None:
        return Match(False, "on: has no push: tag pushes start nothing")
    if flt.tags is None and flt.tags_ignore is None:
        if flt.branches is not None or flt.branches_ignore is not None:
            return Match(False, f"tag '{tag}': on.push filters only branches, so tag pushes start nothing")
        return Match(True, f"tag '{tag}': on.push has no tag filter")
    if flt.tags is not None:
        if matches_any(flt.tags, tag):
            return Match(True, f"tag '{tag}' matches on.push.tags")
        return Match(False, f"tag '{tag}' matches none of on.push.tags ({_list(flt.tags)})")
    if matches_any(flt.tags_ignore or [], tag):
        return Match(False, f"tag '{tag}' is in on.push.tags_ignore")
    return Match(True, f"tag '{tag}' is not in on.push.tags_ignore")


def _branch_and_paths(
    flt: EventFilter, what: str, branch: str, changed: tuple[str, ...] | None, *, ref_kind: str
) -> Match:
    key = f"on.{ref_kind}"
    if flt.branches is not None:
        if not matches_any(flt.branches, branch):
            return Match(
                False, f"{what} '{branch}': the branch matches none of {key}.branches ({_list(flt.branches)})"
            )
    elif flt.branches_ignore is not None:
        if matches_any(flt.branches_ignore, branch):
            return Match(False, f"{what} '{branch}': the branch is in {key}.branches_ignore")
    elif flt.tags is not None or flt.tags_ignore is not None:
        return Match(False, f"{what} '{branch}': {key} filters only tags, so branch pushes start nothing")
    if flt.paths is None and flt.paths_ignore is None:
        return Match(True, f"{what} '{branch}' matches {key}")
    if changed is None:
        return Match(True, f"{what} '{branch}': changed paths unknown, path filters not applied")
    if not changed:
        return Match(False, f"{what} '{branch}' changes no file, and {key} filters paths")
    if flt.paths is not None:
        hit = next((p for p in changed if matches_any(flt.paths, p)), None)
        if hit is None:
            return Match(
                False,
                f"{what} '{branch}' changes no path selected by {key}.paths ({_list(flt.paths)}): "
                f"{_list(changed)}",
            )
        return Match(True, f"{what} '{branch}' changes {hit} (selected by {key}.paths)")
    ignored = flt.paths_ignore or []
    kept = next((p for p in changed if not matches_any(ignored, p)), None)
    if kept is None:
        return Match(
            False,
            f"{what} '{branch}' changes only ignored paths ({_list(ignored)}): {_list(changed)}",
        )
    return Match(True, f"{what} '{branch}' changes {kept} (not in {key}.paths_ignore)")
