"""The records of the history store: what a backend stores and gives back, one frozen dataclass per row.

Values are plain (strings, numbers, JSON-able dicts and lists) so that every backend stores them the
same way; typed views for the faces are built from them by ``buildyard.views``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUN_ID_LENGTH = 32  # uuid4 hex


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored."""

    id: str
    pipeline: str
    number: int
    status: str
    event: str
    created_at: float
    ref: str = ""
    branch: str = ""
    tag: str = ""
    sha: str = ""
    trigger: str = "cli"
    project_dir: str = ""
    pipeline_file: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    selected: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    queue_s: float | None = None
    jobs_total: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job instance of a run as stored."""

    run_id: str
    id: str
    job: str
    status: str
    stage: str | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    exit_code: int | None = None
    allow_failure: bool = False
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    queue_s: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    skip_reason: str | None = None
    message: str = ""
    log_path: str = ""
    cache_status: str = "off"
    cache_key: str = ""
    saved_s: float = 0.0
    miss_reasons: list[str] = field(default_factory=list)
    published: str = ""  # NAME@VERSION pushed to the artifact repository
    deployed: str = ""  # NAME@VERSION deployed


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a job instance."""

    run_id: str
    job_id: str
    idx: int
    name: str
    status: str
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate decision of a run (``job_id`` is ``gates`` for pipeline-level gates)."""

    run_id: str
    job_id: str
    idx: int
    gate: str
    kind: str
    status: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TestRecord:
    """One attempt of one test in one run (from the JUnit reports of a ``tests`` gate)."""

    __test__ = False  # not a pytest test class

    run_id: str
    job_id: str
    idx: int
    suite: str
    classname: str
    name: str
    outcome: str
    duration: float
    attempt: int
    sha: str
    at: float
    tree: str = ""  # digest of the uncommitted changes tested ("" for a clean checkout)
    report: str = ""  # digest of the JUnit report the row came from
    restored: bool = False  # repeats an already recorded report: not a new execution
