"""The CAS, the action cache and store maintenance on real directories and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from blake3 import blake3

from buildyard.cache.action_cache import ActionCache, ActionEntry, OutputFile
from buildyard.cache.keys import CacheMissReason, KeyManifest
from buildyard.cache.pathsafe import UnsafePathError
from buildyard.cache.store import CacheStore


@pytest.fixture
def store(tmp_path):
    return CacheStore(tmp_path / "cas")


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF  # the last bytes are block content in every frame we write
    path.write_bytes(bytes(data))


def test_blobs_are_named_by_blake3_compressed_and_deduplicated(store, tmp_path):
    data = b"x" * 100_000
    digest = store.cas.put_bytes(data)
    assert digest == blake3(data).hexdigest()
    assert store.cas.stored_size(digest) < 1000  # zstd
    assert store.cas.put_bytes(data) == digest
    assert store.cas.get_bytes(digest) == data
    f = tmp_path / "f"
    f.write_bytes(data)
    assert store.cas.put_file(f) == digest
    assert len(list(store.cas.iter_blobs())) == 1


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_or_truncated_blob_is_evicted_and_reads_as_a_miss(store, damage):
    data = os.urandom(50_000)
    digest = store.cas.put_bytes(data)
    path = store.cas.path_for(digest)
    if damage == "flip":
        _corrupt(path)
    else:
        path.write_bytes(path.read_bytes()[:100])
    assert store.cas.get_bytes(digest) is None
    assert not path.exists()
    assert store.cas.evicted == [digest]


def test_large_blob_streams_through_a_verified_reader(store):
    data = os.urandom(6 * 1024 * 1024)
    digest = store.cas.put_bytes(data)
    reader = store.cas.open(digest)
    assert reader is not None
    with reader:
        assert reader.read() == data


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "dist" / "sub").mkdir(parents=True)
    (ws / "dist" / "index.txt").write_text("built\n")
    (ws / "dist" / "sub" / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (ws / "dist" / "sub" / "tool.sh").chmod(0o755)
    (ws / "dist" / "link").symlink_to("index.txt")
    (ws / "src.c").write_text("int main;")
    return ws


def test_store_and_restore_outputs_log_and_modes(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    manifest = KeyManifest(definition={"commands": ["make"]}, inputs={"src.c": "1" * 64})
    entry = ac.store_outputs(
        manifest.key(),
        workspace=ws,
        outputs=["dist"],
        log=b"compiling\n",
        exit_code=0,
        duration_s=2.5,
        job="build",
        key_manifest=manifest,
    )
    assert {o.path for o in entry.outputs} == {"dist/index.txt", "dist/sub/tool.sh", "dist/link"}

    clean = tmp_path / "clone"
    clean.mkdir()
    found = ac.lookup(manifest.key())
    assert found is not None and found.duration_s == 2.5
    result = ac.restore(found, clean, outputs=["dist"])
    assert result is not None
    assert result.log == b"compiling\n"
    assert (clean / "dist" / "index.txt").read_text() == "built\n"
    assert os.access(clean / "dist" / "sub" / "tool.sh", os.X_OK)
    assert (clean / "dist" / "link").readlink() == Path("index.txt")
    assert not list(clean.rglob("*.by-restore"))
    assert store.stats().hits == 1 and store.stats().time_saved_s == 2.5


def test_corrupt_output_blob_restores_nothing_and_evicts_the_entry(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    entry = ac.store_outputs("k" * 64, workspace=ws, outputs=["dist"])
    bad = next(o for o in entry.outputs if o.path == "dist/sub/tool.sh")
    _corrupt(store.cas.path_for(bad.digest))
    clean = tmp_path / "clean"
    clean.mkdir()
    assert ac.restore(entry, clean, outputs=["dist"]) is None
    assert list(clean.rglob("*")) == [] or all(p.is_dir() for p in clean.rglob("*"))
    assert ac.lookup("k" * 64) is None


@pytest.mark.parametrize(
    "output",
    [
        OutputFile(path="../escape.txt", digest="0" * 64),
        OutputFile(path="/etc/evil", digest="0" * 64),
        OutputFile(path="dist/link", symlink="../../outside"),
        OutputFile(path="dist/link", symlink="/etc/passwd"),
    ],
)
def test_entries_naming_paths_outside_the_workspace_are_rejected(store, tmp_path, output):
    ac = ActionCache(store)
    entry = ActionEntry(
        key="e" * 64,
        job="j",
        outputs=(output,),
        exit_code=0,
        log_digest=None,
        duration_s=0,
        created=time.time(),
    )
    ac.put_entry(entry)
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(UnsafePathError):
        ac.restore(entry, ws, outputs=["**"])
    assert not (tmp_path / "escape.txt").exists()
    assert ac.lookup("e" * 64) is None


def test_restore_refuses_to_write_through_a_symlinked_directory(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    entry = ac.store_outputs("d" * 64, workspace=ws, outputs=["dist/index.txt"])
    target = tmp_path / "victim"
    target.mkdir()
    ws2 = tmp_path / "ws2"
    ws2.mkdir()
    (ws2 / "dist").symlink_to(target)
    with pytest.raises(UnsafePathError):
        ac.restore(entry, ws2, outputs=["dist/index.txt"])
    assert list(target.iterdir()) == []


def test_explain_names_the_changed_input_against_the_last_entry(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    old = KeyManifest(definition={"commands": ["make"]}, inputs={"src.c": "1" * 64})
    ac.store_outputs(old.key(), workspace=ws, outputs=["dist"], job="build", key_manifest=old)
    assert ac.explain("build", old) == []
    new = KeyManifest(definition={"commands": ["make"]}, inputs={"src.c": "2" * 64})
    [detail] = ac.explain("build", new)
    assert detail.reason is CacheMissReason.INPUT_CHANGED and detail.names == ("src.c",)
    assert ac.explain("other", new)[0].reason is CacheMissReason.NO_ENTRY


def test_verify_finds_corrupt_blobs_and_drops_dangling_entries(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    entry = ac.store_outputs("a" * 64, workspace=ws, outputs=["dist/index.txt"])
    assert store.verify().ok
    _corrupt(store.cas.path_for(entry.outputs[0].digest))
    report = store.verify()
    assert report.corrupt == [entry.outputs[0].digest]
    assert report.dangling_refs == [f"ac:{'a' * 64}"]
    assert ac.lookup("a" * 64) is None


def test_prune_is_lru_by_last_access_and_respects_max_size(store, tmp_path):
    ac = ActionCache(store)
    ws = tmp_path / "ws"
    ws.mkdir()
    keys = []
    now = time.time()
    for i in range(4):
        (ws / "out.bin").write_bytes(os.urandom(10_000))
        key = f"{i}" * 64
        ac.store_outputs(key, workspace=ws, outputs=["out.bin"])
        ref = store.refs.path("ac", key)
        os.utime(ref, (now - 3600 * (10 - i), now - 3600 * (10 - i)))  # entry 0 is the oldest
        keys.append(key)
    for blob in store.cas.blobs_dir.rglob("*"):
        if blob.is_file():
            os.utime(blob, (now - 7200, now - 7200))
    assert ac.lookup(keys[0]) is not None  # a hit makes entry 0 the most recently used

    report = store.prune(max_size=25_000, grace_s=60)
    assert report.refs_removed == 2
    assert [k for k in keys if ac.lookup(k) is not None] == [keys[0], keys[3]]
    assert report.blobs_removed == 2 and report.bytes_left <= 25_000

    past = now - 7 * 3600  # lookups above touched both; age entry 3 again
    os.utime(store.refs.path("ac", keys[3]), (past, past))
    report = store.prune(older_than_s=3 * 3600, grace_s=60)
    assert report.refs_removed == 1
    assert [k for k in keys if ac.lookup(k) is not None] == [keys[0]]


def test_prune_keeps_refs_of_foreign_namespaces_and_young_unreferenced_blobs(store):
    kept = store.cas.put_bytes(b"published artifact")
    store.refs.write("artifacts", "pkg@1.0", {"blobs": [kept]})
    young = store.cas.put_bytes(b"being written by a concurrent job")
    old = store.cas.put_bytes(b"garbage")
    past = time.time() - 7200
    os.utime(store.cas.path_for(old), (past, past))
    os.utime(store.cas.path_for(kept), (past, past))
    leftover = store.refs.root / "ac" / "ab" / ".abc.json.x1y2.tmp"  # a ref writer killed before its rename
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{half")
    os.utime(leftover, (past, past))
    store.prune(max_size=0, older_than_s=0)
    assert store.cas.has(kept) and store.cas.has(young) and not store.cas.has(old)
    assert not leftover.exists()


_WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from buildyard.cache.action_cache import ActionCache
    from buildyard.cache.store import CacheStore
    cache_dir, ws, tag, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ac = ActionCache(CacheStore(cache_dir))
    ws.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (ws / "shared.txt").write_text(f"shared {i}")          # same content in both processes
        (ws / "own.txt").write_text(f"{tag} {i}" * 1000)
        ac.store_outputs(f"{i:064x}", workspace=ws, outputs=["shared.txt", "own.txt"], log=b"log %d" % i)
        other = ac.lookup(f"{(n - 1 - i):064x}")
        if other is not None:
            out = ws.parent / f"restore-{tag}"
            out.mkdir(exist_ok=True)
            assert ac.restore(other, out, outputs=["*.txt"]) is not None, "restore failed"
    print("done", flush=True)
    """
)


def test_two_processes_storing_and_reading_the_same_cache_both_succeed(store, tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(store.root), str(tmp_path / f"ws{t}"), t, "40"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for t in ("a", "b")
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        assert out.strip() == b"done"
    assert store.verify().ok
    ac = ActionCache(store)
    for i in range(40):
        entry = ac.lookup(f"{i:064x}")
        assert entry is not None
        dest = tmp_path / "check" / str(i)
        dest.mkdir(parents=True)
        assert ac.restore(entry, dest, outputs=["*.txt"]) is not None
        assert (dest / "shared.txt").read_text() == f"shared {i}"
    assert not any(store.cas.tmp_dir.iterdir())


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from buildyard.cache.action_cache import ActionCache
    from buildyard.cache.store import CacheStore
    store = CacheStore(Path(sys.argv[1]))
    ws = Path(sys.argv[2]); ws.mkdir(parents=True, exist_ok=True)
    ac = ActionCache(store)
    with store.cas.writer() as w:          # a big blob, killed halfway
        w.write(os.urandom(1 << 20))
        print("writing", flush=True)
        while True:
            w.write(os.urandom(1 << 16))
            for i in range(3):              # and entries being stored all the while
                (ws / "o.bin").write_bytes(os.urandom(50_000))
                ac.store_outputs(os.urandom(32).hex(), workspace=ws, outputs=["o.bin"], log=b"l")
    """
)


def test_a_writer_killed_mid_write_leaves_nothing_half_visible(store, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(store.root), str(tmp_path / "ws")], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    time.sleep(0.7)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()

    assert any(store.cas.tmp_dir.iterdir())  # the partial blob is only a temp file
    report = store.verify()
    assert report.ok, report
    assert report.blobs_checked > 0
    ac = ActionCache(store)
    entries = list(store.refs.iter_refs("ac"))
    assert entries
    for ref in entries:
        entry = ac.lookup(ref.name)
        assert entry is not None
        dest = tmp_path / "r" / ref.name[:8]
        dest.mkdir(parents=True)
        assert ac.restore(entry, dest, outputs=["o.bin"]) is not None
    assert store.cas.clean_tmp(older_than_s=0) >= 1


def test_restore_leaves_identical_outputs_alone_and_replaces_changed_ones(store, tmp_path):
    ws = _workspace(tmp_path)
    ac = ActionCache(store)
    entry = ac.store_outputs("c" * 64, workspace=ws, outputs=["dist"])
    same = ws / "dist" / "index.txt"
    changed = ws / "dist" / "sub" / "tool.sh"
    inode_same, inode_changed = same.stat().st_ino, changed.stat().st_ino
    changed.write_text("#!/bin/sh\necho HI\n")  # same size, other content
    assert ac.restore(entry, ws, outputs=["dist"]) is not None
    assert same.stat().st_ino == inode_same  # untouched
    assert changed.stat().st_ino != inode_changed
    assert changed.read_text() == "#!/bin/sh\necho hi\n"
