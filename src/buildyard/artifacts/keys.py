"""Ed25519 signing keys and the set of trusted public keys.

Layout of a key directory (``$BUILDYARD_HOME/keys``, mode 0700)::

    private/<name>.pem   PKCS#8 PEM private key, mode 0600 (never printed, never logged)
    trusted/<name>.pub   SubjectPublicKeyInfo PEM public key: signatures by it are accepted

A key id is the SHA-256 hex of the raw 32-byte public key. Generating a key also trusts its public key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from buildyard.artifacts.errors import KeyRingError
from buildyard.artifacts.names import check_key_name
from buildyard.fsutil import atomic_write_bytes
from buildyard.settings import load as load_settings

DEFAULT_KEY = "default"


def key_id(public: Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw public key bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A trusted Ed25519 public key with its name and id."""

    name: str
    keyid: str
    key: Ed25519PublicKey

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is this key's signature of ``data``."""
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private Ed25519 key (its ``repr`` never shows key material)."""

    name: str
    keyid: str
    _key: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of ``data``."""
        return self._key.sign(data)

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self.name, self.keyid, self._key.public_key())

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, keyid={self.keyid[:16]}…)"


def load_public_key(data: bytes, *, name: str, source: str) -> PublicKey:
    """Parse an Ed25519 public key from PEM (or an OpenSSH ``ssh-ed25519`` line)."""
    key: object
    try:
        if data.lstrip().startswith(b"ssh-ed25519"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyRingError(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyRingError(f"{source}: not an Ed25519 public key (only Ed25519 is supported)")
    return PublicKey(name, key_id(key), key)


def _load_private(data: bytes, *, name: str, source: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # never include the exception text: it could quote key material
        raise KeyRingError(f"{source}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyRingError(f"{source}: not an Ed25519 private key (only Ed25519 is supported)")
    return SigningKey(name, key_id(key.public_key()), key)


class KeyRing:
    """The signing keys and trusted public keys of one key directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.private_dir = root / "private"
        self.trusted_dir = root / "trusted"

    def _ensure_dirs(self) -> None:
        for d in (self.root, self.private_dir, self.trusted_dir):
            d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.root.chmod(0o700)
            self.private_dir.chmod(0o700)

    def _private_path(self, name: str) -> Path:
        return self.private_dir / f"{check_key_name(name)}.pem"

    def _trusted_path(self, name: str) -> Path:
        return self.trusted_dir / f"{check_key_name(name)}.pub"

    def generate(self, name: str = DEFAULT_KEY, *, overwrite: bool = False) -> PublicKey:
        """Create a new key pair ``name`` (0600 private key) and trust its public key."""
        path = self._private_path(name)
        if path.exists() and not overwrite:
            raise KeyRingError(f"key {name!r} already exists in {self.private_dir} (choose another --name)")
        self._ensure_dirs()
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        atomic_write_bytes(path, pem, mode=0o600)
        public = PublicKey(name, key_id(key.public_key()), key.public_key())
        atomic_write_bytes(self._trusted_path(name), public_pem(public.key))
        return public

    def ensure(self, name: str = DEFAULT_KEY) -> PublicKey | None:
        """Create the key pair ``name`` if it does not exist yet; the new public key, or None if it
        existed. Concurrent callers (two publishing jobs) agree on one key: creation holds a lock."""
        if self.has_private(name):
            return None
        self._ensure_dirs()
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return None if self.has_private(name) else self.generate(name)

    def import_file(self, source: Path, name: str) -> tuple[PublicKey, bool]:
        """Import a PEM file: a private key becomes a signing key (and is trusted), a public key is
        trusted. Returns the public key and whether a private key was imported."""
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise KeyRingError(f"{source}: cannot read key file ({exc.strerror})") from None
        self._ensure_dirs()
        if b"PRIVATE KEY" in data:
            if self._private_path(name).exists():
                raise KeyRingError(
                    f"key {name!r} already exists in {self.private_dir} (choose another --name)"
                )
            signing = _load_private(data, name=name, source=str(source))
            pem = signing._key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            atomic_write_bytes(self._private_path(name), pem, mode=0o600)
            public = signing.public
            atomic_write_bytes(self._trusted_path(name), public_pem(public.key))
            return public, True
        public = load_public_key(data, name=name, source=str(source))
        atomic_write_bytes(self._trusted_path(name), public_pem(public.key))
        return public, False

    def signing_key(self, name: str = DEFAULT_KEY) -> SigningKey:
        """The private key ``name``; a clear error if there is none."""
        path = self._private_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyRingError(
                f"no signing key {name!r} in {self.private_dir} (run 'buildyard keys generate --name {name}')"
            ) from None
        return _load_private(data, name=name, source=str(path))

    def public_key(self, name: str) -> PublicKey:
        """The trusted public key ``name``."""
        path = self._trusted_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyRingError(
                f"no trusted key {name!r} in {self.trusted_dir} (see 'buildyard keys list')"
            ) from None
        return load_public_key(data, name=name, source=str(path))

    def trusted(self) -> list[PublicKey]:
        """Every trusted public key, by name."""
        if not self.trusted_dir.is_dir():
            return []
        return [self.public_key(p.stem) for p in sorted(self.trusted_dir.glob("*.pub"))]

    def has_private(self, name: str) -> bool:
        """True if a signing key ``name`` exists."""
        return self._private_path(name).is_file()

    def export_private(self, name: str, dest: Path) -> None:
        """Copy the private key to ``dest`` (created 0600; refuses to overwrite)."""
        data = self._private_path(name).read_bytes() if self.has_private(name) else None
        if data is None:
            raise KeyRingError(f"no signing key {name!r} in {self.private_dir}")
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyRingError(f"{dest} already exists; refusing to overwrite a key file") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def project_keys_dir(project: Path) -> Path:
    """The ``keys_dir`` setting (``BUILDYARD_KEYS_DIR``), else ``<home>/keys`` (the same for every
    command and runs)."""
    return load_settings(project).keys_dir
