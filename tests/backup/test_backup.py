"""``buildyard backup create|verify|restore`` and ``buildyard clean`` on real projects with real runs."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIPELINE = """\
name: shop
jobs:
  build:
    script:
      - mkdir -p dist
      - echo "shop-api build $BUILDYARD_RUN_NUMBER" > dist/app.txt
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
  test: {needs: [build], script: "echo testing"}
  deploy:
    needs: [build]
    environment: dev
    script:
      - cp "$BUILDYARD_ARTIFACT_DIR/app.txt" live.txt
"""
IGNORE = ".buildyard/\ndist/\n*.txt\n"
PASS = "correct horse battery staple"


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BUILDYARD_BACKUP_PASSPHRASE", PASS)
    return PASS


@pytest.fixture
def project(make_project, cli) -> Path:
    """A project with keys, three recorded runs, published artifacts and deployments."""
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": IGNORE})
    assert cli("-C", root, "keys", "generate").code == 0
    for _ in range(3):
        result = cli("-C", root, "run", "--json")
        assert result.code == 0, result.err
    return root


def views(cli, root: Path, *extra: str) -> dict[str, object]:
    """What a user sees of the history, the repository and the deployments."""
    out: dict[str, object] = {}
    for name, args in {
        "history": ("history", "--json"),
        "deploys": ("deploy", "history", "dev", "--json"),
        "versions": ("artifacts", "list", "--json"),
        "show": ("show", "2", "--json"),
    }.items():
        result = cli("-C", root, *args, *extra)
        assert result.code == 0, (name, result.err)
        # log paths point into the project's own home: compare them relative to it
        out[name] = json.loads(result.out.replace(str(root / ".buildyard"), "<HOME>"))
    for ref in ("shop-api", "shop-api@dev"):
        result = cli("-C", root, "artifacts", "verify", ref)
        assert result.code == 0, result.err
        out[f"verify {ref}"] = result.out
    fsck = cli("-C", root, "artifacts", "fsck")
    assert fsck.code == 0, fsck.out
    out["fsck"] = fsck.out
    logs = cli("-C", root, "logs", "3", "test", *extra)
    assert logs.code == 0, logs.err
    out["logs"] = logs.out
    return out


def clone(root: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(root), str(dest)], check=True)
    return dest


def test_backup_verify_restore_gives_the_same_project(
    cli, project: Path, passphrase: str, tmp_path: Path
) -> None:
    before = views(cli, project)
    backup = tmp_path / "bk"
    made = cli("-C", project, "backup", "create", backup, "--json")
    assert made.code == 0, made.err
    summary = json.loads(made.out)
    assert (summary["history"], summary["runs"], summary["artifact_versions"], summary["keys"]) == (
        "sqlite",
        3,
        3,
        2,
    )
    assert not list(tmp_path.glob(".bk.partial-*")), "the temporary directory is gone"
    assert b"PRIVATE KEY" not in b"".join(p.read_bytes() for p in backup.rglob("*") if p.is_file())

    checked = cli("backup", "verify", backup)
    assert checked.code == 0, checked.out + checked.err
    assert not (backup / "history" / "buildyard.db-wal").exists(), "verify writes nothing"

    other = clone(project, tmp_path / "elsewhere")
    restored = cli("-C", other, "backup", "restore", backup)
    assert restored.code == 0, restored.err
    private = other / ".buildyard" / "keys" / "private" / "default.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.read_bytes() == (project / ".buildyard" / "keys" / "private" / "default.pem").read_bytes()
    after = views(cli, other)
    assert after == before

    # the restored project keeps working: a new run is number 4 and deploys a verified artifact
    result = cli("-C", other, "run", "--json")
    assert result.code == 0 and json.loads(result.out)["number"] == 4, result.err

    # a non-empty target is refused; --force replaces it atomically
    again = cli("-C", other, "backup", "restore", backup)
    assert again.code == 2 and "not empty" in again.err and "--force" in again.err
    assert json.loads(cli("-C", other, "history", "--json").out)[0]["number"] == 4  # untouched
    forced = cli("-C", other, "backup", "restore", backup, "--force")
    assert forced.code == 0, forced.err
    assert views(cli, other) == before
    assert not list(tmp_path.glob("elsewhere/.buildyard.*")), "no temporary dirs left behind"


def test_a_tampered_file_fails_verify_naming_it(cli, project: Path, passphrase: str, tmp_path: Path) -> None:
    backup = tmp_path / "bk"
    assert cli("-C", project, "backup", "create", backup).code == 0
    log = next((backup / "logs").rglob("build.log"))
    log.write_bytes(log.read_bytes() + b"injected\n")
    blob = next((backup / "artifacts" / "blobs").rglob("*/*"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    (backup / "logs" / "extra.txt").write_text("x")
    result = cli("backup", "verify", backup)
    assert result.code == 1
    rel_log = log.relative_to(backup).as_posix()
    rel_blob = blob.relative_to(backup).as_posix()
    assert f"problem  {rel_log}: digest mismatch" in result.out
    assert f"problem  {rel_blob}: digest mismatch" in result.out
    assert "problem  logs/extra.txt: not in the manifest" in result.out
    assert len(result.err.strip().splitlines()) == 1
    # restore refuses a backup that does not verify, and writes nothing
    target = tmp_path / "home"
    restored = cli("backup", "restore", backup, "--to", target)
    assert restored.code == 1 and "nothing restored" in restored.err and not target.exists()

    # editing the manifest to match is caught by the passphrase seal
    manifest = json.loads((backup / "manifest.json").read_text())
    import hashlib

    manifest["files"][rel_log]["sha256"] = hashlib.sha256(log.read_bytes()).hexdigest()
    manifest["files"][rel_log]["size"] = log.stat().st_size
    raw = json.dumps(manifest).encode()
    (backup / "manifest.json").write_bytes(raw)
    seal = json.loads((backup / "manifest.seal").read_text())
    seal["sha256"] = hashlib.sha256(raw).hexdigest()
    (backup / "manifest.seal").write_text(json.dumps(seal))
    result = cli("backup", "verify", backup)
    assert result.code == 1 and "manifest.json: its passphrase seal does not match" in result.err

    # stripping the seal, the key derivation and the keys does not make it pass either
    manifest["kdf"] = None
    del manifest["files"]["keys.enc"]
    (backup / "keys.enc").unlink()
    raw = json.dumps(manifest).encode()
    (backup / "manifest.json").write_bytes(raw)
    (backup / "manifest.seal").write_text(
        json.dumps({"sha256": hashlib.sha256(raw).hexdigest(), "hmac": None})
    )
    result = cli("backup", "verify", backup)
    assert result.code == 1 and "not sealed with a passphrase" in result.err


def test_wrong_or_missing_passphrase_is_one_line(
    cli, project: Path, passphrase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = tmp_path / "bk"
    assert cli("-C", project, "backup", "create", backup).code == 0
    monkeypatch.setenv("BUILDYARD_BACKUP_PASSPHRASE", "not the passphrase")
    result = cli("backup", "verify", backup)
    assert result.code == 1
    assert result.err == f"buildyard: error: wrong passphrase for the backup {backup}\n"
    monkeypatch.delenv("BUILDYARD_BACKUP_PASSPHRASE")
    result = cli("backup", "verify", backup)  # stdin is not a terminal: no prompt
    assert result.code == 2 and "BUILDYARD_BACKUP_PASSPHRASE" in result.err
    made = cli("-C", project, "backup", "create", tmp_path / "bk2")
    assert made.code == 2 and "BUILDYARD_BACKUP_PASSPHRASE" in made.err
    assert len(made.err.splitlines()) == 1 and not (tmp_path / "bk2").exists()


def recorded_runs(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()


def test_backup_while_runs_are_writing_is_consistent(
    make_project, cli, passphrase: str, tmp_path: Path
) -> None:
    """Another process records runs and publishes a version per run while backups are taken."""
    jobs = "".join(f"  j{i}: {{script: 'echo {i}'}}\n" for i in range(6))
    pkg = (
        "  pkg:\n    script: [mkdir -p dist, echo $BUILDYARD_RUN_NUMBER > dist/a.txt]\n"
        "    publish: {name: busy-pkg, paths: ['dist/*'], version: '1.0.0'}\n"
    )
    root = make_project(
        {"buildyard.yml": f"name: busy\njobs:\n{jobs}{pkg}", ".gitignore": ".buildyard/\ndist/\n"}
    )
    assert cli("-C", root, "keys", "generate").code == 0
    assert cli("-C", root, "run", "--no-cache").code == 0
    loop = f"for i in $(seq 40); do {sys.executable} -m buildyard run --no-cache >/dev/null || exit 1; done"
    writer = subprocess.Popen(
        ["bash", "-c", loop],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        start_new_session=True,
    )
    taken: list[int] = []
    try:
        n = 0
        while writer.poll() is None and n < 6:
            backup = tmp_path / f"bk{n}"
            runs_before = recorded_runs(root / ".buildyard" / "buildyard.db")
            made = cli("-C", root, "backup", "create", backup, "--json")
            assert made.code == 0, made.err
            taken.append(json.loads(made.out)["runs"])
            # one snapshot between the start and the end of the backup (WAL content included)
            assert runs_before <= taken[-1] <= recorded_runs(root / ".buildyard" / "buildyard.db")
            checked = cli("backup", "verify", backup)
            assert checked.code == 0, checked.out
            home = tmp_path / f"home{n}"
            assert cli("backup", "restore", backup, "--to", home).code == 0
            db = ("--db", f"sqlite:///{home / 'buildyard.db'}")
            listed = cli("-C", root, "history", "--json", *db, "-n", "100")
            assert listed.code == 0, listed.err
            rows = json.loads(listed.out)
            assert len(rows) == taken[-1]
            assert all(r["status"] in ("success", "running") for r in rows)
            # the repository holds every version the history copy says was published, and verifies
            repo = ("--repo", home / "artifacts", "--keys-dir", home / "keys")
            fsck = cli("artifacts", "fsck", *repo)
            assert fsck.code == 0, fsck.out
            listed_versions = cli("artifacts", "list", "--json", *repo)
            assert listed_versions.code == 0, listed_versions.err
            versions = {
                v["version"].split(".")[3] for v in json.loads(listed_versions.out)
            }  # 1.0.0+build.N.sha
            assert {str(r["number"]) for r in rows if r["status"] == "success"} <= versions
            n += 1
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    assert len(taken) >= 2 and taken[-1] > taken[0], (
        f"backups were not taken while runs were recorded: {taken}"
    )


def test_clean_removes_only_rebuildable_state(cli, project: Path) -> None:
    home = project / ".buildyard"
    assert (home / "cas").is_dir() and (home / "deploy" / "shop").is_dir()
    keep = {p: p.read_bytes() for p in (home / "keys").rglob("*") if p.is_file()}
    history = cli("-C", project, "history", "--json").out
    dry = cli("-C", project, "clean", "--dry-run", "--json")
    assert dry.code == 0 and (home / "cas").is_dir()
    listed = json.loads(dry.out)["removed"]
    assert (
        "cas" in listed
        and "deploy/shop" in listed
        and not any(p.startswith(("keys", "artifacts", "logs")) for p in listed)
    )

    # refused while a run of this home holds its run lock
    (home / "runs").mkdir(exist_ok=True)
    fd = os.open(home / "runs" / "r1.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = cli("-C", project, "clean")
        assert busy.code == 2 and "run r1" in busy.err and (home / "cas").is_dir()
    finally:
        os.close(fd)
    assert cli("-C", project, "clean").code == 0
    assert not (home / "cas").exists() and not (home / "deploy" / "shop").exists()
    assert (home / "deploy" / "locks").is_dir() and (home / "logs").is_dir()
    assert {p: p.read_bytes() for p in (home / "keys").rglob("*") if p.is_file()} == keep
    assert cli("-C", project, "history", "--json").out == history
    assert cli("-C", project, "artifacts", "fsck").code == 0
    assert cli("-C", project, "logs", "1", "build").code == 0

    old = time.time() - 40 * 86400
    for p in (home / "logs" / "shop" / "1").rglob("*"):
        os.utime(p, (old, old))
    assert cli("-C", project, "clean", "--logs-older-than", "30").code == 0
    assert not (home / "logs" / "shop" / "1").exists() and (home / "logs" / "shop" / "3").is_dir()
    # and a run after clean rebuilds the cache
    assert cli("-C", project, "run").code == 0 and (home / "cas").is_dir()


def test_restore_refuses_a_target_that_is_not_empty(
    cli, project: Path, passphrase: str, tmp_path: Path
) -> None:
    backup = tmp_path / "bk"
    assert cli("-C", project, "backup", "create", backup, "--no-logs").code == 0
    target = tmp_path / "home"
    (target / "keys").mkdir(parents=True)
    result = cli("backup", "restore", backup, "--to", target)
    assert result.code == 2 and str(target) in result.err
    assert list(target.iterdir()) == [target / "keys"]
    # a SQLite history restored where the selected database is not would be silently unused
    other = tmp_path / "other"
    result = cli("backup", "restore", backup, "--to", other, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.code == 2 and "--db/BUILDYARD_DB" in result.err and not other.exists()
    result = cli("backup", "restore", backup, "--to", other, "--db", f"sqlite:///{other / 'buildyard.db'}")
    assert result.code == 0, result.err


@pytest.mark.postgres
def test_postgres_history_round_trip(
    make_project,
    cli,
    postgres_url: str,
    postgres_server: str,
    passphrase: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg
    import sqlalchemy as sa

    pg_bin = None
    try:
        import pgserver  # noqa: F401

        pg_bin = Path(sys.modules["pgserver"].__file__).parent / "pginstall" / "bin"
    except ImportError:
        pass
    if shutil.which("pg_dump") is None and not (pg_bin and (pg_bin / "pg_dump").exists()):
        pytest.skip("pg_dump is not available")
    root = make_project(
        {"buildyard.yml": "name: pg\njobs:\n  a: {script: 'echo hi'}\n  b: {needs: [a], script: 'echo b'}\n"}
    )
    path = os.environ["PATH"]
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no pg_dump: one line, and no backup
    without = cli("-C", root, "backup", "create", tmp_path / "none", "--db", postgres_url)
    assert without.code == 2 and without.err.count("\n") == 1 and "pg_dump not found on PATH" in without.err
    assert not (tmp_path / "none").exists() and not list(tmp_path.glob(".none*"))
    monkeypatch.setenv("PATH", path)
    if pg_bin:
        monkeypatch.setenv("PATH", f"{pg_bin}{os.pathsep}{os.environ['PATH']}")
    for _ in range(2):
        assert cli("-C", root, "run", "--db", postgres_url, "--no-cache").code == 0
    before = cli("-C", root, "history", "--db", postgres_url, "--json").out
    backup = tmp_path / "bk"
    made = cli("-C", root, "backup", "create", backup, "--db", postgres_url, "--json")
    assert made.code == 0, made.err
    assert json.loads(made.out)["history"] == "postgresql"
    assert cli("backup", "verify", backup).code == 0

    name = "buildyard_restored_" + str(os.getpid())
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    target_url = sa.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        refused = cli("backup", "restore", backup, "--to", tmp_path / "h0", "--db", postgres_url)
        assert refused.code == 2 and "not empty" in refused.err
        other = clone(root, tmp_path / "other")
        assert cli("-C", other, "backup", "restore", backup, "--db", target_url).code == 0
        after = cli("-C", other, "history", "--db", target_url, "--json").out
        assert json.loads(after) == json.loads(before)
        shutil.rmtree(root / ".buildyard" / "logs")  # the logs now come from the restored home
        logs = cli("-C", other, "logs", "2", "b", "--db", target_url)
        assert logs.code == 0 and "b" in logs.out, logs.err
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_keys_and_repository_kept_outside_the_home_are_used_by_runs_too(
    make_project, cli, passphrase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"  # e.g. ~/.local/share/buildyard/shop: not under .buildyard
    monkeypatch.setenv("BUILDYARD_KEYS_DIR", str(data / "keys"))
    monkeypatch.setenv("BUILDYARD_ARTIFACTS", str(data / "artifacts"))
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": IGNORE})
    assert cli("-C", root, "keys", "generate").code == 0
    result = cli("-C", root, "run", "--json")
    assert result.code == 0, result.out + result.err  # the run signs with the key 'keys generate' made
    version = {j["name"]: j for j in json.loads(result.out)["jobs"]}["build"]["published"]
    assert not (root / ".buildyard" / "keys").exists() and not (root / ".buildyard" / "artifacts").exists()
    made = json.loads(cli("-C", root, "backup", "create", tmp_path / "bk", "--json").out)
    assert (made["keys"], made["artifact_versions"]) == (2, 1)

    shutil.rmtree(root / ".buildyard")  # the natural clean-up loses only history, logs and caches
    assert cli("-C", root, "artifacts", "verify", str(version)).code == 0
    assert json.loads(cli("-C", root, "keys", "list", "--json").out)

    # restored elsewhere, keys and repository go where this environment keeps them
    monkeypatch.setenv("BUILDYARD_KEYS_DIR", str(tmp_path / "data2" / "keys"))
    monkeypatch.setenv("BUILDYARD_ARTIFACTS", str(tmp_path / "data2" / "artifacts"))
    other = clone(root, tmp_path / "other")
    restored = cli("-C", other, "backup", "restore", tmp_path / "bk")
    assert restored.code == 0, restored.err
    assert sorted(p.name for p in (other / ".buildyard").iterdir()) == ["buildyard.db", "logs"]
    assert (tmp_path / "data2" / "keys" / "private" / "default.pem").stat().st_mode & 0o777 == 0o600
    assert cli("-C", other, "artifacts", "verify", str(version)).code == 0
    assert json.loads(cli("-C", other, "deploy", "history", "dev", "--json").out)[0]["version"] in str(
        version
    )
    refused = cli("-C", other, "backup", "restore", tmp_path / "bk")
    assert refused.code == 2 and "not empty" in refused.err


def test_single_file_backup_tar_zst_and_tar(
    cli, project: Path, passphrase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = views(cli, project)
    archive = tmp_path / "shop.tar.zst"
    made = cli("-C", project, "backup", "create", archive, "--json")
    assert made.code == 0, made.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "shop.tar.zst"]  # no temporary left
    assert cli("backup", "verify", archive).code == 0
    other = clone(project, tmp_path / "other")
    restored = cli("-C", other, "backup", "restore", archive)
    assert restored.code == 0, restored.err
    assert views(cli, other) == before

    plain = tmp_path / "shop.tar"
    assert cli("-C", project, "backup", "create", plain, "--no-logs").code == 0
    assert cli("-C", project, "backup", "create", plain).code == 2  # never overwritten
    data = plain.read_bytes()
    at = data.index(b'"pushed_by"')  # inside an artifact record (refs/…/<h>.json)
    plain.write_bytes(data[:at] + b"'" + data[at + 1 :])
    result = cli("backup", "verify", plain)
    assert result.code == 1 and "problem  artifacts/refs/artifacts/" in result.out
    assert "digest mismatch" in result.out and str(plain) in result.err
    assert "buildyard-backup-" not in result.out + result.err  # names the archive, not a temp dir

    monkeypatch.setenv("BUILDYARD_BACKUP_PASSPHRASE", "wrong")
    result = cli("backup", "verify", archive)
    assert result.code == 1 and result.err == f"buildyard: error: wrong passphrase for the backup {archive}\n"


def test_crafted_manifests_are_one_line_errors(
    make_project, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    root = make_project({"buildyard.yml": "name: k\njobs:\n  a: {script: 'echo a'}\n"})
    assert cli("-C", root, "run").code == 0
    backup = tmp_path / "bk"  # no keys, no passphrase: sealed by its digest only
    assert cli("-C", root, "backup", "create", backup).code == 0
    assert cli("backup", "verify", backup).code == 0
    good = json.loads((backup / "manifest.json").read_text())

    def forge(manifest: dict[str, object], hmac: str | None = None) -> None:
        raw = json.dumps(manifest).encode()
        (backup / "manifest.json").write_bytes(raw)
        seal = {"sha256": hashlib.sha256(raw).hexdigest(), "hmac": hmac}
        (backup / "manifest.seal").write_text(json.dumps(seal))

    for files, expected in (
        ({"history/buildyard.db": "x"}, "malformed file entries"),
        ({"../../etc/passwd": {"sha256": "0" * 64, "size": 1}}, "outside the backup layout"),
        ({"logs/../../x": {"sha256": "0" * 64, "size": 1}}, "outside the backup layout"),
    ):
        forge({**good, "files": files})
        result = cli("backup", "verify", backup)
        assert result.code == 1 and expected in result.err and len(result.err.splitlines()) == 1, result.err
    forge({**good, "kdf": {"name": "scrypt", "salt": "00", "n": 2**30, "r": 8, "p": 1}})
    result = cli("backup", "verify", backup)
    assert result.code == 1 and "passphrase seal is missing" in result.err
    monkeypatch.setenv("BUILDYARD_BACKUP_PASSPHRASE", "pw")  # scrypt cost is bounded: no 128 GiB derivation
    forge({**good, "kdf": {"name": "scrypt", "salt": "00", "n": 2**30, "r": 8, "p": 1}}, hmac="00")
    result = cli("backup", "verify", backup)
    assert result.code == 1 and "unsupported scrypt parameters" in result.err
