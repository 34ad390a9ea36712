"""A backup directory as one file: ``.tar`` or ``.tar.zst``, streamed both ways (memory bounded).

Packing writes the archive under a temporary name beside it, fsyncs and renames it. Unpacking accepts only
regular files and directories (no links, devices or paths leaving the directory: ``tarfile``'s
``data`` filter, plus a type check), into a temporary directory removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from buildyard.backup.crypto import BackupError, BadBackupError
from buildyard.fsutil import fsync_dir

SUFFIXES = (".tar.zst", ".tar")


def is_archive(path: Path) -> bool:
    """True if ``path`` names a single-file backup."""
    return path.name.endswith(SUFFIXES)


def pack(directory: Path, dest: Path) -> None:
    """Stream ``directory``'s content into the new archive ``dest`` (sorted: reproducible order)."""
    if dest.exists():
        raise BackupError(f"{dest} exists: give a new file name for the backup")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with contextlib.ExitStack() as stack:
                out: BinaryIO = raw
                if dest.name.endswith(".zst"):
                    out = stack.enter_context(
                        zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
                    )
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for path in sorted(directory.rglob("*")):
                        tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        tmp.rename(dest)
        fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def unpacked(archive: Path) -> Iterator[Path]:
    """The archive extracted into a temporary directory (removed on exit)."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup file")
    with tempfile.TemporaryDirectory(prefix="buildyard-backup-") as tmp, archive.open("rb") as raw:
        stream: BinaryIO = raw
        with contextlib.ExitStack() as stack:
            if archive.name.endswith(".zst"):
                stream = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        if not (member.isfile() or member.isdir()):
                            raise BadBackupError(f"{archive}: {member.name}: not a regular file")
                        tar.extract(member, tmp, filter="data")
            except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
                raise BadBackupError(f"{archive}: not a readable backup archive ({exc})") from None
        yield Path(tmp)
