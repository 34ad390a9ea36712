"""Users, roles, API tokens, browser sessions and the slowdown after failed logins.

Roles are ordered: viewer (read) < operator (trigger, cancel, retry) < maintainer (approve, reject,
rollback, project secrets) < admin (users, tokens, audit log). Passwords are stored as scrypt hashes
(memory-hard, stdlib); API tokens and session ids are random and stored only as SHA-256 digests
(they carry 256 bits of entropy: a fast hash is enough and lets a request be checked in one lookup).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from buildyard.errors import NotFoundError, UsageError
from buildyard.server.config import NAME
from buildyard.store.serverstate import login_failures, sessions, tokens, users

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

TOKEN_PREFIX = "byt_"  # noqa: S105 - a prefix, not a secret
SESSION_SECONDS = 12 * 3600
#: Failed logins (per user name and per address) allowed before each attempt must wait.
FREE_FAILURES = 5
MAX_DELAY_S = 300.0
MIN_PASSWORD = 8
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Role(IntEnum):
    """What a user or token may do; a higher role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    MAINTAINER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        """The role's name as users write it."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """``viewer|operator|maintainer|admin`` → role (a one-line error otherwise)."""
        try:
            return cls[text.upper()]
        except KeyError:
            raise UsageError(f"unknown role '{text:.40}' (viewer, operator, maintainer or admin)") from None


@dataclass(frozen=True)
class User:
    """Who a request acts as: a user, a token (``token:NAME``) or the local admin of an open server."""

    name: str
    role: str

    @property
    def level(self) -> Role:
        """The role as an ordered value."""
        return Role.parse(self.role)

    def may(self, role: Role) -> bool:
        """Whether this user has at least ``role``."""
        return self.level >= role


def hash_password(password: str) -> str:
    """An scrypt hash with its parameters and salt (``scrypt$n$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 1024 * 1024, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def digest(secret: str) -> str:
    """SHA-256 hex digest of a token or session id."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never its value)."""

    id: str
    name: str
    role: str
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class Session:
    """A browser session."""

    user: User
    csrf: str
    expires_at: float


class Auth:
    """Users, tokens and sessions in the server's state database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def configured(self) -> bool:
        """Whether any user or live token exists (else the server is open and must stay on loopback)."""
        with self.engine.connect() as conn:
            user = conn.execute(
                sa.select(users.c.name).where(users.c.disabled == sa.false()).limit(1)
            ).first()
            token = conn.execute(sa.select(tokens.c.id).where(tokens.c.revoked_at.is_(None)).limit(1)).first()
        return user is not None or token is not None

    # --- users ------------------------------------------------------------------------------------

    def create_user(self, name: str, role: Role, password: str, *, replace: bool = False) -> User:
        """Add (or with ``replace`` reset) user ``name`` with ``role`` and ``password``."""
        if not NAME.match(name):
            raise UsageError(f"user name '{name:.40}' must be letters, digits, '.', '_' or '-' (up to 100)")
        if len(password) < MIN_PASSWORD:
            raise UsageError(f"the password must have at least {MIN_PASSWORD} characters")
        values = {"role": role.label, "password_hash": hash_password(password), "disabled": False}
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None
            if exists and not replace:
                raise UsageError(f"user '{name}' exists (give --replace to reset its role and password)")
            if exists:
                conn.execute(sa.update(users).where(users.c.name == name).values(**values))
            else:
                conn.execute(sa.insert(users).values(name=name, created_at=time.time(), **values))
        return User(name, role.label)

    def list_users(self) -> list[tuple[str, str, bool]]:
        """(name, role, disabled) of every user."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(users.c.name, users.c.role, users.c.disabled).order_by(users.c.name)
            )
            return [(r[0], r[1], bool(r[2])) for r in rows]

    def delete_user(self, name: str) -> None:
        """Remove user ``name`` and end its sessions."""
        with self.engine.begin() as conn:
            if not conn.execute(sa.delete(users).where(users.c.name == name)).rowcount:
                raise NotFoundError(f"no user '{name:.100}'")
            conn.execute(sa.delete(sessions).where(sessions.c.user == name))

    def check_password(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right (a missing user costs the same hash time)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(users.c.role, users.c.password_hash).where(
                    users.c.name == name, users.c.disabled == sa.false()
                )
            ).first()
        stored = row[1] if row is not None else _dummy_hash()
        ok = verify_password(password, stored)
        return User(name, row[0]) if ok and row is not None else None

    # --- tokens -----------------------------------------------------------------------------------

    def create_token(self, name: str, role: Role, *, created_by: str) -> tuple[str, TokenInfo]:
        """A new token (its value is returned once, only its digest is stored) and its info."""
        if not NAME.match(name):
            raise UsageError(f"token name '{name:.40}' must be letters, digits, '.', '_' or '-' (up to 100)")
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(secrets.token_hex(8), name, role.label, time.time(), created_by, None, None)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(tokens).values(
                    id=info.id,
                    name=name,
                    role=info.role,
                    digest=digest(value),
                    created_at=info.created_at,
                    created_by=created_by,
                )
            )
        return value, info

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, newest first (no values: they are not stored)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at.desc()))
            return [
                TokenInfo(r.id, r.name, r.role, r.created_at, r.created_by, r.last_used_at, r.revoked_at)
                for r in rows
            ]

    def revoke_token(self, token_id: str) -> None:
        """Revoke the token ``token_id`` (by id or name)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(tokens)
                .where(
                    sa.or_(tokens.c.id == token_id, tokens.c.name == token_id), tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=time.time())
            ).rowcount
        if not done:
            raise NotFoundError(f"no live token '{token_id:.100}'")

    def token_user(self, value: str) -> User | None:
        """Who the bearer token ``value`` acts as, or None."""
        if not value.startswith(TOKEN_PREFIX) or len(value) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.last_used_at).where(
                    tokens.c.digest == digest(value), tokens.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > 60:
            with self.engine.begin() as conn:
                conn.execute(sa.update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
        return User(f"token:{row.name}", row.role)

    # --- sessions ---------------------------------------------------------------------------------

    def open_session(self, user: User) -> tuple[str, Session]:
        """A new session of ``user``: the cookie value and the session."""
        value = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.expires_at < time.time()))
            conn.execute(
                sa.insert(sessions).values(
                    digest=digest(value),
                    user=user.name,
                    csrf=session.csrf,
                    created_at=time.time(),
                    expires_at=session.expires_at,
                )
            )
        return value, session

    def session(self, value: str) -> Session | None:
        """The live session of cookie ``value``, or None."""
        if not value or len(value) > 200:
            return None
        query = (
            sa.select(sessions.c.csrf, sessions.c.expires_at, users.c.name, users.c.role)
            .join(users, users.c.name == sessions.c.user)
            .where(sessions.c.digest == digest(value), users.c.disabled == sa.false())
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.expires_at < time.time():
            return None
        return Session(User(row.name, row.role), row.csrf, row.expires_at)

    def close_session(self, value: str) -> None:
        """End the session of cookie ``value``."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.digest == digest(value)))

    # --- failed logins ----------------------------------------------------------------------------

    def login_delay(self, keys: list[str]) -> float:
        """Seconds the next login attempt for any of ``keys`` must still wait (0: may try now)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(login_failures).where(login_failures.c.key.in_(keys))).all()
        now = time.time()
        wait = 0.0
        for row in rows:
            failures = int(row._mapping["count"])
            if failures >= FREE_FAILURES:
                delay = min(2.0 ** (failures - FREE_FAILURES + 1), MAX_DELAY_S)
                wait = max(wait, row.last_at + delay - now)
        return max(wait, 0.0)

    def login_failed(self, keys: list[str]) -> None:
        """Count a failed login against each of ``keys`` (user name, address)."""
        now = time.time()
        with self.engine.begin() as conn:
            for key in keys:
                changed = conn.execute(
                    sa.update(login_failures)
                    .where(login_failures.c.key == key)
                    .values(count=login_failures.c.count + 1, last_at=now)
                ).rowcount
                if not changed:
                    conn.execute(sa.insert(login_failures).values(key=key, count=1, last_at=now))

    def login_succeeded(self, keys: list[str]) -> None:
        """Forget the failures of ``keys``."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(login_failures).where(login_failures.c.key.in_(keys)))


@functools.cache
def _dummy_hash() -> str:
    """A hash to check an unknown user's password against: a wrong name costs as much as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))
