"""Backups of what must not be lost: history, artifact repository, keys, logs; verify; restore.

A backup is a directory, or the same as one ``.tar``/``.tar.zst`` file (see ``archive``)::

    manifest.json            format, source, scrypt salt, and every file with its SHA-256 and size
    manifest.seal            SHA-256 of manifest.json, and its HMAC-SHA256 under the passphrase
    history/buildyard.db     SQLite history (online backup API; journal_mode=DELETE: one file)
    history/history.pgdump   or: PostgreSQL history (``pg_dump --format=custom``)
    logs/…                   job logs, as under BUILDYARD_HOME/logs
    artifacts/…              the repository: refs/, the blobs its records reference, audit.log, config.json
    keys.enc                 the key directory, AES-256-GCM under a scrypt key from the passphrase

It is written under a temporary name next to the destination and renamed into place at the end: a
backup directory that exists is complete. Memory is bounded: files are streamed in 1 MiB chunks
(only the key bundle and the manifest are held whole).

What "consistent" means for each part, and how it is obtained while runs keep writing:

- **History**: one point in time. SQLite: ``Connection.backup`` with ``pages=-1`` copies every page
  inside one read transaction (WAL: writers go on, the copy sees the snapshot). PostgreSQL:
  ``pg_dump`` dumps from one repeatable-read snapshot.
- **Logs**: copied after the history, so every run in the history copy has its logs (a log still being
  written is copied as far as it got; the history copy shows that run as unfinished).
- **Artifact repository**: the ref files (the records: the commit points of pushes), ``audit.log``
  (channel state) and ``config.json`` are copied while holding the repository lock, which every
  mutation's commit step takes: a set of records and an audit log that existed together. The blobs
  are content-addressed and immutable, so they are copied after the lock is released, exactly those the
  copied records reference; a blob deleted meanwhile (a concurrent delete + gc) fails the backup with
  "run it again" rather than producing a backup with a dangling record. The repository is copied after
  the history, so every version the history mentions (published, deployed) is in it.
- **Keys**: copied last, so every signature in the copied repository has its trusted key; each key
  file is written atomically by the key ring, so each file is whole.

``verify`` checks the seal (passphrase), every file's digest and size, that the key bundle decrypts,
and ``PRAGMA integrity_check`` on the SQLite copy (opened read-only, immutable: verify writes nothing).
``restore`` verifies first, rebuilds the home in a temporary directory beside the target and renames
it into place (``--force`` swaps out a non-empty target); job log paths recorded in the history are
rewritten to the restored home.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from buildyard.backup import archive
from buildyard.backup.crypto import BackupError, BadBackupError, Sealer, new_salt
from buildyard.cache.cas import is_digest
from buildyard.fsutil import fsync_dir
from buildyard.settings import load as load_settings

FORMAT = "buildyard-backup/1"
MANIFEST = "manifest.json"
SEAL = "manifest.seal"
KEYS_BLOB = "keys.enc"
SQLITE_COPY = "history/buildyard.db"
PG_DUMP = "history/history.pgdump"
KEYS_AAD = b"buildyard-backup/1 keys"
CHUNK = 1 << 20
#: The manifest and the key bundle are read whole: refuse absurd sizes instead of exhausting memory.
MAX_MANIFEST_BYTES = 256 << 20
MAX_KEYS_BYTES = 16 << 20
_TOP_LEVEL = ("history", "logs", "artifacts", KEYS_BLOB)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the state to back up lives."""

    home: Path
    db_url: str
    repo_root: Path
    keys_dir: Path


def sources_for(
    project: Path, *, db_url: str | None = None, repo_root: Path | None = None, keys_dir: Path | None = None
) -> Sources:
    """The project's state: ``BUILDYARD_HOME`` (default ``.buildyard``), its history, repository, keys."""
    from buildyard.store.history import default_url  # noqa: PLC0415 - lazy

    current = load_settings(project)
    return Sources(
        home=current.home,
        db_url=db_url or current.db or default_url(current.home),
        repo_root=repo_root or current.artifacts_dir,
        keys_dir=keys_dir or current.keys_dir,
    )


@dataclass
class Summary:
    """What a backup holds (or a restore wrote)."""

    path: Path
    files: int = 0
    bytes: int = 0
    history: str | None = None
    runs: int | None = None
    versions: int = 0
    keys: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "history": self.history,
            "runs": self.runs,
            "artifact_versions": self.versions,
            "keys": self.keys,
            "seconds": round(self.seconds, 3),
            "problems": self.problems,
        }


# --- helpers -----------------------------------------------------------------------------------


def _copy_hashed(src: Path, dest: Path, *, mode: int = 0o644, durable: bool = True) -> tuple[str, int]:
    """Stream ``src`` to a new file ``dest`` (fsynced unless not ``durable``); its SHA-256 and size."""
    h = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, _new_file(dest, mode) as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        if durable:
            os.fsync(fout.fileno())
    return h.hexdigest(), size


def _new_file(dest: Path, mode: int) -> BinaryIO:
    """Open a file that must not exist yet, created with ``mode``."""
    return os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb")


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _files_under(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` (symlinks are not followed, nor copied)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _check_relpath(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or ".." in p.parts or p.parts[0] not in _TOP_LEVEL or str(p) != rel:
        raise BadBackupError(f"{MANIFEST}: refuses the path {rel!r} (outside the backup layout)")
    return p


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as a libpq URI without the password, plus ``PGPASSWORD``."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - only for PostgreSQL

    u = make_url(url)
    env = {"PGPASSWORD": u.password} if u.password else {}
    bare = u.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise BackupError(
            f"{name} not found on PATH: install the PostgreSQL client tools to back up or restore a "
            "PostgreSQL history (or use --no-history)"
        )
    return exe


def _run_pg(argv: list[str], env: dict[str, str], *, what: str) -> None:
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[0] if lines else f'exit {done.returncode}'}")


def _sqlite_path(url: str) -> str:
    from buildyard.store.history import sqlite_path  # noqa: PLC0415 - keeps SQLAlchemy lazy

    return sqlite_path(url)


# --- create --------------------------------------------------------------------------------------


class _Writer:
    """Files being added to a backup under construction, with their digests."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        #: False when the directory is only the source of an archive: its fsyncs would be wasted.
        self.durable = durable
        self.files: dict[str, dict[str, Any]] = {}

    def add_file(self, rel: str, src: Path, *, durable: bool = True) -> None:
        digest, size = _copy_hashed(src, self.root / rel, durable=durable and self.durable)
        self.files[rel] = {"sha256": digest, "size": size}

    def fsync(self, rels: list[str]) -> None:
        """fsync files added with ``durable=False``."""
        for rel in rels if self.durable else ():
            fd = os.open(self.root / rel, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def add_bytes(self, rel: str, data: bytes) -> None:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _new_file(dest, 0o600) as f:
            f.write(data)
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
        self.files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def record(self, rel: str) -> None:
        """Account for a file written in place (e.g. by sqlite or pg_dump)."""
        path = self.root / rel
        if self.durable:
            with path.open("rb") as f:
                os.fsync(f.fileno())
        digest, size = _digest(path)
        self.files[rel] = {"sha256": digest, "size": size}


def _backup_sqlite(path: Path, writer: _Writer) -> int:
    """Online copy of the SQLite history; returns the number of runs in the copy."""
    dest = writer.root / SQLITE_COPY
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(path, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=-1)  # one step: one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            runs = int(dst.execute("SELECT count(*) FROM runs").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up the history {path}: {exc}") from None
    finally:
        src.close()
    writer.record(SQLITE_COPY)
    return runs


def _backup_repository(root: Path, writer: _Writer) -> int:
    """Records, audit log and config under the repository lock; then the blobs they reference."""
    from buildyard.artifacts.keys import KeyRing  # noqa: PLC0415 - lazy
    from buildyard.artifacts.repo import Repository  # noqa: PLC0415 - lazy

    repo = Repository(root, keyring=KeyRing(root / "unused-keys"))
    digests: set[str] = set()
    versions = 0
    copied: list[str] = []  # fsynced after the lock is released: pushes wait for it meanwhile
    with repo.lock():
        for name in ("audit.log", "config.json"):
            if (root / name).is_file():
                copied.append(f"artifacts/{name}")
                writer.add_file(copied[-1], root / name, durable=False)
        for ref in _files_under(root / "refs"):
            rel = f"artifacts/{ref.relative_to(root).as_posix()}"
            copied.append(rel)
            writer.add_file(rel, ref, durable=False)
            try:
                data = json.loads((writer.root / rel).read_bytes())
            except ValueError:
                continue  # not a record: copied as it is, references nothing
            blobs = data.get("blobs") if isinstance(data, dict) else None
            if isinstance(blobs, list):
                digests.update(d for d in blobs if isinstance(d, str) and is_digest(d))
                versions += rel.startswith("artifacts/refs/artifacts/")
    writer.fsync(copied)
    for digest in sorted(digests):
        blob = repo.cas.path_for(digest)
        if not blob.is_file():
            raise BackupError(
                f"blob {digest[:16]} of the artifact repository vanished during the backup "
                "(a concurrent delete?): run the backup again"
            )
        writer.add_file(f"artifacts/{blob.relative_to(root).as_posix()}", blob)
    return versions


def _key_bundle(keys_dir: Path) -> tuple[bytes, int]:
    """The key directory as JSON ``{relpath: {mode, data(base64)}}`` and its number of keys."""
    entries: dict[str, dict[str, Any]] = {}
    total = 0
    for path in _files_under(keys_dir) if keys_dir.is_dir() else ():
        data = path.read_bytes()
        total += len(data)
        if total > MAX_KEYS_BYTES:
            raise BackupError(
                f"{keys_dir}: more than {MAX_KEYS_BYTES >> 20} MiB of keys; is it a key directory?"
            )
        rel = path.relative_to(keys_dir).as_posix()
        entries[rel] = {"mode": path.stat().st_mode & 0o777, "data": base64.b64encode(data).decode()}
    bundle = json.dumps(entries, sort_keys=True).encode()
    return bundle, sum(rel.endswith((".pem", ".pub")) for rel in entries)


def _create_dir(
    sources: Sources,
    dest: Path,
    *,
    passphrase: str | None,
    logs: bool = True,
    history: bool = True,
    durable: bool = True,
) -> Summary:
    """Write a backup of ``sources`` to the new directory ``dest`` (see the module docstring)."""
    started = time.monotonic()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not empty: give a new directory for the backup")
    bundle, nkeys = _key_bundle(sources.keys_dir)  # read early only to decide on the passphrase
    if nkeys and not passphrase:
        raise BackupError("the keys are encrypted in the backup: set BUILDYARD_BACKUP_PASSPHRASE")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    summary = Summary(dest)
    try:
        writer = _Writer(tmp, durable=durable)
        if history:
            path = _sqlite_path(sources.db_url)
            if path:
                if Path(path).is_file():
                    summary.history = "sqlite"
                    summary.runs = _backup_sqlite(Path(path), writer)
            else:
                summary.history = "postgresql"
                (tmp / "history").mkdir()
                url, env = _libpq(sources.db_url)
                _run_pg(
                    [
                        _pg_tool("pg_dump"),
                        "--format=custom",
                        "--no-owner",
                        "--no-privileges",
                        f"--file={tmp / PG_DUMP}",
                        f"--dbname={url}",
                    ],
                    env,
                    what="pg_dump",
                )
                writer.record(PG_DUMP)
        if logs and (sources.home / "logs").is_dir():
            for log in _files_under(sources.home / "logs"):
                writer.add_file(f"logs/{log.relative_to(sources.home / 'logs').as_posix()}", log)
        if sources.repo_root.is_dir():
            summary.versions = _backup_repository(sources.repo_root, writer)
        kdf: dict[str, Any] | None = None
        sealer: Sealer | None = None
        if passphrase:
            salt = new_salt()
            sealer = Sealer.derive(passphrase, salt)
            kdf = {"name": "scrypt", "salt": salt.hex(), "n": 2**15, "r": 8, "p": 1}
        nkeys = 0  # keys last (see the module docstring); without a passphrase there were none
        if sealer is not None:
            bundle, nkeys = _key_bundle(sources.keys_dir)
            if nkeys:
                writer.add_bytes(KEYS_BLOB, sealer.encrypt(bundle, KEYS_AAD))
        summary.keys = nkeys
        manifest = {
            "format": FORMAT,
            "created_at": time.time(),
            "source_home": str(sources.home.resolve()),
            "history": summary.history,
            "runs": summary.runs,
            "artifact_versions": summary.versions,
            "keys": nkeys,
            "kdf": kdf,
            "files": dict(sorted(writer.files.items())),
        }
        raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
        writer.add_bytes(MANIFEST, raw)
        seal = {"sha256": hashlib.sha256(raw).hexdigest(), "hmac": sealer.seal(raw) if sealer else None}
        writer.add_bytes(SEAL, json.dumps(seal, sort_keys=True).encode())
        for directory in sorted({p.parent for p in map(Path, writer.files)}, key=lambda p: -len(p.parts)):
            if durable:
                fsync_dir(tmp / directory)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        tmp.rename(dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    content = {rel: f for rel, f in writer.files.items() if rel not in (MANIFEST, SEAL)}
    summary.files = len(content)
    summary.bytes = sum(int(f["size"]) for f in content.values())
    summary.seconds = time.monotonic() - started
    return summary


# --- verify --------------------------------------------------------------------------------------


@dataclass
class _Opened:
    manifest: dict[str, Any]
    files: dict[str, dict[str, Any]]
    keys_bundle: bytes | None


def _read_small(path: Path, limit: int, what: str) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise BadBackupError(f"{path}: larger than {limit >> 20} MiB; not a {what}")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadBackupError(f"{path}: missing; is this a buildyard backup?") from None
    except OSError as exc:
        raise BadBackupError(f"{path}: cannot be read ({exc.strerror})") from None


def _well_formed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("size"), int)
    )


def _open(backup: Path, passphrase: str | None) -> _Opened:
    """Read and authenticate the manifest; decrypt the key bundle (wrong passphrase: one error)."""
    if not backup.is_dir():
        raise BackupError(f"{backup}: no such backup directory")
    raw = _read_small(backup / MANIFEST, MAX_MANIFEST_BYTES, "backup manifest")
    try:
        seal = json.loads(_read_small(backup / SEAL, 4096, "manifest seal"))
        manifest = json.loads(raw)
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise BadBackupError(f"{backup / MANIFEST}: not a {FORMAT} manifest")
        if not all(_well_formed(entry) for entry in files.values()):
            raise BadBackupError(f"{backup / MANIFEST}: malformed file entries")
    except (ValueError, KeyError, TypeError):
        raise BadBackupError(f"{backup / MANIFEST}: malformed") from None
    if not isinstance(seal, dict) or seal.get("sha256") != hashlib.sha256(raw).hexdigest():
        raise BadBackupError(f"{backup / MANIFEST}: does not match {SEAL} (modified)")
    kdf = manifest.get("kdf")
    if not seal.get("hmac") and (kdf or KEYS_BLOB in files):
        raise BadBackupError(f"{backup / SEAL}: the passphrase seal is missing (modified)")
    keys_bundle = None
    if passphrase and not seal.get("hmac"):
        # a sealed backup stripped of its seal (and keys) must not pass as authentic
        raise BadBackupError(f"{backup / SEAL}: not sealed with a passphrase; its digests prove nothing")
    if seal.get("hmac"):
        if not passphrase:
            raise BackupError("this backup is sealed with a passphrase: set BUILDYARD_BACKUP_PASSPHRASE")
        if not isinstance(kdf, dict):
            raise BadBackupError(f"{backup / MANIFEST}: no key derivation parameters")
        try:
            sealer = Sealer.derive(passphrase, bytes.fromhex(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"])
        except (KeyError, TypeError, ValueError):
            raise BadBackupError(f"{backup / MANIFEST}: bad key derivation parameters") from None
        if KEYS_BLOB in files:
            blob = _read_small(backup / KEYS_BLOB, MAX_KEYS_BYTES * 2, "key bundle")
            if hashlib.sha256(blob).hexdigest() != files[KEYS_BLOB].get("sha256"):
                raise BadBackupError(f"{backup / KEYS_BLOB}: digest mismatch (modified or damaged)")
            try:
                keys_bundle = sealer.decrypt(blob, KEYS_AAD, what=str(backup / KEYS_BLOB))
            except BadBackupError:
                raise BadBackupError(f"wrong passphrase for the backup {backup}") from None
            if not sealer.check_seal(raw, str(seal["hmac"])):
                raise BadBackupError(f"{backup / MANIFEST}: its passphrase seal does not match (modified)")
        elif not sealer.check_seal(raw, str(seal["hmac"])):
            raise BadBackupError(f"wrong passphrase for the backup {backup} (or {MANIFEST} was modified)")
    for rel in files:
        _check_relpath(rel)
    return _Opened(manifest, files, keys_bundle)


def _integrity_check(db: Path) -> str | None:
    """``None`` if the SQLite copy passes ``integrity_check``, else what it says (read-only)."""
    uri = f"file:{db.as_posix()}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            conn.execute("SELECT count(*) FROM runs").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows[:3])


def _verify_dir(backup: Path, *, passphrase: str | None) -> Summary:
    """Check ``backup`` without restoring it; ``Summary.problems`` names every bad file."""
    started = time.monotonic()
    opened = _open(backup, passphrase)
    summary = Summary(backup, history=opened.manifest.get("history"), runs=opened.manifest.get("runs"))
    summary.versions = int(opened.manifest.get("artifact_versions") or 0)
    summary.keys = int(opened.manifest.get("keys") or 0)
    for rel, entry in opened.files.items():
        path = backup / rel
        if path.is_symlink() or not path.is_file():
            summary.problems.append(f"{rel}: missing")
            continue
        digest, size = _digest(path)
        if digest != entry.get("sha256") or size != entry.get("size"):
            summary.problems.append(f"{rel}: digest mismatch (modified or damaged)")
        summary.files += 1
        summary.bytes += size
    if SQLITE_COPY in opened.files and f"{SQLITE_COPY}: missing" not in summary.problems:
        why = _integrity_check(backup / SQLITE_COPY)
        if why:
            summary.problems.append(f"{SQLITE_COPY}: integrity_check failed: {why}")
    if PG_DUMP in opened.files and shutil.which("pg_restore") and (backup / PG_DUMP).is_file():
        done = subprocess.run(
            [_pg_tool("pg_restore"), "--list", str(backup / PG_DUMP)], capture_output=True, check=False
        )
        if done.returncode != 0:
            summary.problems.append(f"{PG_DUMP}: pg_restore cannot read it")
    listed = set(opened.files) | {MANIFEST, SEAL}
    for path in _files_under(backup):
        rel = path.relative_to(backup).as_posix()
        if rel not in listed:
            summary.problems.append(f"{rel}: not in the manifest (added after the backup)")
    summary.seconds = time.monotonic() - started
    return summary


# --- restore -------------------------------------------------------------------------------------


def _restore_keys(bundle: bytes, keys_dir: Path) -> int:
    entries: dict[str, dict[str, Any]] = json.loads(bundle)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for rel, entry in sorted(entries.items()):
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise BadBackupError(f"{KEYS_BLOB}: refuses the key path {rel!r}")
        dest = keys_dir / p
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = base64.b64decode(entry["data"])
        with _new_file(dest, 0o600 if rel.startswith("private/") else 0o644) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return sum(rel.endswith((".pem", ".pub")) for rel in entries)


_REWRITE = "UPDATE jobs SET log_path = {p} || substr(log_path, {n}) WHERE substr(log_path, 1, {m}) = {o}"


def _log_prefixes(old_home: str, new_home: Path) -> tuple[str, str]:
    return old_home.rstrip("/") + "/logs/", str(new_home.resolve()).rstrip("/") + "/logs/"


def _rewrite_log_paths(db: Path, old_home: str, new_home: Path) -> None:
    """Point the restored SQLite history's job logs at the restored home."""
    old, new = _log_prefixes(old_home, new_home)
    if old == new:
        return
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(_REWRITE.format(p="?", n="?", m="?", o="?"), (new, len(old) + 1, len(old), old))
    finally:
        conn.close()


def _rewrite_pg_log_paths(url: str, old_home: str, new_home: Path) -> None:
    """The same for a restored PostgreSQL history."""
    import sqlalchemy as sa  # noqa: PLC0415 - only for PostgreSQL

    old, new = _log_prefixes(old_home, new_home)
    if old == new:
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            sql = sa.text(_REWRITE.format(p=":p", n=":n", m=":m", o=":o"))
            conn.execute(sql, {"p": new, "n": len(old) + 1, "m": len(old), "o": old})
    finally:
        engine.dispose()


def _check_unchanged(path: Path, digest: str, entry: dict[str, Any]) -> None:
    if digest != entry["sha256"]:
        raise BadBackupError(f"{path}: changed while being restored")


def _target_is_empty(target: Path) -> bool:
    return not target.exists() or (target.is_dir() and not any(target.iterdir()))


def _pg_is_empty(url: str) -> bool:
    import sqlalchemy as sa  # noqa: PLC0415 - only for PostgreSQL

    engine = sa.create_engine(url)
    try:
        return not sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _place(stage: Path, dest: Path) -> None:
    """Rename the built ``stage`` to ``dest``; a non-empty ``dest`` is swapped out, then removed."""
    old: Path | None = None
    if dest.exists() and any(dest.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.replaced-", dir=dest.parent))
        dest.rename(old / dest.name)
    elif dest.exists():
        dest.rmdir()
    try:
        stage.rename(dest)
    except BaseException:
        if old is not None:
            (old / dest.name).rename(dest)  # put the replaced directory back
            old.rmdir()
        raise
    fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _restore_dir(
    backup: Path,
    target: Path,
    *,
    passphrase: str | None,
    force: bool = False,
    db_url: str | None = None,
    keys_dir: Path | None = None,
    repo_root: Path | None = None,
) -> Summary:
    """Restore ``backup`` as the home directory ``target`` (a PostgreSQL history into ``db_url``);
    the keys and the repository into ``keys_dir``/``repo_root`` when they live outside the home.

    Refuses a non-empty destination (or database) unless ``force``. Verifies the whole backup first,
    builds each destination in a temporary directory beside it, and renames it into place."""
    started = time.monotonic()
    checked = _verify_dir(backup, passphrase=passphrase)
    if checked.problems:
        raise BadBackupError(
            f"{backup}: {checked.problems[0]} ({len(checked.problems)} problems; nothing restored)"
        )
    opened = _open(backup, passphrase)
    outside = {
        part: dest
        for part, dest in (("keys", keys_dir), ("artifacts", repo_root))
        if dest is not None and dest.absolute() != (target / part).absolute()
    }
    for dest in (target, *outside.values()):
        if dest.exists() and not dest.is_dir():
            raise BackupError(f"{dest} is not a directory")
        if not force and not _target_is_empty(dest):
            raise BackupError(
                f"{dest} is not empty: restore into an empty directory, or pass --force to replace it"
            )
    pg = PG_DUMP in opened.files
    if pg:
        if not db_url or _sqlite_path(db_url):
            raise BackupError(
                "this backup's history is a PostgreSQL dump: "
                "give --db with the URL of the database to restore it into"
            )
        if not force and not _pg_is_empty(db_url):
            raise BackupError(
                "the target database is not empty: "
                "give an empty database, or pass --force to replace its tables"
            )
    elif SQLITE_COPY in opened.files and db_url:
        restored_db = (target / "buildyard.db").absolute()
        if not _sqlite_path(db_url) or Path(_sqlite_path(db_url)).absolute() != restored_db:
            raise BackupError(
                f"this backup's history is SQLite and is restored as {restored_db}, "
                "which --db/BUILDYARD_DB does not select: unset it (or give that file's URL)"
            )
    stages: dict[Path, Path] = {}
    for dest in (*outside.values(), target):
        dest.parent.mkdir(parents=True, exist_ok=True)
        stages[dest] = Path(tempfile.mkdtemp(prefix=f".{dest.name}.restore-", dir=dest.parent))
    home = stages[target]

    def staged(rel: str) -> Path:
        part, _, rest = rel.partition("/")
        return stages[outside[part]] / rest if part in outside else home / rel

    summary = Summary(target, history=opened.manifest.get("history"), runs=opened.manifest.get("runs"))
    summary.versions = int(opened.manifest.get("artifact_versions") or 0)
    try:
        for rel in opened.files:
            if rel in (KEYS_BLOB, PG_DUMP):
                continue
            dest_path = home / "buildyard.db" if rel == SQLITE_COPY else staged(rel)
            mode = 0o600 if rel == SQLITE_COPY else 0o644
            digest, size = _copy_hashed(backup / rel, dest_path, mode=mode)
            _check_unchanged(backup / rel, digest, opened.files[rel])
            summary.files += 1
            summary.bytes += size
        if SQLITE_COPY in opened.files:
            _rewrite_log_paths(home / "buildyard.db", str(opened.manifest.get("source_home", "")), target)
        if opened.keys_bundle is not None:
            keys_stage = stages[outside["keys"]] if "keys" in outside else home / "keys"
            summary.keys = _restore_keys(opened.keys_bundle, keys_stage)
        if pg and db_url:
            url, env = _libpq(db_url)
            argv = [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={url}",
            ]
            if force:
                argv += ["--clean", "--if-exists"]
            _run_pg([*argv, str(backup / PG_DUMP)], env, what="pg_restore")
            _rewrite_pg_log_paths(db_url, str(opened.manifest.get("source_home", "")), target)
        for stage in stages.values():
            for dirpath, _dirs, _files in os.walk(stage, topdown=False):
                fsync_dir(Path(dirpath))
        for dest, stage in stages.items():  # the home last: it is what commands look at first
            _place(stage, dest)
    finally:
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
    summary.seconds = time.monotonic() - started
    return summary


# --- single-file backups (.tar, .tar.zst) ---------------------------------------------------------


@contextlib.contextmanager
def _shown_as(tmp: Path, archive: Path) -> Iterator[None]:
    """Messages about the extracted copy name the archive instead."""
    try:
        yield
    except BackupError as exc:
        raise type(exc)(str(exc).replace(str(tmp), str(archive))) from None


def create(
    sources: Sources, dest: Path, *, passphrase: str | None, logs: bool = True, history: bool = True
) -> Summary:
    """Write a backup of ``sources`` to ``dest``: a new directory, or a ``.tar``/``.tar.zst`` file."""
    if not archive.is_archive(dest):
        return _create_dir(sources, dest, passphrase=passphrase, logs=logs, history=history)
    started = time.monotonic()
    if dest.exists():
        raise BackupError(f"{dest} exists: give a new file name for the backup")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        summary = _create_dir(
            sources, Path(tmp) / "backup", passphrase=passphrase, logs=logs, history=history, durable=False
        )
        archive.pack(Path(tmp) / "backup", dest)
    summary.path = dest
    summary.seconds = time.monotonic() - started
    return summary


def verify(backup: Path, *, passphrase: str | None) -> Summary:
    """Check ``backup`` (a directory or an archive) without restoring it; problems name each bad file."""
    if not archive.is_archive(backup):
        return _verify_dir(backup, passphrase=passphrase)
    started = time.monotonic()
    with archive.unpacked(backup) as tmp, _shown_as(tmp, backup):
        summary = _verify_dir(tmp, passphrase=passphrase)
    summary.path = backup
    summary.seconds = time.monotonic() - started
    return summary


def restore(
    backup: Path,
    target: Path,
    *,
    passphrase: str | None,
    force: bool = False,
    db_url: str | None = None,
    keys_dir: Path | None = None,
    repo_root: Path | None = None,
) -> Summary:
    """Restore ``backup`` (a directory or an archive): see ``_restore_dir``."""
    if not archive.is_archive(backup):
        return _restore_dir(
            backup,
            target,
            passphrase=passphrase,
            force=force,
            db_url=db_url,
            keys_dir=keys_dir,
            repo_root=repo_root,
        )
    started = time.monotonic()
    with archive.unpacked(backup) as tmp, _shown_as(tmp, backup):
        summary = _restore_dir(
            tmp,
            target,
            passphrase=passphrase,
            force=force,
            db_url=db_url,
            keys_dir=keys_dir,
            repo_root=repo_root,
        )
    summary.seconds = time.monotonic() - started
    return summary
