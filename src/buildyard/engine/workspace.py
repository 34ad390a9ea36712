"""Isolated job workspaces: a fresh copy of the files a job sees, and its declared outputs back.

Owns the two halves any executor (the local one through :class:`WorkspaceExecutor`, a distributed
worker, an importer of GitLab/GitHub files) needs, independent of how the job is run:

- :func:`make_workspace` — project root + the list of files (``workspace_files``: the git-visible
  files, one ``git ls-files``, plus the outputs of the jobs it needs) → a new directory. Never
  ``.git``/``.buildyard``. Files are reflinked (``FICLONE``) where the filesystem can, else copied
  (``copy_file_range``); never hardlinked — a job appending to a file would change the project's.
  Symlinks are copied as symlinks, never followed. Git metadata: a ``.git`` *file* (``gitdir:``)
  points at the project's repository so ``git rev-parse HEAD``/``git log`` work, with a private copy
  of the index (``GIT_INDEX_FILE``) and ``GIT_OPTIONAL_LOCKS=0`` so ``git status`` writes nothing
  into it; a job that commits or moves refs still writes into the real repository (clone instead).
- :func:`collect_outputs` — the files of a workspace matching the declared output patterns, copied
  into another tree through :class:`~buildyard.cache.pathsafe.DirWalker` (no write through a
  symlink, nothing in ``.git``/``.buildyard``, modes 0644/0755, symlinks only within the tree;
  a source reached through a symlinked directory is refused).

Outputs of isolated matrix instances that declare the same paths: each instance's files go to its
own ``outputs_dir`` (``.buildyard/outputs/<instance>/``, what its cache entry stores), and into the
project in the order the instances finish — the last one's file is what a downstream job sees
(GitLab ``dependencies:`` semantics); the others stay in their ``outputs_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from buildyard.cache.hashing import git_input_files, list_inputs
from buildyard.cache.pathsafe import (
    PROTECTED_DIRS,
    DirWalker,
    UnsafePathError,
    check_relpath,
    check_symlink,
    declared,
    is_protected,
    normalize_mode,
)
from buildyard.engine.request import Executor, JobOutcome, JobRequest, OutputSink, WorkspaceRequest, log_note
from buildyard.model import JobStatus

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Workspace:
    """A made workspace: its directory, the variables a job in it gets, how it was made."""

    path: Path
    env: tuple[tuple[str, str], ...]
    files: int
    method: str  # "reflink" | "copy"
    seconds: float


def _git_dir(project_root: Path) -> Path | None:
    """The project's git directory (``.git`` itself, or what a ``.git`` file points at)."""
    dot = project_root / ".git"
    if dot.is_dir():
        return dot.resolve()
    if dot.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            first = dot.read_text().splitlines()[0]
            if first.startswith("gitdir:"):
                target = Path(first[len("gitdir:") :].strip())
                return (project_root / target).resolve()
    return None


def workspace_files(
    project_root: Path, upstream_outputs: Sequence[str] = (), *, git_files: Sequence[str] | None = None
) -> list[str]:
    """What an isolated job sees: the git-visible files (``git_files``, else one ``git ls-files``)
    plus the project's files matching ``upstream_outputs``; never ``.git``/``.buildyard``."""
    files = set(git_files if git_files is not None else (git_input_files(project_root) or []))
    if upstream_outputs:
        files.update(list_inputs(project_root, list(upstream_outputs)))
    return sorted(f for f in files if not any(p in PROTECTED_DIRS for p in f.split("/")))


class _Copier:
    """Copies regular files, by reflink while the filesystem takes them, else by ``copy_file_range``."""

    def __init__(self) -> None:
        self.reflink = True

    def copy(self, src: int, dst: int, size: int) -> None:
        if self.reflink:
            try:
                fcntl.ioctl(dst, _FICLONE, src)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS):
                    raise
                self.reflink = False  # this filesystem cannot: do not ask again for every file
            else:
                return
        left = size
        while left > 0:
            try:
                done = os.copy_file_range(src, dst, left)
            except OSError as exc:  # e.g. EXDEV on old kernels: a plain read/write copy
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                _read_write(src, dst)
                return
            if done == 0:
                return
            left -= done


def _read_write(src: int, dst: int) -> None:
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)


def make_workspace(project_root: Path, dest: Path, files: Iterable[str], *, git: bool = True) -> Workspace:
    """Make ``dest`` (which must not exist) a copy of ``files`` (relative to ``project_root``).

    Files that vanished meanwhile are skipped; an unsafe path (absolute, ``..``) or one in
    ``.git``/``.buildyard`` raises :class:`UnsafePathError`. ``git``: add the ``.git`` file and the
    private index described in the module docstring. Returns the workspace and its job variables.
    """
    start = time.perf_counter()
    root = Path(os.path.realpath(project_root))
    dest.mkdir(parents=True, exist_ok=False)
    copier = _Copier()
    made_dirs: set[str] = {""}
    count = 0
    src_root = str(root)
    dst_root = str(dest)
    for rel in files:
        norm = check_relpath(rel)
        if any(p in PROTECTED_DIRS for p in norm.split("/")):
            raise UnsafePathError(f"{rel!r} is in .git or .buildyard: never part of a workspace")
        parent = norm.rpartition("/")[0]
        if parent not in made_dirs:
            os.makedirs(f"{dst_root}/{parent}", exist_ok=True)  # noqa: PTH103 - str paths, per file
            made_dirs.add(parent)
        src_path = f"{src_root}/{norm}"
        try:
            st = os.lstat(src_path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src_path), f"{dst_root}/{norm}")  # noqa: PTH211, PTH115 - str paths
        elif stat.S_ISREG(st.st_mode):
            try:
                src = os.open(src_path, _NOFOLLOW_READ)
            except FileNotFoundError:
                continue
            try:
                dst = os.open(f"{dst_root}/{norm}", _NEW_FILE, st.st_mode & 0o777)
                try:
                    copier.copy(src, dst, st.st_size)
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst)
            finally:
                os.close(src)
        else:
            continue  # sockets, fifos, devices: nothing a job reads as a source file
        count += 1
    env: dict[str, str] = {"BUILDYARD_WORKSPACE": str(dest), "CI_PROJECT_DIR": str(dest)}
    git_dir = _git_dir(root) if git else None
    if git_dir is not None:
        (dest / ".git").write_text(f"gitdir: {git_dir}\n")
        index = git_dir / "index"
        private = dest.parent / f"{dest.name}.git-index"
        if index.is_file():
            shutil.copyfile(index, private)
        env.update({"GIT_INDEX_FILE": str(private), "GIT_OPTIONAL_LOCKS": "0"})
    return Workspace(
        path=dest,
        env=tuple(env.items()),
        files=count,
        method="reflink" if copier.reflink and count else "copy",
        seconds=time.perf_counter() - start,
    )


def remove_workspace(path: Path) -> None:
    """Remove a workspace and its private git index (no error when already gone)."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (path.parent / f"{path.name}.git-index").unlink()


def collect_outputs(workspace: Path, dest_root: Path, patterns: Sequence[str]) -> list[str]:
    """Copy ``workspace``'s files matching the declared output ``patterns`` into ``dest_root``.

    Only paths the patterns declare, never into ``.git``/``.buildyard``, never reading or writing
    through a symlinked directory (raises :class:`UnsafePathError`, having written what came before).
    Each file is written to a temp name in its directory and renamed; mtimes are kept. Returns the
    project-relative paths written.
    """
    rels = [
        r for r in list_inputs(workspace, list(patterns)) if declared(r, patterns) and not is_protected(r)
    ]
    if not rels:
        return []
    dest_root.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    with DirWalker(workspace) as source, DirWalker(dest_root) as target:
        for rel in rels:
            norm = check_relpath(rel)
            *parents, name = norm.split("/")
            src_dir = source.dir_fd(parents, create=False)
            st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
            dst_dir = target.dir_fd(parents)
            tmp = f".{name[:64]}.{secrets.token_hex(6)}.by-collect"
            if stat.S_ISLNK(st.st_mode):
                link = os.readlink(name, dir_fd=src_dir)
                check_symlink(norm, link)
                os.symlink(link, tmp, dir_fd=dst_dir)
            elif stat.S_ISREG(st.st_mode):
                _copy_at(src_dir, name, dst_dir, tmp, st)
            else:
                continue
            try:
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISDIR(os.stat(name, dir_fd=dst_dir, follow_symlinks=False).st_mode):
                        raise UnsafePathError(f"cannot collect {norm!r}: a directory is in the way")
                os.replace(tmp, name, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dst_dir)
            written.append(norm)
    return written


def _copy_at(src_dir: int, name: str, dst_dir: int, tmp: str, st: os.stat_result) -> None:
    src = os.open(name, _NOFOLLOW_READ, dir_fd=src_dir)
    try:
        dst = os.open(tmp, _NEW_FILE, 0o600, dir_fd=dst_dir)
        try:
            _Copier().copy(src, dst, st.st_size)
            os.fchmod(dst, normalize_mode(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


class WorkspaceExecutor:
    """An ``Executor`` that runs requests with a ``workspace`` in a fresh isolated workspace.

    Sits inside the job cache: the key is computed on the project exactly as for a shared job, a
    hit restores into the project, and a miss stores this instance's collected outputs
    (``JobOutcome.outputs_root``). Requests without ``workspace`` go straight to ``inner``.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self._git_files: dict[str, list[str]] = {}  # one ``git ls-files`` per project per run

    def _files(self, ws: WorkspaceRequest) -> list[str]:
        listed = self._git_files.get(ws.project_root)
        if listed is None:
            listed = self._git_files[ws.project_root] = git_input_files(Path(ws.project_root)) or []
        return workspace_files(Path(ws.project_root), ws.upstream_outputs, git_files=listed)

    def _make(self, ws: WorkspaceRequest) -> Workspace:
        root = Path(ws.root)
        remove_workspace(root)  # a previous attempt's, kept or interrupted
        return make_workspace(Path(ws.project_root), root, self._files(ws))

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Make the workspace, run ``request`` in it, collect its outputs, remove it."""
        ws = request.workspace
        if ws is None:
            return await self.inner.execute(request, sink)
        started = time.time()
        try:
            made = await asyncio.to_thread(self._make, ws)
        except (OSError, UnsafePathError) as exc:
            remove_workspace(Path(ws.root))
            return _failed(request, started, f"could not make the isolated workspace {ws.root} ({exc})")
        cwd = made.path / ws.working_directory if ws.working_directory else made.path
        env = dict(request.env)
        env.update(made.env)
        env["BUILDYARD_PROJECT_DIR"] = str(made.path)
        log_note(request, f"isolated workspace {made.path} ({made.files} files, {made.seconds:.2f} s)", sink)
        inner_request = replace(request, cwd=str(cwd), env=tuple(env.items()), workspace=None)
        kept = False
        try:
            outcome = await self.inner.execute(inner_request, sink)
            if outcome.status == JobStatus.SUCCESS and request.output_globs:
                try:
                    outcome = await asyncio.to_thread(
                        self._collect, ws, made.path, request.output_globs, outcome
                    )
                except (OSError, UnsafePathError) as exc:
                    outcome = replace(
                        outcome,
                        status=JobStatus.FAILED,
                        message=f"its outputs could not be collected from the workspace ({exc})",
                    )
            if outcome.status not in (JobStatus.SUCCESS, JobStatus.CACHED) and ws.keep_on_failure:
                kept = True
                note = f"workspace kept at {made.path}"
                message = f"{outcome.message}; {note}" if outcome.message else note
                return replace(outcome, message=message)
            return outcome
        finally:
            if not kept:
                await asyncio.shield(asyncio.to_thread(remove_workspace, made.path))

    @staticmethod
    def _collect(
        ws: WorkspaceRequest, path: Path, patterns: Sequence[str], outcome: JobOutcome
    ) -> JobOutcome:
        own = Path(ws.outputs_dir) if ws.outputs_dir else None
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)  # the previous run's copy of this instance
            collect_outputs(path, own, patterns)
        collect_outputs(path, Path(ws.project_root), patterns)
        # the copies are new files: their ctime, not the job's last step, is when the outputs were final
        return replace(outcome, outputs_root=str(own) if own is not None else "", finished_at=time.time())


def _failed(request: JobRequest, started: float, message: str) -> JobOutcome:
    now = time.time()
    return JobOutcome(
        job_id=request.job_id,
        attempt=request.attempt,
        status=JobStatus.FAILED,
        exit_code=None,
        started_at=started,
        finished_at=now,
        duration_s=now - started,
        message=message,
        log_path=request.log_path,
    )
