"""The append-only audit log of a repository: who pushed, promoted or deleted what, when and why.

One JSON object per line in ``<root>/audit.log``, each carrying the SHA-256 of the previous line
(``prev``) so that editing or removing a line breaks the chain, which ``fsck`` reports. Appends hold
the repository lock and are fsynced. Channel pointers are derived from this log (see lifecycle).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from buildyard.settings import load as load_settings

_GENESIS = "0" * 64


class Action(StrEnum):
    """What an audit event records."""

    PUSH = "push"
    PROMOTE = "promote"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit log."""

    seq: int
    time: float
    actor: str
    action: Action
    artifact: str
    version: str
    channel: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data (for ``--json`` and the log line)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action.value,
            "artifact": self.artifact,
            "version": self.version,
            "channel": self.channel,
            "reason": self.reason,
        }


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


class AuditLog:
    """Reads and appends ``audit.log``. Callers hold the repository lock while appending."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif lines:
            lines.pop()  # a torn last line (no newline: the writer was killed): not an event
        return lines

    def events(self) -> list[AuditEvent]:
        """Every event in order (unparseable lines are skipped; ``check`` reports them)."""
        return list(self._parse())

    def _parse(self) -> Iterator[AuditEvent]:
        for line in self._lines():
            try:
                d = json.loads(line)
                yield AuditEvent(
                    seq=int(d["seq"]),
                    time=float(d["time"]),
                    actor=str(d["actor"]),
                    action=Action(d["action"]),
                    artifact=str(d["artifact"]),
                    version=str(d["version"]),
                    channel=d.get("channel"),
                    reason=d.get("reason"),
                )
            except (ValueError, KeyError, TypeError):
                continue

    def append(
        self,
        action: Action,
        artifact: str,
        version: str,
        *,
        actor: str,
        channel: str | None = None,
        reason: str | None = None,
    ) -> AuditEvent:
        """Append one event (fsynced). The caller holds the repository lock."""
        lines = self._lines()
        prev = _line_hash(lines[-1]) if lines else _GENESIS
        event = AuditEvent(
            len(lines) + 1, round(time.time(), 3), actor, action, artifact, version, channel, reason
        )
        line = json.dumps({**event.to_json(), "prev": prev}, sort_keys=True).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                os.ftruncate(fd, data.rfind(b"\n") + 1)  # drop a torn last line left by a killed writer
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return event

    def check(self) -> list[str]:
        """Problems with the chain: unparseable lines, broken ``prev`` links, sequence gaps."""
        problems: list[str] = []
        prev = _GENESIS
        for n, line in enumerate(self._lines(), start=1):
            try:
                d = json.loads(line)
            except ValueError:
                problems.append(f"{self.path}:{n}: unparseable audit line")
                prev = _line_hash(line)
                continue
            if d.get("prev") != prev:
                problems.append(
                    f"{self.path}:{n}: audit chain broken (a line before it was edited or removed)"
                )
            if d.get("seq") != n:
                problems.append(f"{self.path}:{n}: sequence number {d.get('seq')} (expected {n})")
            prev = _line_hash(line)
        return problems


def current_actor() -> str:
    """The ``actor`` setting (``BUILDYARD_ACTOR``), else the login name."""
    actor = load_settings().actor
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
