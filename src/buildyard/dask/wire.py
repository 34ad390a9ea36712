"""What travels between the orchestrator and an agent for one job: plain, picklable data.

An :class:`AgentJob` names the job's files by content (path, BLAKE3 digest, mode, or symlink target)
and where to fetch their blobs (the orchestrator's CAS over HTTP, with a bearer token valid for the
executor's life); an :class:`AgentResult` returns the outcome, the masked log and the declared
outputs, whose blobs the agent has uploaded to the same CAS. Secrets ride in ``request.env`` only,
in memory: the agent never writes them to disk.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from buildyard.engine.request import JobOutcome, JobRequest


def distributed() -> Any:
    """The ``distributed`` module (imported on first use), typed ``Any``: its API is partly annotated."""
    return importlib.import_module("distributed")


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file of a workspace: a regular file (``digest``, ``mode``) or a symlink (``symlink``)."""

    path: str
    digest: str = ""
    mode: int = 0o644
    size: int = 0
    symlink: str | None = None


@dataclass(frozen=True, slots=True)
class AgentJob:
    """One attempt of one job, as an agent receives it.

    ``request.cwd`` is relative to the workspace root (``working_directory``) and ``log_path`` is
    empty: the agent maps both to its own directories.
    """

    request: JobRequest
    files: tuple[FileRef, ...]
    cas_url: str
    cas_token: str
    #: Name of the Dask ``Event`` whose setting cancels the job (its process tree is killed).
    cancel_event: str
    #: Dask event topic the agent streams the job's masked output to (``{"job": cancel_event, "data":
    #: bytes}``), after saying it started the job (``{"job": cancel_event, "start": agent address}``:
    #: a second start by another agent means the first was lost); "" for none.
    log_topic: str = ""
    #: Project-relative patterns of what comes back after the job: its declared outputs, the reports
    #: its gates read, its dependency cache paths.
    collect: tuple[str, ...] = ()
    #: Name of the Dask ``Variable`` the orchestrator advances every few seconds while it lives.
    alive_variable: str = ""
    #: Seconds without that variable advancing (or without a scheduler to ask) after which the agent
    #: kills the job: its orchestrator is gone or frozen.
    orchestrator_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class AgentResult:
    """How the attempt went on the agent: outcome (paths relative to the workspace), log, outputs."""

    outcome: JobOutcome
    log: bytes
    outputs: tuple[FileRef, ...]
    agent: str
    problem: str = ""  # outputs could not be collected or uploaded (one line)
    #: Bytes of output sent live on ``log_topic`` (the orchestrator shows what it did not receive).
    streamed: int = 0
    #: The content of small output files, ``(digest, bytes)``, returned with the result instead of
    #: uploaded (one round trip less per job); the orchestrator checks each against its digest.
    inline: tuple[tuple[str, bytes], ...] = ()
