"""An agent's job workspaces: made from content, parked after a job, reused only as exactly the next
job's files (real files on disk, no cluster needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from buildyard.cache.cas import CAS
from buildyard.dask.wire import FileRef
from buildyard.dask.workspaces import WorkspaceError, WorkspacePool, prepare


def _refs(cas: CAS, tmp: Path, files: dict[str, bytes], mode: int = 0o644) -> list[FileRef]:
    refs = []
    for path, data in files.items():
        src = tmp / "src.bin"
        src.write_bytes(data)
        refs.append(FileRef(path, cas.put_file(src), mode, len(data)))
    return refs


def _tree(root: Path) -> dict[str, object]:
    """Everything under ``root``: files (content, mode), symlinks (target), directories."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "dir"
        else:
            out[rel] = (path.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def cas(tmp_path: Path) -> CAS:
    return CAS(tmp_path / "cas")


def test_a_reused_workspace_is_exactly_the_next_jobs_files(tmp_path: Path, cas: CAS) -> None:
    files = {f"pkg{i % 3}/f{i}.txt": f"content {i}\n".encode() * 50 for i in range(30)}
    refs = _refs(cas, tmp_path, files)
    refs.append(FileRef("bin/run.sh", _refs(cas, tmp_path, {"x": b"#!/bin/sh\n"})[0].digest, 0o755, 10))
    refs.append(FileRef("latest", symlink="pkg0/f0.txt"))
    fresh = prepare(tmp_path / "fresh", refs, cas)
    expected = _tree(fresh.root)
    assert fresh.written == 31 and fresh.kept == 0

    pool = WorkspacePool(tmp_path / "parked", keep=2)
    first = prepare(tmp_path / "job1", refs, cas)
    root = first.root
    # what a job may do to its workspace
    (root / "pkg0" / "f0.txt").write_bytes(b"X" * len(files["pkg0/f0.txt"]))  # same size, same tick
    (root / "pkg1" / "f1.txt").chmod(0o600)
    (root / "pkg2" / "f2.txt").unlink()
    (root / "pkg2" / "f2.txt").symlink_to("/etc/passwd")
    os.link(root / "pkg0" / "f3.txt", tmp_path / "outside-link")  # a second link: shared with outside
    (root / "pkg1" / "f4.txt").unlink()
    (root / "pkg1" / "f4.txt").mkdir()
    (root / "pkg1" / "f4.txt" / "inner").write_text("x")
    (root / "build" / "deep").mkdir(parents=True)
    (root / "build" / "deep" / "out.o").write_bytes(b"object")
    (root / "stray.log").write_text("log")
    (root / "latest").unlink()
    (root / "latest").symlink_to("/")
    (root / "bin" / "run.sh").chmod(0o644)
    pool.park(first)
    assert not root.exists()

    second = prepare(tmp_path / "job2", refs, cas, pool.take(refs))
    assert _tree(second.root) == expected
    assert second.kept > 0 and second.written >= 6  # the damaged ones were rewritten
    assert (tmp_path / "outside-link").read_bytes() == files["pkg0/f3.txt"]
    (tmp_path / "outside-link").write_bytes(b"poison" * 100)  # no longer the workspace's file
    pool.park(second)

    third = prepare(tmp_path / "job3", refs, cas, pool.take(refs))
    assert _tree(third.root) == expected
    assert third.written == 0 and third.kept == 32  # nothing changed: everything kept


def test_a_reused_workspace_drops_what_the_next_job_does_not_have(tmp_path: Path, cas: CAS) -> None:
    one = _refs(cas, tmp_path, {"a/x.txt": b"1", "a/y.txt": b"2", "b/z.txt": b"3"})
    two = _refs(cas, tmp_path, {"a/x.txt": b"1", "c/w.txt": b"4", "a/y.txt": b"changed"})
    pool = WorkspacePool(tmp_path / "parked", keep=1)
    pool.park(prepare(tmp_path / "j1", one, cas))
    ws = prepare(tmp_path / "j2", two, cas, pool.take(two))
    assert _tree(ws.root) == _tree(prepare(tmp_path / "fresh", two, cas).root)
    assert not (ws.root / "b").exists()


def test_parking_is_bounded_and_take_prefers_the_closest(tmp_path: Path, cas: CAS) -> None:
    pool = WorkspacePool(tmp_path / "parked", keep=2)
    sets = [_refs(cas, tmp_path, {f"s{n}/f{i}": f"{n}-{i}".encode() for i in range(5)}) for n in range(3)]
    for n, refs in enumerate(sets):
        pool.park(prepare(tmp_path / f"j{n}", refs, cas))
    parked = [p for d in (tmp_path / "parked").iterdir() for p in d.iterdir()]
    assert len(parked) == 2  # the oldest was deleted
    taken = pool.take(sets[1])
    assert taken is not None and (taken.root / "s1" / "f0").exists()
    assert pool.take(sets[0]) is None  # nothing in common with what is parked: a fresh workspace
    assert pool.take([]) is None


def test_conflicting_or_corrupt_files_fail_the_workspace(tmp_path: Path, cas: CAS) -> None:
    refs = _refs(cas, tmp_path, {"a/b": b"1"})
    with pytest.raises(WorkspaceError, match="both a directory"):
        prepare(tmp_path / "w1", [*refs, FileRef("a", symlink="c")], cas)
    with pytest.raises(WorkspaceError, match="listed twice"):
        prepare(tmp_path / "w2", [*refs, *refs], cas)
    bad = _refs(cas, tmp_path, {f"f{i}": f"data {i}".encode() for i in range(12)})
    blob = cas.path_for(bad[5].digest)
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    with pytest.raises(WorkspaceError, match="corrupt"):
        prepare(tmp_path / "w3", bad, cas)


def test_parked_workspaces_of_a_dead_agent_are_swept(tmp_path: Path, cas: CAS) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / "parked" / f"{dead.stdout.strip()}-abcd" / "ws"
    stale.mkdir(parents=True)
    mine = WorkspacePool(tmp_path / "parked", keep=1)
    mine.park(prepare(tmp_path / "j", _refs(cas, tmp_path, {"f": b"1"}), cas))
    assert not stale.parent.exists()
    assert len(list((tmp_path / "parked").iterdir())) == 1


def test_a_change_time_too_close_to_the_check_is_not_trusted(tmp_path: Path) -> None:
    """Timestamps come from a coarse clock: a write in the same tick as the check keeps the change
    time, so such a file must be hashed, not trusted by its metadata."""
    from buildyard.dask.workspaces import CTIME_MARGIN_NS, _Known

    path = tmp_path / "f"
    path.write_bytes(b"data")
    st = path.lstat()
    just_written = _Known("d", 0o644, st.st_ino, st.st_size, st.st_ctime_ns, st.st_ctime_ns + 1_000_000)
    assert not just_written.trusted(st)
    checked_later = _Known(
        "d", 0o644, st.st_ino, st.st_size, st.st_ctime_ns, st.st_ctime_ns + 2 * CTIME_MARGIN_NS
    )
    assert checked_later.trusted(st)
    path.write_bytes(b"more data")
    assert not checked_later.trusted(path.lstat())
