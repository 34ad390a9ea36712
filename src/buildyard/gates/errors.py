"""Errors of the gates service: a report that cannot be read, a gate config that is invalid.

Both are ``UserError``s: one line naming the file (and line when known) and what is wrong. The
evaluator turns a ``ReportError`` into a FAILED gate result, never into a silent pass.
"""

from __future__ import annotations

from buildyard.errors import UserError


class ReportError(UserError):
    """A report file is missing, malformed or of an unknown format."""

    def __init__(self, file: str, message: str, *, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class GateConfigError(UserError):
    """The ``gates:`` section is invalid (message names the file, the gate and the field)."""


class GatesFailedError(UserError):
    """At least one gate failed: the CLI prints which and exits 1 (a result, reported as one line)."""

    exit_code = 1
