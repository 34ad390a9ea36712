"""``publish: version:`` settings resolved into SemVer versions (literal, from_file, from_git_tag)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildyard.artifacts.api import resolve_version
from buildyard.artifacts.errors import ArtifactError
from buildyard.artifacts.gitmeta import GitMeta

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
MAIN = GitMeta(COMMIT, "main", None)
FEATURE = GitMeta(COMMIT, "feature/x", None)
TAGGED = GitMeta(COMMIT, "main", "v2.3.4")


def test_literal_versions(tmp_path: Path) -> None:
    assert str(resolve_version("1.4.0", project=tmp_path, git=FEATURE, build_number=None)) == "1.4.0"
    assert (
        str(resolve_version("1.4.0", project=tmp_path, git=MAIN, build_number=57)) == "1.4.0+build.57.a1b2c3d"
    )
    assert str(resolve_version("1.4.0+x.1", project=tmp_path, git=MAIN, build_number=57)) == "1.4.0+x.1"
    assert str(resolve_version("1.4", project=tmp_path, git=MAIN, build_number=None)) == "1.4.0"
    with pytest.raises(ArtifactError, match="post-releases have no SemVer equivalent"):
        resolve_version("1.4.post1", project=tmp_path, git=MAIN, build_number=None)


def test_from_file_on_main_and_on_a_branch(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.4.0"\n')
    (tmp_path / "package.json").write_text(json.dumps({"version": "3.0.0"}))
    py = {"from_file": "pyproject.toml"}
    assert str(resolve_version(py, project=tmp_path, git=MAIN, build_number=57)) == "1.4.0+build.57.a1b2c3d"
    branch = resolve_version(py, project=tmp_path, git=FEATURE, build_number=57)
    assert str(branch) == "1.4.0-feature-x.57+build.57.a1b2c3d"
    node = resolve_version({"from_file": "package.json"}, project=tmp_path, git=MAIN, build_number=None)
    assert str(node) == "3.0.0"
    with pytest.raises(ArtifactError, match=r"missing.toml: version file not found"):
        resolve_version({"from_file": "missing.toml"}, project=tmp_path, git=MAIN, build_number=None)
    with pytest.raises(ArtifactError, match="expected from_git_tag"):
        resolve_version({"from_tag": "x"}, project=tmp_path, git=MAIN, build_number=None)


def test_from_git_tag(tmp_path: Path) -> None:
    tagged = resolve_version("from_git_tag", project=tmp_path, git=TAGGED, build_number=9)
    assert str(tagged) == "2.3.4+build.9.a1b2c3d"
    untagged = resolve_version(
        "from_git_tag", project=tmp_path, git=FEATURE, build_number=9
    )  # no repo: no tags
    assert str(untagged) == "0.0.1-feature-x.9+build.9.a1b2c3d"
