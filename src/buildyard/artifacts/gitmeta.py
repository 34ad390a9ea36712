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


def git_output(project: Path, *args: str) -> str | None:
    """Stripped stdout of ``git -C project ARGS``, or None if git fails or prints nothing."""
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
    commit = git_output(project, "rev-parse", "--verify", "-q", "HEAD")
    if commit is None:
        return GitMeta()
    branch = git_output(project, "symbolic-ref", "--short", "-q", "HEAD")
    tag = git_output(project, "describe", "--tags", "--exact-match", "HEAD")
    return GitMeta(commit, branch, tag, git_output(project, "remote", "get-url", "origin"))
