"""The one exception tree of buildyard.

``BuildyardError`` is the root. Subclasses of ``UserError`` are mistakes a user can fix (bad spec,
bad CLI usage, missing file): the CLI prints their message as one line and exits with
``exit_code``. Anything else that escapes is a bug and shows a traceback. A job that exits non-zero
is a *result* (``JobStatus.FAILED``), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from buildyard.termtext import safe_text


class BuildyardError(Exception):
    """Root of every error buildyard raises on purpose."""


class UserError(BuildyardError):
    """A mistake the user can fix; printed as one line, no traceback."""

    exit_code: int = 2


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located problem in an input file: ``file:line:col: path: message (hint)``."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        """One line: names quoted from the file may hold newlines or escapes, shown escaped."""
        where = f"{self.file}:{self.line}:{self.col}"
        field = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return safe_text(f"{where}:{field} {self.message}{hint}")


class SpecError(UserError):
    """The pipeline file is invalid. Carries every problem found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.file, d.line, d.col, d.path))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UsageError(UserError):
    """Invalid command-line usage (bad option value, unknown job, ...)."""


class NotFoundError(UserError):
    """A named thing (run, job, file, artifact) does not exist."""


class DiskFullError(UserError):
    """A write failed because the disk (or quota) is full; the message names the file."""

    exit_code = 1


class InterruptedRun(BuildyardError):
    """The run was cancelled by SIGINT/SIGTERM; the CLI exits with 130."""


class StoreError(UserError):
    """The history store cannot be opened or is inconsistent (message says what to do)."""
