"""Errors of the deps service: bad lockfiles, databases, ignore files and policies.

All are ``UserError`` subclasses: the CLI prints them as one line (``file:line: message``) and exits 2.
"""

from __future__ import annotations

from buildyard.errors import UserError


class DepsError(UserError):
    """Root of the deps service's user errors."""


class LockfileError(DepsError):
    """A lockfile or manifest cannot be read or parsed."""

    def __init__(self, file: str, message: str, line: int = 0) -> None:
        self.file = file
        self.line = line
        self.detail = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class DatabaseError(DepsError):
    """The vulnerability database is missing, corrupt or cannot be fetched."""


class IgnoreFileError(DepsError):
    """The ignore file of ``deps scan`` is invalid."""


class LicensePolicyError(DepsError):
    """A license policy is invalid."""
