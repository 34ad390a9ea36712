"""Push, pull and verify against a real repository directory: dedup, idempotence, tampering, escapes."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from artifacts_testdata import BUILD, random_bytes

from buildyard.artifacts.api import artifact_env
from buildyard.artifacts.bundle import export_bundle, import_bundle, verify_bundle
from buildyard.artifacts.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    KeyRingError,
    UnsafeNameError,
    VerificationError,
)
from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.repo import Repository
from buildyard.cache.store import CacheStore

FILES: dict[str, bytes | str] = {
    "app.whl": random_bytes(300_000),
    "docs/readme.md": "# hello\n",
    "docs/deep/x.txt": "x" * 5000,
}


def _blob_count(repo: Repository) -> int:
    return sum(1 for _ in repo.cas.iter_blobs())


def test_push_pull_round_trip(repo: Repository, make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree(FILES)
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    result = repo.push("shop-api", "1.4.0+build.57.a1b2c3d", [src], build=BUILD)
    assert result.created
    assert [f.path for f in result.manifest.files] == [
        "app.whl",
        "docs/deep/x.txt",
        "docs/readme.md",
        "run.sh",
    ]
    dest = tmp_path / "out"
    verified = repo.pull("shop-api@1.4.0", dest)
    assert verified.signer.name == "default"
    env = artifact_env(verified, dest)
    assert env["BUILDYARD_ARTIFACT_VERSION"] == "1.4.0+build.57.a1b2c3d"
    assert (env["BUILDYARD_ARTIFACT_DIR"], env["BUILDYARD_ARTIFACT_COMMIT"]) == (str(dest), BUILD.commit)
    for rel in [*FILES, "run.sh"]:
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert os.access(dest / "run.sh", os.X_OK) and not os.access(dest / "app.whl", os.X_OK)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.pull-")]


def test_same_file_in_two_artifacts_is_stored_once_and_repush_writes_nothing(
    repo: Repository, make_tree: Callable[..., Path]
) -> None:
    src = make_tree(FILES)
    first = repo.push("shop-api", "1.0.0", [src], build=BUILD)
    blobs = _blob_count(repo)
    assert first.blobs_written == blobs == 3 + 2  # three files, the manifest and the envelope
    again = repo.push("shop-api", "1.0.0", [src], build=BUILD)
    assert (again.created, again.blobs_written, _blob_count(repo)) == (False, 0, blobs)
    other = repo.push("other", "2.0.0", [src / "app.whl"], build=BUILD)
    assert other.blobs_written == 2  # manifest + envelope; the file's blob is shared
    assert other.manifest.files[0].blob == first.manifest.files[0].blob


def test_versions_are_immutable(repo: Repository, make_tree: Callable[..., Path]) -> None:
    repo.push("shop-api", "1.0.0", [make_tree({"a": "1"})], build=BUILD)
    with pytest.raises(ArtifactError, match="immutable"):
        repo.push("shop-api", "1.0.0", [make_tree({"a": "2"})], build=BUILD)


def test_resolve_selectors(repo: Repository, make_tree: Callable[..., Path]) -> None:
    src = make_tree({"a": "1"})
    for v in ["1.0.0+build.3.aaa", "1.0.0+build.12.bbb", "1.1.0-rc.1", "0.9.0"]:
        repo.push("x", v, [src], build=BUILD)
    assert repo.resolve("x").version == "1.0.0+build.12.bbb"  # latest release, build-number tie-break
    assert repo.resolve("x@1.0.0").version == "1.0.0+build.12.bbb"
    assert repo.resolve("x@1.0.0+build.3.aaa").version == "1.0.0+build.3.aaa"
    assert repo.resolve("x@1.1.0-rc.1").version == "1.1.0-rc.1"
    with pytest.raises(ArtifactNotFoundError, match=r"no version 2.0.0"):
        repo.resolve("x@2.0.0")
    with pytest.raises(ArtifactNotFoundError, match="no artifact named 'nope'"):
        repo.resolve("nope@1.0.0")
    with pytest.raises(ArtifactNotFoundError, match="neither a version"):
        repo.resolve("x@banana")


def _tamper_blob(repo: Repository, digest: str) -> None:
    path = repo.cas.path_for(digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_pull_refuses_a_tampered_file_and_writes_nothing(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    result = repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD)
    big = next(f for f in result.manifest.files if f.path == "app.whl")
    _tamper_blob(repo, big.blob)
    dest = tmp_path / "dest"
    with pytest.raises(VerificationError, match=r"app.whl.*nothing was written"):
        repo.pull("shop-api@1.0.0", dest)
    assert not dest.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(VerificationError):
        repo.pull("shop-api@1.0.0", existing, force=True)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if ".pull-" in p.name]


def test_pull_refuses_a_deleted_blob(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    result = repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD)
    repo.cas.path_for(result.manifest.files[1].blob).unlink()
    with pytest.raises(VerificationError, match="missing or corrupt"):
        repo.pull("shop-api@1.0.0", tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_tampered_envelope_and_untrusted_key_are_refused(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD)
    other = KeyRing(tmp_path / "other-keys")
    stranger = other.generate("stranger")
    with pytest.raises(VerificationError, match="does not verify with any trusted key"):
        repo.pull("shop-api@1.0.0", tmp_path / "d", trusted=[stranger])
    assert not (tmp_path / "d").exists()
    rec = repo.resolve("shop-api")
    _tamper_blob(repo, rec.envelope_blob)
    with pytest.raises(VerificationError, match="missing or corrupt"):
        repo.verify("shop-api")


def test_forged_envelope_with_valid_blob_is_refused(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    """An attacker who rewrites the record to point at a re-signed envelope with another key fails."""
    import msgspec

    from buildyard.artifacts import attest
    from buildyard.artifacts.repo import NAMESPACE

    repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD)
    rec = repo.resolve("shop-api")
    stmt = attest.verify_envelope(repo.blob(rec.envelope_blob, what="x"), repo.keyring.trusted(), what="x")
    evil = KeyRing(tmp_path / "evil")
    evil.generate()
    forged = attest.sign_envelope(stmt.statement, evil.signing_key())
    digest = repo.cas.put_bytes(forged)
    data = msgspec.to_builtins(rec)
    data["envelope_blob"] = digest
    data["blobs"] = list(data["blobs"])
    repo.store.refs.write(NAMESPACE, rec.name, data)
    with pytest.raises(VerificationError, match="any trusted key"):
        repo.verify("shop-api@1.0.0")


def test_missing_signing_key_fails_before_reading_files(
    tmp_path: Path, make_tree: Callable[..., Path]
) -> None:
    repo = Repository(tmp_path / "r", keyring=KeyRing(tmp_path / "empty"))
    with pytest.raises(KeyRingError, match="keys generate"):
        repo.push("a", "1.0.0", [make_tree({"a": "1"})], build=BUILD)
    assert not (tmp_path / "r" / "blobs").exists()


@pytest.mark.parametrize("name", ["../x", "/abs", "UPPER", "a/b", "", ".hidden", "a..b"])
def test_bad_names_are_refused(repo: Repository, make_tree: Callable[..., Path], name: str) -> None:
    with pytest.raises(UnsafeNameError):
        repo.push(name, "1.0.0", [make_tree({"a": "1"})], build=BUILD)


def test_symlink_out_of_the_published_tree_is_refused(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish")
    src = make_tree({"a.txt": "1"})
    (src / "leak").symlink_to(secret)
    with pytest.raises(UnsafeNameError, match="outside"):
        repo.push("a", "1.0.0", [src], build=BUILD)
    (src / "leak").unlink()
    (src / "inner").symlink_to("a.txt")
    result = repo.push("a", "1.0.0", [src], build=BUILD)
    assert [f.path for f in result.manifest.files] == ["a.txt", "inner"]


def test_pull_does_not_write_through_a_symlink_in_dest(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    repo.push("a", "1.0.0", [make_tree({"docs/x.txt": "1"})], build=BUILD)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "docs").symlink_to(outside)
    with pytest.raises(ArtifactError, match="not empty"):  # a non-empty destination needs force
        repo.pull("a@1.0.0", dest)
    repo.pull("a@1.0.0", dest, force=True)  # replaced as a whole: the symlink is gone, not followed
    assert list(outside.iterdir()) == []
    assert not (dest / "docs").is_symlink() and (dest / "docs" / "x.txt").read_text() == "1"


def test_bundle_verifies_offline_and_detects_tampering(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD, sbom=b'{"bomFormat": "CycloneDX"}')
    bundle = tmp_path / "b.tar"
    export_bundle(repo, "shop-api@1.0.0", bundle)
    public = repo.keyring.public_key("default")
    ok = verify_bundle(bundle, [public])
    assert ok.manifest.version == "1.0.0" and ok.sbom == b'{"bomFormat": "CycloneDX"}'

    def rewrite(change: Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo, bytes] | None]) -> Path:
        out = tmp_path / "bad.tar"
        with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
            for member in src:
                f = src.extractfile(member)
                changed = change(member, f.read() if f else b"")
                if changed is not None:
                    info, data = changed
                    info.size = len(data)
                    dst.addfile(info, io.BytesIO(data))
        return out

    flipped = rewrite(lambda m, d: (m, d + b"!") if m.name == "files/docs/readme.md" else (m, d))
    with pytest.raises(VerificationError, match=r"readme.md.*does not match"):
        verify_bundle(flipped, [public])
    dropped = rewrite(lambda m, d: None if m.name == "files/docs/readme.md" else (m, d))
    with pytest.raises(VerificationError, match="missing from the bundle"):
        verify_bundle(dropped, [public])
    sbom = rewrite(lambda m, d: (m, b"{}") if m.name == "sbom.cdx.json" else (m, d))
    with pytest.raises(VerificationError, match="SBOM"):
        verify_bundle(sbom, [public])
    stranger = KeyRing(tmp_path / "k2").generate("x")
    with pytest.raises(VerificationError, match="trusted key"):
        verify_bundle(bundle, [stranger])


@pytest.mark.parametrize("member", ["files/../../evil", "/etc/evil", "files/a/../../b"])
def test_bundle_with_escaping_member_is_refused(tmp_path: Path, keyring: KeyRing, member: str) -> None:
    bundle = tmp_path / "evil.tar"
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo(member)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeNameError):
        verify_bundle(bundle, keyring.trusted())


def test_bundle_with_symlink_member_is_refused(tmp_path: Path, keyring: KeyRing) -> None:
    bundle = tmp_path / "evil.tar"
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo("files/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeNameError, match="not a regular file"):
        verify_bundle(bundle, keyring.trusted())


def test_cache_prune_never_evicts_artifact_blobs(repo: Repository, make_tree: Callable[..., Path]) -> None:
    repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD)
    before = _blob_count(repo)
    report = CacheStore(repo.root).prune(max_size=0, older_than_s=0, grace_s=0)
    assert report.blobs_removed == 0 and _blob_count(repo) == before
    repo.verify("shop-api@1.0.0")


def test_bundle_import_keeps_the_original_signature(
    repo: Repository, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    repo.push("shop-api", "1.0.0", [make_tree(FILES)], build=BUILD, sbom=b"{}")
    bundle = tmp_path / "b.tar"
    export_bundle(repo, "shop-api@1.0.0", bundle)
    public = repo.keyring.public_key("default")
    other = Repository(tmp_path / "mirror", keyring=KeyRing(tmp_path / "mirror-keys"))
    with pytest.raises(VerificationError, match="no trusted public keys"):
        import_bundle(other, bundle, actor="m")
    manifest, created = import_bundle(other, bundle, actor="m", trusted=[public])
    assert created and manifest.ref == "shop-api@1.0.0"
    assert not import_bundle(other, bundle, actor="m", trusted=[public])[1]
    src, dst = repo.resolve("shop-api"), other.resolve("shop-api")
    assert (src.envelope_blob, src.manifest_blob, src.sbom_blob) == (
        dst.envelope_blob,
        dst.manifest_blob,
        dst.sbom_blob,
    )
    other.pull("shop-api@1.0.0", tmp_path / "pulled", trusted=[public])
    assert (tmp_path / "pulled" / "app.whl").read_bytes() == FILES["app.whl"]
