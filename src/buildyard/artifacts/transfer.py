"""Moving file content between a directory tree and the CAS, with every digest computed or checked.

Ingest reads each file once to compute SHA-256, SHA-512 and BLAKE3 (the CAS id); only a blob the CAS
lacks is then compressed in (so an unchanged file costs one read and no write). Materialize writes
verified blobs into a staging directory, re-checking SHA-256 and SHA-512 on the way. Files are
processed on a small thread pool (see :func:`default_workers`): hashlib, blake3 and zstd release the GIL
on large buffers, and writes overlap with hashing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from blake3 import blake3

from buildyard.artifacts.errors import ArtifactError, UnsafeNameError, VerificationError
from buildyard.artifacts.model import FileEntry
from buildyard.artifacts.names import check_relpath, inside
from buildyard.cache.cas import CAS
from buildyard.settings import load as load_settings

_CHUNK = 1024 * 1024
_T = TypeVar("_T")
_R = TypeVar("_R")


def default_workers() -> int:
    """Threads for hashing/compressing: the ``artifact_threads`` setting, else the CPUs available (max 4).

    On the 2-core dev machine (bench/bench_artifacts.py, 1 GiB in 4,097 files) two threads pushed in
    6.8 s and pulled in 6.6 s against 9.7 s and 9.1 s for one: the writes are kernel-bound there and
    a second thread overlaps them with hashing, although it costs more CPU in total.
    """
    threads = load_settings().artifact_threads
    if threads is not None:
        return threads
    return max(1, min(4, len(os.sched_getaffinity(0))))


@dataclass(frozen=True, slots=True)
class Source:
    """A file to push: its path inside the artifact and on disk."""

    rel: str
    path: Path
    executable: bool


def _walk(root: Path) -> Iterable[tuple[str, Path]]:
    real_root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [*sorted(filenames), *(d for d in dirnames if Path(dirpath, d).is_symlink())]:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if real_root not in target.parents:
                    raise UnsafeNameError(f"{path}: symlink points outside {root}; refusing to publish it")
                if target.is_dir():
                    raise UnsafeNameError(f"{path}: symlink to a directory; publish the directory itself")
            yield rel, path


def collect(paths: Sequence[Path]) -> list[Source]:
    """The files named by ``paths``: a directory contributes its tree (paths relative to it), a file
    its base name. Symlinks are followed only when they stay inside the directory being published; a
    path given directly that is a symlink is refused (its target is outside the declared file set,
    and a package never silently includes a file from elsewhere)."""
    found: dict[str, Source] = {}
    for top in paths:
        if top.is_symlink():
            raise UnsafeNameError(
                f"{top}: is a symlink (to {top.readlink()}); refusing to publish it — "
                "name the file or directory it points to instead"
            )
        if top.is_dir():
            items: Iterable[tuple[str, Path]] = _walk(top)
        elif top.is_file():
            items = [(top.name, top)]
        else:
            raise ArtifactError(f"{top}: no such file or directory (nothing to publish)")
        for rel, path in items:
            check_relpath(rel)
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(f"{path}: not a regular file (only files can be published)")
            if rel in found:
                raise ArtifactError(f"{path}: two inputs map to the same artifact path {rel!r}")
            found[rel] = Source(rel, path, bool(st.st_mode & 0o111))
    if not found:
        raise ArtifactError("no files to publish (the paths given are empty)")
    return [found[rel] for rel in sorted(found)]


def _parallel(fn: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page and inode of the filesystem holding ``path`` (``syncfs(2)``; ``sync(2)``
    where it is unavailable). One barrier replaces two fsyncs per blob: the same guarantee for a push
    of many files (all blobs durable before the record that names them), at a fraction of the cost."""
    libc = _libc()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "syncfs") else None


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_dirs(a: Path, b: Path) -> None:
    """Swap the directories ``a`` and ``b`` in one atomic step (``renameat2(RENAME_EXCHANGE)``).

    Where the kernel or filesystem lacks it, ``b`` is first renamed aside (into ``a``'s name once
    that is free): then a process killed between the two renames leaves ``b`` missing and its old
    content at a ``.pull-`` sibling, never a mix of the two.
    """
    libc = _libc_any()
    fn = getattr(libc, "renameat2", None) if libc is not None else None
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
            raise ArtifactError(f"{b}: cannot replace it ({os.strerror(err)}); it was left as it was")
    aside = a.with_name(a.name + ".old")
    b.rename(aside)
    a.rename(b)
    aside.rename(a)


def _libc_any() -> ctypes.CDLL | None:
    try:  # the symbols already loaded into this process (libc among them): no ldconfig lookup
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def ingest(cas: CAS, sources: Sequence[Source], *, workers: int | None = None) -> tuple[list[FileEntry], int]:
    """Hash every source and store the blobs the CAS lacks; returns the entries and blobs written.

    Blobs are written without per-file fsync; when ``cas.durable``, one :func:`sync_filesystem`
    barrier at the end makes them all durable before this returns.
    """
    written = _Counter()
    fast = CAS(cas.root, durable=False)

    def one(src: Source) -> FileEntry:
        sha256, sha512, b3 = hashlib.sha256(), hashlib.sha512(), blake3()
        size = 0
        with src.path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sha256.update(chunk)
                sha512.update(chunk)
                b3.update(chunk)
                size += len(chunk)
        digest = b3.hexdigest()
        if not fast.has(digest):
            stored = fast.put_file(src.path)
            if stored != digest:
                raise ArtifactError(f"{src.path}: file changed while it was being published; try again")
            written.add()
        return FileEntry(src.rel, size, sha256.hexdigest(), sha512.hexdigest(), digest, src.executable)

    # biggest first, so one large file does not start last and serialize the tail
    order = sorted(range(len(sources)), key=lambda i: -sources[i].path.stat().st_size)
    results = _parallel(one, [sources[i] for i in order], workers or default_workers())
    entries = sorted(results, key=lambda e: e.path)
    if cas.durable and written.value:
        sync_filesystem(cas.root)
    return entries, written.value


class _HashingSink:
    """Writes to an optional file while computing SHA-256 and SHA-512."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.sha256.update(data)
        self.sha512.update(data)
        self.size += len(data)
        if self._fd is not None:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        return len(data)


def _mismatch(entry: FileEntry, sink: _HashingSink) -> str | None:
    if sink.size != entry.size:
        return f"{entry.path}: size {sink.size} != {entry.size} recorded"
    if sink.sha256.hexdigest() != entry.sha256:
        return f"{entry.path}: SHA-256 does not match the signed digest"
    if sink.sha512.hexdigest() != entry.sha512:
        return f"{entry.path}: SHA-512 does not match the signed digest"
    return None


def check_blob(cas: CAS, entry: FileEntry) -> str | None:
    """A problem with the stored content of ``entry`` (missing/corrupt blob, digest mismatch), or None."""
    sink = _HashingSink(None)
    if not cas.write_to(entry.blob, sink):  # a corrupt blob is evicted, as ``cache verify`` does
        return f"{entry.path}: blob {entry.blob[:16]}… is missing or corrupt in the store"
    return _mismatch(entry, sink)


def materialize(cas: CAS, entries: Sequence[FileEntry], staging: Path, *, workers: int | None = None) -> None:
    """Write every entry under ``staging`` from verified blobs; raise :class:`VerificationError` on the
    first file whose blob is missing or whose digests differ (the caller discards ``staging``)."""

    def one(entry: FileEntry) -> None:
        dest = inside(staging, entry.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if entry.executable else 0o644)
        try:
            sink = _HashingSink(fd)
            ok = cas.write_to(entry.blob, sink)
        finally:
            os.close(fd)
        if not ok:
            raise VerificationError(
                f"{entry.path}: blob {entry.blob[:16]}… is missing or corrupt in the store"
            )
        problem = _mismatch(entry, sink)
        if problem:
            raise VerificationError(problem)

    _parallel(one, list(entries), workers or default_workers())
