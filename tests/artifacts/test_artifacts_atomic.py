"""A push killed with SIGKILL at any moment, or failing for lack of space, leaves no partial artifact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.repo import Repository

PUSH = """
import resource, sys
from pathlib import Path
from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.model import BuildInfo
from buildyard.artifacts.repo import Repository
limit = int(sys.argv[4])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
repo = Repository(Path(sys.argv[1]), keyring=KeyRing(Path(sys.argv[2])))
from buildyard.errors import UserError
try:
    build = BuildInfo(builder="t", build_time="2026-01-01T00:00:00Z")
    repo.push("big", sys.argv[3], [Path(sys.argv[5])], build=build)
except UserError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    for i in range(150):
        (src / "many" / f"f{i:03}.bin").write_bytes(os.urandom(20_000))
    (src / "large.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    return src


def _push(
    repo_dir: Path, keys: Path, version: str, src: Path, *, fsize_limit: int = 0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PUSH, str(repo_dir), str(keys), version, str(fsize_limit), str(src)],
        stderr=subprocess.PIPE if fsize_limit else subprocess.DEVNULL,
    )


def _assert_all_visible_versions_verify(repo: Repository) -> list[str]:
    versions = [r.version for r in repo.records()]
    for v in versions:
        repo.verify(f"big@{v}")
    return versions


@pytest.mark.slow
def test_sigkill_at_any_point_leaves_no_partial_artifact(tmp_path: Path, tree: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.generate()
    repo_dir = tmp_path / "repo"
    start = time.monotonic()
    proc = _push(repo_dir, keys.root, "0.0.1", tree)
    assert proc.wait(60) == 0
    full = time.monotonic() - start
    rng = random.Random(7)
    killed_before_commit = 0
    for i in range(8):
        proc = _push(repo_dir, keys.root, f"1.0.{i}", tree)
        time.sleep(rng.uniform(0.0, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        repo = Repository(repo_dir, keyring=keys)
        visible = _assert_all_visible_versions_verify(repo)
        killed_before_commit += f"1.0.{i}" not in visible
    assert killed_before_commit >= 1  # the kills did land mid-push
    proc = _push(repo_dir, keys.root, "1.0.0", tree)
    assert proc.wait(60) == 0
    repo = Repository(repo_dir, keyring=keys)
    repo.verify("big@1.0.0")
    assert repo.gc(grace_s=0)[0] >= 0
    assert _assert_all_visible_versions_verify(repo)


def test_a_full_disk_during_push_fails_cleanly(tmp_path: Path, tree: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.generate()
    repo_dir = tmp_path / "repo"
    proc = _push(repo_dir, keys.root, "1.0.0", tree, fsize_limit=4 * 1024 * 1024)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "nothing was published" in lines[0] and "File too large" in lines[0]
    repo = Repository(repo_dir, keyring=keys)
    assert repo.records() == []
    assert not list((repo_dir / "tmp").iterdir())
