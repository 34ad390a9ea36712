"""What a run is asked to do (``RunOptions``), what it produced (``RunResult``), who watches it.

Shared by every step of a run (``runner`` tells the story, ``session``/``factory``/``recording``/
``stack`` do the parts), so it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from buildyard.engine.masking import Masker
from buildyard.engine.scheduler import JobResult, RunEvent
from buildyard.model import Event, RunStatus
from buildyard.plan.build import Plan
from buildyard.spec.models import Pipeline
from buildyard.store.history import RunRecord


@dataclass(frozen=True)
class RunOptions:
    """Everything a run is asked to do (the CLI fills it from flags, environment and defaults)."""

    project_dir: Path
    file: Path | None = None
    select: tuple[str, ...] = ()
    slots: int | None = None
    event: Event = Event.PUSH
    branch: str | None = None
    tag: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    manual: frozenset[str] = frozenset()
    fail_fast: bool = False
    dry_run: bool = False
    secrets_file: Path | None = None
    home: Path | None = None
    db_url: str | None = None
    kill_grace: float = 5.0
    trigger: str = "cli"
    cache: bool = True
    cache_dir: Path | None = None
    remote_cache: str | None = None
    #: Run the selected jobs without the jobs they need (``deploy rollback``).
    alone: bool = False
    #: Job name → artifact reference its deployment must use (``deploy rollback`` pins a version).
    pins: Mapping[str, str] = field(default_factory=dict)
    #: Who approves deployments selected with ``--manual`` (default: ``$USER``).
    approver: str | None = None
    #: Seconds between two looks at the history for an approval decision.
    approval_poll: float = 0.5
    #: Deploy even what an environment already runs (``run --force``).
    force_deploy: bool = False
    #: A declared output that matches nothing after a successful job fails it (not only a warning).
    strict: bool = False
    #: Cap of each job attempt's log in bytes (0 = none); None: ``$BUILDYARD_LOG_LIMIT`` or 100 MB.
    log_limit: int | None = None
    #: Keep the workspace of an isolated job that failed (``run --keep-workspaces``).
    keep_workspaces: bool = False
    #: The executor backend by name (``local``, ``pool``, a plugin's); None: ``$BUILDYARD_EXECUTOR``
    #: or ``local`` (see ``engine.executors``).
    executor: str | None = None
    #: A pipeline already loaded (an imported GitLab file): used instead of reading ``file``.
    pipeline: Pipeline | None = None


@dataclass
class RunResult:
    """What a run produced."""

    plan: Plan
    pipeline: Pipeline
    status: RunStatus
    run: RunRecord | None = None
    jobs: list[JobResult] = field(default_factory=list)
    masker: Masker = field(default_factory=lambda: Masker(()))
    home: Path = Path()
    #: New / known / fixed test failures against the last successful run of the branch (with tests gates).
    triage: Any = None
    #: Tests flaky as of this run (passed and failed on one commit within 14 days).
    flaky: list[Any] = field(default_factory=list)


class RunObserver(Protocol):
    """Presentation hooks; called on the loop thread, must not block."""

    def started(self, run: RunRecord, plan: Plan) -> None:
        """The run is recorded and about to start."""

    def event(self, event: RunEvent) -> None:
        """A job started, is retrying or finished."""

    def output(self, job_id: str, data: bytes) -> None:
        """Masked output of a running job."""

    def warning(self, message: str) -> None:
        """Something degraded but the run goes on (e.g. the remote cache is unreachable)."""


def home_dir(options: RunOptions) -> Path:
    """The ``home`` setting (``BUILDYARD_HOME``, config file), else ``.buildyard/`` in the project."""
    if options.home is not None:
        return options.home
    from buildyard.settings import load as load_settings  # noqa: PLC0415 - run start-up stays lean

    return load_settings(options.project_dir).home


def warner(observer: RunObserver | None) -> Callable[[str], None]:
    """A function that hands a warning to the observer (if it takes warnings)."""

    def warn(message: str) -> None:
        if observer is not None and hasattr(observer, "warning"):
            observer.warning(message)

    return warn
