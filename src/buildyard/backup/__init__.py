"""Backups (create, verify, restore) of what must not be lost, and the home's layout and ``clean``.

See :mod:`buildyard.backup.service` for the backup format and what "consistent" means for each
part, and :mod:`buildyard.backup.layout` for what lives where in ``BUILDYARD_HOME``.
"""

from buildyard.backup.crypto import BackupError, BadBackupError
from buildyard.backup.layout import CleanReport, clean
from buildyard.backup.service import Sources, Summary, create, restore, sources_for, verify

__all__ = [
    "BackupError",
    "BadBackupError",
    "CleanReport",
    "Sources",
    "Summary",
    "clean",
    "create",
    "restore",
    "sources_for",
    "verify",
]
