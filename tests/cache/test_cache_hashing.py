"""Hashing, the stat cache and input discovery on real files and real git repositories."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from blake3 import blake3

from buildyard.cache import hashing
from buildyard.cache.hashing import FileHasher, StatCache, digest_inputs, hash_file, list_inputs, tree_digest
from buildyard.errors import UsageError


def _age(path: Path, seconds: float = 10.0) -> None:
    """Move mtime into the past so the stat cache trusts the file (not 'racy')."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_hash_file_matches_blake3_for_small_and_large(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    large = tmp_path / "large"
    data = os.urandom(hashing.LARGE_FILE_BYTES + 12345)
    large.write_bytes(data)
    assert hash_file(small) == blake3(b"hello").hexdigest()
    assert hash_file(large) == blake3(data).hexdigest()


def test_stat_cache_skips_unchanged_files_and_rereads_changed(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}.txt").write_text(f"content {i}")
        _age(root / f"f{i}.txt")
    cache_path = tmp_path / "stat.json"
    hasher = FileHasher(StatCache(cache_path))
    first = hasher.digest_paths(root, [f"f{i}.txt" for i in range(20)])
    assert hasher.files_read == 20
    hasher.stat_cache.save()

    hasher2 = FileHasher(StatCache(cache_path))  # a new process would load it from disk
    second = hasher2.digest_paths(root, [f"f{i}.txt" for i in range(20)])
    assert second == first
    assert hasher2.files_read == 0

    (root / "f3.txt").write_text("changed!!")  # same length would not matter: mtime/ctime move
    _age(root / "f3.txt", 5)
    third = hasher2.digest_paths(root, [f"f{i}.txt" for i in range(20)])
    assert hasher2.files_read == 1
    assert third["f3.txt"] == blake3(b"changed!!").hexdigest()
    assert third["f4.txt"] == first["f4.txt"]


def test_racy_recent_file_is_not_trusted(tmp_path):
    f = tmp_path / "new.txt"
    f.write_text("fresh")
    hasher = FileHasher(StatCache())
    hasher.digest_paths(tmp_path, ["new.txt"])
    hasher.digest_paths(tmp_path, ["new.txt"])
    assert hasher.files_read == 1  # written just now: re-read, its mtime may not move on the next write


def test_damaged_stat_cache_file_is_ignored(tmp_path):
    path = tmp_path / "stat.json"
    path.write_text("{not json")
    cache = StatCache(path)
    assert len(cache) == 0


def test_default_inputs_are_git_tracked_and_untracked_not_ignored(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg" / "src").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    (repo / "pkg" / "src" / "a.py").write_text("a")
    (repo / "pkg" / "tracked_then_deleted.py").write_text("x")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "init")
    (repo / "pkg" / "tracked_then_deleted.py").unlink()
    (repo / "pkg" / "untracked.py").write_text("u")
    (repo / "pkg" / "debug.log").write_text("ignored")
    (repo / "pkg" / "build").mkdir()
    (repo / "pkg" / "build" / "out.o").write_text("ignored")

    assert list_inputs(repo / "pkg") == ["src/a.py", "untracked.py"]


def test_inputs_outside_git_walk_every_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    (tmp_path / "y").write_text("y")
    assert list_inputs(tmp_path) == ["d/x", "y"]


def test_glob_inputs_with_directories_and_exclusions(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.c").write_text("a")
    (tmp_path / "src" / "sub" / "b.c").write_text("b")
    (tmp_path / "src" / "sub" / "b.h").write_text("h")
    (tmp_path / "Makefile").write_text("m")
    assert list_inputs(tmp_path, ["src/**/*.c", "Makefile"]) == ["Makefile", "src/a.c", "src/sub/b.c"]
    assert list_inputs(tmp_path, ["src", "!src/sub/b.h"]) == ["src/a.c", "src/sub/b.c"]


@pytest.mark.parametrize("pattern", ["../etc/passwd", "/abs", "a/../../b"])
def test_escaping_patterns_are_user_errors(tmp_path, pattern):
    with pytest.raises(UsageError, match="pattern"):
        list_inputs(tmp_path, [pattern])


def test_symlinks_are_hashed_by_target_not_followed(tmp_path):
    (tmp_path / "target").write_text("t")
    (tmp_path / "link").symlink_to("target")
    digests = digest_inputs(tmp_path, ["link", "target"])
    assert digests["link"] != digests["target"]
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("elsewhere")
    assert digest_inputs(tmp_path, ["link"])["link"] != digests["link"]


def test_tree_digest_is_order_independent_and_path_sensitive():
    a = tree_digest({"x": "1" * 64, "y": "2" * 64})
    assert a == tree_digest({"y": "2" * 64, "x": "1" * 64})
    assert a != tree_digest({"x": "2" * 64, "y": "1" * 64})


def test_input_index_partitions_one_git_listing_by_directory(tmp_path):
    repo = tmp_path / "repo"
    for rel in ("pkg/a.ts", "pkg/sub/b.ts", "pkg2/c.ts", "pkg-x/d.ts", "root.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "pkg" / "x.log").write_text("ignored")
    index = hashing.InputIndex(repo)
    assert index.files_under(repo / "pkg") == ["a.ts", "sub/b.ts"] == list_inputs(repo / "pkg")
    assert index.files_under(repo / "pkg2") == ["c.ts"]
    assert index.files_under(repo) == list_inputs(repo)
    assert index.files_under(tmp_path) is None
    hasher = FileHasher()
    assert digest_inputs(repo / "pkg", hasher=hasher, index=index) == digest_inputs(repo / "pkg")
    assert hashing.InputIndex(tmp_path / "repo" / "pkg" / "sub").files_under(tmp_path) is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert hashing.InputIndex(plain).files_under(plain) is None


def test_stat_cache_is_bounded_to_files_seen_when_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "STAT_CACHE_MAX_ENTRIES", 5)
    for i in range(8):
        (tmp_path / f"f{i}").write_text(str(i))
        _age(tmp_path / f"f{i}")
    path = tmp_path / "stat.json"
    first = StatCache(path)
    FileHasher(first).digest_paths(tmp_path, [f"f{i}" for i in range(8)])
    first.save()  # 8 entries, all seen by this process: kept
    second = StatCache(path)
    assert len(second) == 8
    FileHasher(second).digest_paths(tmp_path, ["f0", "f1"])
    (tmp_path / "f2").write_text("changed")
    _age(tmp_path / "f2")
    FileHasher(second).digest_paths(tmp_path, ["f2"])
    second.save()
    assert len(StatCache(path)) == 3
