"""The action cache: job key -> manifest of what the job produced, and safe restore of it.

Owns :class:`ActionEntry` (output paths, modes, digests, symlinks, exit code, log blob, duration,
created time, the key manifest used for ``explain``) and :class:`ActionCache` (lookup, store,
restore, explain, evict). Entries are ref files in namespace ``ac`` of a :class:`CacheStore`; their
blobs are written first and the entry last, atomically, so a killed writer leaves no entry visible.

Restore treats an entry as untrusted (it may come from a remote cache): it writes only paths matched
by the job's declared output patterns (passed by the caller), with the rules of
:mod:`buildyard.cache.pathsafe` (no ``.git``/``.buildyard``, modes 0644/0755, no write through a
symlink). A violating entry is evicted and :class:`UnsafePathError` raised; nothing is written. It
stages every file (verified) before renaming any into place: a corrupt blob evicts the entry and
restores nothing.

Capture (``store_outputs``) never stores a file that changed while it was copied, nor one changed
after the job finished (``finished_at``): each file is read through one descriptor, and its inode,
size, mtime and ctime before and after the copy (and the path's inode after) must agree, else
:class:`OutputChangedError` and no entry is written.

The job's last key manifest is kept under namespace ``explain`` so a miss can be explained against it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from blake3 import blake3

from buildyard.cache.cas import BlobWriter
from buildyard.cache.hashing import list_inputs
from buildyard.cache.keys import KeyManifest, MissDetail, explain
from buildyard.cache.pathsafe import (
    DirWalker,
    UnsafePathError,
    check_entry_paths,
    check_symlink,
    is_protected,
    normalize_mode,
)
from buildyard.cache.store import CacheStore, OutputLock
from buildyard.errors import BuildyardError

AC_NAMESPACE = "ac"
EXPLAIN_NAMESPACE = "explain"
_CHUNK = 1024 * 1024
#: A ctime later than "now" by more than this comes from a filesystem with another clock (NFS): the
#: changed-after-the-job check is skipped for it (the before/after comparison still holds).
_CLOCK_SKEW_S = 1.0


class OutputChangedError(BuildyardError):
    """An output changed while it was being stored (or after its job finished): nothing is cached."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One output: a regular file (``digest``, ``mode``, ``size``) or a symlink (``symlink`` target)."""

    path: str
    digest: str | None = None
    mode: int = 0o644
    size: int = 0
    symlink: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        if self.symlink is not None:
            return {"path": self.path, "symlink": self.symlink}
        return {"path": self.path, "digest": self.digest, "mode": self.mode, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputFile:
        """Inverse of :meth:`to_json`."""
        if "symlink" in data:
            return cls(path=str(data["path"]), symlink=str(data["symlink"]))
        return cls(
            path=str(data["path"]), digest=str(data["digest"]), mode=int(data["mode"]), size=int(data["size"])
        )


@dataclass(frozen=True, slots=True)
class ActionEntry:
    """What a cached job produced."""

    key: str
    job: str
    outputs: tuple[OutputFile, ...]
    exit_code: int
    log_digest: str | None
    duration_s: float
    created: float
    last_access: float = 0.0
    key_manifest: KeyManifest | None = None

    @property
    def blobs(self) -> list[str]:
        """Every blob digest the entry needs."""
        digests = {o.digest for o in self.outputs if o.digest}
        if self.log_digest:
            digests.add(self.log_digest)
        return sorted(digests)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the ref file's content)."""
        return {
            "key": self.key,
            "job": self.job,
            "outputs": [o.to_json() for o in self.outputs],
            "exit_code": self.exit_code,
            "log": self.log_digest,
            "duration_s": self.duration_s,
            "created": self.created,
            "key_manifest": self.key_manifest.to_json() if self.key_manifest else None,
            "blobs": self.blobs,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, last_access: float = 0.0) -> ActionEntry:
        """Inverse of :meth:`to_json`; raises ``ValueError``/``KeyError``/``TypeError`` if malformed."""
        manifest = data.get("key_manifest")
        return cls(
            key=str(data["key"]),
            job=str(data.get("job", "")),
            outputs=tuple(OutputFile.from_json(o) for o in data["outputs"]),
            exit_code=int(data["exit_code"]),
            log_digest=str(data["log"]) if data.get("log") else None,
            duration_s=float(data["duration_s"]),
            created=float(data["created"]),
            last_access=last_access,
            key_manifest=KeyManifest.from_json(manifest) if isinstance(manifest, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore put into the workspace."""

    entry: ActionEntry
    paths: tuple[str, ...]
    log: bytes | None
    saved_s: float = field(default=0.0)


def _same_file(dir_fd: int, name: str, output: OutputFile) -> bool:
    """True if ``name`` in ``dir_fd`` already holds exactly ``output`` (same kind, mode, size and content)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if output.symlink is not None:
        return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dir_fd) == output.symlink
    if not (
        stat.S_ISREG(st.st_mode) and st.st_size == output.size and stat.S_IMODE(st.st_mode) == output.mode
    ):
        return False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    hasher = blake3()
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
    return str(hasher.hexdigest()) == output.digest


def _copy_into(src: BinaryIO, writer: BlobWriter) -> int:
    """Stream ``src`` into ``writer``; returns the bytes copied (the step tests interfere with)."""
    copied = 0
    for chunk in iter(lambda: src.read(_CHUNK), b""):
        writer.write(chunk)
        copied += len(chunk)
    return copied


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ActionCache:
    """Key -> :class:`ActionEntry` over a :class:`CacheStore` (local disk)."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.cas = store.cas

    def lookup(self, key: str) -> ActionEntry | None:
        """The entry for ``key`` if present and all its blobs exist (marks it used); else None."""
        path = self.store.refs.path(AC_NAMESPACE, key)
        try:
            last_access = path.stat().st_mtime
        except FileNotFoundError:
            return None
        data = self.store.refs.read(AC_NAMESPACE, key)
        if data is None:
            return None
        try:
            entry = ActionEntry.from_json(data, last_access=last_access)
        except (KeyError, ValueError, TypeError):
            self.evict(key)
            return None
        if not all(self.cas.has(d) for d in entry.blobs):
            self.evict(key)
            return None
        return entry

    def store_outputs(
        self,
        key: str,
        *,
        workspace: Path,
        outputs: Sequence[str] = (),
        log: bytes | Path | None = None,
        exit_code: int = 0,
        duration_s: float = 0.0,
        job: str = "",
        key_manifest: KeyManifest | None = None,
        finished_at: float | None = None,
    ) -> ActionEntry:
        """Store the files matching ``outputs`` (paths, directories or globs under ``workspace``).

        Paths under ``.git``/``.buildyard`` are skipped; modes are stored as 0644/0755. Raises
        :class:`OutputChangedError` (storing no entry) if a file changes while it is copied or
        was changed after ``finished_at`` (the job's end, wall clock).
        """
        files: list[OutputFile] = []
        with self.store.in_use():
            for rel in list_inputs(workspace, list(outputs)) if outputs else []:
                if is_protected(rel):
                    continue
                full = workspace / rel
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    target = str(full.readlink())
                    check_symlink(rel, target)
                    files.append(OutputFile(path=rel, symlink=target))
                elif stat.S_ISREG(st.st_mode):
                    files.append(self._capture(full, rel, finished_at))
            log_digest: str | None = None
            if isinstance(log, Path):
                log_digest = self.cas.put_file(log)
            elif log is not None:
                log_digest = self.cas.put_bytes(log)
            entry = ActionEntry(
                key=key,
                job=job,
                outputs=tuple(files),
                exit_code=exit_code,
                log_digest=log_digest,
                duration_s=duration_s,
                created=time.time(),
                key_manifest=key_manifest,
            )
            self._write_entry(entry)
        self.store.enforce_limit()
        return entry

    def _capture(self, full: Path, rel: str, finished_at: float | None) -> OutputFile:
        """Store one regular file read through one descriptor; refuse it if it changes meanwhile."""
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise OutputChangedError(f"output {rel} changed while it was being stored")
            # file times come from the kernel's coarse clock (it may lag time.time() by a tick, never
            # lead it): a ctime after the job's end is someone else's change
            if finished_at is not None and finished_at < before.st_ctime <= time.time() + _CLOCK_SKEW_S:
                raise OutputChangedError(
                    f"output {rel} was changed after its job finished (another run writing it?); not cached"
                )
            with self.cas.writer() as writer:
                copied = _copy_into(f, writer)
                after = os.fstat(fd)
                try:
                    now_at_path = full.lstat()
                except FileNotFoundError:
                    now_at_path = None
                if (
                    copied != before.st_size
                    or _identity(after) != _identity(before)
                    or now_at_path is None
                    or (now_at_path.st_dev, now_at_path.st_ino) != (before.st_dev, before.st_ino)
                ):
                    raise OutputChangedError(
                        f"output {rel} changed while it was being stored (another run writing it?); "
                        "not cached"
                    )
                digest = writer.commit()
        return OutputFile(path=rel, digest=digest, mode=normalize_mode(before.st_mode), size=copied)

    def put_entry(self, entry: ActionEntry, *, enforce_limit: bool = True) -> None:
        """Record ``entry`` (its blobs must already be in the CAS) and remember it for ``explain``."""
        self._write_entry(entry)
        if enforce_limit:
            self.store.enforce_limit()

    def _write_entry(self, entry: ActionEntry) -> None:
        self.store.refs.write(AC_NAMESPACE, entry.key, entry.to_json())
        if entry.job and entry.key_manifest is not None:
            self.store.refs.write(
                EXPLAIN_NAMESPACE,
                entry.job,
                {"key": entry.key, "key_manifest": entry.key_manifest.to_json(), "blobs": []},
            )

    def restore(self, entry: ActionEntry, workspace: Path, *, outputs: Sequence[str]) -> RestoreResult | None:
        """Materialize ``entry``'s outputs (and read its log) into ``workspace``.

        ``outputs``: the job's declared output patterns (relative to ``workspace``), from the job
        definition: the entry may write nothing else. Raises :class:`UnsafePathError` (after
        evicting the entry, having written nothing) for an entry that breaks the rules of
        :mod:`buildyard.cache.pathsafe`. Every file is decompressed and verified into a temp file
        next to its destination before any is renamed into place. Returns None, having evicted the
        entry and written nothing, if a blob is missing or corrupt.
        """
        log: bytes | None = None
        if entry.log_digest:
            log = self.cas.get_bytes(entry.log_digest)
            if log is None:
                self.evict(entry.key)
                return None
        try:
            norms = self.materialize(entry, workspace, outputs=outputs)
        except UnsafePathError:
            self.evict(entry.key)
            raise
        if norms is None:
            self.evict(entry.key)
            return None
        self.store.record_event("hit", key=entry.key, saved_s=entry.duration_s)
        return RestoreResult(entry=entry, paths=tuple(norms), log=log, saved_s=entry.duration_s)

    def materialize(self, entry: ActionEntry, workspace: Path, *, outputs: Sequence[str]) -> list[str] | None:
        """Write ``entry``'s outputs into ``workspace`` with every check of :meth:`restore`, without
        its bookkeeping (no event, no eviction): for outputs that come from elsewhere than a cache
        hit, e.g. a remote agent's. Returns the normalized paths, or None (nothing written) if a blob
        is missing or corrupt; raises :class:`UnsafePathError` for a path the patterns do not allow.
        """
        norms = check_entry_paths([(o.path, o.mode, o.symlink) for o in entry.outputs], outputs)
        with self.store.in_use(), DirWalker(workspace) as walker:
            ok = self._stage_and_commit(entry, norms, walker)
        return norms if ok else None

    def _stage_and_commit(self, entry: ActionEntry, norms: Sequence[str], walker: DirWalker) -> bool:
        """Write every output to a temp name in its directory, then rename all; False if a blob is bad."""
        staged: list[tuple[int, str, str]] = []  # (dir fd, temp name, final name)
        try:
            for output, norm in zip(entry.outputs, norms, strict=True):
                *parents, name = norm.split("/")
                dir_fd = walker.dir_fd(parents)
                if _same_file(dir_fd, name, output):
                    continue  # an unchanged output from a previous run: nothing to write
                tmp = f".{name[:64]}.{secrets.token_hex(6)}.by-restore"
                if output.symlink is not None:
                    os.symlink(output.symlink, tmp, dir_fd=dir_fd)
                    staged.append((dir_fd, tmp, name))
                    continue
                fd = os.open(
                    tmp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
                staged.append((dir_fd, tmp, name))
                with os.fdopen(fd, "wb") as f:
                    if output.digest is None or not self.cas.write_to(output.digest, f):
                        return False
                    os.fchmod(f.fileno(), output.mode)
            for dir_fd, _tmp, name in staged:
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                        raise UnsafePathError(f"cannot restore {name!r}: a directory is in the way")
            for dir_fd, tmp, name in staged:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            staged = []
        finally:
            for dir_fd, tmp, _name in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dir_fd)
        return True

    def output_lock(self, project: Path, patterns: Sequence[str], *, job: str = "") -> OutputLock:
        """The cross-process lock of ``job``'s declared ``patterns`` in ``project`` (:class:`OutputLock`)."""
        return OutputLock(self.store, project, patterns, job=job)

    def read_log(self, entry: ActionEntry) -> bytes | None:
        """The job log stored with ``entry`` (verified), if any."""
        return self.cas.get_bytes(entry.log_digest) if entry.log_digest else None

    def explain(self, job: str, current: KeyManifest) -> list[MissDetail]:
        """Why ``job`` with ``current`` would miss: [] on a hit, else reasons against its last entry."""
        if self.store.refs.read(AC_NAMESPACE, current.key(), touch=False) is not None:
            return []
        return explain(self.last_manifest(job), current)

    def last_manifest(self, job: str) -> KeyManifest | None:
        """The key manifest of ``job``'s most recently stored entry."""
        data = self.store.refs.read(EXPLAIN_NAMESPACE, job, touch=False)
        if data is None or not isinstance(data.get("key_manifest"), dict):
            return None
        try:
            return KeyManifest.from_json(data["key_manifest"])
        except (ValueError, TypeError):
            return None

    def record_miss(self, key: str) -> None:
        """Count a miss in the store's recent events (for ``cache stats``)."""
        self.store.record_event("miss", key=key)

    def evict(self, key: str) -> None:
        """Remove the entry for ``key`` (its blobs go at the next prune)."""
        self.store.refs.delete(AC_NAMESPACE, key)
