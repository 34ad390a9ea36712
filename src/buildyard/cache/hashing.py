"""File and tree hashing with BLAKE3, a persistent stat cache, and input-set discovery.

Owns: the digest of one file (multi-threaded BLAKE3 over mmap for large files), the digest of a set
of files (a "tree"), the stat cache that lets unchanged files skip re-reading, and the list of input
files of a directory (globs, or by default git-tracked + untracked-not-ignored files).

Digests are lowercase hex BLAKE3-256 strings (64 characters). A symlink is hashed by its target text
(domain-separated from file contents), never followed.
"""

from __future__ import annotations

import bisect
import contextlib
import glob
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from blake3 import blake3

from buildyard.errors import BuildyardError, UsageError
from buildyard.fsutil import atomic_write_bytes

#: Files at least this large are hashed with BLAKE3's own threads over an mmap of the file.
LARGE_FILE_BYTES = 8 * 1024 * 1024
#: A file whose mtime is this close to the moment it was hashed is not trusted from the stat cache
#: (it may change again within one coarse-clock tick without its mtime moving; git's "racy" files).
RACY_WINDOW_NS = 100_000_000
#: Above this many entries, saving keeps only the files seen by this process (bounds the file).
STAT_CACHE_MAX_ENTRIES = 500_000
_READ_CHUNK = 1024 * 1024
_STAT_CACHE_VERSION = 1

_Signature = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


def hash_bytes(data: bytes) -> str:
    """BLAKE3 hex digest of ``data``."""
    return blake3(data).hexdigest()


def hash_file(path: Path, *, size: int | None = None) -> str:
    """BLAKE3 hex digest of the contents of the regular file ``path``."""
    if size is None:
        size = path.stat().st_size
    if size >= LARGE_FILE_BYTES:
        hasher = blake3(max_threads=blake3.AUTO)
        hasher.update_mmap(str(path))
        return hasher.hexdigest()
    with path.open("rb") as f:
        if size <= _READ_CHUNK:
            return blake3(f.read()).hexdigest()
        hasher = blake3()
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            hasher.update(chunk)
        return hasher.hexdigest()


def hash_symlink_target(target: str) -> str:
    """Digest standing for a symlink with ``target`` (distinct from any file content digest)."""
    return blake3(b"buildyard-symlink\0" + os.fsencode(target)).hexdigest()


def tree_digest(digests: Mapping[str, str]) -> str:
    """One digest for a set of ``relative path -> digest`` pairs (order-independent)."""
    hasher = blake3(b"buildyard-tree-v1\0")
    for rel in sorted(digests):
        hasher.update(rel.encode())
        hasher.update(b"\0")
        hasher.update(digests[rel].encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class StatCache:
    """Persistent map ``absolute path -> (size, mtime_ns, inode, ctime_ns, digest)``.

    A file whose stat signature is unchanged is not read again. Saved atomically; concurrent
    processes may each save, the last one wins (it is only a cache). ``path=None`` keeps it in memory.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list[Any]] = {}  # path -> [size, mtime_ns, inode, ctime_ns, digest]
        self._dirty = False
        self._seen: set[str] = set()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return  # absent or damaged: start empty, it will be rewritten
        if not isinstance(raw, dict) or raw.get("v") != _STAT_CACHE_VERSION:
            return
        entries = raw.get("entries")
        if isinstance(entries, dict):
            self._entries = entries  # entries are validated lazily in get(): loading stays O(parse)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if its stat signature is unchanged."""
        entry = self._entries.get(path)
        self._seen.add(path)
        if (
            not isinstance(entry, list)
            or len(entry) != 5
            or entry[1] != st.st_mtime_ns
            or entry[0] != st.st_size
            or entry[2] != st.st_ino
            or entry[3] != st.st_ctime_ns
            or not isinstance(entry[4], str)
        ):
            return None
        return entry[4]

    def put(self, path: str, st: os.stat_result, digest: str, *, hashed_at_ns: int) -> None:
        """Remember ``digest`` for ``path`` unless its mtime is too recent to be trusted."""
        if st.st_mtime_ns >= hashed_at_ns - RACY_WINDOW_NS:
            self._entries.pop(path, None)
            return
        self._entries[path] = [*_signature(st), digest]
        self._dirty = True

    def save(self) -> None:
        """Write the cache back if anything changed (atomic, not fsynced: it is rebuildable)."""
        if self.path is None or not self._dirty:
            return
        if len(self._entries) > STAT_CACHE_MAX_ENTRIES:
            self._entries = {p: e for p, e in self._entries.items() if p in self._seen}
        payload = json.dumps({"v": _STAT_CACHE_VERSION, "entries": self._entries}, separators=(",", ":"))
        atomic_write_bytes(self.path, payload.encode(), mode=0o600, durable=False)  # under .buildyard
        self._dirty = False


class NotCachedError(BuildyardError):
    """A ``cached_only`` hasher would have to read a file (its digest is not in the stat cache)."""


class FileHasher:
    """Digests of many files under a root, using a :class:`StatCache` and a thread pool.

    ``cached_only=True`` never reads a file: it raises :class:`NotCachedError` instead, so a caller
    can do the cheap, stat-only case inline and move the rest to a worker thread.
    """

    def __init__(
        self, stat_cache: StatCache | None = None, *, workers: int | None = None, cached_only: bool = False
    ) -> None:
        self.stat_cache = stat_cache if stat_cache is not None else StatCache()
        self.workers = workers or min(8, (os.cpu_count() or 2) * 2)
        self.cached_only = cached_only
        self.files_read = 0  # how many files were actually read by the last call (for stats and tests)

    def digest_paths(self, root: Path, rel_paths: Iterable[str]) -> dict[str, str]:
        """``relative path -> digest`` for each existing path (files and symlinks; others skipped)."""
        root = root.absolute()
        result: dict[str, str] = {}
        pending_small: list[tuple[str, str, os.stat_result]] = []
        pending_large: list[tuple[str, str, os.stat_result]] = []
        cache = self.stat_cache
        for rel in rel_paths:
            full = os.path.join(root, rel)  # noqa: PTH118 - hot loop, str paths avoid Path overhead
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                result[rel] = hash_symlink_target(os.readlink(full))  # noqa: PTH115 - hot loop
                continue
            if not stat.S_ISREG(mode):
                continue
            cached = cache.get(full, st)
            if cached is not None:
                result[rel] = cached
            elif st.st_size >= LARGE_FILE_BYTES:
                pending_large.append((rel, full, st))
            else:
                pending_small.append((rel, full, st))
        if self.cached_only and (pending_small or pending_large):
            raise NotCachedError((pending_small or pending_large)[0][1])
        self.files_read = len(pending_small) + len(pending_large)
        if not self.files_read:
            return result
        started = time.time_ns()
        if pending_small:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                digests = pool.map(lambda item: _hash_small(item[1], item[2].st_size), pending_small)
                for (rel, full, st), digest in zip(pending_small, digests, strict=True):
                    result[rel] = digest
                    cache.put(full, st, digest, hashed_at_ns=started)
        for rel, full, st in pending_large:  # BLAKE3 itself uses every core for these
            digest = hash_file(Path(full), size=st.st_size)
            result[rel] = digest
            cache.put(full, st, digest, hashed_at_ns=started)
        return result


def _hash_small(full: str, size: int) -> str:
    with open(full, "rb") as f:  # noqa: PTH123 - hot path, avoids Path overhead
        if size <= _READ_CHUNK:
            return blake3(f.read()).hexdigest()
        hasher = blake3()
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            hasher.update(chunk)
        return hasher.hexdigest()


def check_relative_pattern(pattern: str, *, what: str = "path") -> None:
    """Raise :class:`UsageError` unless ``pattern`` is relative and stays inside its root."""
    if not pattern or pattern.startswith("/") or "\0" in pattern:
        raise UsageError(f"{what} {pattern!r} must be a non-empty relative path")
    if ".." in pattern.replace("\\", "/").split("/"):
        raise UsageError(f"{what} {pattern!r} must not contain '..' (it would leave the directory)")


def _walk_files(root: Path, prefix: str = "") -> Iterator[str]:
    base = root / prefix if prefix else root
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".buildyard")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            yield name if rel_dir == "." else f"{rel_dir}/{name}"
        for name in dirnames:  # symlinked directories are inputs as links, not followed
            if Path(dirpath, name).is_symlink():
                yield name if rel_dir == "." else f"{rel_dir}/{name}"


def git_input_files(root: Path, *, existing_only: bool = True) -> list[str] | None:
    """Git-tracked plus untracked-not-ignored files under ``root``, or None outside a git work tree.

    ``existing_only=False`` skips the existence check (tracked files deleted from the work tree and
    submodule directories stay in the list): for callers that stat every path anyway.
    """
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        return None
    seen: set[str] = set()
    files: list[str] = []
    for raw in proc.stdout.split(b"\0"):
        if not raw:
            continue
        rel = os.fsdecode(raw)
        if rel in seen:
            continue
        seen.add(rel)
        if existing_only:
            full = root / rel
            if not (full.is_symlink() or full.is_file()):  # deleted tracked files, submodules
                continue
        files.append(rel)
    return files


class InputIndex:
    """The default input candidates of a whole project from ONE ``git ls-files`` call, by directory.

    A run computes many job keys; listing each job's directory separately would cost one git
    process per job. Build one index per run and pass it to :func:`digest_inputs`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        files = git_input_files(self.root, existing_only=False)
        self._files: list[str] | None = sorted(files) if files is not None else None
        self._real: dict[str, str] = {}  # job directories resolved once per run

    def files_under(self, directory: Path) -> list[str] | None:
        """Candidates under ``directory`` relative to it; None if the project is not a git work tree
        or ``directory`` is outside it."""
        if self._files is None:
            return None
        key = str(directory)
        real = self._real.get(key)
        if real is None:
            real = self._real[key] = os.path.realpath(directory)
        rel = os.path.relpath(real, self.root)
        if rel == ".":
            return list(self._files)
        if rel == ".." or rel.startswith("../"):
            return None
        prefix = rel.replace(os.sep, "/") + "/"
        lo = bisect.bisect_left(self._files, prefix)
        hi = bisect.bisect_left(self._files, prefix[:-1] + "0")  # "0" sorts right after "/"
        cut = len(prefix)
        return [f[cut:] for f in self._files[lo:hi]]


def list_inputs(root: Path, patterns: Sequence[str] | None = None) -> list[str]:
    """Sorted input files of ``root``, relative to it.

    ``patterns=None``: the git-tracked and untracked-not-ignored files (one ``git ls-files`` call),
    or every file when ``root`` is not in a git work tree. Otherwise glob patterns (``**`` allowed,
    hidden files included); a matched directory contributes every file under it; a pattern starting
    with ``!`` removes matches.
    """
    if patterns is None:
        files = git_input_files(root)
        return sorted(files if files is not None else _walk_files(root))
    included: set[str] = set()
    excluded: set[str] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        check_relative_pattern(body, what="input pattern")
        target = excluded if negate else included
        target.update(_expand(root, body))
    return sorted(included - excluded)


def _expand(root: Path, pattern: str) -> Iterator[str]:
    # glob.glob, not Path.glob: it supports include_hidden and root-relative results on 3.11
    for match in glob.glob(pattern, root_dir=root, recursive=True, include_hidden=True):  # noqa: PTH207
        rel = match.rstrip("/")
        full = root / rel
        if full.is_dir() and not full.is_symlink():
            yield from _walk_files(root, rel)
        elif full.is_symlink() or full.is_file():
            yield rel


def digest_inputs(
    root: Path,
    patterns: Sequence[str] | None = None,
    *,
    hasher: FileHasher | None = None,
    index: InputIndex | None = None,
) -> dict[str, str]:
    """``relative path -> digest`` of the input set of ``root`` (see :func:`list_inputs`).

    With ``patterns=None`` and an ``index``, the candidates come from the index (no git call).
    """
    hasher = hasher or FileHasher()
    if patterns is None and index is not None:
        indexed = index.files_under(root)
        if indexed is not None:
            return hasher.digest_paths(root, indexed)
    if patterns is None:
        files = git_input_files(root, existing_only=False)  # digest_paths skips what does not exist
        if files is not None:
            return hasher.digest_paths(root, files)
    return hasher.digest_paths(root, list_inputs(root, patterns))


def open_stat_cache(home: Path) -> StatCache:
    """The stat cache kept under a buildyard home directory."""
    with contextlib.suppress(OSError):
        home.mkdir(parents=True, exist_ok=True)
    return StatCache(home / "statcache.json")
