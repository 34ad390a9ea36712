"""What the dashboard reads: the ``DashboardSource`` seam and its one-project implementation.

The dashboard never opens a database or walks a data directory itself: it asks a ``DashboardSource``
for the projects, each project's history store (open and shared, never closed by the dashboard), the
run queue, a job's log file and a run's view (``buildyard.views.RunView``, the object the CLI's
``show --json`` and the REST API give too). ``buildyard serve`` (server-core) implements it over its
data directory and run queue; ``ProjectDirSource`` serves one project directory (its SQLite history and
``.buildyard/logs``, an empty queue) and is what the dashboard's own tests run on.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from buildyard.errors import NotFoundError

if TYPE_CHECKING:
    from buildyard.store.history import History, SqlHistory
    from buildyard.views import RunView


@dataclass(frozen=True)
class ProjectInfo:
    """One served project."""

    name: str
    root: Path  # project directory (its .buildyard/ holds logs, artifacts)
    default_branch: str
    anonymous_read: bool = False


@dataclass(frozen=True)
class QueuedRun:
    """One entry of the server's run queue."""

    id: str  # queue entry id
    project: str
    status: str  # "queued" | "running" | "waiting" (approval) | "resuming" (approved) | "cancelling"
    event: str
    branch: str
    sha: str
    requested_by: str
    enqueued_at: float
    started_at: float | None
    run_id: str | None  # the history run id once started


class DashboardSource(Protocol):
    """Everything the dashboard reads, implemented by the server (and ``ProjectDirSource``)."""

    def projects(self) -> list[ProjectInfo]:
        """The served projects."""
        ...

    def history(self, project: str) -> History:
        """The project's history store (open, shared: the dashboard does not close it)."""
        ...

    def queue(self, project: str | None = None) -> list[QueuedRun]:
        """Queued and running entries (of ``project``, or all)."""
        ...

    def log_file(self, project: str, run_id: str, job_id: str) -> Path | None:
        """The masked log file of a job of a run, None when there is none (yet)."""
        ...

    def run_view(self, project: str, ref: str) -> RunView:
        """Run ``ref`` (id, id prefix, number, ``last``) with its jobs, steps, gates and deployments."""
        ...


def _default_branch(root: Path) -> str:
    """The checked-out branch of a git project ("main" when it cannot be told)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(root), "symbolic-ref", "--short", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        if out:
            return out
    return "main"


class ProjectDirSource:
    """One project directory: its history (``.buildyard/buildyard.db`` or ``db_url``), its logs, no queue."""

    def __init__(
        self,
        root: Path,
        *,
        name: str | None = None,
        db_url: str | None = None,
        default_branch: str | None = None,
        anonymous_read: bool = False,
    ) -> None:
        self.root = root.resolve()
        self.info = ProjectInfo(
            name=name or self.root.name,
            root=self.root,
            default_branch=default_branch or _default_branch(self.root),
            anonymous_read=anonymous_read,
        )
        self._db_url = db_url
        self._history: SqlHistory | None = None
        self._lock = threading.Lock()

    def projects(self) -> list[ProjectInfo]:
        """The one project."""
        return [self.info]

    def _check(self, project: str) -> None:
        if project != self.info.name:
            raise NotFoundError(f"no project '{project}'")

    def history(self, project: str) -> SqlHistory:
        """The project's history, opened on first use (abandoned runs closed, as the CLI does)."""
        self._check(project)
        with self._lock:
            if self._history is None:
                from buildyard.engine.runner import RunOptions, open_checked_history  # noqa: PLC0415
                from buildyard.store.history import SqlHistory  # noqa: PLC0415

                history = open_checked_history(RunOptions(project_dir=self.root, db_url=self._db_url))
                if not isinstance(history, SqlHistory):  # the dashboard's queries need its SQL engine
                    raise TypeError(f"the dashboard needs an SQL history, got {type(history).__name__}")
                self._history = history
            return self._history

    def queue(self, project: str | None = None) -> list[QueuedRun]:
        """A project directory has no queue."""
        return []

    def run_view(self, project: str, ref: str) -> RunView:
        """Run ``ref`` with its jobs, steps, gates and deployments (a log counts when its file is there)."""
        from buildyard.views import load_run  # noqa: PLC0415

        self._check(project)
        return load_run(self.history(project), ref, log_exists=lambda path: Path(path).is_file())

    def log_file(self, project: str, run_id: str, job_id: str) -> Path | None:
        """The job's log file, when it exists: the recorded path, or while the job runs (the engine
        records the path when the job ends) the run's log directory ``logs/<pipeline>/<number>/``."""
        self._check(project)
        history = self.history(project)
        job = next((j for j in history.jobs(run_id) if j.id == job_id), None)
        if job is None:
            return None
        if job.log_path:
            path = Path(job.log_path)
            return path if path.is_file() else None
        from buildyard.artifacts.repo import buildyard_home  # noqa: PLC0415
        from buildyard.engine.runner import log_name  # noqa: PLC0415

        number = history.get_run(run_id).number
        found = list((buildyard_home(self.root) / "logs").glob(f"*/{number}/{log_name(job_id)}"))
        return found[0] if len(found) == 1 and found[0].is_file() else None

    def close(self) -> None:
        """Close the history store."""
        with self._lock:
            if self._history is not None:
                self._history.close()
                self._history = None
