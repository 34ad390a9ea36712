"""Errors of the artifact repository: every one is a user-facing, one-line ``UserError``."""

from __future__ import annotations

from buildyard.errors import NotFoundError, UserError


class ArtifactError(UserError):
    """Base of the artifact repository's errors (bad input, exit 2)."""


class ArtifactNotFoundError(NotFoundError):
    """No such artifact, version or channel."""


class UnsafeNameError(ArtifactError):
    """A name or path would escape the store or the destination (``..``, absolute, symlink out)."""


class VerificationError(ArtifactError):
    """A digest or signature does not verify; nothing was written. Exit code 1."""

    exit_code = 1


class PolicyError(ArtifactError):
    """A promotion is refused by the channel policy."""


class KeyRingError(ArtifactError):
    """A signing or trusted key is missing, malformed or of the wrong type."""


class IntegrityError(ArtifactError):
    """``fsck`` found problems (listed in its report). Exit code 1."""

    exit_code = 1
