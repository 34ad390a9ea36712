"""Issue 21: a poisoned cache entry, concurrent runs and a full cache must not hurt the user.

Hostile entries are planted into a real local cache (and into a real ``buildyard cache serve`` on
127.0.0.1), then ``buildyard run`` meets them: nothing may be written, the entry is evicted, the job
runs instead and a warning says so.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from buildyard.cache import open_job_cache
from buildyard.cache.action_cache import ActionCache, ActionEntry, OutputChangedError, OutputFile
from buildyard.cache.cas import BlobWriter
from buildyard.cache.remote import RemoteCache
from buildyard.cache.store import CacheStore

PIPELINE = """\
name: poison
jobs:
  build:
    script: ["mkdir -p dist", "echo built > dist/app.txt", "echo run >> runs.log"]
    artifacts: {paths: [dist/]}
"""
FILES = {"buildyard.yml": PIPELINE, "src/main.c": "int main;\n"}
IGNORE = ".buildyard/\ndist/\nruns.log\n"  # outputs are not inputs


def _project(make_project: Callable[..., Path], name: str = "proj") -> Path:
    root = make_project(FILES, name=name)
    (root / ".gitignore").write_text(IGNORE)
    return root


HOOK = b"#!/bin/sh\ntouch PWNED\n"


def _run(cli: Callable[..., object], root: Path, *args: str) -> tuple[str, str]:
    """Run the pipeline; returns (status of build, plain output)."""
    result = cli("-C", root, "run", *args)
    out = result.out  # type: ignore[attr-defined]
    shown = json.loads(cli("-C", root, "show", "--json").out)  # type: ignore[attr-defined]
    return {j["id"]: j["status"] for j in shown["jobs"]}["build"], out


def _key(cli: Callable[..., object], root: Path) -> str:
    shown = json.loads(cli("-C", root, "show", "--json").out)  # type: ignore[attr-defined]
    return str({j["id"]: j["cache_key"] for j in shown["jobs"]}["build"])


def _hostile(kind: str, cas_put: Callable[[bytes], str]) -> list[OutputFile]:
    """The outputs a poisoned entry adds to a legitimate one."""
    blob = cas_put(HOOK)
    size = len(HOOK)
    return {
        "git_hook": [OutputFile(path=".git/hooks/post-checkout", digest=blob, mode=0o755, size=size)],
        "pipeline_file": [OutputFile(path="buildyard.yml", digest=blob, mode=0o644, size=size)],
        "salt": [OutputFile(path=".buildyard/salt", digest=blob, mode=0o644, size=size)],
        "setuid": [OutputFile(path="dist/tool", digest=blob, mode=0o4755, size=size)],
        "symlink_chain": [
            OutputFile(path="dist/s", symlink=".."),
            OutputFile(path="dist/t", symlink="s/../ESCAPED"),
        ],
        "outside_outputs": [OutputFile(path="src/main.c", digest=blob, mode=0o644, size=size)],
    }[kind]


KINDS = ["git_hook", "pipeline_file", "salt", "setuid", "symlink_chain", "outside_outputs"]


def _untouched(root: Path, salt: bytes) -> None:
    assert not (root / ".git" / "hooks" / "post-checkout").exists()
    assert (root / "buildyard.yml").read_text() == PIPELINE
    assert (root / ".buildyard" / "cas" / "salt").read_bytes() == salt
    assert not (root / "dist" / "tool").exists()
    assert not (root / "dist" / "s").is_symlink() and not (root / "dist" / "t").is_symlink()
    assert (root / "src" / "main.c").read_text() == "int main;\n"
    assert not (root.parent / "ESCAPED").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_poisoned_local_entry_is_refused_evicted_and_the_job_runs(cli, make_project, kind) -> None:
    root = _project(make_project)
    status, _ = _run(cli, root)
    assert status == "success"
    key = _key(cli, root)
    store = CacheStore(root / ".buildyard" / "cas")
    salt = (store.root / "salt").read_bytes()
    ac = ActionCache(store)
    good = ac.lookup(key)
    assert good is not None
    poisoned = ActionEntry(
        key=key,
        job=good.job,
        outputs=(*good.outputs, *_hostile(kind, store.cas.put_bytes)),
        exit_code=0,
        log_digest=good.log_digest,
        duration_s=good.duration_s,
        created=time.time(),
    )
    ac.put_entry(poisoned)
    (root / "dist" / "app.txt").unlink()

    status, out = _run(cli, root)

    _untouched(root, salt)
    assert status == "success"  # the job ran instead of restoring
    assert (root / "runs.log").read_text() == "run\nrun\n"
    assert "refused" in out and "warning" in out
    again = ac.lookup(key)
    assert again is not None and {o.path for o in again.outputs} == {"dist/app.txt"}  # evicted, re-stored


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cache_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "buildyard", "cache", "serve"),
            *("--port", str(port), "--token", "rw-tok", "--cache-dir", str(tmp_path / "server-cache")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/v8/artifacts/status", headers={"authorization": "Bearer rw-tok"}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("kind", ["git_hook", "setuid", "symlink_chain", "outside_outputs"])
def test_a_poisoned_remote_entry_is_refused_and_the_job_runs(
    cli, make_project, tmp_path, cache_server, monkeypatch, kind
) -> None:
    monkeypatch.setenv("BUILDYARD_REMOTE_CACHE_TOKEN", "rw-tok")
    monkeypatch.setenv("BUILDYARD_CACHE_SALT", "ab" * 32)  # a team sharing a remote shares the salt
    seed = _project(make_project, "seed")
    assert _run(cli, seed, "--remote-cache", cache_server)[0] == "success"
    key = _key(cli, seed)
    # an attacker with a write token replaces the entry on the server
    attacker = CacheStore(tmp_path / "attacker-cas")
    good = ActionCache(CacheStore(seed / ".buildyard" / "cas")).lookup(key)
    assert good is not None
    outputs = _hostile(kind, attacker.cas.put_bytes)
    poisoned = ActionEntry(
        key=key, job="build", outputs=tuple(outputs), exit_code=0, log_digest=None, duration_s=9, created=0
    )
    with RemoteCache(cache_server, "rw-tok") as remote:
        for digest in poisoned.blobs:
            assert remote.put_blob(digest, attacker.cas)
        assert remote.put_entry(poisoned)

    victim = _project(make_project, "victim")
    salt = bytes.fromhex("ab" * 32)
    victim_cas = victim / ".buildyard" / "cas"
    victim_cas.mkdir(parents=True)
    (victim_cas / "salt").write_bytes(salt)
    status, out = _run(cli, victim, "--remote-cache", cache_server)
    _untouched(victim, salt)
    assert status == "success" and (victim / "runs.log").read_text() == "run\n"
    assert "refused" in out


def test_outputs_are_relative_to_the_working_directory_and_empty_ones_warn(cli, make_project) -> None:
    pipeline = """\
name: wd
jobs:
  util:
    working_directory: packages/util
    script: ["mkdir -p dist", "echo lib > dist/lib.txt"]
    artifacts: {paths: [dist/, missing/]}
"""
    root = make_project({"buildyard.yml": pipeline, "packages/util/src.txt": "x\n"})
    (root / ".gitignore").write_text(".buildyard/\ndist/\n")
    first = cli("-C", root, "run")
    assert first.code == 0
    warnings = [line for line in first.out.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "packages/util/missing/" in warnings[0] and "matched no file" in warnings[0]
    (root / "packages" / "util" / "dist" / "lib.txt").unlink()
    second = cli("-C", root, "run", "--json")
    assert {j["name"]: j["status"] for j in json.loads(second.out)["jobs"]} == {"util": "cached"}
    assert (root / "packages" / "util" / "dist" / "lib.txt").read_text() == "lib\n"


# -- concurrent capture -----------------------------------------------------------------------


def test_an_output_truncated_while_it_is_stored_is_not_cached(tmp_path, monkeypatch) -> None:
    ws = tmp_path / "ws"
    (ws / "dist").mkdir(parents=True)
    out = ws / "dist" / "big.bin"
    out.write_bytes(os.urandom(3 * 1024 * 1024))  # several chunks
    store = CacheStore(tmp_path / "cas")
    ac = ActionCache(store)
    original = BlobWriter.write
    truncated: list[bool] = []

    def write_then_truncate(self: BlobWriter, data: bytes) -> int:
        written = original(self, data)
        if not truncated:  # another run truncates the file after the first chunk was copied
            truncated.append(True)
            out.write_bytes(b"")
        return written

    monkeypatch.setattr(BlobWriter, "write", write_then_truncate)
    with pytest.raises(OutputChangedError):
        ac.store_outputs("c" * 64, workspace=ws, outputs=["dist"])
    assert truncated and ac.lookup("c" * 64) is None


def test_an_output_rewritten_after_its_job_finished_is_not_cached(tmp_path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    finished = time.time()
    time.sleep(0.1)  # the other run writes after our job finished
    (ws / "out.txt").write_text("")
    ac = ActionCache(CacheStore(tmp_path / "cas"))
    with pytest.raises(OutputChangedError):
        ac.store_outputs("d" * 64, workspace=ws, outputs=["out.txt"], finished_at=finished)
    assert ac.lookup("d" * 64) is None


# -- pass_env and file modes ------------------------------------------------------------------


def test_pass_env_values_never_reach_the_cache_and_its_files_are_private(
    cli, make_project, monkeypatch
) -> None:
    pipeline = """\
name: penv
env_mode: strict
jobs:
  use:
    pass_env: [DEPLOY_TOKEN]
    script: ['echo ok > o.txt']
    artifacts: {paths: [o.txt]}
"""
    root = make_project({"buildyard.yml": pipeline})
    (root / ".gitignore").write_text(".buildyard/\no.txt\n")
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-4f9a2c-very-secret")
    assert cli("-C", root, "run").code == 0
    cas = root / ".buildyard" / "cas"
    files = [p for p in cas.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert b"tok-4f9a2c-very-secret" not in path.read_bytes(), path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(cas.stat().st_mode) == 0o700
    # the value still keys the job: a changed value is a miss, named by explain
    monkeypatch.setenv("DEPLOY_TOKEN", "rotated")
    second = cli("-C", root, "run", "--json")
    assert {j["name"]: j["status"] for j in json.loads(second.out)["jobs"]} == {"use": "success"}


def test_a_reader_waits_for_a_salt_file_being_written(tmp_path) -> None:
    store = CacheStore(tmp_path / "cas")
    store.root.mkdir()
    path = store.root / "salt"
    path.write_bytes(b"")  # another process won O_EXCL and has not written yet
    salt = os.urandom(32)
    writer = threading.Timer(0.2, path.write_bytes, args=(salt,))
    writer.start()
    try:
        assert store.salt() == salt
    finally:
        writer.join()


def test_processes_creating_the_salt_at_once_agree(tmp_path) -> None:
    code = "import sys; from pathlib import Path; from buildyard.cache.store import CacheStore; " + (
        "print(CacheStore(Path(sys.argv[1])).salt().hex())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "cas")], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    salts = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(salts) == 1 and len(next(iter(salts))) == 64


# -- size limit and prune ---------------------------------------------------------------------


def _fill(ac: ActionCache, ws: Path, n: int, size: int) -> None:
    for i in range(n):
        (ws / "out.bin").write_bytes(os.urandom(size))
        ac.store_outputs(f"{i:064x}", workspace=ws, outputs=["out.bin"])


def test_the_job_cache_evicts_lru_entries_to_stay_under_its_limit(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BUILDYARD_CACHE_MAX_SIZE", "2MB")
    ws = tmp_path / "ws"
    ws.mkdir()
    with open_job_cache(tmp_path, cache_dir=tmp_path / "cas") as cache:
        _fill(cache.local, ws, 40, 200_000)  # 8 MB written in total
        size = cache.local.store.stats().stored_bytes
        newest = cache.local.lookup(f"{39:064x}")
    with capsys.disabled():
        print(f"\n[figures] auto-eviction: 40 x 200 kB stored with a 2 MB limit -> {size} bytes on disk")
    assert size <= 2_000_000
    assert newest is not None  # the most recent entry is kept


def test_prune_reaches_the_requested_size_even_for_fresh_blobs(tmp_path, capsys) -> None:
    store = CacheStore(tmp_path / "cas")
    ws = tmp_path / "ws"
    ws.mkdir()
    _fill(ActionCache(store), ws, 20, 500_000)  # 10 MB, all written just now
    before = store.stats().stored_bytes
    report = store.prune(max_size=5_000_000)
    with capsys.disabled():
        print(f"\n[figures] prune --max-size 5MB on fresh blobs: {before} -> {report.bytes_left} bytes")
    assert report.bytes_left <= 5_000_000 and report.bytes_freed >= before - 5_000_000


def test_prune_waits_for_a_restore_in_progress_and_never_deletes_its_blobs(tmp_path, monkeypatch) -> None:
    store = CacheStore(tmp_path / "cas")
    ws = tmp_path / "ws"
    ws.mkdir()
    ac = ActionCache(store)
    _fill(ac, ws, 1, 300_000)
    entry = ac.lookup(f"{0:064x}")
    assert entry is not None
    in_restore, go_on = threading.Event(), threading.Event()
    original = store.cas.write_to

    def slow_write_to(digest: str, out) -> bool:  # type: ignore[no-untyped-def]
        in_restore.set()
        go_on.wait(10)
        return original(digest, out)

    monkeypatch.setattr(store.cas, "write_to", slow_write_to)
    dest = tmp_path / "dest"
    dest.mkdir()
    results: dict[str, object] = {}
    restorer = threading.Thread(target=lambda: results.update(r=ac.restore(entry, dest, outputs=["out.bin"])))
    restorer.start()
    assert in_restore.wait(10)
    pruner = threading.Thread(target=lambda: results.update(p=store.prune(max_size=0)))
    pruner.start()
    pruner.join(0.3)
    assert pruner.is_alive()  # blocked on gc.lock while the restore reads its blob
    go_on.set()
    restorer.join(10)
    pruner.join(10)
    assert results["r"] is not None and (dest / "out.bin").stat().st_size == 300_000
    assert store.stats().stored_bytes == 0  # and then prune freed everything


@pytest.mark.parametrize(
    "member", [".git/hooks/post-checkout", "src/main.c", "node_modules/../buildyard.yml"]
)
def test_a_dependency_cache_entry_writes_only_the_declared_cache_paths(tmp_path, member) -> None:
    import io
    import tarfile

    from buildyard.cache.dep_cache import DEPS_NAMESPACE, DependencyCache
    from buildyard.cache.pathsafe import UnsafePathError

    store = CacheStore(tmp_path / "cas")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("node_modules/ok.js", member):
            info = tarfile.TarInfo(name)
            info.size = len(HOOK)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(HOOK))
    digest = store.cas.put_bytes(buf.getvalue())
    store.refs.write(
        DEPS_NAMESPACE, "npm-1", {"archive": digest, "paths": ["node_modules"], "blobs": [digest]}
    )
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "main.c").write_text("int main;\n")
    with pytest.raises(UnsafePathError):
        DependencyCache(store).restore(key="npm-1", workspace=ws, paths=["node_modules/"])
    assert sorted(p.relative_to(ws).as_posix() for p in ws.rglob("*")) == ["src", "src/main.c"]
    assert (ws / "src" / "main.c").read_text() == "int main;\n"
    assert store.refs.read(DEPS_NAMESPACE, "npm-1") is None  # evicted


def test_the_same_job_of_a_concurrent_run_waits_for_the_one_writing_its_outputs(make_project) -> None:
    from buildyard.cache.store import OutputLock

    root = _project(make_project)
    other_run = OutputLock(CacheStore(root / ".buildyard" / "cas"), root, ["dist/"], job="build")
    assert other_run.try_acquire()  # another run's "build" is writing dist/ right now
    env = {**os.environ, "BUILDYARD_DAEMON": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and not (root / "runs.log").exists()  # waiting, nothing written
        again = OutputLock(CacheStore(root / ".buildyard" / "cas"), root, ["dist"], job="build")
        assert not again.try_acquire()  # the same pattern is the same lock, in any process
    finally:
        other_run.release()
    assert proc.wait(timeout=60) == 0
    assert (root / "runs.log").read_text() == "run\n"


def test_strict_fails_a_job_whose_declared_output_matched_nothing_with_or_without_the_cache(
    cli, make_project
) -> None:
    pipeline = (
        "jobs:\n  a:\n    working_directory: pkg\n    script: 'true'\n    artifacts: {paths: [dist/]}\n"
    )
    for name, extra in (("cached", []), ("uncached", ["--no-cache"])):
        root = make_project({"buildyard.yml": pipeline, "pkg/src.txt": "x\n"}, name=name)
        strict = cli("-C", root, "run", "--json", "--strict", *extra)
        [job] = json.loads(strict.out)["jobs"]
        assert strict.code == 1 and job["status"] == "failed"
        assert job["message"] == "declared output 'pkg/dist/' matched no file (--strict)"
        warned = cli("-C", root, "run", *extra)  # the failed job was not cached: it runs, and warns
        assert warned.code == 0 and "job a: declared output 'pkg/dist/' matched no file" in warned.out


def _entry_with(store: CacheStore, key: str, members: list[tuple[str, str | None]]) -> None:
    """A dependency-cache entry of ``(name, symlink target or None for a file)`` members."""
    import io
    import tarfile

    from buildyard.cache.dep_cache import DEPS_NAMESPACE

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, target in members:
            info = tarfile.TarInfo(name)
            if target is None:
                info.size = len(HOOK)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(HOOK))
            else:
                info.type = tarfile.SYMTYPE
                info.linkname = target
                tar.addfile(info)
    digest = store.cas.put_bytes(buf.getvalue())
    store.refs.write(DEPS_NAMESPACE, key, {"archive": digest, "paths": [".venv"], "blobs": [digest]})


def test_a_virtualenv_cache_restores_its_interpreter_link_to_an_absolute_path(tmp_path, make_project) -> None:
    """A venv links bin/python to the interpreter that made it (absolute): restored as a link.

    Found by a real pipeline: the data filter refused it with an exception that hung the run.
    """
    import sys

    from buildyard.cache.dep_cache import DependencyCache

    store = CacheStore(tmp_path / "cas")
    _entry_with(
        store,
        "venv-1",
        [(".venv/bin/python", sys.executable), (".venv/bin/python3", "python"), (".venv/pyvenv.cfg", None)],
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    got = DependencyCache(store).restore(key="venv-1", workspace=ws, paths=[".venv"])
    assert got.exact
    assert os.readlink(ws / ".venv/bin/python") == sys.executable
    assert (ws / ".venv/bin/python3").resolve() == Path(sys.executable).resolve()
    assert (ws / ".venv/pyvenv.cfg").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(
    "members",
    [
        [(".venv/out", "OUTSIDE"), (".venv/out/evil", None)],  # a file through an absolute link
        [(".venv/up", "../../../outside"), (".venv/up/evil", None)],  # through a link climbing out
        [(".venv/b", "a"), (".venv/a", "OUTSIDE"), (".venv/b/evil", None)],  # through a chain of links
        [(".venv/out", "OUTSIDE"), (".venv/out/evil", "x")],  # a link through a link
    ],
)
def test_nothing_is_extracted_through_a_link_leaving_the_workspace(tmp_path, members) -> None:
    from buildyard.cache.dep_cache import DEPS_NAMESPACE, DependencyCache
    from buildyard.cache.pathsafe import UnsafePathError

    outside = tmp_path / "outside"
    outside.mkdir()
    store = CacheStore(tmp_path / "cas")
    _entry_with(store, "venv-2", [(n, str(outside) if t == "OUTSIDE" else t) for n, t in members])
    ws = tmp_path / "deep" / "ws"
    ws.mkdir(parents=True)
    with pytest.raises(UnsafePathError):
        DependencyCache(store).restore(key="venv-2", workspace=ws, paths=[".venv"])
    assert list(outside.iterdir()) == []
    assert not any(p.is_file() and not p.is_symlink() for p in ws.rglob("*"))
    assert store.refs.read(DEPS_NAMESPACE, "venv-2") is None  # evicted


def test_a_venv_restored_again_replaces_its_links_and_an_unchanged_one_is_not_extracted(tmp_path) -> None:
    import sys

    from buildyard.cache.dep_cache import DependencyCache

    store = CacheStore(tmp_path / "cas")
    _entry_with(store, "venv-3", [(".venv/bin/python", sys.executable), (".venv/pyvenv.cfg", None)])
    ws = tmp_path / "ws"
    ws.mkdir()
    cache = DependencyCache(store)
    assert cache.restore(key="venv-3", workspace=ws, paths=[".venv"]).exact
    (ws / ".venv/pyvenv.cfg").write_bytes(b"edited by a job\n")
    # the same entry again: this workspace holds it already, nothing is extracted (a fully cached run)
    assert cache.restore(key="venv-3", workspace=ws, paths=[".venv"]).exact
    assert (ws / ".venv/pyvenv.cfg").read_bytes() == b"edited by a job\n"
    # forgotten (another workspace state): extracted over the links an earlier restore made
    for marker in (ws / ".buildyard" / "depcache").iterdir():
        marker.unlink()
    assert cache.restore(key="venv-3", workspace=ws, paths=[".venv"]).exact
    assert (ws / ".venv/pyvenv.cfg").read_bytes() == HOOK
    assert os.readlink(ws / ".venv/bin/python") == sys.executable
    # a deleted directory is restored whatever the marker says
    import shutil

    shutil.rmtree(ws / ".venv")
    assert cache.restore(key="venv-3", workspace=ws, paths=[".venv"]).exact
    assert (ws / ".venv/pyvenv.cfg").read_bytes() == HOOK
