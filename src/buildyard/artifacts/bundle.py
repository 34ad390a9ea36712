"""Artifact bundles: one tar file holding a version's files, manifest, SBOM and signed envelope.

Members (in this order, so a reader meets the metadata first)::

    envelope.dsse.json   the DSSE envelope (in-toto Statement v1, SLSA provenance v1)
    manifest.json        the manifest, exactly as signed (by SHA-256)
    sbom.cdx.json        the CycloneDX SBOM (optional)
    files/<path>         the artifact's files

:func:`verify_bundle` needs only the bundle and a public key: no repository, no database. It reads
the tar as a stream and never extracts; any member that is not a regular file, or whose name is
absolute, contains ``..`` or is unknown, is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from buildyard.artifacts import attest
from buildyard.artifacts.errors import ArtifactError, UnsafeNameError, VerificationError
from buildyard.artifacts.keys import PublicKey
from buildyard.artifacts.model import Manifest
from buildyard.artifacts.names import check_relpath
from buildyard.artifacts.repo import Repository, check_consistency

ENVELOPE = "envelope.dsse.json"
MANIFEST = "manifest.json"
SBOM = "sbom.cdx.json"
_FILES = "files/"
_META_LIMIT = 64 * 1024 * 1024
_PARTS = {ENVELOPE: "envelope", MANIFEST: "manifest", SBOM: "sbom"}
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BundleVerified:
    """A bundle whose signature and every file digest verified."""

    manifest: Manifest
    signer: PublicKey
    sbom: bytes | None
    manifest_bytes: bytes
    envelope: bytes


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def export_bundle(repo: Repository, ref: str, out: Path, *, trusted: Sequence[PublicKey] = ()) -> Manifest:
    """Write ``ref`` (after verifying it) to the tar ``out`` atomically."""
    verified = repo.verify(ref, trusted)
    record, manifest = verified.record, verified.manifest
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, ENVELOPE, repo.blob(record.envelope_blob, what=record.name))
            _add_bytes(tar, MANIFEST, repo.blob(record.manifest_blob, what=record.name))
            if record.sbom_blob:
                _add_bytes(tar, SBOM, repo.blob(record.sbom_blob, what=record.name))
            for entry in manifest.files:
                with _open_blob(repo, entry.blob, f"{record.name}: {entry.path}") as stream:
                    info = tarfile.TarInfo(_FILES + entry.path)
                    info.size = entry.size
                    info.mode = 0o755 if entry.executable else 0o644
                    tar.addfile(info, stream)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _open_blob(repo: Repository, digest: str, what: str) -> BinaryIO:
    stream = repo.cas.open(digest)
    if stream is None:
        raise VerificationError(f"{what}: blob is missing or corrupt in {repo.root}")
    return stream


def verify_bundle(path: Path, trusted: Sequence[PublicKey]) -> BundleVerified:
    """Check a bundle offline: signature by a ``trusted`` key, manifest, SBOM and every file's digests."""
    what = str(path)
    meta: dict[str, bytes] = {}
    digests: dict[str, tuple[int, str, str]] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                name = member.name
                if not member.isfile():
                    raise UnsafeNameError(
                        f"{what}: member {name!r} is not a regular file; refusing the bundle"
                    )
                if name.startswith(_FILES):
                    rel = check_relpath(name[len(_FILES) :])
                    if rel in digests:
                        raise VerificationError(f"{what}: file {rel!r} appears twice")
                    digests[rel] = _hash_member(tar, member)
                elif name in (ENVELOPE, MANIFEST, SBOM):
                    if name in meta or member.size > _META_LIMIT:
                        raise VerificationError(f"{what}: member {name!r} is duplicated or too large")
                    f = tar.extractfile(member)
                    meta[name] = f.read() if f is not None else b""
                else:
                    raise UnsafeNameError(f"{what}: unexpected member {name!r}; refusing the bundle")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError(f"{what}: not a readable artifact bundle ({exc})") from None
    if ENVELOPE not in meta or MANIFEST not in meta:
        raise VerificationError(f"{what}: the bundle lacks {ENVELOPE} or {MANIFEST}")
    stmt = attest.verify_envelope(meta[ENVELOPE], trusted, what=what)
    manifest = check_consistency(stmt, meta[MANIFEST], what=what)
    sbom = meta.get(SBOM)
    if (sbom is not None or manifest.sbom_sha256) and (
        sbom is None or stmt.byproduct_sha256(attest.SBOM_NAME) != hashlib.sha256(sbom).hexdigest()
    ):
        raise VerificationError(f"{what}: the SBOM is missing or does not match the signed provenance")
    expected = {f.path: (f.size, f.sha256, f.sha512) for f in manifest.files}
    for rel in sorted(expected.keys() | digests.keys()):
        if rel not in digests:
            raise VerificationError(f"{what}: file {rel!r} is missing from the bundle")
        if rel not in expected:
            raise VerificationError(f"{what}: file {rel!r} is not in the signed file list")
        if digests[rel] != expected[rel]:
            raise VerificationError(f"{what}: file {rel!r} does not match its signed digests")
    return BundleVerified(manifest, stmt.signer, sbom, meta[MANIFEST], meta[ENVELOPE])


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[int, str, str]:
    f = tar.extractfile(member)
    sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
    if f is not None:
        while chunk := f.read(_CHUNK):
            sha256.update(chunk)
            sha512.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest(), sha512.hexdigest()


def import_bundle(
    repo: Repository, path: Path, *, actor: str, trusted: Sequence[PublicKey] = ()
) -> tuple[Manifest, bool]:
    """Verify the bundle against trusted keys, then store it in ``repo`` with its original signature.

    The files are streamed into the CAS on a second read; each blob's BLAKE3 must equal the signed
    manifest's, so a bundle swapped between the two reads is refused. Returns the manifest and
    whether the version is new.
    """
    verified = verify_bundle(path, repo.trusted(trusted))
    manifest = verified.manifest
    by_path = {f.path: f for f in manifest.files}
    parts: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    raise UnsafeNameError(f"{path}: member {member.name!r} is not a regular file")
                if member.name in _PARTS:
                    parts[_PARTS[member.name]] = f.read(_META_LIMIT + 1)
                    continue
                entry = by_path.get(member.name.removeprefix(_FILES))
                if entry is None:
                    raise VerificationError(f"{path}: {member.name!r} changed while importing")
                if not repo.cas.has(entry.blob) and repo.cas.put_stream(cast(BinaryIO, f)) != entry.blob:
                    raise VerificationError(f"{path}: {entry.path!r} changed while importing")
    except (tarfile.TarError, EOFError) as exc:
        raise ArtifactError(f"{path}: not a readable artifact bundle ({exc})") from None
    except OSError as exc:
        raise ArtifactError(f"import of {path} failed: {exc.strerror or exc}; nothing was imported") from None
    sha = hashlib.sha256
    if sha(parts.get("manifest", b"")).hexdigest() != sha(verified.manifest_bytes).hexdigest():
        raise VerificationError(f"{path}: the manifest changed while importing")
    if sha(parts.get("envelope", b"")).hexdigest() != sha(verified.envelope).hexdigest():
        raise VerificationError(f"{path}: the envelope changed while importing")
    if verified.sbom is not None:
        parts["sbom"] = verified.sbom
    _, created = repo.adopt(manifest, parts, actor=actor, reason=f"imported from {path.name}")
    return manifest, created
