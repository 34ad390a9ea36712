"""Channels, promotion policy, the audit log, retention and prune, fsck and diff."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from artifacts_testdata import BUILD

from buildyard.artifacts.config import Channel, RepoConfig, Retention, load_config
from buildyard.artifacts.errors import ArtifactError, PolicyError
from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.lifecycle import GateVerdict, diff, fsck, plan_prune, promote, prune
from buildyard.artifacts.model import Dependency
from buildyard.artifacts.repo import Repository


def _push_versions(repo: Repository, make_tree: Callable[..., Path], versions: list[str]) -> None:
    for i, v in enumerate(versions):
        repo.push("app", v, [make_tree({"app.bin": f"content {i}"})], build=BUILD)


def test_promotion_policy_and_audit(repo: Repository, make_tree: Callable[..., Path]) -> None:
    _push_versions(repo, make_tree, ["1.0.0", "1.1.0"])
    with pytest.raises(PolicyError, match="never been in 'staging'"):
        promote(repo, "app@1.0.0", "production", actor="alice")
    with pytest.raises(PolicyError, match="never been in 'dev'"):
        promote(repo, "app@1.0.0", "staging", actor="alice")
    promote(repo, "app@1.0.0", "dev", actor="alice", reason="first")
    promote(repo, "app@1.0.0", "staging", actor="bob", reason="qa")
    result = promote(repo, "app@1.0.0", "production", actor="carol", reason="release")
    assert (result.changed, result.previous) == (True, None)
    assert not promote(repo, "app@1.0.0", "production", actor="carol").changed
    with pytest.raises(ArtifactError, match="unknown channel 'prod'"):
        promote(repo, "app@1.0.0", "prod", actor="x")
    assert repo.resolve("app@production").version == "1.0.0"
    promotes = [e for e in repo.audit.events() if e.action == "promote"]
    assert [(e.actor, e.channel, e.reason) for e in promotes] == [
        ("alice", "dev", "first"),
        ("bob", "staging", "qa"),
        ("carol", "production", "release"),
    ]
    assert fsck(repo).ok


def test_gate_check_hook(tmp_path: Path, keyring: KeyRing, make_tree: Callable[..., Path]) -> None:
    config = RepoConfig(
        channels=(Channel("staging"), Channel("production", requires="staging", requires_gates=True))
    )
    repo = Repository(tmp_path / "r", keyring=keyring, config=config)
    _push_versions(repo, make_tree, ["1.0.0"])
    promote(repo, "app@1.0.0", "staging", actor="a")
    with pytest.raises(PolicyError, match="no gate check is available \\(run run-1\\)"):
        promote(repo, "app@1.0.0", "production", actor="a")
    seen = []

    def failing(manifest: object) -> GateVerdict:
        seen.append(manifest)
        return GateVerdict(False, "coverage 71% < 80%")

    with pytest.raises(PolicyError, match="gates failed: coverage 71% < 80%"):
        promote(repo, "app@1.0.0", "production", actor="a", gates_check=failing)
    assert seen and seen[0].build.run_id == "run-1"  # type: ignore[attr-defined]
    promote(repo, "app@1.0.0", "production", actor="a", gates_check=lambda m: GateVerdict(True))
    assert repo.channel_state().current("app", "production") == "1.0.0"


def test_audit_tampering_is_detected(repo: Repository, make_tree: Callable[..., Path]) -> None:
    _push_versions(repo, make_tree, ["1.0.0"])
    promote(repo, "app@1.0.0", "dev", actor="alice")
    log = repo.audit.path
    lines = log.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["actor"] = "mallory"
    log.write_text("\n".join([json.dumps(edited, sort_keys=True), *lines[1:]]) + "\n")
    assert any("audit chain broken" in p for p in fsck(repo).problems)


def test_torn_audit_line_is_ignored_and_repaired(repo: Repository, make_tree: Callable[..., Path]) -> None:
    _push_versions(repo, make_tree, ["1.0.0"])
    with repo.audit.path.open("ab") as f:
        f.write(b'{"seq": 2, "acti')  # a writer killed mid-line
    assert len(repo.audit.events()) == 1
    promote(repo, "app@1.0.0", "dev", actor="a")
    assert [e.seq for e in repo.audit.events()] == [1, 2]
    assert repo.audit.check() == []


def test_retention_keeps_channel_pointers_and_previous(
    tmp_path: Path, keyring: KeyRing, make_tree: Callable[..., Path]
) -> None:
    config = RepoConfig(
        channels=(Channel("dev", keep_last=1), Channel("production", requires="dev", keep_last=1)),
        unpromoted=Retention(keep_last=2),
    )
    repo = Repository(tmp_path / "r", keyring=keyring, config=config)
    _push_versions(repo, make_tree, [f"1.0.{i}" for i in range(6)])
    for v in ["1.0.0", "1.0.1", "1.0.2"]:
        promote(repo, f"app@{v}", "dev", actor="a")
    promote(repo, "app@1.0.0", "production", actor="a")
    promote(repo, "app@1.0.1", "production", actor="a")
    # dev: current 1.0.2, previous 1.0.1; production: current 1.0.1, previous 1.0.0
    # unpromoted: 1.0.3, 1.0.4, 1.0.5 -> keep last 2 -> 1.0.3 goes
    planned = {i.record.version for i in plan_prune(repo)}
    assert planned == {"1.0.3"}
    dry = prune(repo, dry_run=True, actor="a")
    assert [i.record.version for i in dry.items] == ["1.0.3"] and repo.record("app", "1.0.3") is not None
    done = prune(repo, actor="janitor", grace_s=0)
    assert [i.record.version for i in done.items] == ["1.0.3"]
    assert repo.record("app", "1.0.3") is None and done.blobs_removed == 3  # file, manifest, envelope
    assert [e.actor for e in repo.audit.events() if e.action == "delete"] == ["janitor"]
    for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.4", "1.0.5"]:
        repo.verify(f"app@{v}")
    assert fsck(repo).ok


def test_retention_by_age(tmp_path: Path, keyring: KeyRing, make_tree: Callable[..., Path]) -> None:
    config = RepoConfig(unpromoted=Retention(max_age_days=1))
    repo = Repository(tmp_path / "r", keyring=keyring, config=config)
    _push_versions(repo, make_tree, ["1.0.0", "1.0.1"])
    assert plan_prune(repo) == []
    later = time.time() + 2 * 86400
    assert {i.record.version for i in plan_prune(repo, now=later)} == {"1.0.0", "1.0.1"}


def test_fsck_reports_a_corrupt_blob(repo: Repository, make_tree: Callable[..., Path]) -> None:
    _push_versions(repo, make_tree, ["1.0.0"])
    blob = repo.manifest(repo.resolve("app")).files[0].blob
    repo.cas.path_for(blob).write_bytes(b"garbage")
    report = fsck(repo)
    assert report.versions == 1 and len(report.problems) == 1 and "app.bin" in report.problems[0]


def test_diff_files_dependencies_and_metadata(repo: Repository, make_tree: Callable[..., Path]) -> None:
    repo.push(
        "app",
        "1.0.0",
        [make_tree({"a.txt": "1", "b.txt": "same", "gone.txt": "x"})],
        build=BUILD,
        dependencies=[Dependency("PyPI", "requests", "2.31.0"), Dependency("PyPI", "idna", "3.4")],
    )
    repo.push(
        "app",
        "1.1.0",
        [make_tree({"a.txt": "2", "b.txt": "same", "new.txt": "y"})],
        build=BUILD,
        dependencies=[Dependency("PyPI", "requests", "2.32.0"), Dependency("PyPI", "urllib3", "2.0.7")],
    )
    d = diff(repo, "app@1.0.0", "app@1.1.0")
    assert [(c.kind, c.key) for c in d.files] == [
        ("changed", "a.txt"),
        ("removed", "gone.txt"),
        ("added", "new.txt"),
    ]
    assert [(c.kind, c.key, c.old, c.new) for c in d.dependencies] == [
        ("removed", "PyPI:idna", "3.4", None),
        ("changed", "PyPI:requests", "2.31.0", "2.32.0"),
        ("added", "PyPI:urllib3", None, "2.0.7"),
    ]


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"channels": [{"name": "prod", "requires": "staging"}]}')
    with pytest.raises(ArtifactError, match=r"config.json: channel 'prod' requires 'staging'"):
        load_config(path)
    path.write_text('{"channels": [{"name": "dev", "keep": 3}]}')
    with pytest.raises(
        ArtifactError, match=r"config.json: invalid repository config: Object contains unknown field"
    ):
        load_config(path)
