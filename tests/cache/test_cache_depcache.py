"""Dependency caches with actions/cache + GitLab semantics on real directories."""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from buildyard.cache.dep_cache import CachePolicy, DependencyCache, dependency_cache_key
from buildyard.cache.hashing import digest_inputs
from buildyard.cache.pathsafe import UnsafePathError
from buildyard.cache.store import CacheStore
from buildyard.errors import UsageError


@pytest.fixture
def deps(tmp_path):
    return DependencyCache(CacheStore(tmp_path / "cas"))


def _project(root, lock="v1"):
    (root / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "index.js").write_text(f"module.exports = '{lock}'")
    (root / "node_modules" / ".bin").mkdir()
    (root / "node_modules" / ".bin" / "pad").symlink_to("../left-pad/index.js")
    (root / "package-lock.json").write_text(lock)
    return root


def test_key_from_files_and_prefix_changes_with_the_lockfile(tmp_path):
    root = _project(tmp_path / "p")
    k1 = dependency_cache_key(files=digest_inputs(root, ["package-lock.json"]), prefix="npm-linux")
    assert k1.startswith("npm-linux-") and len(k1) == len("npm-linux-") + 40
    (root / "package-lock.json").write_text("v2")
    assert dependency_cache_key(files=digest_inputs(root, ["package-lock.json"]), prefix="npm-linux") != k1
    assert dependency_cache_key(files={}, prefix="npm") == "npm-default"
    assert dependency_cache_key(key="literal") == "literal"


def test_exact_hit_restores_and_is_not_saved_again(deps, tmp_path):
    a = _project(tmp_path / "a")
    miss = deps.restore(key="npm-1", workspace=a)
    assert not miss.hit
    assert deps.save(key="npm-1", paths=["node_modules/", "missing/"], workspace=a, restored=miss)

    b = tmp_path / "b"
    b.mkdir()
    hit = deps.restore(key="npm-1", restore_keys=["npm-"], workspace=b)
    assert hit.exact and hit.matched_key == "npm-1" and hit.paths == ("node_modules",)
    assert (b / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 'v1'"
    assert os.readlink(b / "node_modules" / ".bin" / "pad") == "../left-pad/index.js"
    assert not deps.save(key="npm-1", paths=["node_modules"], workspace=b, restored=hit)


def test_restore_keys_fall_back_to_the_newest_prefix_match(deps, tmp_path):
    for name, lock in (("npm-old", "old"), ("npm-new", "new"), ("pip-x", "pip")):
        ws = _project(tmp_path / name, lock)
        deps.save(key=name, paths=["node_modules"], workspace=ws)
        time.sleep(0.01)
    ws = tmp_path / "fresh"
    ws.mkdir()
    result = deps.restore(key="npm-abc", restore_keys=["npm-"], workspace=ws)
    assert result.hit and not result.exact and result.matched_key == "npm-new"
    assert "'new'" in (ws / "node_modules" / "left-pad" / "index.js").read_text()
    assert deps.save(key="npm-abc", paths=["node_modules"], workspace=ws, restored=result)  # saved on a miss


def test_policies(deps, tmp_path):
    ws = _project(tmp_path / "ws")
    assert not deps.save(key="k", paths=["node_modules"], workspace=ws, policy=CachePolicy.PULL)
    assert deps.save(key="k", paths=["node_modules"], workspace=ws, policy=CachePolicy.PUSH)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not deps.restore(key="k", workspace=empty, policy=CachePolicy.PUSH).hit
    assert deps.restore(key="k", workspace=empty, policy=CachePolicy.PULL).hit


def test_corrupt_archive_is_a_miss(deps, tmp_path):
    ws = _project(tmp_path / "ws")
    deps.save(key="k", paths=["node_modules"], workspace=ws)
    [ref] = list(deps.store.refs.iter_refs("deps"))
    blob = deps.store.cas.path_for(ref.blobs[0])
    data = bytearray(blob.read_bytes())
    data[-3] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    assert not deps.restore(key="k", workspace=out).hit
    assert not (out / "node_modules").exists()


def test_archive_with_escaping_member_is_rejected(deps, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    digest = deps.store.cas.put_bytes(buf.getvalue())
    deps.store.refs.write("deps", "bad", {"archive": digest, "paths": ["x"], "created": 0, "blobs": [digest]})
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(UnsafePathError):
        deps.restore(key="bad", workspace=ws)
    assert not (tmp_path / "evil.txt").exists()


def test_escaping_cache_path_is_a_user_error(deps, tmp_path):
    with pytest.raises(UsageError, match="inside the workspace"):
        deps.save(key="k", paths=["../outside"], workspace=tmp_path)
