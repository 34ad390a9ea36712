"""The action cache: job key -> manifest of what the job produced, and safe restore of it.

Owns :class:`ActionEntry` (output paths, modes, digests, symlinks, exit code, log blob, duration,
created time, the key manifest used for ``explain``) and :class:`ActionCache` (lookup, store,
restore, explain, evict). Entries are ref files in namespace ``ac`` of a :class:`CacheStore`; their
blobs are written first and the entry last, atomically, so a killed writer leaves no entry visible.
A restore stages every file (verified) before renaming any into place: a corrupt blob evicts the
entry and restores nothing. The job's last key manifest is kept under namespace ``explain`` so a
miss can be explained against it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildyard.cache.hashing import hash_file, list_inputs
from buildyard.cache.keys import KeyManifest, MissDetail, explain
from buildyard.cache.pathsafe import UnsafePathError, check_relpath, check_symlink, safe_destination
from buildyard.cache.store import CacheStore

AC_NAMESPACE = "ac"
EXPLAIN_NAMESPACE = "explain"


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


def _already_there(output: OutputFile, dest: Path) -> bool:
    """True if ``dest`` already holds exactly ``output`` (same kind, mode, size and content)."""
    try:
        st = dest.lstat()
    except FileNotFoundError:
        return False
    if output.symlink is not None:
        return stat.S_ISLNK(st.st_mode) and str(dest.readlink()) == output.symlink
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == output.size
        and stat.S_IMODE(st.st_mode) == output.mode
        and output.digest is not None
        and hash_file(dest, size=st.st_size) == output.digest
    )


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
    ) -> ActionEntry:
        """Store the files matching ``outputs`` (paths, directories or globs under ``workspace``)."""
        files: list[OutputFile] = []
        for rel in list_inputs(workspace, list(outputs)) if outputs else []:
            full = workspace / rel
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = str(full.readlink())
                check_symlink(rel, target)
                files.append(OutputFile(path=rel, symlink=target))
            elif stat.S_ISREG(st.st_mode):
                digest = self.cas.put_file(full)
                files.append(OutputFile(path=rel, digest=digest, mode=st.st_mode & 0o777, size=st.st_size))
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
        self.put_entry(entry)
        return entry

    def put_entry(self, entry: ActionEntry) -> None:
        """Record ``entry`` (its blobs must already be in the CAS) and remember it for ``explain``."""
        self.store.refs.write(AC_NAMESPACE, entry.key, entry.to_json())
        if entry.job and entry.key_manifest is not None:
            self.store.refs.write(
                EXPLAIN_NAMESPACE,
                entry.job,
                {"key": entry.key, "key_manifest": entry.key_manifest.to_json(), "blobs": []},
            )

    def restore(self, entry: ActionEntry, workspace: Path) -> RestoreResult | None:
        """Materialize ``entry``'s outputs (and read its log) into ``workspace``.

        Every file is decompressed and verified into a temp file next to its destination before any
        is renamed into place. Returns None, having evicted the entry and written nothing, if a blob
        is missing or corrupt. Raises :class:`UnsafePathError` (after evicting) for an entry naming a
        path outside the workspace.
        """
        try:
            plan = [(o, safe_destination(workspace, o.path)) for o in entry.outputs]
            for o in entry.outputs:
                if o.symlink is not None:
                    check_symlink(check_relpath(o.path), o.symlink)
        except UnsafePathError:
            self.evict(entry.key)
            raise
        log: bytes | None = None
        if entry.log_digest:
            log = self.cas.get_bytes(entry.log_digest)
            if log is None:
                self.evict(entry.key)
                return None
        staged: list[tuple[Path, Path]] = []
        try:
            for output, dest in plan:
                if _already_there(output, dest):
                    continue  # an unchanged output from a previous run: nothing to write
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(
                    prefix=f".{dest.name}.", suffix=".by-restore", dir=dest.parent
                )
                tmp = Path(tmp_name)
                staged.append((tmp, dest))
                with os.fdopen(fd, "wb") as f:
                    ok = output.symlink is not None or (
                        output.digest is not None and self.cas.write_to(output.digest, f)
                    )
                if not ok:
                    self.evict(entry.key)
                    return None
                if output.symlink is not None:
                    tmp.unlink()
                    tmp.symlink_to(output.symlink)
                else:
                    tmp.chmod(output.mode)
            for tmp, dest in staged:
                if dest.is_dir() and not dest.is_symlink():
                    raise UnsafePathError(f"cannot restore {dest}: a directory is in the way")
                tmp.replace(dest)
            staged = []
        finally:
            for tmp, _dest in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        self.store.record_event("hit", key=entry.key, saved_s=entry.duration_s)
        return RestoreResult(
            entry=entry, paths=tuple(o.path for o in entry.outputs), log=log, saved_s=entry.duration_s
        )

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
