"""The artifact repository: versions stored on the shared CAS, signed at push, verified at pull.

Layout of a repository directory (default ``$BUILDYARD_HOME/artifacts``)::

    blobs/, tmp/                 the CAS (buildyard.cache.cas), durable: blobs are fsynced
    refs/artifacts/…/<h>.json    one record per version (ref files: ``cache prune`` never evicts them)
    audit.log                    append-only, hash-chained events (push, promote, delete)
    config.json                  channels, promotion policy, retention (optional)
    lock                         flock taken by every mutation's commit step

A push ingests the files (blobs first), then the manifest, SBOM and DSSE envelope blobs, and finally
writes the record with an fsynced atomic rename — the single commit point. A push killed earlier
leaves only unreferenced blobs, which nothing lists and garbage collection removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from blake3 import blake3

from buildyard.artifacts import attest
from buildyard.artifacts.audit import Action, AuditLog, current_actor
from buildyard.artifacts.channels import ChannelState, derive
from buildyard.artifacts.config import RepoConfig, load_config
from buildyard.artifacts.errors import ArtifactError, ArtifactNotFoundError, VerificationError
from buildyard.artifacts.keys import DEFAULT_KEY, KeyRing, PublicKey
from buildyard.artifacts.model import ArtifactType, BuildInfo, Dependency, FileEntry, Manifest, Record, encode
from buildyard.artifacts.names import check_name, check_relpath
from buildyard.artifacts.semver import Version, VersionError
from buildyard.artifacts.transfer import Source, check_blob, collect, exchange_dirs, ingest, materialize
from buildyard.cache.store import CacheStore
from buildyard.fsutil import atomic_write_bytes
from buildyard.settings import load as load_settings

NAMESPACE = "artifacts"


def buildyard_home(project: Path) -> Path:
    """The ``home`` setting (``BUILDYARD_HOME``), defaulting to ``<project>/.buildyard``."""
    return load_settings(project).home


def default_root(project: Path) -> Path:
    """The ``artifacts_dir`` setting (``BUILDYARD_ARTIFACTS``), else ``<home>/artifacts`` (the same for
    every command and runs)."""
    return load_settings(project).artifacts_dir


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push stored: the manifest, whether the version is new, and how many blobs were written."""

    manifest: Manifest
    record: Record
    created: bool
    blobs_written: int


@dataclass(frozen=True, slots=True)
class Verified:
    """A version whose signature, manifest and (optionally) blobs verified."""

    record: Record
    manifest: Manifest
    signer: PublicKey
    statement: attest.VerifiedStatement


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@selector`` → ``(name, selector)``; the selector may be absent."""
    name, sep, selector = ref.partition("@")
    check_name(name)
    if sep and not selector:
        raise ArtifactError(f"{ref!r}: nothing after '@' (give a version, 'latest' or a channel)")
    return name, (selector or None)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_consistency(stmt: attest.VerifiedStatement, manifest_bytes: bytes, *, what: str) -> Manifest:
    """Tie the manifest to the signed statement: its digest, name, version and every file's digests."""
    if stmt.byproduct_sha256(attest.MANIFEST_NAME) != _sha256(manifest_bytes):
        raise VerificationError(f"{what}: the manifest does not match the signed provenance")
    try:
        manifest = msgspec.json.decode(manifest_bytes, type=Manifest)
    except msgspec.DecodeError:
        raise VerificationError(f"{what}: the manifest is malformed") from None
    signed = stmt.artifact
    if (signed.get("name"), signed.get("version")) != (manifest.name, manifest.version):
        raise VerificationError(f"{what}: the signature is for {signed.get('name')}@{signed.get('version')}")
    subjects = stmt.subjects
    files = {f.path: {"sha256": f.sha256, "sha512": f.sha512} for f in manifest.files}
    if subjects != files:
        raise VerificationError(f"{what}: the file list does not match the signed subjects")
    for f in manifest.files:
        check_relpath(f.path)
    return manifest


class Repository:
    """One artifact repository directory (see the module docstring for its layout)."""

    def __init__(
        self,
        root: Path,
        *,
        keyring: KeyRing,
        config: RepoConfig | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.store = CacheStore(root, durable=True)
        self.cas = self.store.cas
        self.keyring = keyring
        self.audit = AuditLog(root / "audit.log")
        self._config = config
        self._warn = warn or _stderr_warning
        self._warned: set[Path] = set()

    @property
    def config(self) -> RepoConfig:
        """Channels and retention (``config.json`` or the defaults)."""
        if self._config is None:
            self._config = load_config(self.root / "config.json")
        return self._config

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive repository lock (held for commit steps only, never while hashing files)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------------------
    def scan(self) -> tuple[list[Record], list[Path]]:
        """Every readable version record, and the paths of the unreadable ones (never deleted here)."""
        out: list[Record] = []
        unreadable: list[Path] = []
        for ref in self.store.refs.iter_refs(NAMESPACE, unreadable=unreadable):
            rec = _as_record(ref.data)
            if rec is None or ref.path != self.store.refs.path(NAMESPACE, rec.name):  # not where it belongs
                unreadable.append(ref.path)
            else:
                out.append(rec)
        out.sort(key=lambda r: (r.artifact, Version.parse(r.version).sort_key()))
        return out, sorted(unreadable)

    def records(self, name: str | None = None) -> list[Record]:
        """Every version's record (of ``name``), in SemVer order with the build-number tie-break.

        An unreadable record is skipped with a one-line warning naming its file (``fsck`` reports it).
        """
        found, unreadable = self.scan()
        for path in unreadable:
            self._warn_unreadable(path)
        return [r for r in found if name is None or r.artifact == name]

    def _warn_unreadable(self, path: Path) -> None:
        if path not in self._warned:
            self._warned.add(path)
            self._warn(f"{path}: unreadable version record skipped (kept; run 'buildyard artifacts fsck')")

    def names(self) -> list[str]:
        """Artifact names with at least one version."""
        return sorted({r.artifact for r in self.records()})

    def record(self, name: str, version: str) -> Record | None:
        """The record of exactly ``name@version``; raises :class:`ArtifactError` if its file exists but
        cannot be read (it is never treated as absent, so nothing overwrites it)."""
        ref = f"{name}@{version}"
        data = self.store.refs.read(NAMESPACE, ref, touch=False)
        rec = _as_record(data) if data is not None else None
        if rec is not None and rec.name == ref:
            return rec
        path = self.store.refs.path(NAMESPACE, ref)
        if data is None and not path.exists():
            return None
        raise ArtifactError(
            f"{path}: the version record of {ref} is unreadable; it is kept as it is "
            "(run 'buildyard artifacts fsck', restore it from a backup)"
        )

    def channel_state(self) -> ChannelState:
        """Channel pointers replayed from the audit log."""
        return derive(self.audit.events())

    def resolve(self, ref: str) -> Record:
        """Find ``NAME@SELECTOR``: an exact version, a version without build metadata (its latest
        build), a channel name (what it points to) or ``latest``/nothing (highest release, else the
        highest pre-release)."""
        name, selector = split_ref(ref)
        versions = self.records(name)
        if not versions:
            raise ArtifactNotFoundError(f"no artifact named {name!r} in {self.root}")
        if selector is None or selector == "latest":
            releases = [r for r in versions if not Version.parse(r.version).is_prerelease]
            return (releases or versions)[-1]
        if selector in self.config.names:
            current = self.channel_state().current(name, selector)
            rec = self.record(name, current) if current else None
            if rec is None:
                raise ArtifactNotFoundError(f"channel {selector!r} has no version of {name!r}")
            return rec
        try:
            wanted = Version.parse(selector)
        except VersionError:
            raise ArtifactNotFoundError(
                f"{ref!r}: {selector!r} is neither a version, 'latest' nor a channel "
                f"({', '.join(self.config.names)})"
            ) from None
        if wanted.build:
            exact = self.record(name, str(wanted))
            if exact is None:
                raise ArtifactNotFoundError(f"no version {selector} of {name!r}")
            return exact
        same = [r for r in versions if Version.parse(r.version).base() == wanted.base()]
        if not same:
            raise ArtifactNotFoundError(f"no version {selector} of {name!r}")
        return same[-1]

    def blob(self, digest: str, *, what: str) -> bytes:
        """A verified small blob (manifest, envelope, SBOM); a one-line error if missing or corrupt."""
        data = self.cas.get_bytes(digest)
        if data is None:
            raise VerificationError(f"{what}: blob {digest[:16]}… is missing or corrupt in {self.root}")
        return data

    def manifest(self, record: Record) -> Manifest:
        """The manifest of ``record`` (content-verified by the CAS, signature not checked)."""
        data = self.blob(record.manifest_blob, what=record.name)
        try:
            return msgspec.json.decode(data, type=Manifest)
        except msgspec.DecodeError:
            raise VerificationError(f"{record.name}: the manifest is malformed") from None

    def trusted(self, extra: Sequence[PublicKey] = ()) -> list[PublicKey]:
        """Keys to verify with: ``extra`` if given, else the key ring's trusted keys."""
        return list(extra) if extra else self.keyring.trusted()

    def verify_signature(self, record: Record, trusted: Sequence[PublicKey] = ()) -> Verified:
        """Check the envelope against trusted keys and tie the manifest to it (files not read)."""
        envelope = self.blob(record.envelope_blob, what=record.name)
        stmt = attest.verify_envelope(envelope, self.trusted(trusted), what=record.name)
        manifest = check_consistency(
            stmt, self.blob(record.manifest_blob, what=record.name), what=record.name
        )
        if record.sbom_blob is not None:
            sbom = self.blob(record.sbom_blob, what=record.name)
            if stmt.byproduct_sha256(attest.SBOM_NAME) != _sha256(sbom):
                raise VerificationError(f"{record.name}: the SBOM does not match the signed provenance")
        return Verified(record, manifest, stmt.signer, stmt)

    def verify(self, ref: str, trusted: Sequence[PublicKey] = ()) -> Verified:
        """Signature, manifest, SBOM and every file's SHA-256/SHA-512; raises on the first problem."""
        result = self.verify_signature(self.resolve(ref), trusted)
        for entry in result.manifest.files:
            problem = check_blob(self.cas, entry)
            if problem:
                raise VerificationError(f"{result.record.name}: {problem}")
        return result

    # -- writing ---------------------------------------------------------------------------------
    def push(
        self,
        name: str,
        version: str,
        paths: Sequence[Path],
        *,
        build: BuildInfo,
        artifact_type: ArtifactType = ArtifactType.APPLICATION,
        key: str = DEFAULT_KEY,
        sbom: bytes | None = None,
        dependencies: Sequence[Dependency] = (),
        builder_id: str = attest.DEFAULT_BUILDER_ID,
        actor: str | None = None,
        workers: int | None = None,
        reuse: Callable[[Manifest], bool] | None = None,
    ) -> PushResult:
        """Store ``paths`` as ``name@version``, signed with the key ``key``; atomic and idempotent.

        Pushing a version that exists with the same files is a no-op (``created=False``); with other
        files it is refused (versions are immutable). With ``reuse``, a recent version of ``name``
        with the same files whose manifest ``reuse`` accepts (same commit and version rule: a no-op
        rebuild) is returned instead of a new one (``created=False``). An I/O failure (disk full,
        unreadable file) is reported as one line and publishes nothing.
        """
        try:
            return self._push(
                name,
                version,
                paths,
                build,
                artifact_type,
                key,
                sbom,
                dependencies,
                builder_id,
                actor,
                workers,
                reuse,
            )
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise ArtifactError(
                f"push of {name}@{version} failed: {exc.strerror or exc}{where}; nothing was published"
            ) from None

    def _push(
        self,
        name: str,
        version: str,
        paths: Sequence[Path],
        build: BuildInfo,
        artifact_type: ArtifactType,
        key: str,
        sbom: bytes | None,
        dependencies: Sequence[Dependency],
        builder_id: str,
        actor: str | None,
        workers: int | None,
        reuse: Callable[[Manifest], bool] | None = None,
    ) -> PushResult:
        check_name(name)
        version = str(Version.parse(version))
        signing = self.keyring.signing_key(key)  # fail before reading any file
        sources: list[Source] = collect(paths)
        existing = self.record(name, version)
        if existing is not None:
            return self._repush(existing, sources, workers)
        entries, written = ingest(self.cas, sources, workers=workers)
        if reuse is not None and (same := self._same_files(name, tuple(entries), reuse)) is not None:
            return PushResult(same[1], same[0], False, written)
        sbom_sha = _sha256(sbom) if sbom is not None else None
        manifest = Manifest(
            name=name,
            version=version,
            type=artifact_type,
            build=build,
            files=tuple(entries),
            dependencies=tuple(dependencies),
            sbom_sha256=sbom_sha,
        )
        manifest_bytes = encode(manifest)
        statement = attest.build_statement(
            name=name,
            version=version,
            artifact_type=artifact_type.value,
            files=entries,
            build=build,
            manifest_sha256=_sha256(manifest_bytes),
            sbom_sha256=sbom_sha,
            builder_id=builder_id,
        )
        envelope = attest.sign_envelope(statement, signing)
        parts = {
            "manifest": manifest_bytes,
            "envelope": envelope,
            **({"sbom": sbom} if sbom is not None else {}),
        }
        digests: dict[str, str] = {}
        for part, data in parts.items():
            had = self.cas.has(_b3(data))
            digests[part] = self.cas.put_bytes(data)
            written += 0 if had else 1
        blobs = sorted({e.blob for e in entries} | set(digests.values()))
        record = Record(
            name=f"{name}@{version}",
            artifact=name,
            version=version,
            manifest_blob=digests["manifest"],
            envelope_blob=digests["envelope"],
            sbom_blob=digests.get("sbom"),
            blobs=tuple(blobs),
            pushed_at=round(time.time(), 3),
            pushed_by=actor or current_actor(),
        )
        with self.lock():
            raced = self.record(name, version)
            if raced is not None:
                return self._repush(raced, sources, workers)
            self._write_record(record)
            self.audit.append(Action.PUSH, name, version, actor=record.pushed_by)
        return PushResult(manifest, record, True, written)

    def _same_files(
        self, name: str, files: tuple[FileEntry, ...], accept: Callable[[Manifest], bool], recent: int = 20
    ) -> tuple[Record, Manifest] | None:
        """The newest of the ``recent`` latest versions of ``name`` with ``files`` that ``accept`` takes."""
        for record in sorted(self.records(name), key=lambda r: r.pushed_at, reverse=True)[:recent]:
            try:
                manifest = self.manifest(record)
            except ArtifactError:
                continue  # unreadable: never reused (fsck reports it)
            if manifest.files == files and accept(manifest):
                return record, manifest
        return None

    def _repush(self, existing: Record, sources: Sequence[Source], workers: int | None) -> PushResult:
        manifest = self.manifest(existing)
        entries, written = ingest(self.cas, sources, workers=workers)
        if tuple(entries) != manifest.files:
            raise ArtifactError(
                f"{existing.name} already exists with different files; "
                "versions are immutable (bump the version)"
            )
        return PushResult(manifest, existing, False, written)

    def adopt(
        self,
        manifest: Manifest,
        parts: dict[str, bytes],
        *,
        actor: str,
        reason: str,
    ) -> tuple[Record, bool]:
        """Record a version whose file blobs are already in the CAS (an imported bundle), keeping its
        original manifest, envelope and SBOM bytes (``parts``); the caller has verified them.
        Returns the record and whether it is new."""
        missing = [f.path for f in manifest.files if not self.cas.has(f.blob)]
        if missing:
            raise VerificationError(f"{manifest.ref}: blobs of {missing[0]!r} are not in the store")
        digests = {part: self.cas.put_bytes(data) for part, data in parts.items()}
        record = Record(
            name=manifest.ref,
            artifact=manifest.name,
            version=manifest.version,
            manifest_blob=digests["manifest"],
            envelope_blob=digests["envelope"],
            sbom_blob=digests.get("sbom"),
            blobs=tuple(sorted({f.blob for f in manifest.files} | set(digests.values()))),
            pushed_at=round(time.time(), 3),
            pushed_by=actor,
        )
        with self.lock():
            existing = self.record(manifest.name, manifest.version)
            if existing is not None:
                if self.manifest(existing).files != manifest.files:
                    raise ArtifactError(
                        f"{manifest.ref} already exists with different files; versions are immutable"
                    )
                return existing, False
            self._write_record(record)
            self.audit.append(Action.PUSH, manifest.name, manifest.version, actor=actor, reason=reason)
        return record, True

    def _write_record(self, record: Record) -> None:
        path = self.store.refs.path(NAMESPACE, record.name)
        atomic_write_bytes(path, encode(record), durable=True)

    def delete(self, record: Record, *, actor: str, reason: str) -> None:
        """Remove a version (its blobs go at the next garbage collection). Caller holds the lock."""
        self.audit.append(Action.DELETE, record.artifact, record.version, actor=actor, reason=reason)
        self.store.refs.delete(NAMESPACE, record.name)

    def gc(self, *, grace_s: float = 600.0) -> tuple[int, int]:
        """Delete blobs no record refers to (older than ``grace_s``); returns ``(blobs, bytes)`` freed.

        While any record is unreadable no blob is deleted (it may need any of them); each such record
        is named in a warning."""
        with self.lock():
            report = self.store.prune(grace_s=grace_s)
        for path in report.unreadable_refs:
            self._warn_unreadable(path)
        return report.blobs_removed, report.bytes_freed

    # -- pulling ---------------------------------------------------------------------------------
    def pull(
        self, ref: str, dest: Path, *, trusted: Sequence[PublicKey] = (), force: bool = False
    ) -> Verified:
        """Verify ``ref`` and make ``dest`` the directory of its files, atomically.

        The files are staged in a sibling temp directory and verified there; then the staging
        directory is renamed into place when ``dest`` is absent or empty. An existing non-empty
        ``dest`` is refused unless ``force``, which replaces it as a whole by exchanging the two
        directories (``renameat2(RENAME_EXCHANGE)``): at every instant ``dest`` holds either its old
        content or exactly the artifact's files, never a mix. A failed or killed pull leaves ``dest``
        as it was (at worst a ``.NAME.pull-*`` sibling is left behind).
        """
        result = self.verify_signature(self.resolve(ref), trusted)
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise ArtifactError(f"{dest}: exists and is not a directory")
        occupied = dest.is_dir() and any(dest.iterdir())
        if occupied and not force:
            raise ArtifactError(
                f"{dest}: directory is not empty; pull into a new directory, or pass --force to replace "
                "it as a whole"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
        try:
            try:
                materialize(self.cas, result.manifest.files, staging)
            except VerificationError as exc:
                raise VerificationError(
                    f"{result.record.name}: {exc}; nothing was written to {dest}"
                ) from None
            staging.chmod(stat.S_IMODE(dest.stat().st_mode) if dest.is_dir() else 0o755)
            if occupied:
                exchange_dirs(staging, dest)  # staging now holds the old tree, removed below
            else:
                try:
                    staging.rename(dest)  # replaces an empty directory in one step
                except OSError as exc:
                    raise ArtifactError(
                        f"{dest}: cannot move the pulled files into place ({exc.strerror}); "
                        "it was left as it was"
                    ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result


def _as_record(data: Mapping[str, Any]) -> Record | None:
    try:
        rec = msgspec.convert(dict(data), type=Record)
        Version.parse(rec.version)
    except (msgspec.ValidationError, VersionError):
        return None
    return rec if rec.name == f"{rec.artifact}@{rec.version}" else None


def _stderr_warning(message: str) -> None:
    sys.stderr.write(f"buildyard: warning: {message}\n")


def _b3(data: bytes) -> str:
    return str(blake3(data).hexdigest())


__all__ = [
    "NAMESPACE",
    "FileEntry",
    "PushResult",
    "Repository",
    "Verified",
    "buildyard_home",
    "check_consistency",
    "default_root",
    "split_ref",
]
