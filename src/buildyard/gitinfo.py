"""What git says about a checkout: commit, branch, tag (one ``git`` call). Shared by the engine (trigger
context) and the artifact repository (build metadata)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class GitInfo:
    """Commit sha, branch (empty when detached), first tag pointing at HEAD, and the ref."""

    sha: str = ""
    branch: str = ""
    tag: str = ""

    @property
    def ref(self) -> str:
        """``refs/heads/<branch>``, else ``refs/tags/<tag>``, else empty."""
        if self.branch:
            return f"refs/heads/{self.branch}"
        return f"refs/tags/{self.tag}" if self.tag else ""


def read_git(directory: Path) -> GitInfo:
    """Read HEAD of the repository containing ``directory``; empty values outside a repository."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%H%x00%D"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return GitInfo()
    if out.returncode != 0 or "\0" not in out.stdout:
        return GitInfo()
    sha, _, decorations = out.stdout.strip().partition("\0")
    branch = tag = ""
    for item in (d.strip() for d in decorations.split(",")):
        if item.startswith("HEAD -> "):
            branch = item.removeprefix("HEAD -> ")
        elif item.startswith("tag: ") and not tag:
            tag = item.removeprefix("tag: ")
    return GitInfo(sha=sha, branch=branch, tag=tag)
