"""Source metadata of a build read from git: commit, branch, exact tag, remote URL (all optional)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class GitMeta:
    """What git says about the checkout at ``project`` (None where it says nothing)."""

    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    repository: str | None = None


def _git(project: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None


def read_git(project: Path) -> GitMeta:
    """Commit, branch (None when detached), tag pointing at HEAD, and the ``origin`` URL."""
    commit = _git(project, "rev-parse", "--verify", "-q", "HEAD")
    if commit is None:
        return GitMeta()
    branch = _git(project, "symbolic-ref", "--short", "-q", "HEAD")
    tag = _git(project, "describe", "--tags", "--exact-match", "HEAD")
    return GitMeta(commit, branch, tag, _git(project, "remote", "get-url", "origin"))
