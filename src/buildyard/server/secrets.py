"""Project secrets kept by the server, encrypted at rest.

Values are sealed with AES-256-GCM under a key file in the data directory (``secrets.key``, mode
0600), kept apart from the database: a copy of the database alone reveals no value. The project and
secret name are the associated data, so a sealed value moved to another row does not open. Values
are only ever unsealed to hand them to a run; listing shows names and dates.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from buildyard.errors import NotFoundError, UsageError
from buildyard.store.serverstate import secrets as secrets_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

KEY_FILE = "secrets.key"
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
MAX_SECRET_BYTES = 64 * 1024
_NONCE = 12


class SecretsKeyError(UsageError):
    """The key file is missing, unreadable or not a key."""


def load_key(data_dir: Path, *, create: bool = True) -> bytes:
    """The 32-byte key of ``data_dir`` (made on first use, 0600)."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SecretsKeyError(f"{path}: no secrets key (start the server once to make it)") from None
        data_dir.mkdir(parents=True, exist_ok=True)
        key = _random.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: use theirs
            return load_key(data_dir, create=False)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        return key
    except OSError as exc:
        raise SecretsKeyError(f"{path}: cannot read the secrets key ({exc.strerror})") from None
    if len(key) != 32:
        raise SecretsKeyError(f"{path}: not a secrets key (expected 32 bytes); restore it from a backup")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return key


@dataclass(frozen=True)
class SecretInfo:
    """A secret as listed: never its value."""

    project: str
    name: str
    updated_at: float
    updated_by: str


class SecretStore:
    """Sealed project secrets in the state database."""

    def __init__(self, engine: Engine, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        self.engine = engine
        self._aead = AESGCM(key)

    def set(self, project: str, name: str, value: str, *, actor: str) -> None:
        """Store (or replace) secret ``name`` of ``project``."""
        if not SECRET_NAME.match(name):
            raise UsageError(
                f"secret name '{name:.40}' must be letters, digits and '_' (like an environment variable)"
            )
        data = value.encode()
        if len(data) > MAX_SECRET_BYTES:
            raise UsageError(f"secret {name} is larger than {MAX_SECRET_BYTES // 1024} KiB")
        if not value:
            raise UsageError(f"secret {name} is empty")
        nonce = _random.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, data, f"{project}\0{name}".encode())
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(secrets_table).where(
                    secrets_table.c.project == project, secrets_table.c.name == name
                )
            )
            conn.execute(
                sa.insert(secrets_table).values(
                    project=project, name=name, sealed=sealed, updated_at=time.time(), updated_by=actor
                )
            )

    def list(self, project: str) -> list[SecretInfo]:
        """Names of ``project``'s secrets (no values)."""
        query = (
            sa.select(secrets_table.c.name, secrets_table.c.updated_at, secrets_table.c.updated_by)
            .where(secrets_table.c.project == project)
            .order_by(secrets_table.c.name)
        )
        with self.engine.connect() as conn:
            return [SecretInfo(project, r[0], r[1], r[2]) for r in conn.execute(query)]

    def remove(self, project: str, name: str) -> None:
        """Delete secret ``name`` of ``project``."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.delete(secrets_table).where(
                    secrets_table.c.project == project, secrets_table.c.name == name
                )
            ).rowcount
        if not done:
            raise NotFoundError(f"project {project} has no secret '{name:.100}'")

    def values(self, project: str) -> dict[str, str]:
        """Every secret of ``project`` unsealed: only to hand them to a run."""
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        query = sa.select(secrets_table.c.name, secrets_table.c.sealed).where(
            secrets_table.c.project == project
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out: dict[str, str] = {}
        for name, sealed in rows:
            try:
                out[name] = self._aead.decrypt(
                    sealed[:_NONCE], sealed[_NONCE:], f"{project}\0{name}".encode()
                ).decode()
            except InvalidTag:
                raise SecretsKeyError(
                    f"secret {name} of {project} does not open with this data directory's secrets.key "
                    "(was the key replaced?); set it again"
                ) from None
        return out
