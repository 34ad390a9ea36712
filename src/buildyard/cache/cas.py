"""The local content-addressed store (CAS): immutable blobs named by their BLAKE3 digest.

Owns the blob files under ``<root>/blobs/<d[:2]>/<digest>``: each is one zstd frame of the blob's
bytes, written to ``<root>/tmp`` then renamed into place (so a reader never sees half a blob, and a
writer killed at any instant leaves only a stray temp file). Every read is verified: the bytes are
decompressed and re-hashed; a corrupt or truncated blob is evicted and reported as absent.

Blobs are not fsynced by default: a blob damaged by a power loss fails verification and is evicted
like any other corrupt blob, so durability only costs time without adding correctness. Pass
``durable=True`` for stores whose blobs are not rebuildable (published artifacts).

This class is shared with the artifact repository: same directory, same blobs. Whatever refers to
blobs records them in ref files (see :mod:`buildyard.cache.refs`) so that garbage collection keeps them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, cast

import zstandard
from blake3 import blake3

from buildyard.errors import BuildyardError, UsageError
from buildyard.fsutil import fsync_dir

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_ZSTD_LEVEL = 3


class CorruptBlobError(BuildyardError):
    """A blob failed verification while being streamed (it has been evicted)."""


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


def is_digest(value: str) -> bool:
    """True if ``value`` looks like a BLAKE3 hex digest."""
    return bool(_DIGEST_RE.match(value))


class BlobWriter:
    """Streams bytes into a new blob: hashes, compresses into a temp file, commits by rename."""

    def __init__(self, cas: CAS) -> None:
        self._cas = cas
        cas.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="blob.", suffix=".tmp", dir=cas.tmp_dir)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compressobj()
        self._hasher = blake3()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> int:
        """Append ``data`` to the blob."""
        self._hasher.update(data)
        self._file.write(self._compressor.compress(data))
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        """Digest of the bytes written so far (check an expected digest before committing)."""
        return str(self._hasher.hexdigest())

    def commit(self) -> str:
        """Finish the blob and make it visible; returns its digest (idempotent for identical content)."""
        self._file.write(self._compressor.flush())
        if self._cas.durable:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        digest = self._hasher.hexdigest()
        final = self._cas.path_for(digest)
        if final.exists():
            self._tmp.unlink()
            with contextlib.suppress(OSError):
                os.utime(final)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.chmod(self._cas.file_mode)
            self._tmp.replace(final)
            self._cas.added += final.stat().st_size
            if self._cas.durable:
                fsync_dir(final.parent)
        self.digest = digest
        return digest

    def abort(self) -> None:
        """Discard the partial blob."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self.digest is None:
            self.abort()


class CAS:
    """A directory of zstd-compressed blobs addressed by the BLAKE3 digest of their content."""

    def __init__(self, root: Path, *, durable: bool = False, file_mode: int = 0o644) -> None:
        self.root = root
        self.durable = durable
        self.file_mode = file_mode
        self.added = 0  # stored bytes of the blobs this instance created (see take_added)
        self.blobs_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.evicted: list[str] = []  # digests found corrupt and evicted by this instance

    # -- writing ---------------------------------------------------------------------------------
    def writer(self) -> BlobWriter:
        """A :class:`BlobWriter` for streaming a blob in; use as a context manager and ``commit()``."""
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; returns its digest. A blob already present is not rewritten."""
        digest = blake3(data).hexdigest()
        if self.has(digest):
            with contextlib.suppress(OSError):
                os.utime(self.path_for(digest))
            return digest
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path) -> str:
        """Store the content of the regular file ``path`` (streamed); returns its digest."""
        with self.writer() as w, path.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                w.write(chunk)
            return w.commit()

    def put_stream(self, stream: BinaryIO) -> str:
        """Store everything readable from ``stream``; returns its digest."""
        with self.writer() as w:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                w.write(chunk)
            return w.commit()

    def take_added(self) -> int:
        """Stored bytes of blobs created since the last call (for a store's size accounting)."""
        added, self.added = self.added, 0
        return added

    # -- reading ---------------------------------------------------------------------------------
    def path_for(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        if not is_digest(digest):
            raise UsageError(f"{digest!r} is not a BLAKE3 hex digest")
        return self.blobs_dir / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """True if a blob file exists for ``digest`` (not verified; see :meth:`verify`)."""
        return is_digest(digest) and self.path_for(digest).is_file()

    def stored_size(self, digest: str) -> int:
        """Compressed size on disk, 0 if absent."""
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def open(self, digest: str) -> BinaryIO | None:
        """A verified, seekable reader of the blob's bytes, or None if absent or corrupt (then evicted).

        Small blobs are verified in memory; large ones are decompressed into an anonymous temp file
        first, so a caller never sees a byte of a blob that fails verification.
        """
        out: BinaryIO
        if self.stored_size(digest) < 4 * _CHUNK:
            out = io.BytesIO()
        else:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            out = cast(BinaryIO, tempfile.TemporaryFile(dir=self.tmp_dir))  # noqa: SIM115 - returned
        if not self._copy_verified(digest, out):
            out.close()
            return None
        out.seek(0)
        return out

    def get_bytes(self, digest: str) -> bytes | None:
        """The blob's bytes, verified; None if absent or corrupt (then evicted)."""
        buf = io.BytesIO()
        return buf.getvalue() if self._copy_verified(digest, buf) else None

    def copy_to(self, digest: str, dest: Path, *, mode: int = 0o644) -> bool:
        """Write the verified blob to ``dest`` atomically; False (and nothing written) if absent/corrupt."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                ok = self._copy_verified(digest, f)
            if not ok:
                tmp.unlink()
                return False
            tmp.chmod(mode)
            tmp.replace(dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return True

    def write_new(self, digest: str, dest: str, mode: int = 0o644) -> bool:
        """Create the file ``dest`` (it must not exist; a symlink there is never followed) holding the
        verified blob; False if the blob is absent or corrupt (then evicted) and ``dest`` removed.

        Not atomic, on purpose: for filling a fresh private directory that is thrown away whole if
        anything fails (an agent's job workspace), where a temp file and a rename per file would
        double the metadata writes. Use :meth:`copy_to` for a file others may read.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(dest, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                ok = self._copy_verified(digest, f)
                if ok:
                    os.fchmod(f.fileno(), mode)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise
        if not ok:
            os.unlink(dest)
        return ok

    def used(self, digest: str, *, older_than: float = 0.0) -> bool:
        """True if the blob exists; then marked recently used unless it was within ``older_than``
        seconds (a hot blob costs a ``stat``, not a metadata write)."""
        if not is_digest(digest):
            return False
        path = self.path_for(digest)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        if time.time() - mtime >= older_than:
            with contextlib.suppress(OSError):
                os.utime(path)
        return True

    def write_to(self, digest: str, out: _Writable) -> bool:
        """Write the blob's bytes to ``out``, verifying them; False if absent/corrupt (then evicted).

        On False, ``out`` may hold a prefix of the bytes: write to a temp file and discard it.
        """
        return self._copy_verified(digest, out)

    def iter_verified(self, digest: str) -> Iterator[bytes] | None:
        """The blob's bytes as chunks, verified as they are read; None if absent.

        For streaming a large blob without a temp copy: the last chunk is only yielded once the whole
        blob has hashed to ``digest``, so a consumer never receives all of a corrupt blob. On a mismatch
        (or a damaged frame) the blob is evicted and :class:`CorruptBlobError` is raised instead of
        the last chunk: a server must then abort the transfer. Close the iterator to release the file.
        """
        try:
            src = self.path_for(digest).open("rb")
        except FileNotFoundError:
            return None
        return self._iter_verified(digest, src)

    def _iter_verified(self, digest: str, src: BinaryIO) -> Iterator[bytes]:
        hasher = blake3()
        held = b""
        try:
            with src, zstandard.ZstdDecompressor().stream_reader(src) as reader:
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    hasher.update(chunk)
                    if held:
                        yield held
                    held = chunk
        except zstandard.ZstdError as exc:
            self.evict(digest)
            raise CorruptBlobError(f"blob {digest} is damaged ({exc}); evicted") from exc
        if hasher.hexdigest() != digest:
            self.evict(digest)
            raise CorruptBlobError(f"blob {digest} does not match its digest; evicted")
        if held:
            yield held

    def _copy_verified(self, digest: str, out: _Writable | None, *, evict: bool = True) -> bool:
        try:
            src = self.path_for(digest).open("rb")
        except FileNotFoundError:
            return False
        hasher = blake3()
        try:
            with src, zstandard.ZstdDecompressor().stream_reader(src) as reader:
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    hasher.update(chunk)
                    if out is not None:
                        out.write(chunk)
        except zstandard.ZstdError:
            ok = False
        else:
            ok = hasher.hexdigest() == digest
        if not ok and evict:
            self.evict(digest)
        return ok

    def verify(self, digest: str, *, evict: bool = True) -> bool:
        """True if the blob exists and its content hashes to ``digest``; a bad blob is evicted."""
        return self._copy_verified(digest, None, evict=evict)

    def evict(self, digest: str) -> None:
        """Remove the blob (used for corrupt blobs and garbage collection)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(digest).unlink()
            self.evicted.append(digest)

    def touch(self, digest: str) -> None:
        """Mark the blob as recently used."""
        with contextlib.suppress(OSError):
            os.utime(self.path_for(digest))

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """``(digest, stored size, mtime)`` of every blob."""
        if not self.blobs_dir.is_dir():
            return
        for sub in os.scandir(self.blobs_dir):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if is_digest(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        st = entry.stat()
                        yield entry.name, st.st_size, st.st_mtime

    def clean_tmp(self, *, older_than_s: float = 3600.0) -> int:
        """Delete temp files left by killed writers; returns how many."""
        removed = 0
        if not self.tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        for entry in os.scandir(self.tmp_dir):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink()
                    removed += 1
        return removed
