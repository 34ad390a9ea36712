"""The I/O of ``buildyard init``: a repository directory -> a bounded :class:`RepoListing`; writing
the pipeline and the ``.gitignore`` lines (:func:`init_repository`).

Lists the files git sees (tracked and untracked-not-ignored; a plain walk outside git) without ever
entering dependency or VCS trees (:data:`NEVER_READ`), stops at ``max_files``, and reads only the small
files the detection asks for, each capped, all together capped. Symlinks are never followed.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from buildyard.errors import UsageError
from buildyard.scaffold.detect import NEVER_READ, wants_content
from buildyard.scaffold.model import RepoListing, Scaffold

MAX_FILES = 50_000
MAX_FILE_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024


def _skipped(rel: str) -> bool:
    return any(part in NEVER_READ for part in rel.split("/")[:-1])


def _git_files(root: Path) -> list[str] | None:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return [os.fsdecode(p) for p in proc.stdout.split(b"\0") if p]


def _walk(root: Path, limit: int) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in NEVER_READ)
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
            if len(out) > limit:
                return out
    return out


def _read(path: Path, cap: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device named like a manifest
            return None
        data = handle.read(cap + 1)
    if len(data) > cap:
        data = data[:cap]
    return data.decode("utf-8", errors="replace")


def read_repo(
    root: Path,
    *,
    max_files: int = MAX_FILES,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> RepoListing:
    """List ``root`` and read the files :func:`wants_content` names, within the bounds given."""
    root = root.resolve()
    listed = _git_files(root)
    files = [f for f in (listed if listed is not None else _walk(root, max_files)) if not _skipped(f)]
    files = sorted(dict.fromkeys(f for f in files if (root / f).is_file() or (root / f).is_symlink()))
    truncated = len(files) > max_files
    files = files[:max_files]
    contents: dict[str, str] = {}
    budget = max_total_bytes
    for rel in files:
        if budget <= 0:
            truncated = True
            break
        if not wants_content(rel) or (root / rel).is_symlink():
            continue
        text = _read(root / rel, min(max_file_bytes, budget))
        if text is not None:
            contents[rel] = text
            budget -= len(text)
    return RepoListing(name=root.name, files=tuple(files), contents=contents, truncated=truncated)


def update_gitignore(root: Path, patterns: tuple[str, ...]) -> list[str]:
    """Append the ``patterns`` ``.gitignore`` lacks (under one comment line); returns those added.

    Written atomically. Lines already present (exactly) are not repeated.
    """
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415

    path = root / ".gitignore"
    if path.is_symlink():
        return []
    existing = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    have = {line.strip() for line in existing.splitlines()}
    have |= {
        f"/{line.strip()}" for line in existing.splitlines() if line.strip() and not line.startswith("/")
    }
    missing = [p for p in patterns if p not in have]
    if not missing:
        return []
    head = existing if not existing or existing.endswith("\n") else existing + "\n"
    text = (
        head
        + "# written by the jobs of buildyard.yml (buildyard init)\n"
        + "".join(f"{p}\n" for p in missing)
    )
    atomic_write_text(path, text)
    return missing


@dataclass(frozen=True)
class InitOutcome:
    """What :func:`init_repository` made: the pipeline, its text, where it went, what .gitignore got."""

    scaffold: Scaffold
    text: str
    written: Path | None
    gitignore_added: tuple[str, ...] = ()


def init_repository(
    project: Path, output: Path, *, force: bool = False, dry_run: bool = False, gitignore: bool = True
) -> InitOutcome:
    """``buildyard init``: read ``project``, generate its pipeline and (unless ``dry_run``) write it to
    ``output`` (relative to the project) atomically, then add what its jobs write to ``.gitignore``.

    An existing ``output`` is kept unless ``force`` (a :class:`UsageError` says so). The generated text
    is loaded back as ``buildyard validate`` would: a failure there is a bug of init and raises whole.
    """
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.scaffold.pipeline import scaffold  # noqa: PLC0415
    from buildyard.scaffold.render import render  # noqa: PLC0415
    from buildyard.spec.load import loads  # noqa: PLC0415

    if not project.is_dir():
        raise UsageError(f"{project}: no such directory")
    target = output if output.is_absolute() else project / output
    if not dry_run and (target.exists() or target.is_symlink()) and not force:
        raise UsageError(f"{target}: already exists; use --force to overwrite it, or --dry-run to print one")
    result = scaffold(read_repo(project))
    text = render(result)
    loads(text, file=str(output))
    if dry_run:
        return InitOutcome(result, text, None)
    atomic_write_text(target, text)
    added = update_gitignore(project, result.ignores) if gitignore else []
    return InitOutcome(result, text, target, tuple(added))
