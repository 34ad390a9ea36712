"""``buildyard artifacts`` and ``buildyard keys`` end to end, in-process, on a real git project."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def project(make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_project(
        {"dist/shop.whl": "wheel-1", "dist/docs/index.html": "<h1>hi</h1>", "requirements.txt": "idna==3.4\n"}
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("BUILDYARD_ACTOR", "tester")
    return root


def test_keys_are_private_and_never_printed(cli: Callable[..., Any], project: Path, tmp_path: Path) -> None:
    res = cli("-C", project, "keys", "generate")
    assert res.code == 0 and "PRIVATE" not in res.out
    private = project / ".buildyard" / "keys" / "private" / "default.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    pub = cli("-C", project, "keys", "export")
    assert pub.code == 0 and pub.out.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pub.out
    res = cli("-C", project, "keys", "export", "--private")
    assert res.code == 2 and "never printed" in res.err and "PRIVATE" not in res.out + res.err
    out = tmp_path / "backup.pem"
    assert cli("-C", project, "keys", "export", "--private", "--out", out).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert cli("-C", project, "keys", "generate").code == 2  # exists already
    (tmp_path / "bad.pem").write_text("not a key")
    res = cli("-C", project, "keys", "import", tmp_path / "bad.pem", "--name", "x")
    assert res.code == 2 and res.err.count("\n") == 1 and "bad.pem: not a PEM public key" in res.err
    other = tmp_path / "other"
    assert cli("keys", "generate", "--name", "ci", "--keys-dir", other).code == 0
    pem = cli("keys", "export", "--name", "ci", "--keys-dir", other).out
    (tmp_path / "ci.pub").write_text(pem)
    assert cli("-C", project, "keys", "import", tmp_path / "ci.pub", "--name", "ci").code == 0
    listed = json.loads(cli("-C", project, "keys", "list", "--json").out)
    assert [(k["name"], k["signing"]) for k in listed] == [("ci", False), ("default", True)]


def test_push_pull_promote_show_prune_fsck(cli: Callable[..., Any], project: Path, tmp_path: Path) -> None:
    assert cli("-C", project, "keys", "generate").code == 0
    res = cli(
        "-C",
        project,
        "artifacts",
        "push",
        "shop",
        "dist",
        "--version",
        "1.4.0",
        "--build-number",
        "57",
        "--json",
    )
    assert res.code == 0, res.err
    pushed = json.loads(res.out)
    assert pushed["version"].startswith("1.4.0+build.57.") and pushed["files"] == 2 and pushed["created"]
    again = json.loads(
        cli("-C", project, "artifacts", "push", "shop", "dist", "--version", pushed["version"], "--json").out
    )
    assert (again["created"], again["blobs_written"]) == (False, 0)

    assert cli("-C", project, "artifacts", "promote", "shop@1.4.0", "--to", "staging").code == 2
    assert cli("-C", project, "artifacts", "promote", "shop@1.4.0", "--to", "dev", "--reason", "ci").code == 0
    shown = json.loads(cli("-C", project, "artifacts", "show", "shop@dev", "--json").out)
    assert shown["signature"] == "valid (signed by default)" and shown["channels"] == ["dev"]
    assert [(e["action"], e["actor"]) for e in shown["audit"]] == [("push", "tester"), ("promote", "tester")]
    assert shown["manifest"]["dependencies"][0]["name"] == "idna"

    dest = tmp_path / "deploy"
    res = cli("-C", project, "artifacts", "pull", "shop@dev", "--dest", dest)
    assert res.code == 0 and (dest / "docs" / "index.html").read_text() == "<h1>hi</h1>"
    listed = json.loads(cli("-C", project, "artifacts", "list", "--json").out)
    assert [(r["version"], r["channels"]) for r in listed] == [(pushed["version"], ["dev"])]
    assert cli("-C", project, "artifacts", "fsck").code == 0
    pruned = json.loads(cli("-C", project, "artifacts", "prune", "--dry-run", "--json").out)
    assert pruned["deleted"] == []


def test_offline_verify_needs_only_bundle_and_public_key(
    cli: Callable[..., Any], project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("-C", project, "keys", "generate").code == 0
    assert cli("-C", project, "artifacts", "push", "shop", "dist", "--version", "2.0.0").code == 0
    bundle, pub = tmp_path / "shop.tar", tmp_path / "shop.pub"
    assert cli("-C", project, "artifacts", "export", "shop@2.0.0", "--out", bundle).code == 0
    assert cli("-C", project, "keys", "export", "--out", pub).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("BUILDYARD_HOME", str(elsewhere / "home"))
    res = cli("artifacts", "verify", "--bundle", bundle, "--key", pub, "--json")
    assert res.code == 0 and json.loads(res.out)["ref"] == "shop@2.0.0"
    assert not (elsewhere / "home").exists()
    assert cli("artifacts", "verify", "--bundle", bundle).code == 2  # no key given


def test_errors_are_one_line(cli: Callable[..., Any], project: Path, tmp_path: Path) -> None:
    def error(*args: object, code: int = 2) -> str:
        res = cli("-C", project, *args)
        assert res.code == code, (res.out, res.err)
        assert res.err.count("\n") == 1 and res.err.startswith("buildyard: error: ")
        return str(res.err)

    assert "keys generate" in error("artifacts", "push", "shop", "dist", "--version", "1.0.0")
    assert cli("-C", project, "keys", "generate").code == 0
    assert "is not a version" in error("artifacts", "push", "shop", "dist", "--version", "one.oh")
    assert "exactly one of" in error("artifacts", "push", "shop", "dist")
    assert "no such file" in error("artifacts", "push", "shop", "nope", "--version", "1.0.0")
    assert "invalid artifact name" in error("artifacts", "push", "../x", "dist", "--version", "1.0.0")
    assert "no artifact named 'shop'" in error("artifacts", "pull", "shop@1.0.0", "--dest", tmp_path / "d")
    assert cli("-C", project, "artifacts", "push", "shop", "dist", "--version", "1.0.0").code == 0
    assert "no version 9.9.9" in error("artifacts", "show", "shop@9.9.9")
    from buildyard.artifacts.api import open_repository

    repo = open_repository(project)
    entry = repo.manifest(repo.resolve("shop@1.0.0")).files[0]
    repo.cas.path_for(entry.blob).write_bytes(b"tampered")
    assert "nothing was written" in error("artifacts", "pull", "shop@1.0.0", "--dest", tmp_path / "d", code=1)
    assert not (tmp_path / "d").exists()
    assert "problems found" in error("artifacts", "fsck", code=1)
