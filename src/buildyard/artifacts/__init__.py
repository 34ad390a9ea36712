"""The artifact repository: versioned, signed artifacts with SBOM and SLSA provenance on the shared CAS.

Public API (what the CLI and the pipeline engine import):

- :func:`open_repository`, :class:`Repository` (push, resolve, pull, verify, records)
- :func:`publish`, :class:`RunContext`, :func:`resolve_version` (the ``publish:`` integration),
  :func:`artifact_env` (what a deployment job gets)
- :func:`promote`, :class:`GateVerdict`, :func:`plan_prune`, :func:`prune`, :func:`fsck`, :func:`diff`
- :func:`export_bundle`, :func:`verify_bundle` (offline, only a public key), :func:`import_bundle`
- :class:`KeyRing` (Ed25519 keys), :class:`Version` (SemVer with the build-number tie-break)
"""

from __future__ import annotations

from buildyard.artifacts.api import RunContext, artifact_env, open_repository, publish, resolve_version
from buildyard.artifacts.bundle import BundleVerified, export_bundle, import_bundle, verify_bundle
from buildyard.artifacts.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    PolicyError,
    UnsafeNameError,
    VerificationError,
)
from buildyard.artifacts.keys import KeyRing, PublicKey
from buildyard.artifacts.lifecycle import GateVerdict, Promotion, diff, fsck, plan_prune, promote, prune
from buildyard.artifacts.model import ArtifactType, BuildInfo, Manifest
from buildyard.artifacts.repo import PushResult, Repository, Verified
from buildyard.artifacts.semver import Version

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactType",
    "BuildInfo",
    "BundleVerified",
    "GateVerdict",
    "KeyRing",
    "Manifest",
    "PolicyError",
    "Promotion",
    "PublicKey",
    "PushResult",
    "Repository",
    "RunContext",
    "UnsafeNameError",
    "VerificationError",
    "Verified",
    "Version",
    "artifact_env",
    "diff",
    "export_bundle",
    "fsck",
    "import_bundle",
    "open_repository",
    "plan_prune",
    "promote",
    "prune",
    "publish",
    "resolve_version",
    "verify_bundle",
]
