"""Value objects of the artifact repository (msgspec Structs): files, build info, manifests, records.

The manifest is the artifact's metadata as stored (a JSON blob in the CAS); its SHA-256 is signed as a
byproduct of the provenance, so everything in it — including the BLAKE3 blob ids — is covered by the
signature. The record is the ref file that makes a version visible and keeps its blobs alive.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

MANIFEST_SCHEMA = "https://buildyard.dev/artifact-manifest/v1"


class ArtifactType(StrEnum):
    """What kind of thing an artifact is."""

    APPLICATION = "application"
    LIBRARY = "library"
    CONTAINER = "container"
    DOCS = "docs"
    CONFIG = "config"
    REPORT = "report"


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file of an artifact: relative path, size, digests, the CAS blob (BLAKE3) and mode."""

    path: str
    size: int
    sha256: str
    sha512: str
    blob: str
    executable: bool = False


class Dependency(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One package of the project's dependency inventory at build time."""

    ecosystem: str
    name: str
    version: str
    purl: str = ""


class BuildInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where an artifact came from. Everything but ``builder`` and ``build_time`` is optional."""

    builder: str
    build_time: str
    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    build_number: int | None = None
    run_id: str | None = None
    job_id: str | None = None
    event: str | None = None
    pipeline_file: str | None = None
    pipeline_sha256: str | None = None
    repository: str | None = None


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An artifact version's metadata, stored as a blob and signed (by digest) in its provenance."""

    name: str
    version: str
    type: ArtifactType
    build: BuildInfo
    files: tuple[FileEntry, ...]
    dependencies: tuple[Dependency, ...] = ()
    sbom_sha256: str | None = None
    schema: str = MANIFEST_SCHEMA

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def total_size(self) -> int:
        """Sum of the file sizes."""
        return sum(f.size for f in self.files)


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ref file of one version (namespace ``artifacts``): which blobs hold its parts.

    ``blobs`` lists every digest the version needs (files, manifest, envelope, SBOM) so that the
    cache's garbage collection keeps them; ``name`` is the ref name ``artifact@version``.
    """

    name: str
    artifact: str
    version: str
    manifest_blob: str
    envelope_blob: str
    sbom_blob: str | None
    blobs: tuple[str, ...]
    pushed_at: float
    pushed_by: str


def encode(obj: object) -> bytes:
    """Deterministic JSON (sorted keys) of a Struct or plain data."""
    return msgspec.json.encode(obj, order="sorted")
