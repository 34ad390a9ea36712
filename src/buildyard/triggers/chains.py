"""Runs triggered by runs: a job that commits and pushes names its run in the commit message.

The convention (documented in the README): a commit made by a job carries the trailer
``Buildyard-Run: <run id>`` (jobs have ``BUILDYARD_RUN_ID``; ``git commit --trailer
"Buildyard-Run: $BUILDYARD_RUN_ID"``). A push whose head commit has it was made by that run; the
server records the run as the new run's ``triggered_by`` and counts the chain, refusing a run
deeper than its ``trigger_chain_limit``. Only the head commit message of the delivery is read.
"""

from __future__ import annotations

import re

from buildyard.errors import UsageError

TRAILER = "Buildyard-Run"
#: Most characters of a commit message searched for the trailer (its end: trailers come last).
MAX_MESSAGE = 64 * 1024
_LINE = re.compile(rf"^{TRAILER}:[ \t]*([0-9a-f]{{8,64}})[ \t]*$", re.IGNORECASE | re.MULTILINE)


def triggering_run(message: str) -> str | None:
    """The run id named by the last ``Buildyard-Run:`` trailer of ``message`` (None: none)."""
    found = _LINE.findall(message[-MAX_MESSAGE:])
    return found[-1].lower() if found else None


class ChainTooDeep(UsageError):
    """A run would extend a chain of runs triggered by runs beyond the limit (the reason is the text)."""
