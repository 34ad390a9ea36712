"""Hardening of the artifact repository, the warm daemon and process liveness (issue 21, items 5 and 11).

Unreadable version records are reported, never deleted; a pull replaces its destination atomically or
not at all; symlinks never smuggle outside files into an artifact; the daemon never serves code whose
files changed on disk; the jobs of a SIGKILLed run die within seconds without another command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from buildyard.artifacts import transfer
from buildyard.artifacts.errors import ArtifactError, VerificationError
from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.model import BuildInfo
from buildyard.artifacts.repo import Repository

BY = [sys.executable, "-m", "buildyard"]
BUILD = BuildInfo(builder="test", build_time="2026-01-01T00:00:00Z")


@pytest.fixture
def project(make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_project({"dist/shop.whl": "wheel-1", "dist/docs/index.html": "<h1>hi</h1>"})
    monkeypatch.chdir(root)
    monkeypatch.setenv("BUILDYARD_ACTOR", "tester")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    ring = KeyRing(tmp_path / "keys")
    ring.generate()
    return Repository(tmp_path / "repo", keyring=ring)


def _records(root: Path) -> list[Path]:
    return sorted((root / ".buildyard" / "artifacts" / "refs" / "artifacts").rglob("*.json"))


# -- item 5: a garbled version record is reported, never deleted --------------------------------------


def test_a_garbled_version_record_is_reported_by_fsck_and_kept(
    cli: Callable[..., Any], project: Path
) -> None:
    assert cli("-C", project, "keys", "generate").code == 0
    assert cli("-C", project, "artifacts", "push", "shop", "dist", "--version", "1.0.0").code == 0
    assert cli("-C", project, "artifacts", "push", "shop", "dist", "--version", "1.1.0").code == 0
    records = _records(project)
    assert len(records) == 2
    garbled = next(p for p in records if b'"1.0.0"' in p.read_bytes())
    garbled.write_bytes(garbled.read_bytes()[:40])  # torn: not JSON any more

    listed = cli("-C", project, "artifacts", "list", "--json")
    assert listed.code == 0
    assert [r["version"] for r in json.loads(listed.out)] == ["1.1.0"]
    warnings = [line for line in listed.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(garbled) in warnings[0]
    assert garbled.exists()

    res = cli("-C", project, "artifacts", "fsck")
    assert res.code != 0
    assert str(garbled) in res.out + res.err
    assert garbled.exists()

    blobs = {p for p in (project / ".buildyard" / "artifacts" / "blobs").rglob("*") if p.is_file()}
    pruned = cli("-C", project, "artifacts", "prune", "--json")
    assert pruned.code == 0
    assert garbled.exists()
    assert {p for p in (project / ".buildyard" / "artifacts" / "blobs").rglob("*") if p.is_file()} == blobs
    audit = (project / ".buildyard" / "artifacts" / "audit.log").read_text()
    assert '"1.0.0"' in audit

    # a record that is JSON but not a valid record is treated the same way
    garbled.write_text(json.dumps({"name": "shop@1.0.0", "blobs": []}))
    res = cli("-C", project, "artifacts", "fsck")
    assert res.code != 0 and str(garbled) in res.out + res.err
    assert garbled.exists()
    # a record deleted by hand (or by an older buildyard) while the audit log lists its push
    garbled.unlink()
    res = cli("-C", project, "artifacts", "fsck")
    assert res.code != 0 and "shop@1.0.0: pushed (audit log) but its version record is missing" in res.out


def test_gc_keeps_every_blob_while_a_record_is_unreadable(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("only referenced by the record that gets garbled")
    repo.push("one", "1.0.0", [src], build=BUILD)
    record = next((repo.root / "refs" / "artifacts").rglob("*.json"))
    record.write_bytes(b"{not json")
    before = sorted(p for p in (repo.root / "blobs").rglob("*") if p.is_file())
    assert repo.gc(grace_s=0) == (0, 0)
    assert sorted(p for p in (repo.root / "blobs").rglob("*") if p.is_file()) == before
    assert record.exists()
    with pytest.raises(ArtifactError, match="unreadable"):  # never overwritten by a new push
        repo.push("one", "1.0.0", [src], build=BUILD)
    assert record.read_bytes() == b"{not json"


# -- item 11: an atomic pull ---------------------------------------------------------------------------


def test_a_failed_pull_leaves_an_existing_destination_untouched(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "b.txt").parent.mkdir(parents=True)
    (src / "a.txt").write_text("new a")
    (src / "b.txt").write_text("new b")
    repo.push("p", "1.0.0", [src], build=BUILD)
    dest = tmp_path / "dest"
    (dest / "b.txt").mkdir(parents=True)  # cannot become a file: the pull fails after a.txt
    (dest / "a.txt").write_text("old a")
    with pytest.raises(ArtifactError):
        repo.pull("p@1.0.0", dest)
    assert (dest / "a.txt").read_text() == "old a"
    assert (dest / "b.txt").is_dir()
    # with force the destination is replaced as a whole: exactly the artifact's files
    repo.pull("p@1.0.0", dest, force=True)
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.txt"]
    assert (dest / "a.txt").read_text() == "new a" and (dest / "b.txt").read_text() == "new b"
    assert not [p for p in tmp_path.iterdir() if ".pull-" in p.name]
    # where renameat2 is unavailable the old tree is renamed aside, then replaced
    (dest / "extra.txt").write_text("old")
    monkeypatch.setattr(transfer, "_libc_any", lambda: None)
    repo.pull("p@1.0.0", dest, force=True)
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.txt"]
    assert not [p for p in tmp_path.iterdir() if ".pull-" in p.name]


def test_a_pull_with_a_corrupt_blob_leaves_the_destination_as_it_was(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_text(f"content {i}" * 100)
    result = repo.push("p", "1.0.0", [src], build=BUILD)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f0.txt").write_text("old")
    last = result.manifest.files[-1]
    blob = next(p for p in (repo.root / "blobs").rglob(last.blob))
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    with pytest.raises(VerificationError):
        repo.pull("p@1.0.0", dest, force=True)
    assert [p.name for p in dest.iterdir()] == ["f0.txt"]
    assert (dest / "f0.txt").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if ".pull-" in p.name]


# -- item 11: symlinks never publish a file from outside ----------------------------------------------


def test_pushing_a_symlink_is_refused(repo: Repository, tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("PRIVATE")
    dist = tmp_path / "dist"
    dist.mkdir()
    link = dist / "app.whl"
    link.symlink_to(secret)
    with pytest.raises(ArtifactError, match=r"symlink") as caught:
        repo.push("s", "1.0.0", [link], build=BUILD)
    assert str(link) in str(caught.value) and "\n" not in str(caught.value)
    inner = tmp_path / "tree"
    (inner / "sub").mkdir(parents=True)
    (inner / "ok.txt").write_text("fine")
    (inner / "sub" / "leak").symlink_to(secret)
    with pytest.raises(ArtifactError, match=r"symlink") as caught:
        repo.push("s", "1.0.0", [inner], build=BUILD)
    assert str(inner / "sub" / "leak") in str(caught.value)
    assert repo.records() == []
    assert not any(b"PRIVATE" in p.read_bytes() for p in (repo.root / "blobs").rglob("*") if p.is_file())


def test_pushing_a_symlinked_file_is_a_one_line_cli_error(cli: Callable[..., Any], project: Path) -> None:
    assert cli("-C", project, "keys", "generate").code == 0
    (project / "outside.txt").write_text("not part of dist")
    (project / "dist" / "link.txt").symlink_to(project / "outside.txt")
    res = cli("-C", project, "artifacts", "push", "shop", "dist/link.txt", "--version", "1.0.0")
    assert res.code == 2
    assert "symlink" in res.err and "link.txt" in res.err and "Traceback" not in res.err


# -- item 11: the daemon never serves code whose files changed ----------------------------------------


@pytest.fixture
def daemon_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A daemon environment whose ``click`` is a private copy (on PYTHONPATH) the test may edit."""
    folder = tempfile.mkdtemp(prefix="byd-")
    site = tmp_path / "site"
    shutil.copytree(Path(click.__file__).parent, site / "click")
    env = {**os.environ, "BUILDYARD_DAEMON": "1", "BUILDYARD_DAEMON_DIR": folder}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("CI", None)
    try:
        yield env
    finally:
        subprocess.run([*BY, "daemon", "stop"], env=env, capture_output=True, check=False)
        deadline = time.monotonic() + 10
        while os.path.exists(os.path.join(folder, "daemon.sock")) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


def _status(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([*BY, "daemon", "status", "--json"], env=env, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def test_the_daemon_does_not_serve_a_dependency_edited_in_place(
    make_project: Callable[..., Path], daemon_env: dict[str, str], tmp_path: Path
) -> None:
    root = make_project({"buildyard.yml": "name: d\njobs:\n  a: {script: [true]}\n"})
    started = subprocess.run([*BY, "daemon", "start"], env=daemon_env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    first = subprocess.run([*BY, "-C", str(root), "validate"], env=daemon_env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert _status(daemon_env)["served"] == 1
    click_dir = Path(daemon_env["PYTHONPATH"].split(os.pathsep)[0]) / "click"
    site_mtime = click_dir.stat().st_mtime_ns
    mark = tmp_path / "fresh-click-was-imported"
    core = click_dir / "core.py"
    with core.open("a") as f:  # edited in place: same inode, the directory's mtime does not change
        f.write(
            "\nimport os as _o\nif _o.environ.get('BY_MARK'):\n    open(_o.environ['BY_MARK'], 'w').close()\n"
        )
    assert click_dir.stat().st_mtime_ns == site_mtime
    second = subprocess.run(
        [*BY, "-C", str(root), "validate"],
        env={**daemon_env, "BY_MARK": str(mark)},
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0, second.stderr
    assert mark.exists(), "the command ran on the daemon's stale copy of click"


def test_the_module_watch_sees_same_size_edits_replacements_and_late_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildyard.daemon.server import ModuleWatch

    (tmp_path / "by_throwaway_a.py").write_text("X = 1\n")
    (tmp_path / "by_throwaway_b.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import by_throwaway_a

    watch = ModuleWatch()
    try:
        assert watch.changed() is None
        path = tmp_path / "by_throwaway_a.py"
        before = path.stat()
        path.write_text("X = 2\n")  # same size, same inode
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        assert watch.changed() == by_throwaway_a.__file__
        watch = ModuleWatch()
        import by_throwaway_b  # imported after the watch started: adopted

        assert watch.changed() is None
        (tmp_path / "new.py").write_text("Y = 2\n")
        (tmp_path / "new.py").replace(tmp_path / "by_throwaway_b.py")  # replaced: another inode
        assert watch.changed() == by_throwaway_b.__file__
    finally:
        sys.modules.pop("by_throwaway_a", None)
        sys.modules.pop("by_throwaway_b", None)


# -- item 11: a watchdog kills the jobs of a SIGKILLed run --------------------------------------------


@pytest.mark.parametrize(
    ("executor", "script"),
    [
        ("spawn", "sleep 60 & echo $! > sleep.pid; wait"),
        ("pool", "sleep 60 & echo $! > sleep.pid; wait"),
        # no BUILDYARD_RUN_ID in its environment: found by its process group only
        ("spawn", "env -i sh -c 'sleep 60 & echo $! > sleep.pid; wait'"),
    ],
)
def test_the_jobs_of_a_sigkilled_run_die_within_seconds(
    make_project: Callable[..., Path], executor: str, script: str
) -> None:
    root = make_project({"buildyard.yml": f'name: w\njobs:\n  s:\n    script: ["{script}"]\n'})
    env = {**os.environ, "BUILDYARD_DAEMON": "0", "BUILDYARD_EXECUTOR": executor}
    proc = subprocess.Popen(
        [*BY, "-C", str(root), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    job = 0
    try:
        deadline = time.monotonic() + 30
        while not ((root / "sleep.pid").exists() and (root / "sleep.pid").read_text().strip()):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        job = int((root / "sleep.pid").read_text())
        pgid = os.getpgid(job)
        killed_at = time.monotonic()
        proc.kill()
        proc.wait()
        while Path(f"/proc/{job}").exists() and _state(job) != "Z":
            assert time.monotonic() - killed_at < 5, "the job outlived its SIGKILLed run by 5 s"
            time.sleep(0.01)
        print(f"job gone {time.monotonic() - killed_at:.3f} s after the run was SIGKILLed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if job and Path(f"/proc/{job}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2]
