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

The local executor's fast path is :class:`OverlayWorkspace` (``make_overlay``): the run's hardlink
farm of the git-visible files (read-only: overlayfs never writes a lower layer) plus a layer of the
job's needs' outputs, under an upper layer that takes the job's writes, mounted in each step's own
user+mount namespace (``unshare -Urm``, ``userxattr``). Its outputs are read from the merged view
(:meth:`OverlayWorkspace.sources`). Isolation is against accidents, not a sandbox: a job writing by
absolute path into the project, or into the farm (hardlinks of the project's files), reaches them.

A job's dependency cache paths (``cache: paths``) travel like outputs in both directions: the cache
restores them into the project before the job and saves them from it after.

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
import functools
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from buildyard.cache.hashing import list_inputs
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
from buildyard.engine.request import (
    Executor,
    JobOutcome,
    JobRequest,
    OutputSink,
    WorkspaceRequest,
    log_note,
    outcome_without_steps,
)
from buildyard.errors import UsageError
from buildyard.model import JobStatus
from buildyard.settings import load as load_settings

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
    """What an isolated job sees: the git-visible files (``git_files``, else one ``git ls-files``;
    every file outside a git work tree)
    plus the project's files matching ``upstream_outputs``; never ``.git``/``.buildyard``."""
    files = set(git_files if git_files is not None else list_inputs(project_root))
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


def make_workspace(
    project_root: Path, dest: Path, files: Iterable[str], *, git: bool = True, link: bool = False
) -> Workspace:
    """Make ``dest`` (which must not exist) a copy of ``files`` (relative to ``project_root``).

    Files that vanished meanwhile are skipped; an unsafe path (absolute, ``..``) or one in
    ``.git``/``.buildyard`` raises :class:`UnsafePathError`. ``git``: add the ``.git`` file and the
    private index described in the module docstring. Returns the workspace and its job variables.
    ``link``: hardlink instead of copying — only for a read-only lower layer of an overlay (a job
    writing a hardlinked file would write the project's).
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
                if link and _hardlink(src_path, f"{dst_root}/{norm}"):
                    count += 1
                    continue
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
        method="hardlink" if link else "reflink" if copier.reflink and count else "copy",
        seconds=time.perf_counter() - start,
    )


def _hardlink(src: str, dst: str) -> bool:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # another filesystem, protected_hardlinks…: copy this one
        return False
    return True


def _force_rmtree(path: Path) -> None:
    """``rmtree`` that also removes the mode-000 directories overlayfs leaves in its work dir."""

    def fix(_func: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)  # noqa: PTH120
            os.chmod(failed, 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):  # noqa: PTH112, PTH114
            shutil.rmtree(failed, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(failed)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=fix)


_SIDE_DIRS = (".upper", ".work", ".needs")


def remove_workspace(path: Path) -> None:
    """Remove a workspace, its private git index and overlay layers (no error when already gone)."""
    _force_rmtree(path)
    for suffix in _SIDE_DIRS:
        _force_rmtree(path.parent / f"{path.name}{suffix}")
    with contextlib.suppress(FileNotFoundError):
        (path.parent / f"{path.name}.git-index").unlink()


# --- overlayfs in a user namespace ---------------------------------------------------------------

#: ``copy`` | ``overlay`` | ``auto`` (overlay where ``unshare -Urm`` can mount one, else copy).
METHOD_ENV = "BUILDYARD_WORKSPACE_METHOD"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_OVERLAY_SH = 'mount -t overlay overlay -o "$1" "$2" && cd "$3" && shift 3 && exec "$@"'


@functools.cache
def overlay_supported(scratch: str) -> bool:
    """True if ``unshare -Urm`` can mount an overlayfs in ``scratch`` (probed once per process)."""
    if shutil.which("unshare") is None:
        return False
    base = Path(tempfile.mkdtemp(prefix=".by-overlay-probe-", dir=scratch))
    try:
        for sub in ("l", "u", "w", "m"):
            (base / sub).mkdir()
        opts = f"userxattr,lowerdir={base}/l,upperdir={base}/u,workdir={base}/w"
        argv = ["unshare", "-Urm", "sh", "-c", _OVERLAY_SH, "probe", opts, str(base / "m"), "/", "true"]
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        _force_rmtree(base)


@dataclass(frozen=True, slots=True)
class OverlayWorkspace:
    """A workspace seen only inside a user+mount namespace: ``lowers`` (read-only, first wins) under
    ``upper`` (the job's writes), mounted at ``path``. Each step re-mounts it (cheap) in its own
    namespace: :meth:`shell` wraps the step's shell. The job sees uid 0 (``unshare -r``)."""

    path: Path
    upper: Path
    work: Path
    lowers: tuple[Path, ...]

    def shell(self, shell: str, cwd: Path) -> str:
        """``shell`` run in a fresh mount namespace with the overlay mounted, in ``cwd``."""
        lowers = ":".join(map(str, self.lowers))
        opts = f"userxattr,lowerdir={lowers},upperdir={self.upper},workdir={self.work}"
        wrap = [
            "unshare",
            "-Urm",
            "sh",
            "-c",
            _OVERLAY_SH,
            "buildyard-workspace",
            opts,
            str(self.path),
            str(cwd),
        ]
        return f"{shlex.join(wrap)} {shell}"

    def sources(self, patterns: Sequence[str]) -> list[tuple[Path, str]]:
        """The merged view's files matching ``patterns``: ``(layer, rel)``, upper over lowers,
        whiteouts and opaque directories honoured."""
        chosen: dict[str, Path] = dict.fromkeys(list_inputs(self.upper, list(patterns)), self.upper)
        for lower in self.lowers:
            for rel in list_inputs(lower, list(patterns)):
                if rel not in chosen and not self._masked(rel):
                    chosen[rel] = lower
        return [(root, rel) for rel, root in sorted(chosen.items())]

    def _masked(self, rel: str) -> bool:
        """True if the upper layer deletes ``rel`` (a whiteout) or hides its lower directories."""
        parts = rel.split("/")
        for i in range(len(parts), 0, -1):
            path = self.upper.joinpath(*parts[:i])
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                return True  # a whiteout, or a file where the lower layer has a directory
            for name in _OPAQUE_XATTRS:
                with contextlib.suppress(OSError):
                    if os.getxattr(path, name, follow_symlinks=False) == b"y":
                        return True
        return False


def make_overlay(lower: Path, root: Path, project_root: Path, upstream: Sequence[str]) -> OverlayWorkspace:
    """The overlay workspace ``root`` over the run's hardlink farm ``lower`` (git-visible files,
    see :func:`make_workspace` with ``link=True``) plus a layer of ``upstream`` outputs."""
    needs = root.parent / f"{root.name}.needs"
    if upstream:
        make_workspace(project_root, needs, list_inputs(project_root, list(upstream)), git=False, link=True)
    else:
        needs.mkdir(parents=True)
    upper = root.parent / f"{root.name}.upper"
    work = root.parent / f"{root.name}.work"
    for path in (root, upper, work):
        path.mkdir(parents=True)
    return OverlayWorkspace(path=root, upper=upper, work=work, lowers=(needs, lower))


def collect_outputs(workspace: Path, dest_root: Path, patterns: Sequence[str]) -> list[str]:
    """Copy ``workspace``'s files matching the declared output ``patterns`` into ``dest_root``.

    Only paths the patterns declare, never into ``.git``/``.buildyard``, never reading or writing
    through a symlinked directory (raises :class:`UnsafePathError`, having written what came before).
    Each file is written to a temp name in its directory and renamed; mtimes are kept. Returns the
    project-relative paths written.
    """
    rels = list_inputs(workspace, list(patterns))
    return _collect_from([(workspace, r) for r in rels], dest_root, patterns)


def _collect_from(sources: Sequence[tuple[Path, str]], dest_root: Path, patterns: Sequence[str]) -> list[str]:
    """Copy each ``(root, rel)`` of ``sources`` to ``dest_root/rel`` (see :func:`collect_outputs`)."""
    chosen = [(root, r) for root, r in sources if declared(r, patterns) and not is_protected(r)]
    if not chosen:
        return []
    dest_root.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    walkers: dict[Path, DirWalker] = {}
    try:
        with DirWalker(dest_root) as target:
            for root, rel in chosen:
                source = walkers.get(root)
                if source is None:
                    source = walkers[root] = DirWalker(root)
                if _collect_one(source, target, check_relpath(rel)):
                    written.append(rel)
    finally:
        for walker in walkers.values():
            walker.close()
    return written


def _collect_one(source: DirWalker, target: DirWalker, norm: str) -> bool:
    *parents, name = norm.split("/")
    src_dir = source.dir_fd(parents, create=False)
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    if not (stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return False
    dst_dir = target.dir_fd(parents)
    tmp = f".{name[:64]}.{secrets.token_hex(6)}.by-collect"
    try:
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(name, dir_fd=src_dir)
            check_symlink(norm, link)
            os.symlink(link, tmp, dir_fd=dst_dir)
        else:
            _copy_at(src_dir, name, dst_dir, tmp, st)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=dst_dir, follow_symlinks=False).st_mode):
                raise UnsafePathError(f"cannot collect {norm!r}: a directory is in the way")
        os.replace(tmp, name, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dst_dir)
    return True


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

    Method (``$BUILDYARD_WORKSPACE_METHOD``, default ``auto``): ``overlay`` — one hardlink farm of
    the git-visible files per run (``<run>/.lower``, read-only), and per job an overlayfs over it
    mounted in the job's own user+mount namespace (``unshare -Urm``): ready in tens of ms whatever
    the tree's size, the job's writes land in its upper layer; ``copy`` — :func:`make_workspace`.
    ``auto`` takes overlay where it works (probed once), else copy. Call :meth:`close` after the run.
    """

    def __init__(self, inner: Executor, *, method: str | None = None) -> None:
        self.inner = inner
        self.method = method or load_settings().workspace_method
        if self.method not in ("auto", "copy", "overlay"):
            raise UsageError(f"{METHOD_ENV}={self.method!r} is not one of: auto, copy, overlay")
        self._git_files: dict[str, list[str]] = {}  # one ``git ls-files`` per project per run
        self._lowers: dict[Path, Path] = {}  # run directory → its hardlink farm
        self._lock = threading.Lock()

    def _listed(self, project_root: str) -> list[str]:
        with self._lock:
            return self._git_files_locked(project_root)

    def _use_overlay(self, ws: WorkspaceRequest) -> bool:
        if self.method == "copy" or any(c in ws.project_root + ws.root for c in ",:\n"):
            return False  # characters mount options cannot carry
        run_dir = Path(ws.root).parent
        run_dir.mkdir(parents=True, exist_ok=True)
        return self.method == "overlay" or overlay_supported(str(run_dir))

    def _lower(self, ws: WorkspaceRequest) -> Path:
        run_dir = Path(ws.root).parent
        with self._lock:
            lower = self._lowers.get(run_dir)
            if lower is None:
                lower = run_dir / ".lower"
                remove_workspace(lower)
                files = workspace_files(
                    Path(ws.project_root), git_files=self._git_files_locked(ws.project_root)
                )
                make_workspace(Path(ws.project_root), lower, files, link=True)
                self._lowers[run_dir] = lower
            return lower

    def _git_files_locked(self, project_root: str) -> list[str]:
        """The project's git-visible files (one ``git ls-files`` per project); hold ``_lock``."""
        listed = self._git_files.get(project_root)
        if listed is None:
            # git-visible files, or every file outside a git work tree
            listed = self._git_files[project_root] = list_inputs(Path(project_root))
        return listed

    def _make(self, ws: WorkspaceRequest) -> Workspace | OverlayWorkspace:
        root = Path(ws.root)
        remove_workspace(root)  # a previous attempt's, kept or interrupted
        if self._use_overlay(ws):
            extra = (*ws.upstream_outputs, *ws.dependency_paths)
            return make_overlay(self._lower(ws), root, Path(ws.project_root), extra)
        files = workspace_files(
            Path(ws.project_root),
            (*ws.upstream_outputs, *ws.dependency_paths),
            git_files=self._listed(ws.project_root),
        )
        return make_workspace(Path(ws.project_root), root, files)

    def close(self) -> None:
        """Remove the run's hardlink farms."""
        for lower in self._lowers.values():
            remove_workspace(lower)
        self._lowers.clear()

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Make the workspace, run ``request`` in it, collect its outputs, remove it."""
        ws = request.workspace
        if ws is None:
            return await self.inner.execute(request, sink)
        started = time.time()
        start = time.perf_counter()
        try:
            made = await asyncio.to_thread(self._make, ws)
        except (OSError, UnsafePathError) as exc:
            remove_workspace(Path(ws.root))
            return outcome_without_steps(
                request, JobStatus.FAILED, started, f"could not make the isolated workspace {ws.root} ({exc})"
            )
        path = made.path
        cwd = path / ws.working_directory if ws.working_directory else path
        env = dict(request.env)
        env.update({"BUILDYARD_WORKSPACE": str(path), "CI_PROJECT_DIR": str(path)})
        env["BUILDYARD_PROJECT_DIR"] = str(path)
        index = path.parent / f"{path.name}.git-index"
        git_dir = _git_dir(Path(ws.project_root))
        if isinstance(made, OverlayWorkspace):
            if git_dir is not None and (git_dir / "index").is_file():
                shutil.copyfile(git_dir / "index", index)
            steps = tuple(replace(s, shell=made.shell(s.shell, cwd)) for s in request.steps)
            run_cwd, how = path, "overlay"
        else:
            steps, run_cwd, how = request.steps, cwd, made.method
        if git_dir is not None:
            env.update({"GIT_INDEX_FILE": str(index), "GIT_OPTIONAL_LOCKS": "0"})
        took = time.perf_counter() - start
        log_note(request, f"isolated workspace {path} ({how}, ready in {took * 1000:.0f} ms)", sink)
        inner_request = replace(
            request, cwd=str(run_cwd), env=tuple(env.items()), steps=steps, workspace=None
        )
        kept = False
        try:
            outcome = await self.inner.execute(inner_request, sink)
            if outcome.status == JobStatus.SUCCESS and (request.output_globs or ws.dependency_paths):
                try:
                    outcome = await asyncio.to_thread(self._collect, ws, made, request.output_globs, outcome)
                except (OSError, UnsafePathError) as exc:
                    outcome = replace(
                        outcome,
                        status=JobStatus.FAILED,
                        message=f"its outputs could not be collected from the workspace ({exc})",
                    )
            if outcome.status not in (JobStatus.SUCCESS, JobStatus.CACHED) and ws.keep_on_failure:
                kept = True
                where = made.upper if isinstance(made, OverlayWorkspace) else path
                note = f"workspace kept at {where}"
                message = f"{outcome.message}; {note}" if outcome.message else note
                return replace(outcome, message=message)
            return outcome
        finally:
            if not kept:
                await asyncio.shield(asyncio.to_thread(remove_workspace, path))

    @staticmethod
    def _collect(
        ws: WorkspaceRequest, made: Workspace | OverlayWorkspace, patterns: Sequence[str], outcome: JobOutcome
    ) -> JobOutcome:
        if ws.dependency_paths:  # for the cache to save them from the project, as for a shared job
            _collect_from(_sources(made, ws.dependency_paths), Path(ws.project_root), ws.dependency_paths)
        if not patterns:
            return outcome
        sources = _sources(made, patterns)
        own = Path(ws.outputs_dir) if ws.outputs_dir else None
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)  # the previous run's copy of this instance
            _collect_from(sources, own, patterns)
        _collect_from(sources, Path(ws.project_root), patterns)
        # the copies are new files: their ctime, not the job's last step, is when the outputs were final
        return replace(outcome, outputs_root=str(own) if own is not None else "", finished_at=time.time())


def _sources(made: Workspace | OverlayWorkspace, patterns: Sequence[str]) -> list[tuple[Path, str]]:
    """The workspace's files matching ``patterns``, as ``(root, rel)``."""
    if isinstance(made, OverlayWorkspace):
        return made.sources(patterns)
    return [(made.path, rel) for rel in list_inputs(made.path, list(patterns))]
