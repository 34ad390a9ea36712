"""The server's state and its services, without HTTP: projects, their histories, the run queue,
users and tokens, secrets and the audit log; and the actions the API exposes (trigger, cancel,
retry, approve, reject, rollback).

``ServerState`` is also the dashboard's ``DashboardSource`` (``projects``, ``history``, ``queue``,
``log_file``). Every method blocks on the database or git: the HTTP layer calls them from worker
threads, never on the event loop.
"""

from __future__ import annotations

import base64
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from buildyard.errors import NotFoundError, UsageError
from buildyard.server.audit import AuditLog
from buildyard.server.auth import Auth
from buildyard.server.config import ProjectConfig, ServerConfig
from buildyard.server.queue import Entry, RunQueue, check_variables
from buildyard.server.secrets import SecretStore, load_key
from buildyard.server.web.source import ProjectInfo, QueuedRun
from buildyard.store.history import History, JobRecord, RunRecord, SqlHistory, default_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from buildyard.spec.models import Pipeline
    from buildyard.triggers.deliveries import DeliveryResult, DeliveryService
    from buildyard.triggers.events import TriggerEvent
    from buildyard.views import RunView

_SHA = re.compile(r"^[0-9a-f]{7,64}$")
#: Where a project's webhook secret is kept in the secret store: a "project" no name can be (names
#: have no '/'), so it is never handed to runs nor listed with the project's secrets.
WEBHOOK_SECRET = "WEBHOOK_SECRET"  # noqa: S105 - the secret's name, not its value
PIPELINE_FILES = ("buildyard.yml", "buildyard.yaml")
MAX_PAGE = 200
GIT_TIMEOUT = 300
#: Seconds a project's webhook secret is kept in memory between two reads of the secret store.
SECRET_TTL = 5.0


class GitError(UsageError):
    """A repository, branch or commit the server cannot use."""


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git (no prompts); its stdout, or a ``GitError`` with git's own last line."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=GIT_TIMEOUT,
            env={
                "GIT_TERMINAL_PROMPT": "0",
                "PATH": "/usr/bin:/bin:/usr/local/bin",
                "HOME": str(Path.home()),
            },
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took more than {GIT_TIMEOUT} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        raise GitError(f"git {args[0]}: {last}")
    return out.stdout


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class WalCheckpointer:
    """Checkpoints the SQLite state database's WAL from its own thread, every ``interval`` seconds.

    SQLite checkpoints by itself in the commit that grows the WAL past 1,000 pages: that commit
    then copies and syncs the database file, and every webhook answer waiting on it (they commit
    in batches) stalled together — the slowest 1 % of 1,000 deliveries came in one block. Here the
    server's connections do not checkpoint; a PASSIVE checkpoint (it never blocks writers) runs
    beside them instead.
    """

    def __init__(self, engine: Engine, *, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        sa.event.listen(engine, "connect", _no_autocheckpoint)
        engine.dispose()  # connections opened before (the migration's) are made again with it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.checkpoint("PASSIVE")

    def checkpoint(self, mode: str) -> None:
        """One checkpoint (``PASSIVE``, or ``TRUNCATE`` at the end); a busy database is no error."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
        except sa.exc.SQLAlchemyError:
            pass  # the next one catches up

    def close(self) -> None:
        """Stop the thread after a last checkpoint (the WAL is left small)."""
        self._stop.set()
        self._thread.join()
        self.checkpoint("TRUNCATE")


class ServerState:
    """Everything the server keeps (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = SqlHistory(config.db_url)  # migrates the state database (the history schema's chain)
        self.engine: Engine = self._store.engine
        self.run_queue = RunQueue(self.engine)
        self.auth = Auth(self.engine)
        self.audit = AuditLog(self.engine)
        self.secrets = SecretStore(self.engine, load_key(config.data_dir))
        self._histories: dict[str, SqlHistory] = {}
        self._lock = threading.Lock()
        self._git_locks: dict[str, threading.Lock] = {p.name: threading.Lock() for p in config.projects}
        from buildyard.triggers.deliveries import DeliveryWriter  # noqa: PLC0415

        #: Commits webhook deliveries in batches from one thread (see ``DeliveryWriter``).
        self.delivery_writer = DeliveryWriter(self.engine)
        self._hook_secrets: dict[str, tuple[float, bytes]] = {}
        self._checkpoints: WalCheckpointer | None = None
        if self.engine.dialect.name == "sqlite":
            self._checkpoints = WalCheckpointer(self.engine)

    def close(self) -> None:
        """Close every database connection."""
        self.delivery_writer.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        for history in self._histories.values():
            history.close()
        self._store.close()

    # --- DashboardSource --------------------------------------------------------------------------

    def projects(self) -> list[ProjectInfo]:
        """The served projects, in configuration order."""
        return [ProjectInfo(p.name, p.root, p.default_branch, p.anonymous_read) for p in self.config.projects]

    def project(self, name: str) -> ProjectConfig:
        """The project ``name`` (``NotFoundError`` otherwise)."""
        found = self.config.project(name)
        if found is None:
            raise NotFoundError(f"no project '{name:.100}'")
        return found

    def history_url(self, project: str) -> str:
        """The history database of ``project`` (SQLite in its ``.buildyard/``)."""
        return default_url(self.project(project).home)

    def history(self, project: str) -> History:
        """The project's history store (opened once, shared; do not close)."""
        return self.sql_history(project)

    def sql_history(self, project: str) -> SqlHistory:
        """``history`` with the SQL store's full interface."""
        config = self.project(project)
        with self._lock:
            if project not in self._histories:
                config.home.mkdir(parents=True, exist_ok=True)
                self._histories[project] = SqlHistory(default_url(config.home))
            return self._histories[project]

    def queue(self, project: str | None = None) -> list[QueuedRun]:
        """Queued and executing runs (oldest first)."""
        return [
            QueuedRun(
                e.id,
                e.project,
                e.status,
                e.event,
                e.branch,
                e.sha,
                e.requested_by,
                e.enqueued_at,
                e.started_at,
                e.run_id,
            )
            for e in self.run_queue.list(project=project)
        ]

    def log_file(self, project: str, run_id: str, job_id: str) -> Path | None:
        """The log file of a job, when it exists under the project's home (never outside it)."""
        from buildyard.engine.factory import log_name, run_log_dir  # noqa: PLC0415

        record = self.run(project, run_id)
        job = self.job(project, record.id, job_id)
        home = self.project(project).home.resolve()
        # a running job's record has no log path yet: its log is where the engine puts every log
        path = Path(
            job.log_path or run_log_dir(home, record.pipeline, record.number) / log_name(job.id)
        ).resolve()
        if not path.is_relative_to(home) or not path.is_file():
            return None
        return path

    # --- reads ------------------------------------------------------------------------------------

    def run(self, project: str, ref: str) -> RunRecord:
        """A run of ``project`` by id, id prefix or number."""
        if not ref or len(ref) > 100:
            raise NotFoundError("no such run")
        return self.sql_history(project).get_run(ref)

    def run_view(self, project: str, ref: str) -> RunView:
        """A run with its jobs, steps, gates and deployments; a log counts only under the project's home."""
        from buildyard.views import load_run  # noqa: PLC0415

        record = self.run(project, ref)
        home = self.project(project).home.resolve()

        def log_exists(path: str) -> bool:
            where = Path(path).resolve()
            return where.is_relative_to(home) and where.is_file()

        return load_run(self.sql_history(project), record.id, log_exists=log_exists)

    def jobs(self, project: str, ref: str) -> tuple[RunRecord, list[JobRecord]]:
        """A run and its jobs."""
        record = self.run(project, ref)
        return record, self.sql_history(project).jobs(record.id)

    def job(self, project: str, ref: str, job_id: str) -> JobRecord:
        """One job of a run (by instance id, or by job name when it names one instance)."""
        record, jobs = self.jobs(project, ref)
        found = [j for j in jobs if j.id == job_id] or [j for j in jobs if j.job == job_id]
        if len(found) != 1:
            raise NotFoundError(f"run #{record.number} has no job '{job_id:.100}'")
        return found[0]

    def list_runs(
        self, project: str, *, limit: int = 50, cursor: str | None = None, **filters: str | None
    ) -> tuple[list[RunRecord], str | None]:
        """Newest runs first, filtered (branch, event, status, trigger), and the next page's cursor."""
        from buildyard.store.schema import runs  # noqa: PLC0415

        limit = max(1, min(limit, MAX_PAGE))
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1)
        for name in ("branch", "event", "status", "trigger", "pipeline"):
            value = filters.get(name)
            if value:
                query = query.where(getattr(runs.c, name) == value)
        if cursor:
            at, run_id = _decode_cursor(cursor)
            query = query.where(
                sa.or_(runs.c.created_at < at, sa.and_(runs.c.created_at == at, runs.c.id < run_id))
            )
        with self.sql_history(project).engine.connect() as conn:
            rows = [RunRecord(**row._asdict()) for row in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)

    # --- actions ----------------------------------------------------------------------------------

    def resolve(self, project: str, branch: str | None, sha: str | None) -> tuple[str, str]:
        """The branch and full commit a run of ``project`` checks out (fetching a remote repository)."""
        config = self.project(project)
        branch = branch or config.default_branch
        if branch.startswith("-") or len(branch) > 250:
            raise GitError(f"invalid branch name '{branch:.60}'")
        git("check-ref-format", "--branch", branch)
        source = self.source(config)
        if sha:
            if not _SHA.match(sha):
                raise GitError(f"'{sha:.60}' is not a commit sha (hex)")
            target = f"{sha}^{{commit}}"
        else:
            target = f"refs/heads/{branch}^{{commit}}"
        try:
            full = git("rev-parse", "--verify", "-q", target, cwd=source).strip()
        except GitError:
            what = f"commit {sha}" if sha else f"branch '{branch}'"
            raise GitError(f"project {project} has no {what}") from None
        return branch, full

    def source(self, config: ProjectConfig) -> Path:
        """The repository runs of ``config`` check out from: the local repository, or a mirror clone
        under the data directory (fetched here)."""
        if config.is_local:
            return Path(config.repo)
        mirror = self.config.data_dir / "mirrors" / f"{config.name}.git"
        with self._git_locks[config.name]:
            if not mirror.exists():
                mirror.parent.mkdir(parents=True, exist_ok=True)
                git("clone", "--mirror", "-q", "--", config.repo, str(mirror))
            else:
                git("fetch", "-q", "--prune", "origin", cwd=mirror)
        return mirror

    def trigger(
        self,
        project: str,
        *,
        requested_by: str,
        branch: str | None = None,
        sha: str | None = None,
        event: str = "push",
        variables: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        retry_of: str | None = None,
        inputs: dict[str, str] | None = None,
    ) -> Entry:
        """Queue a run of ``project`` at ``sha`` (default: the head of ``branch``).

        A manual run's ``inputs`` are checked against the ``on.manual.inputs`` of that commit's
        ``buildyard.yml`` (``validate_inputs``: types, choices, required, defaults) and reach the
        run as variables of the same names.
        """
        from buildyard.model import Event  # noqa: PLC0415

        if event not in {e.value for e in Event}:
            raise UsageError(f"unknown event '{event:.40}' ({', '.join(e.value for e in Event)})")
        if inputs and event != Event.MANUAL.value:
            raise UsageError(f"inputs are for manual runs (event manual), not {event}")
        branch, full = self.resolve(project, branch, sha)
        variables = dict(variables or {})
        # a retry keeps its run's values, and a rollback selects a deployment job: no new inputs
        fresh = retry_of is None and "select" not in (options or {})
        if event == Event.MANUAL.value and (inputs or fresh):
            variables.update(self._manual_inputs(project, full, inputs or {}))
            options = {**(options or {}), "inputs": sorted(inputs or {})}
        return self.run_queue.enqueue(
            project=project,
            event=event,
            branch=branch,
            sha=full,
            requested_by=requested_by,
            variables=check_variables(variables),
            options=options,
            retry_of=retry_of,
        )

    def _manual_inputs(self, project: str, sha: str, given: dict[str, str]) -> dict[str, str]:
        """``given`` validated against the commit's ``on.manual`` (``{}`` for a pipeline without
        ``on:``, which any event starts, when no input is given)."""
        from buildyard.triggers.inputs import validate_inputs  # noqa: PLC0415

        on = self.pipeline_at(project, sha).on
        if on is None and not given:
            return {}
        return validate_inputs(None if on is None else on.manual, given)

    def entry_of(self, project: str, ref: str) -> Entry:
        """A queue entry by its id, or the entry of history run ``ref``."""
        if re.fullmatch(r"[0-9a-f]{32}", ref):
            try:
                entry = self.run_queue.get(ref)
            except NotFoundError:
                pass
            else:
                if entry.project == project:
                    return entry
        record = self.run(project, ref)
        found = self.run_queue.by_run(record.id)
        if found is None:
            raise UsageError(f"run #{record.number} was not started by this server (cancel it where it runs)")
        return found

    def cancel(self, project: str, ref: str) -> Entry:
        """Cancel a queued run at once; ask the runner to stop an executing one."""
        return self.run_queue.cancel(self.entry_of(project, ref).id)

    def retry(self, project: str, ref: str, *, requested_by: str, job: str | None = None) -> Entry:
        """Queue the run ``ref`` again at the same commit (only ``job`` and what it needs, when given)."""
        record = self.run(project, ref)
        options: dict[str, Any] = {}
        if job is not None:
            target = self.job(project, record.id, job)
            options["select"] = [target.id]
        elif record.selected:
            options["select"] = list(record.selected)
        entry = self.run_queue.by_run(record.id)
        variables = entry.variables if entry is not None else dict(record.variables)
        return self.trigger(
            project,
            requested_by=requested_by,
            branch=record.branch or None,
            sha=record.sha or None,
            event=record.event,
            variables=variables,
            options=options,
            retry_of=record.id,
        )

    def decide(
        self, project: str, ref: str, job: str, decision: str, *, actor: str, comment: str = ""
    ) -> str:
        """Approve or reject a waiting deployment job; the job's id."""
        from buildyard.engine.deployctl import decide  # noqa: PLC0415

        if len(comment) > 1000:
            raise UsageError("the comment is longer than 1000 characters")
        history = self.sql_history(project)
        record = self.run(project, ref)
        return decide(history, record.id, job, decision, actor, comment).job.id

    def rollback(
        self, project: str, environment: str, *, requested_by: str, version: str | None = None
    ) -> Entry:
        """Queue a rollback run of ``environment`` to its previous good version (or ``version``)."""
        from buildyard.engine.deployctl import plan_rollback  # noqa: PLC0415

        plan = plan_rollback(self.sql_history(project), environment, version)
        config = self.project(project)
        options = {
            "select": [plan.job_id],
            "alone": True,
            "manual": [plan.job_id],
            "pins": {plan.job_id: plan.pin},
            "trigger": "rollback",
            "rollback": {
                "environment": plan.environment,
                "job_id": plan.job_id,
                "artifact": plan.artifact,
                "version": plan.version,
                "live_version": plan.live_version,
                "live_id": plan.live_id,
            },
        }
        return self.trigger(
            project, requested_by=requested_by, branch=config.default_branch, event="manual", options=options
        )

    # --- triggers ---------------------------------------------------------------------------------

    def deliveries(self, project: str) -> DeliveryService:
        """The webhook delivery log, queueing ``project``'s runs into this server's run queue."""
        from buildyard.triggers.deliveries import DeliveryService  # noqa: PLC0415

        def enqueue(conn: Connection, event: TriggerEvent) -> str:
            return self.enqueue_event(conn, project, event, requested_by=f"webhook:{event.source}")

        return DeliveryService(self.engine, enqueue, writer=self.delivery_writer)

    def receive(self, source: str, project: str, headers: dict[str, str], body: bytes) -> DeliveryResult:
        """Handle a webhook delivery for ``project`` (``DeliveryService.receive`` with its secret)."""
        from buildyard.triggers.webhooks import Source  # noqa: PLC0415

        self.project(project)
        return self.deliveries(project).receive(
            Source(source), project, headers, body, self.webhook_secret(project)
        )

    def redeliver(self, project: str, delivery: int, *, actor: str) -> DeliveryResult:
        """Queue a logged delivery of ``project`` again (a maintainer's redelivery)."""
        service = self.deliveries(project)
        if service.get(delivery).project != project:
            raise NotFoundError(f"no delivery #{delivery} in {project}")
        return service.redeliver(delivery, actor=actor)

    def enqueue_event(
        self, conn: Connection, project: str, event: TriggerEvent, *, requested_by: str, sha: str = ""
    ) -> str:
        """Queue a run of ``project`` for ``event`` in the caller's transaction (no git here: a hook
        answers at once). The runner fetches the commit, loads its ``buildyard.yml`` and closes the
        entry ``skipped`` ("not triggered: …") when its ``on:`` does not start the pipeline."""
        from buildyard.triggers.deliveries import event_json  # noqa: PLC0415

        config = self.project(project)
        options: dict[str, Any] = {"trigger": event.source[:32] or "server", "match": event_json(event)}
        if event.tag:
            options["tag"] = event.tag
        triggered_by, depth = self._chain(conn, project, event)
        return self.run_queue.enqueue_in(
            conn,
            project=project,
            event=event.event.value,
            branch=event.branch or ("" if event.tag else config.default_branch),
            sha=(sha or event.sha)[:64],
            requested_by=requested_by[:100],
            options=options,
            triggered_by=triggered_by,
            chain_depth=depth,
        )

    def _chain(self, conn: Connection, project: str, event: TriggerEvent) -> tuple[str | None, int]:
        """The run that pushed ``event``'s commit (its ``Buildyard-Run:`` trailer) and the new run's
        depth in that chain; ``ChainTooDeep`` beyond the server's ``trigger_chain_limit``."""
        from buildyard.store.serverstate import run_queue  # noqa: PLC0415
        from buildyard.triggers.chains import ChainTooDeep, triggering_run  # noqa: PLC0415

        parent = triggering_run(event.message)
        if parent is None:
            return None, 0
        row = conn.execute(
            sa.select(run_queue.c.chain_depth, run_queue.c.run_number).where(
                run_queue.c.run_id == parent, run_queue.c.project == project
            )
        ).first()
        depth = (int(row.chain_depth) if row is not None else 0) + 1
        limit = self.config.chain_limit
        if depth > limit:
            number = f"#{row.run_number}" if row is not None and row.run_number else parent[:12]
            raise ChainTooDeep(
                f"not queued: the commit was pushed by run {number}; this would be run {depth} in a row "
                f"triggered by a run's own push, more than trigger_chain_limit ({limit})"
            )
        return parent, depth

    def webhook_secret(self, project: str) -> bytes:
        """The project's webhook secret (empty: none set, every delivery is refused); kept
        ``SECRET_TTL`` seconds (a delivery need not read and decrypt it again; another process's
        change is seen after that long, this one's at once)."""
        now = time.monotonic()
        cached = self._hook_secrets.get(project)
        if cached is not None and now - cached[0] < SECRET_TTL:
            return cached[1]
        value = self.secrets.values(_hook_key(project)).get(WEBHOOK_SECRET, "").encode()
        self._hook_secrets[project] = (now, value)
        return value

    def set_webhook_secret(self, project: str, value: str, *, actor: str) -> None:
        """Set the project's webhook secret (never shown again)."""
        self.project(project)
        self.secrets.set(_hook_key(project), WEBHOOK_SECRET, value, actor=actor)
        self._hook_secrets.pop(project, None)

    def project_for_repository(self, names: list[str]) -> str | None:
        """The served project whose repository is one of ``names`` (clone URLs or full names)."""
        wanted = {_repo_key(n) for n in names if n}
        wanted.discard("")
        for config in self.config.projects:
            key = _repo_key(config.repo)
            if key in wanted or any(key.endswith("/" + w) for w in wanted if "/" in w):
                return config.name
        return None

    def pipeline_at(self, project: str, sha: str) -> Pipeline:
        """The pipeline of ``project`` as it is at commit ``sha`` (its ``buildyard.yml``)."""
        from buildyard.spec.load import loads  # noqa: PLC0415

        config = self.project(project)
        source = self.source(config)
        prefix = f"{config.subdir}/" if config.subdir else ""
        for name in PIPELINE_FILES:
            try:
                text = git("show", f"{sha}:{prefix}{name}", cwd=source)
            except GitError:
                continue
            return loads(text, f"{prefix}{name}@{sha[:12]}")
        raise NotFoundError(f"project {project} has no {prefix}buildyard.yml at {sha[:12]}")


def _hook_key(project: str) -> str:
    return f"{project}/hooks"


def _repo_key(name: str) -> str:
    """A repository's name for matching: no scheme, user, ``.git`` or trailing slash, lower case."""
    text = name.strip().lower().rstrip("/")
    text = text.removesuffix(".git")
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("@", 1)[-1]
    elif text.startswith("git@"):
        text = text[4:].replace(":", "/", 1)
    return text


def _encode_cursor(at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at!r}|{run_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, run_id = text.partition("|")
        return float(at), run_id[:64]
    except (ValueError, UnicodeDecodeError):
        raise UsageError("invalid cursor (use the 'next' value of the previous page)") from None
