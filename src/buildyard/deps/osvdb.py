"""The offline OSV database: ``<db>/<Ecosystem>/all.zip`` dumps, indexed once per dump digest.

``load_index`` reads only the dumps for the ecosystems asked for. Each dump's BLAKE3 digest names a
msgpack-encoded ``OsvIndex`` in the cache directory (written atomically), so a scan re-parses a zip
only when its content changed. The cache file is data decoded into typed structs (msgspec), never a
pickle: a cache file planted or damaged by anyone cannot run code, it is only a miss.
``update_database`` downloads fresh dumps when a network is available.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import blake3
import msgspec

from buildyard.deps.errors import DatabaseError
from buildyard.deps.model import Ecosystem
from buildyard.deps.osv import AffectedEntry, OsvIndex, Vulnerability, index_records
from buildyard.fsutil import atomic_write_bytes, fsync_dir
from buildyard.settings import load as load_settings

#: Bump when the cached index layout or version canonicalization changes; old cache files are then ignored.
INDEX_FORMAT = 2


class _CachedIndex(msgspec.Struct, array_like=True, frozen=True):
    """An ``OsvIndex`` as stored in the cache (its dict keys as the first items of each entry)."""

    packages: list[tuple[Ecosystem, str, list[AffectedEntry]]]
    vulns: list[Vulnerability]
    withdrawn: int


DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com"


def default_db_dir(project: Path) -> Path:
    """Where ``deps db update`` writes and ``deps scan`` reads by default: the ``osv_db`` setting
    (``BUILDYARD_OSV_DB``), else ``<home>/osv``."""
    configured = load_settings(project).osv_db
    return configured if configured is not None else buildyard_home(project) / "osv"


def gate_db_dir(project: Path) -> Path | None:
    """The OSV database of the vulnerabilities gate: the ``osv_db`` setting (``BUILDYARD_OSV_DB``), else
    the project database when ``deps db update`` wrote one; None when there is none (the gate fails
    saying how to add one)."""
    if load_settings(project).osv_db is not None:
        return default_db_dir(project)
    db = default_db_dir(project)
    return db if any(db.glob("*/all.zip")) else None


def default_cache_dir(project: Path) -> Path:
    """Where indexed dumps are cached."""
    return buildyard_home(project) / "cache" / "osv-index"


def buildyard_home(project: Path) -> Path:
    """The ``home`` setting (``BUILDYARD_HOME``), else ``<project>/.buildyard``."""
    return load_settings(project).home


@dataclass(slots=True)
class LoadedDatabase:
    """The merged index of the dumps read, which ecosystems had none, and cache statistics."""

    index: OsvIndex
    location: str = ""
    dumps: dict[Ecosystem, str] = field(default_factory=dict)
    missing: list[Ecosystem] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0


def dump_path(db_dir: Path, ecosystem: Ecosystem) -> Path:
    """``<db>/<Ecosystem>/all.zip``."""
    return db_dir / ecosystem.value / "all.zip"


def load_index(db_dir: Path, ecosystems: Iterable[Ecosystem], cache_dir: Path | None) -> LoadedDatabase:
    """Index of the dumps of ``ecosystems`` under ``db_dir``, from the cache when the digest matches."""
    if not db_dir.is_dir():
        raise DatabaseError(
            f"{db_dir}: vulnerability database not found (run 'buildyard deps db update' or pass --db DIR)"
        )
    loaded = LoadedDatabase(OsvIndex(), str(db_dir))
    for eco in sorted(set(ecosystems)):
        path = dump_path(db_dir, eco)
        if not path.is_file():
            loaded.missing.append(eco)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot read the dump: {exc.strerror}") from exc
        digest = blake3.blake3(data).hexdigest()
        loaded.dumps[eco] = digest
        cached = _read_cache(cache_dir, eco, digest) if cache_dir else None
        if cached is None:
            loaded.cache_misses += 1
            cached = index_records(_records(path, data))
            if cache_dir is not None:
                _write_cache(cache_dir, eco, digest, cached)
        else:
            loaded.cache_hits += 1
        loaded.index.merge(cached)
    if not loaded.dumps and not any(dump_path(db_dir, e).is_file() for e in Ecosystem):
        raise DatabaseError(
            f"{db_dir}: no <Ecosystem>/all.zip dump found (run 'buildyard deps db update' or pass --db DIR)"
        )
    return loaded


class VulnerabilitySource(Protocol):
    """Where vulnerability records come from: the index of the records for some ecosystems."""

    def load(self, ecosystems: Iterable[Ecosystem]) -> LoadedDatabase:
        """Index the records of ``ecosystems`` (raise ``DatabaseError`` if the source is unusable)."""
        ...


@dataclass(frozen=True, slots=True)
class DumpSource:
    """The default source: ``<db_dir>/<Ecosystem>/all.zip`` dumps, indexed into ``cache_dir``."""

    db_dir: Path
    cache_dir: Path | None = None

    def load(self, ecosystems: Iterable[Ecosystem]) -> LoadedDatabase:
        """See :func:`load_index`."""
        return load_index(self.db_dir, ecosystems, self.cache_dir)


@dataclass(frozen=True, slots=True)
class RecordsSource:
    """OSV records held in memory (tests, feeds assembled by the caller)."""

    records: tuple[dict[str, Any], ...]

    def load(self, ecosystems: Iterable[Ecosystem]) -> LoadedDatabase:
        """Index every record; ecosystems without records are simply absent."""
        return LoadedDatabase(index_records(self.records), "in-memory records")


def _records(path: Path, data: bytes) -> Iterator[dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DatabaseError(f"{path}: corrupt dump ({exc}); run 'buildyard deps db update' again") from exc
    with archive:
        for name in archive.namelist():
            if not name.endswith(".json"):
                continue
            try:
                record = json.loads(archive.read(name))
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise DatabaseError(f"{path}: {name}: unreadable record ({exc})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise DatabaseError(f"{path}: {name}: not an OSV record (no 'id')")
            yield record


def _cache_file(cache_dir: Path, eco: Ecosystem, digest: str) -> Path:
    safe = eco.value.replace(".", "_")
    return cache_dir / f"{safe}-{digest[:40]}-v{INDEX_FORMAT}.msgpack"


def _read_cache(cache_dir: Path, eco: Ecosystem, digest: str) -> OsvIndex | None:
    path = _cache_file(cache_dir, eco, digest)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        cached = msgspec.msgpack.decode(raw, type=_CachedIndex)
    except (msgspec.DecodeError, ValueError):  # corrupt or not ours: evicted and rebuilt, never trusted
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return OsvIndex(
        by_package={(eco, name): entries for eco, name, entries in cached.packages},
        vulns={v.id: v for v in cached.vulns},
        withdrawn=cached.withdrawn,
    )


def _write_cache(cache_dir: Path, eco: Ecosystem, digest: str, index: OsvIndex) -> None:
    path = _cache_file(cache_dir, eco, digest)
    try:
        cached = _CachedIndex(
            [(eco, name, entries) for (eco, name), entries in index.by_package.items()],
            list(index.vulns.values()),
            index.withdrawn,
        )
        atomic_write_bytes(path, msgspec.msgpack.encode(cached), durable=False)
    except OSError:
        return  # a read-only cache directory only costs speed
    prefix = path.name.split("-")[0] + "-"
    for old in [*cache_dir.glob(f"{prefix}*.pickle"), *cache_dir.glob(f"{prefix}*.msgpack")]:
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()


def update_database(
    db_dir: Path, ecosystems: Iterable[Ecosystem], base_url: str = DEFAULT_URL, timeout: float = 60.0
) -> dict[Ecosystem, int]:
    """Download ``<base_url>/<Ecosystem>/all.zip`` for each ecosystem; returns bytes written per dump.

    Each dump streams to a temporary file beside its target, is verified to be a readable zip, then
    atomically replaces the previous one: an interrupted update leaves the old dump in place.
    """
    written: dict[Ecosystem, int] = {}
    for eco in ecosystems:
        url = f"{base_url.rstrip('/')}/{eco.value}/all.zip"
        if not url.startswith(("http://", "https://")):
            raise DatabaseError(f"{url}: only http(s) URLs are supported")
        target = dump_path(db_dir, eco)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".all.zip.", suffix=".tmp", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked
                        shutil.copyfileobj(response, out, 1 << 20)
                except (urllib.error.URLError, OSError) as exc:
                    reason = getattr(exc, "reason", exc)
                    raise DatabaseError(
                        f"{url}: download failed ({reason}); check the network or use --db DIR"
                    ) from exc
                out.flush()
                os.fsync(out.fileno())
            _verify_zip(tmp, url)
            tmp.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(target.parent)
        written[eco] = target.stat().st_size
    return written


def _verify_zip(path: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise DatabaseError(f"{url}: the download is not a zip archive ({exc})") from exc
    if bad is not None:
        raise DatabaseError(f"{url}: member {bad} is corrupt")
