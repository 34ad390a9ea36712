"""Attestations: an in-toto Statement v1 with the SLSA v1 provenance predicate, in a signed DSSE envelope.

Subjects are the artifact's files (SHA-256 and SHA-512). The manifest and the SBOM are listed as
``runDetails.byproducts`` with their SHA-256, so the signature covers all metadata. The envelope is the
DSSE v1 JSON (``payloadType`` ``application/vnd.in-toto+json``, signature over the PAE encoding).
Pure code: builds, signs and checks bytes; no file I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from buildyard import __version__
from buildyard.artifacts.errors import VerificationError
from buildyard.artifacts.keys import PublicKey, SigningKey
from buildyard.artifacts.model import BuildInfo, FileEntry

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://buildyard.dev/buildtypes/artifact/v1"
DEFAULT_BUILDER_ID = "https://buildyard.dev/builders/local"
MANIFEST_NAME = "manifest.json"
SBOM_NAME = "sbom.cdx.json"
SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _rfc3339(iso: str) -> str:
    # protobuf Timestamps (and SLSA) want RFC 3339 with a 'Z' or offset
    return iso.replace("+00:00", "Z")


def build_statement(
    *,
    name: str,
    version: str,
    artifact_type: str,
    files: Sequence[FileEntry],
    build: BuildInfo,
    manifest_sha256: str,
    sbom_sha256: str | None,
    builder_id: str = DEFAULT_BUILDER_ID,
) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA provenance v1 predicate) describing one artifact version."""
    external: dict[str, Any] = {"artifact": {"name": name, "version": version, "type": artifact_type}}
    if build.pipeline_file:
        external["pipeline"] = {
            "path": build.pipeline_file,
            "digest": {"sha256": build.pipeline_sha256 or ""},
        }
    invocation = {
        k: v
        for k, v in {"event": build.event, "ref": build.tag or build.branch, "job": build.job_id}.items()
        if v
    }
    if invocation:
        external["invocation"] = invocation
    internal: dict[str, Any] = {"builder": build.builder}
    if build.build_number is not None:
        internal["buildNumber"] = build.build_number
    resolved: list[dict[str, Any]] = []
    if build.commit:
        uri = f"git+{build.repository}" if build.repository else "git"
        ref = build.tag or build.branch
        resolved.append({"uri": f"{uri}@{ref}" if ref else uri, "digest": {"gitCommit": build.commit}})
    metadata: dict[str, Any] = {"finishedOn": _rfc3339(build.build_time)}
    if build.run_id or build.job_id:
        metadata["invocationId"] = "/".join(x for x in (build.run_id, build.job_id) if x)
    byproducts: list[dict[str, Any]] = [
        {"name": MANIFEST_NAME, "digest": {"sha256": manifest_sha256}, "mediaType": "application/json"}
    ]
    if sbom_sha256:
        byproducts.append(
            {"name": SBOM_NAME, "digest": {"sha256": sbom_sha256}, "mediaType": SBOM_MEDIA_TYPE}
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f.path, "digest": {"sha256": f.sha256, "sha512": f.sha512}} for f in files],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": {"buildyard": __version__}},
                "metadata": metadata,
                "byproducts": byproducts,
            },
        },
    }


def sign_envelope(statement: dict[str, Any], key: SigningKey) -> bytes:
    """The DSSE envelope (JSON bytes) of ``statement`` signed by ``key``."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps(envelope, indent=2, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class VerifiedStatement:
    """A statement whose envelope verified, with the key that signed it."""

    statement: dict[str, Any]
    signer: PublicKey

    @property
    def subjects(self) -> dict[str, dict[str, str]]:
        """``path -> {"sha256": …, "sha512": …}``."""
        return {s["name"]: dict(s["digest"]) for s in self.statement["subject"]}

    def byproduct_sha256(self, name: str) -> str | None:
        """The signed SHA-256 of the byproduct ``name`` (manifest, SBOM)."""
        for item in self.statement["predicate"]["runDetails"].get("byproducts", []):
            if item.get("name") == name:
                return str(item.get("digest", {}).get("sha256", "")) or None
        return None

    @property
    def artifact(self) -> dict[str, str]:
        """``{"name", "version", "type"}`` as signed."""
        return dict(self.statement["predicate"]["buildDefinition"]["externalParameters"]["artifact"])


def envelope_keyids(envelope: bytes) -> list[str]:
    """Key ids named by the envelope's signatures (empty if it does not parse)."""
    try:
        data = json.loads(envelope)
        return [str(s.get("keyid", "")) for s in data.get("signatures", [])]
    except (ValueError, AttributeError, TypeError):
        return []


def verify_envelope(envelope: bytes, trusted: Sequence[PublicKey], *, what: str) -> VerifiedStatement:
    """Check the DSSE envelope against ``trusted`` keys and return its statement.

    Raises :class:`VerificationError` (one line naming ``what``) if it is malformed, signed by no
    trusted key, or not an in-toto v1 SLSA provenance statement.
    """
    if not trusted:
        raise VerificationError(f"{what}: no trusted public keys (import one with 'buildyard keys import')")
    try:
        data = json.loads(envelope)
        payload = base64.b64decode(data["payload"], validate=True)
        payload_type = data["payloadType"]
        signatures = [
            (str(s["keyid"]), base64.b64decode(s["sig"], validate=True)) for s in data["signatures"]
        ]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise VerificationError(f"{what}: the signature envelope is malformed") from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"{what}: unexpected envelope payload type {payload_type!r}")
    message = pae(payload_type, payload)
    by_id = {k.keyid: k for k in trusted}
    signer = next(
        (by_id[kid] for kid, sig in signatures if kid in by_id and by_id[kid].verify(sig, message)), None
    )
    if signer is None:
        ids = ", ".join(kid[:16] for kid, _ in signatures) or "none"
        raise VerificationError(f"{what}: signature does not verify with any trusted key (signed by {ids})")
    try:
        statement = json.loads(payload)
        ok = (
            statement["_type"] == STATEMENT_TYPE
            and statement["predicateType"] == PROVENANCE_TYPE
            and isinstance(statement["subject"], list)
            and all(
                isinstance(s["name"], str) and isinstance(s["digest"], dict) for s in statement["subject"]
            )
            and isinstance(statement["predicate"]["buildDefinition"]["externalParameters"]["artifact"], dict)
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise VerificationError(f"{what}: the signed statement is not an in-toto v1 SLSA provenance")
    return VerifiedStatement(statement, signer)
