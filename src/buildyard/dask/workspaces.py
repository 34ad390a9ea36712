"""An agent's job workspaces, made from content and reused (as Bazel reuses sandbox directories).

Creating a file is a metadata write that waits on the filesystem's journal: a job with 1,000 input
files spent about a second making its workspace. So the workspace of a finished job is parked, and
the next job on the agent starts from it: :func:`prepare` turns it into exactly the new job's files
(what differs is rewritten, what the job does not declare is deleted, empty directories too), so the
job sees the same tree a fresh workspace would give. Nothing the previous job did is trusted:

- a file is kept only if it is a regular file with one link, the mode asked for, and either the
  same inode, size and change time (``ctime``, which no process can set back) as when its content
  was last known good, or — when that change time is too close to that moment for the clock's
  granularity to tell a later write apart (``CTIME_MARGIN_NS``) — content that hashes to its digest;
- anything else (another type, a second link, a symlink to a different target) is removed.

At most ``keep`` workspaces are parked (the agent's slots); a workspace that cannot be reconciled
(a directory the job made unwritable, say) is thrown away and the job gets a fresh one. Parked
workspaces are known only to the agent process that parked them: those of a dead process are
deleted when the next one starts.
"""

# ruff: noqa: PTH103, PTH114, PTH115, PTH211 - str paths on purpose: 1,000s of files per job, pathlib costs more than the syscalls
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from buildyard.cache.cas import CAS
from buildyard.cache.pathsafe import check_relpath, check_symlink
from buildyard.dask.wire import FileRef
from buildyard.errors import BuildyardError

#: Threads creating a workspace's files (each creation waits on the filesystem, not on a core).
WRITE_THREADS = 4
#: A file written (or verified) less than this before its change time cannot be trusted by its
#: change time alone: timestamps are taken from a coarse clock (one kernel tick, up to 10 ms).
CTIME_MARGIN_NS = 50_000_000


class WorkspaceError(BuildyardError):
    """A workspace file could not be made (its blob is corrupt)."""


@dataclass(frozen=True, slots=True)
class _Known:
    """What a workspace file was when its content was last known good."""

    digest: str
    mode: int
    ino: int
    size: int
    ctime_ns: int
    #: When the content was known good (written or hashed), ``time.time_ns()``.
    checked_ns: int

    def trusted(self, st: os.stat_result) -> bool:
        """The file is unchanged since it was known good, by its metadata alone."""
        return (
            st.st_ino == self.ino
            and st.st_size == self.size
            and st.st_ctime_ns == self.ctime_ns
            and self.ctime_ns < self.checked_ns - CTIME_MARGIN_NS
        )


@dataclass
class Workspace:
    """A job's workspace directory and what is known of its files (path → state, symlink targets)."""

    root: Path
    files: dict[str, _Known] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    #: Files this preparation kept from a parked workspace, and those it wrote (for the bench and tests).
    kept: int = 0
    written: int = 0


class WorkspacePool:
    """The parked workspaces of one agent directory, in this process (see the module docstring)."""

    def __init__(self, base: Path, keep: int) -> None:
        self.base = base
        self.keep = keep
        self._lock = threading.Lock()
        self._parked: list[Workspace] = []
        self._dir = base / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._swept = False

    def take(self, want: Iterable[FileRef]) -> Workspace | None:
        """The parked workspace that saves the most work for ``want`` (removed from the pool): files
        it has as wanted, less the files it has that ``want`` does not (each deletion costs about what
        a creation does); None if none saves any (it stays parked for a job it suits)."""
        wanted = {(ref.path, ref.digest) for ref in want if ref.symlink is None}
        with self._lock:
            scores = []
            for n, ws in enumerate(self._parked):
                shared = sum((path, known.digest) in wanted for path, known in ws.files.items())
                scores.append((2 * shared - len(ws.files), n))
            score, best = max(scores, default=(0, -1))
            return self._parked.pop(best) if score > 0 else None

    def park(self, workspace: Workspace) -> None:
        """Keep ``workspace`` (moved into the pool's directory) for a later job, or delete it."""
        self._sweep()
        target = self._dir / secrets.token_hex(6)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            if self.keep > 0:
                workspace.root.rename(target)
        except OSError:
            pass
        if not target.is_dir():
            shutil.rmtree(workspace.root, ignore_errors=True)
            return
        workspace.root = target
        with self._lock:
            self._parked.append(workspace)
            evicted = self._parked[: -self.keep]
            del self._parked[: -self.keep]
        for old in evicted:
            shutil.rmtree(old.root, ignore_errors=True)

    def _sweep(self) -> None:
        """Delete the parked workspaces of agent processes that are gone (once per process)."""
        if self._swept:
            return
        self._swept = True
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.base):
                pid = entry.name.partition("-")[0]
                if entry.path != str(self._dir) and pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(root: Path, refs: Iterable[FileRef], cas: CAS, parked: Workspace | None = None) -> Workspace:
    """Make ``root`` (which must not exist) hold exactly ``refs``, from ``parked`` if given (moved to
    ``root``; thrown away if it cannot be reconciled) and the blobs of ``cas`` (all present)."""
    files: dict[str, FileRef] = {}
    links: dict[str, str] = {}
    for ref in refs:
        norm = check_relpath(ref.path)
        if norm in files or norm in links:
            raise WorkspaceError(f"{norm} is listed twice")
        if ref.symlink is not None:
            check_symlink(norm, ref.symlink)
            links[norm] = ref.symlink
        else:
            files[norm] = ref
    dirs = _dirs([*files, *links])
    clash = dirs.intersection(files) or dirs.intersection(links)
    if clash:
        raise WorkspaceError(f"{min(clash)} is both a directory and a file or symlink")
    if parked is not None:
        try:
            parked.root.rename(root)
        except OSError:
            shutil.rmtree(parked.root, ignore_errors=True)
        else:
            try:
                return _fill(Workspace(root), files, links, cas, _reconcile(root, parked, files, links, dirs))
            except OSError:
                trash = root.with_name(f"{root.name}.trash-{secrets.token_hex(4)}")
                with contextlib.suppress(OSError):
                    root.rename(trash)
                shutil.rmtree(trash if trash.exists() else root, ignore_errors=True)
    root.mkdir(parents=True)
    return _fill(Workspace(root), files, links, cas, {})


def _dirs(paths: Iterable[str]) -> set[str]:
    """Every directory the relative ``paths`` need ("" for the root)."""
    dirs = {""}
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs


def _reconcile(
    root: Path, parked: Workspace, files: dict[str, FileRef], links: dict[str, str], dirs: set[str]
) -> dict[str, _Known]:
    """Delete from ``root`` what ``files``/``links`` do not want as it is; the files kept."""
    kept: dict[str, _Known] = {}
    now = time.time_ns()
    base = str(root)
    for top, subdirs, names in os.walk(base, onerror=_raise):
        rel_top = top[len(base) + 1 :]
        prefix = f"{rel_top}/" if rel_top else ""
        for name in list(subdirs):
            rel = prefix + name
            full = f"{top}/{name}"
            if rel in dirs and not os.path.islink(full):
                continue
            subdirs.remove(name)
            if rel in links and os.path.islink(full) and os.readlink(full) == links[rel]:
                kept[rel] = _LINK
            elif os.path.islink(full):
                os.unlink(full)
            else:
                shutil.rmtree(full, onerror=_raise_rmtree)
        for name in names:
            rel = prefix + name
            full = f"{top}/{name}"
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                if links.get(rel) is not None and os.readlink(full) == links[rel]:
                    kept[rel] = _LINK
                    continue
            elif (ref := files.get(rel)) is not None and (
                known := _keep(full, st, ref, parked.files.get(rel), now)
            ):
                kept[rel] = known
                continue
            os.unlink(full)
    return kept


#: Marks a symlink kept as it was.
_LINK = _Known("", 0, 0, 0, 0, 0)


def _keep(full: str, st: os.stat_result, ref: FileRef, known: _Known | None, now: int) -> _Known | None:
    """The file's new known state if it can be kept as ``ref`` asks, else None."""
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or stat.S_IMODE(st.st_mode) != ref.mode:
        return None
    if st.st_size != ref.size and ref.size:
        return None
    if known is not None and known.digest == ref.digest and known.trusted(st):
        return known
    hasher = blake3()
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if os.fstat(fd).st_ino != st.st_ino:
            return None
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    if hasher.hexdigest() != ref.digest:
        return None
    return _Known(ref.digest, ref.mode, st.st_ino, st.st_size, st.st_ctime_ns, now)


def _fill(
    workspace: Workspace,
    files: dict[str, FileRef],
    links: dict[str, str],
    cas: CAS,
    kept: dict[str, _Known],
) -> Workspace:
    """Write what ``kept`` lacks into ``workspace.root``."""
    base = str(workspace.root)
    made = {""}
    todo: list[tuple[str, FileRef]] = []
    for norm, ref in files.items():
        known = kept.get(norm)
        if known is not None and known is not _LINK:
            workspace.files[norm] = known
            continue
        _parents(base, norm, made)
        todo.append((norm, ref))

    def write(item: tuple[str, FileRef]) -> tuple[str, _Known] | str:
        norm, ref = item
        full = f"{base}/{norm}"
        if not cas.write_new(ref.digest, full, ref.mode):
            return f"blob {ref.digest[:12]} of {norm} is corrupt"
        st = os.lstat(full)
        return norm, _Known(ref.digest, ref.mode, st.st_ino, st.st_size, st.st_ctime_ns, time.time_ns())

    if len(todo) > 8:
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="buildyard-workspace") as pool:
            results = list(pool.map(write, todo))
    else:
        results = [write(item) for item in todo]
    for result in results:
        if isinstance(result, str):
            raise WorkspaceError(result)
        workspace.files[result[0]] = result[1]
    for norm, target in links.items():
        if kept.get(norm) is not _LINK:
            _parents(base, norm, made)
            os.symlink(target, f"{base}/{norm}")
        workspace.links[norm] = target
    workspace.kept = len(kept)
    workspace.written = len(todo)
    return workspace


def _parents(base: str, norm: str, made: set[str]) -> None:
    parent = norm.rpartition("/")[0]
    if parent not in made:
        os.makedirs(f"{base}/{parent}", exist_ok=True)
        made.add(parent)


def _raise(exc: OSError) -> None:
    raise exc


def _raise_rmtree(
    _function: object, _path: str, exc_info: tuple[type[BaseException], BaseException, object]
) -> None:
    raise exc_info[1]
