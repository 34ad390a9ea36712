"""Job log files: writing them with a size cap and bounded memory, reading their tail and streaming them.

``JobLog`` receives a job's (already masked) output. Up to half the cap is written to the log as it
comes (the head); past that, output goes to a ring file of the other half next to the log
(``<log>.tail``, written circularly with ``pwrite``). Closing the log splices a marker line saying how
many bytes were cut and the ring's content, in order, after the head. Memory stays at one chunk,
disk at the cap, whatever the job prints. The cap applies per attempt (a retry appends its own).

Masking happens before the cap (``Masker`` output is what is written): a secret is replaced by
``***`` in the stream before any cut is decided, and the marker line separates head from tail, so
the splice can never join two pieces into a secret.

A write that fails (disk full, quota, permissions) is not raised into the event loop's callbacks: the
log stops writing, remembers the first error, and the executor fails the job with ``problem``.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from buildyard import settings

#: Default cap of one attempt's log: 100 MB (the ``log_limit`` setting; ``0`` = no cap).
DEFAULT_LOG_LIMIT = settings.DEFAULT_LOG_LIMIT
#: The smallest cap accepted: below it the marker line would be most of the log.
MIN_LOG_LIMIT = settings.MIN_LOG_LIMIT
CHUNK = 1 << 20
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_DISK_FULL_PREFIX = "disk full writing "


def log_limit(environ: Mapping[str, str] | None = None, *, project: Path | None = None) -> int:
    """The per-attempt log cap in bytes: the ``log_limit`` setting of ``project`` (``BUILDYARD_LOG_LIMIT``:
    ``100MB``, ``512KiB``, ``0``); ``environ`` alone (no config files) instead of the process's when given."""
    if environ is not None:
        return settings.resolve(project or Path(), environ).log_limit
    return settings.load(project).log_limit


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk or quota is full: OSError, SQLite, PostgreSQL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        if getattr(current, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        if getattr(current, "sqlstate", None) == "53100":  # PostgreSQL disk_full
            return True
        if "database or disk is full" in str(current):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


def disk_full_message(path: str | Path) -> str:
    """The one line a user sees when a write to ``path`` hit a full disk."""
    return f"{_DISK_FULL_PREFIX}{path}: free space and re-run"


def is_disk_full_message(message: str) -> bool:
    """Whether ``message`` was made by ``disk_full_message``."""
    return message.startswith(_DISK_FULL_PREFIX) and message.endswith(": free space and re-run")


class JobLog:
    """One attempt's log file: created by its first write, capped at ``limit`` bytes (0 = no cap).

    A job that prints nothing costs no file (on many short jobs creating it was a third of the
    per-job cost; readers treat a missing log as an empty one). ``append`` continues an earlier
    attempt's log. After ``close``: ``cut`` is how many bytes were left out, ``error`` the first
    failed write (nothing more is written after one).
    """

    def __init__(self, path: Path, *, append: bool = False, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self.path = path
        self.append = append
        self.limit = limit
        self.head_limit = limit // 2 if limit else 0
        self.ring_size = limit - self.head_limit
        self.file: BinaryIO | None = None
        self.written = 0  # bytes in the log file (head), including an earlier attempt's
        self.base = 0  # size of the file when this attempt started
        self.ring_fd = -1
        self.ring_pos = 0  # bytes written to the ring in all (its write offset is ring_pos % size)
        self.cut = 0
        self.error: OSError | None = None

    @property
    def ring_path(self) -> Path:
        """Where the tail is kept while the job writes past the head."""
        return self.path.with_name(self.path.name + ".tail")

    @property
    def problem(self) -> str:
        """The failed write as one line for the job's message ("" when none failed)."""
        if self.error is None:
            return ""
        if self.error.errno in _DISK_FULL:
            return disk_full_message(self.path)
        return f"cannot write log {self.path}: {self.error.strerror or self.error}"

    def write(self, data: bytes) -> None:
        """Write ``data``: to the head while it has room, then to the ring. Never raises OSError."""
        if self.error is not None or not data:
            return
        try:
            self._write(data)
            if self.file is not None:
                self.file.flush()  # followed live (dashboard SSE, `logs --follow`): no 8 KiB buffer lag
        except OSError as exc:
            self.error = exc

    def _write(self, data: bytes) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "ab" if self.append else "wb")  # noqa: PTH123, SIM115
            self.written = self.base = self.file.tell()
        if not self.limit:
            self.file.write(data)
            return
        room = max(self.base + self.head_limit - self.written, 0)
        if room:
            head = data[:room]
            self.file.write(head)
            self.written += len(head)
            data = data[room:]
        if data:
            self._to_ring(data)

    def _to_ring(self, data: bytes) -> None:
        size = self.ring_size
        if self.ring_fd < 0:
            self.ring_fd = os.open(self.ring_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if len(data) > size:  # only its last ``size`` bytes can survive
            self.ring_pos += len(data) - size
            data = data[-size:]
        view = memoryview(data)
        while view:
            offset = self.ring_pos % size
            n = os.pwrite(self.ring_fd, view[: size - offset], offset)
            self.ring_pos += n
            view = view[n:]

    def close(self) -> None:
        """Splice the marker and the ring after the head, remove the ring, close the file."""
        try:
            if self.ring_fd >= 0 and self.file is not None and self.error is None:
                self._splice(self.file)
        except OSError as exc:
            self.error = self.error or exc
        finally:
            if self.ring_fd >= 0:
                os.close(self.ring_fd)
                self.ring_fd = -1
                with contextlib.suppress(OSError):
                    self.ring_path.unlink()
            if self.file is not None:
                try:
                    self.file.close()
                except OSError as exc:  # the buffered rest could not be written
                    self.error = self.error or exc
                self.file = None

    def _splice(self, out: BinaryIO) -> None:
        size = self.ring_size
        kept = min(self.ring_pos, size)
        self.cut = self.ring_pos - kept
        if self.cut:
            out.write(f"\n… {self.cut} bytes cut (log limit {self.limit} bytes) …\n".encode())
        start = self.ring_pos % size if self.ring_pos > size else 0
        for begin, end in ((start, size), (0, start)) if start else ((0, kept),):
            pos = begin
            while pos < end:
                chunk = os.pread(self.ring_fd, min(CHUNK, end - pos), pos)
                if not chunk:
                    break
                out.write(chunk)
                pos += len(chunk)

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_tail(path: str | Path, size: int = 64 * 1024) -> bytes:
    """The last ``size`` bytes of a file, read from its end (``b""`` when it cannot be read)."""
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            end = f.seek(0, os.SEEK_END)
            f.seek(max(end - size, 0))
            return f.read(size)
    except OSError:
        return b""


class TextDecoder(Protocol):
    """Bytes of one stream in, text out (e.g. ``termtext.OutputFilter``, which also makes it safe)."""

    def feed(self, data: bytes) -> str:
        """The text of the next chunk."""
        ...

    def flush(self) -> str:
        """The rest at the end of the stream."""
        ...


class Utf8(TextDecoder):
    """Plain incremental UTF-8 (invalid bytes replaced; a character split between chunks stays whole)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """Decode a chunk."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Decode what is left."""
        return self._decoder.decode(b"", final=True)


def copy_text(
    path: str | Path,
    out: IO[str],
    *,
    start: int = 0,
    chunk: int = CHUNK,
    decoder: TextDecoder | None = None,
    final: bool = True,
) -> int:
    """Copy a log from byte ``start`` to ``out`` in chunks (bounded memory); return the bytes read.

    Bytes go through ``decoder`` (default: plain UTF-8); ``final=False`` keeps its state for a later
    call that continues the same log (``logs --follow``). A log that cannot be opened copies nothing.
    """
    decoder = decoder or Utf8()
    copied = 0
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            f.seek(start)
            while data := f.read(chunk):
                copied += len(data)
                out.write(decoder.feed(data))
    except OSError:
        pass
    if final:
        out.write(decoder.flush())
    return copied
