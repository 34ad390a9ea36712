"""Passphrase sealing for backups: scrypt derives the keys, AES-256-GCM encrypts, HMAC-SHA256 seals.

One scrypt derivation (salt stored in the backup manifest) gives 64 bytes: the first 32 are the
AES-GCM key of the encrypted key bundle, the last 32 the HMAC key that authenticates the manifest.
A wrong passphrase therefore fails both the manifest seal and the decryption, with one message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from buildyard.errors import UserError

#: scrypt cost: 2**15 × 8 × 128 B = 32 MiB of memory, ~0.1 s; stored per backup so it can grow.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
NONCE_BYTES = 12


class BackupError(UserError):
    """A backup that cannot be made, verified or restored (one line, naming the file)."""


class BadBackupError(BackupError):
    """A backup that fails verification (exit 1, like ``artifacts fsck``)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Sealer:
    """The two keys derived from a passphrase and a salt."""

    enc_key: bytes
    mac_key: bytes

    @classmethod
    def derive(
        cls, passphrase: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
    ) -> Sealer:
        """Run scrypt over ``passphrase`` (refuses an empty one)."""
        if not passphrase:
            raise BackupError("the backup passphrase is empty (set BUILDYARD_BACKUP_PASSPHRASE)")
        # bounded: a crafted manifest must not make verify allocate gigabytes (128·n·r bytes)
        if not (
            2 <= n <= 2**18 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4 and 128 * n * r <= 256 << 20
        ):
            raise BadBackupError(f"unsupported scrypt parameters n={n} r={r} p={p} in the backup manifest")
        out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.encode())
        return cls(out[:32], out[32:])

    def seal(self, data: bytes) -> str:
        """HMAC-SHA256 hex of ``data``."""
        return hmac.new(self.mac_key, data, hashlib.sha256).hexdigest()

    def check_seal(self, data: bytes, seal: str) -> bool:
        """True if ``seal`` is this passphrase's seal of ``data``."""
        return hmac.compare_digest(self.seal(data), seal)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``nonce || AES-GCM(plaintext)``."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.enc_key).encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes, *, what: str) -> bytes:
        """Inverse of :meth:`encrypt`; a wrong passphrase or a changed byte is one ``BadBackupError``."""
        try:
            return AESGCM(self.enc_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise BadBackupError(f"{what}: does not decrypt (wrong passphrase or a damaged file)") from None


def new_salt() -> bytes:
    """16 random bytes."""
    return os.urandom(16)
