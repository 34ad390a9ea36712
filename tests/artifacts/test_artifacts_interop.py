"""Interoperability: the envelope verifies with securesystemslib, the statement and provenance validate
with in-toto-attestation's protobufs, and the attached SBOM validates against the CycloneDX 1.6 schema."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import SSlibKey

from buildyard.artifacts.api import RunContext, publish
from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.repo import Repository

REQUIREMENTS = "requests==2.31.0\nurllib3==2.0.7\n"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def published(tmp_path: Path, repo: Repository) -> tuple[Repository, Path]:
    project = tmp_path / "project"
    (project / "dist").mkdir(parents=True)
    (project / "dist" / "shop-1.4.0.whl").write_bytes(b"wheel" * 1000)
    (project / "requirements.txt").write_text(REQUIREMENTS)
    (project / "buildyard.yml").write_text("jobs: {}\n")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "init")
    _git(project, "tag", "v1.4.0")
    publish(
        project,
        name="shop-api",
        paths=[project / "dist"],
        version="from_git_tag",
        context=RunContext(run_id="run-9", job_id="package", build_number=57, event="push"),
        repo=repo,
    )
    return repo, project


def _envelope(repo: Repository) -> dict[str, object]:
    rec = repo.resolve("shop-api")
    return json.loads(repo.blob(rec.envelope_blob, what=rec.name))


def test_envelope_verifies_with_securesystemslib(published: tuple[Repository, Path], tmp_path: Path) -> None:
    repo, _ = published
    public = repo.keyring.public_key("default")
    key = SSlibKey.from_crypto(public.key, keyid=public.keyid)
    envelope = Envelope.from_dict(_envelope(repo))
    assert set(envelope.verify([key], 1)) == {public.keyid}
    stranger = KeyRing(tmp_path / "k").generate("x")
    with pytest.raises(SslibVerificationError):
        envelope.verify([SSlibKey.from_crypto(stranger.key, keyid=public.keyid)], 1)


def test_statement_and_provenance_validate_with_in_toto_attestation(
    published: tuple[Repository, Path],
) -> None:
    repo, project = published
    payload = Envelope.from_dict(_envelope(repo)).payload
    data = json.loads(payload)
    stmt = Statement.copy_from_pb(json_format.Parse(payload, statement_pb2.Statement()))
    stmt.validate()
    assert stmt.pb.predicate_type == "https://slsa.dev/provenance/v1"
    provenance = json_format.ParseDict(
        data["predicate"], provenance_pb2.Provenance()
    )  # strict: no unknown fields
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    assert provenance.build_definition.resolved_dependencies[0].digest["gitCommit"] == head
    ext = json_format.MessageToDict(provenance.build_definition.external_parameters)
    assert ext["artifact"] == {
        "name": "shop-api",
        "version": f"1.4.0+build.57.{head[:7]}",
        "type": "application",
    }
    assert ext["invocation"] == {"event": "push", "ref": "v1.4.0", "job": "package"}
    import hashlib

    assert (
        ext["pipeline"]["digest"]["sha256"]
        == hashlib.sha256((project / "buildyard.yml").read_bytes()).hexdigest()
    )
    assert (
        provenance.run_details.builder.id and provenance.run_details.metadata.invocation_id == "run-9/package"
    )
    subject = data["subject"][0]
    whl = (project / "dist" / "shop-1.4.0.whl").read_bytes()
    assert subject["name"] == "shop-1.4.0.whl"
    assert subject["digest"] == {
        "sha256": hashlib.sha256(whl).hexdigest(),
        "sha512": hashlib.sha512(whl).hexdigest(),
    }


def test_sbom_validates_against_cyclonedx_16(published: tuple[Repository, Path]) -> None:
    repo, _ = published
    rec = repo.resolve("shop-api")
    assert rec.sbom_blob is not None
    sbom = repo.blob(rec.sbom_blob, what=rec.name).decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    doc = json.loads(sbom)
    assert doc["specVersion"] == "1.6"
    assert {c["name"] for c in doc["components"]} >= {"requests", "urllib3"}
    manifest = repo.manifest(rec)
    assert [(d.name, d.version) for d in manifest.dependencies] == [
        ("requests", "2.31.0"),
        ("urllib3", "2.0.7"),
    ]
    repo.verify("shop-api")


def test_branch_builds_are_prereleases(
    repo: Repository, tmp_path: Path, make_tree: Callable[..., Path]
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "f.txt").write_text("1")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "init")
    _git(project, "tag", "v1.4.0")
    _git(project, "checkout", "-q", "-b", "feature/x")
    (project / "f.txt").write_text("2")
    _git(project, "commit", "-q", "-am", "change")
    result = publish(
        project,
        name="shop",
        paths=[project / "f.txt"],
        version="from_git_tag",
        context=RunContext(build_number=58),
        repo=repo,
        with_sbom=False,
    )
    assert result.manifest.version.startswith("1.4.1-feature-x.58+build.58.")
