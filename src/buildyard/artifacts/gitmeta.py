"""Source metadata of a build read from git: commit, branch, exact tag, remote URL (all optional)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from buildyard import gitinfo


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
    info = gitinfo.read_git(project)
    if not info.sha:
        return GitMeta()
    return GitMeta(
        info.sha, info.branch or None, info.tag or None, git_output(project, "remote", "get-url", "origin")
    )
