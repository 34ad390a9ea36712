"""The supervisor a job runs under on an agent (a Dask worker): content in, process tree, outputs out.

:func:`run_job` is the Dask task. It makes a clean workspace under the agent's work directory from
the job's files by content (blobs come from the agent's local blob cache, bounded by
``blobcache``, else from the orchestrator's CAS over HTTP(S): only missing blobs travel), runs the
steps with the local executor (process groups, timeouts that kill the tree, masked log capture),
returns small outputs inline and uploads the larger outputs' blobs the orchestrator lacks, and
removes the workspace. The log is written masked; secrets exist only in memory (the request's
environment). It announces its start on the run's log topic (no round trip): a second start of the
same job by another agent tells the orchestrator the first was lost.

Dask cannot interrupt a running task: a watcher thread cancels the job, which kills its process
tree, when the orchestrator sets the job's Dask ``Event`` (cancel, Ctrl-C), when Dask releases the
task (its orchestrator disconnected), or when the orchestrator's heartbeat stops (see ``_Watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from buildyard.cache.cas import CAS
from buildyard.cache.hashing import list_inputs
from buildyard.cache.pathsafe import check_symlink, is_protected, normalize_mode
from buildyard.dask.blobcache import DEFAULT_CACHE_SIZE, blob_cache
from buildyard.dask.wire import AgentJob, AgentResult, FileRef, distributed
from buildyard.dask.workspaces import Workspace, WorkspacePool, prepare
from buildyard.engine.local import LocalExecutor
from buildyard.engine.request import JobOutcome, JobRequest, outcome_without_steps
from buildyard.errors import BuildyardError
from buildyard.model import JobStatus

if TYPE_CHECKING:
    from buildyard.cache.remote import RemoteCache

#: Output blobs up to this size (stored, compressed) are uploaded without asking whether the server has them.
SMALL_BLOB = 64 * 1024
#: Output files of at most ``SMALL_BLOB`` bytes travel in the result, up to this much per job.
INLINE_TOTAL = 256 * 1024
#: Live output is sent at most this often, or as soon as this much is waiting.
LIVE_INTERVAL_S = 0.1
LIVE_CHUNK = 64 * 1024
#: A cached blob used again is marked used (its mtime, for LRU eviction) if it was not for this long.
TOUCH_AFTER_S = 60.0
#: How often the watcher asks the scheduler whether the job was cancelled (seconds).
CANCEL_POLL_S = 0.2


#: Dask config key of the agent's directory (``DASK_BUILDYARD__AGENT_DIR``).
AGENT_DIR_CONFIG = "buildyard.agent-dir"
#: Dask config key of the agent's blob cache limit in bytes (``DASK_BUILDYARD__AGENT_CACHE_SIZE``).
CACHE_SIZE_CONFIG = "buildyard.agent-cache-size"


class FetchError(BuildyardError):
    """A blob of the job's workspace could not be fetched from the orchestrator's CAS."""


def agent_dir() -> Path:
    """This agent's buildyard directory: ``<--work-dir>/buildyard`` (Dask's config ``buildyard.agent-dir``,
    set by ``buildyard agent``), else under the worker's own directory (new at each start)."""
    import dask.config  # noqa: PLC0415 - on an agent, already loaded

    configured = dask.config.get(AGENT_DIR_CONFIG, default=None)
    if configured:
        return Path(str(configured))
    return Path(distributed().get_worker().local_directory) / "buildyard"


def _materialize(job: AgentJob, cas: CAS, root: Path, parked: Workspace | None = None) -> Workspace:
    """Make the job's workspace ``root`` (which must not exist) from ``job.files``, starting from the
    ``parked`` workspace of an earlier job if given, fetching the blobs ``cas`` lacks (the caller
    pins them); the blobs already there are marked used (the cache evicts the oldest)."""
    missing: list[str] = []
    for digest in sorted({f.digest for f in job.files if f.symlink is None}):
        if not cas.used(digest, older_than=TOUCH_AFTER_S):
            missing.append(digest)
    if missing:
        remote, problems = _remote(job)
        for digest in missing:
            if not remote.fetch_blob(digest, cas):
                raise FetchError(f"blob {digest[:12]} unavailable from {job.cas_url} {''.join(problems)}")
    return prepare(root, job.files, cas, parked)


def _collect(
    job: AgentJob, cas: CAS, root: Path, pin: Callable[[str], None]
) -> tuple[tuple[FileRef, ...], tuple[tuple[str, bytes], ...]]:
    """The declared outputs: small files' content returned inline (up to ``INLINE_TOTAL`` in all),
    the others stored in ``cas`` (each blob pinned by ``pin`` until uploaded) and uploaded if the
    orchestrator lacks them."""
    patterns = list(job.collect)
    if not patterns:
        return (), ()
    refs: list[FileRef] = []
    inline: dict[str, bytes] = {}
    room = INLINE_TOTAL
    for rel in list_inputs(root, patterns):
        if is_protected(rel):
            continue
        full = root / rel
        st = full.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = str(full.readlink())
            check_symlink(rel, target)
            refs.append(FileRef(rel, symlink=target))
        elif stat.S_ISREG(st.st_mode):
            size = st.st_size
            if size <= min(SMALL_BLOB, room):
                data = full.read_bytes()
                digest, size = blake3(data).hexdigest(), len(data)
                if digest not in inline:
                    inline[digest] = data
                    room -= size
            else:
                digest = cas.put_file(full)
                pin(digest)
                cas.touch(digest)
            refs.append(FileRef(rel, digest, normalize_mode(st.st_mode), size))
    uploads = sorted({r.digest for r in refs if r.symlink is None} - set(inline))
    if not uploads:
        return tuple(refs), tuple(inline.items())
    remote, problems = _remote(job)
    for digest in uploads:
        # small blobs go up at once (the server keeps one copy); large ones only if it lacks them
        size = cas.stored_size(digest)
        if (size > SMALL_BLOB or not remote.has_blob(digest)) and not remote.put_blob(digest, cas):
            raise FetchError(f"output blob {digest[:12]} could not be uploaded {''.join(problems)}")
    return tuple(refs), tuple(inline.items())


_clients = threading.local()


def _remote(job: AgentJob) -> tuple[RemoteCache, list[str]]:
    """This thread's client of the job's CAS server (kept across jobs: one connection pool), and the
    problems it reported. A client that failed once is replaced."""
    from buildyard.cache.remote import RemoteCache  # noqa: PLC0415 - httpx only when needed

    key = (job.cas_url, job.cas_token)
    held: tuple[tuple[str, str], RemoteCache, list[str]] | None = getattr(_clients, "held", None)
    if held is None or held[0] != key or held[1].disabled:
        if held is not None:
            held[1].close()
        problems: list[str] = []
        context = None
        if job.cas_url.startswith("https://"):  # the orchestrator of a TLS cluster: this agent's certificate
            security = distributed().get_worker().security
            context = security.get_connection_args("worker")["ssl_context"]
        remote = RemoteCache(
            job.cas_url, job.cas_token, timeout=30.0, warn=problems.append, ssl_context=context
        )
        held = (key, remote, problems)
        _clients.held = held
    held[2].clear()
    return held[1], held[2]


class _Watch:
    """Why a running job must stop, asked every ``CANCEL_POLL_S`` by the watcher thread: the
    orchestrator set the job's cancel ``Event`` (cancel, Ctrl-C, timeout); Dask released the task
    (its orchestrator disconnected: killed, or closed); or the orchestrator's alive ``Variable`` did
    not advance for ``job.orchestrator_timeout`` seconds (frozen, or no scheduler to ask)."""

    def __init__(self, job: AgentJob, worker: Any, key: object, client: Any) -> None:
        self.job = job
        self.worker = worker
        self.key = key
        #: The worker's client, taken in the task's thread (the watcher's thread has no worker context).
        self.client = client
        self.last_beat: object = None
        self.heard = time.monotonic()
        self.asked = 0.0

    def released(self) -> bool:
        """Dask no longer wants the task's result (the client that asked for it is gone)."""
        if self.key is None:
            return False
        state = getattr(self.worker, "state", None)
        task = state.tasks.get(self.key) if state is not None else None
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def orphaned(self) -> bool:
        """No news from the orchestrator for ``orchestrator_timeout`` (its variable read at most 4 times
        per timeout, at most every second)."""
        if not self.job.alive_variable:
            return False
        now = time.monotonic()
        if now - self.asked >= min(1.0, self.job.orchestrator_timeout / 4):
            self.asked = now
            with contextlib.suppress(Exception):  # unset yet, or no scheduler: no news
                variable = distributed().Variable(self.job.alive_variable, client=self.client)
                beat = variable.get(timeout=CANCEL_POLL_S)
                if beat != self.last_beat:
                    self.last_beat, self.heard = beat, now
        return now - self.heard > self.job.orchestrator_timeout


def _watch_cancel(watch: _Watch, stop: threading.Event, cancel: Callable[[], object]) -> None:
    event = distributed().Event(watch.job.cancel_event, client=watch.client)
    while not stop.is_set():
        try:
            if event.wait(timeout=CANCEL_POLL_S):
                cancel()
                return
        except Exception:  # noqa: BLE001 - the scheduler is gone: the orchestrator's silence decides
            stop.wait(CANCEL_POLL_S)
        if stop.is_set():
            return  # the job ended (its result taken, so its task is released): nothing to cancel
        if watch.released() or watch.orphaned():
            cancel()
            return


def run_job(job: AgentJob) -> AgentResult:
    """The Dask task: run one attempt of one job in a clean workspace on this agent."""
    get_worker = distributed().get_worker

    worker = get_worker()
    me = worker.address
    if job.log_topic:  # no round trip: batched with the worker's other messages
        worker.log_event(job.log_topic, {"job": job.cancel_event, "start": me})
    base = agent_dir()
    cache = blob_cache(base / "cas", cache_limit())
    cas = cache.cas()
    pool = _workspace_pool(base, worker)
    jobs = base / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    slot = jobs / f"{job.request.job_id.replace('/', '_')[:80]}-{secrets.token_hex(4)}"
    made: list[Workspace] = []
    try:
        with cache.pinned(f.digest for f in job.files if f.symlink is None) as held:
            return _run_in(job, cas, slot, me, lambda digest: cache.pin(held, digest), pool, made)
    finally:
        for workspace in made:
            pool.park(workspace)
        shutil.rmtree(slot, ignore_errors=True)
        cache.added(cas.take_added())
        cache.trim()


_pools: dict[Path, WorkspacePool] = {}
_pools_lock = threading.Lock()


def _workspace_pool(base: Path, worker: Any) -> WorkspacePool:
    """This process's parked workspaces under ``base`` (as many as the agent has slots)."""
    with _pools_lock:
        pool = _pools.get(base)
        if pool is None:
            slots = int(getattr(getattr(worker, "state", None), "nthreads", 1) or 1)
            pool = _pools[base] = WorkspacePool(base / "parked", keep=slots)
        return pool


def _run_in(
    job: AgentJob,
    cas: CAS,
    slot: Path,
    me: str,
    pin: Callable[[str], None],
    pool: WorkspacePool,
    made: list[Workspace],
) -> AgentResult:
    """The attempt in the job's directory ``slot``: workspace (in ``made`` once made), steps, outputs."""
    request = job.request
    root = slot / "ws"
    log_path = slot / "job.log"
    try:
        slot.mkdir()
        made.append(_materialize(job, cas, root, pool.take(job.files)))
    except (OSError, BuildyardError) as exc:
        outcome = outcome_without_steps(
            replace(request, log_path=""), JobStatus.FAILED, _now(), f"workspace on {me}: {exc}"
        )
        return AgentResult(outcome, b"", (), me)
    cwd = (root / request.cwd).resolve()
    if not cwd.is_relative_to(root.resolve()):
        msg = f"working directory {request.cwd!r} leaves the workspace"
        outcome = outcome_without_steps(replace(request, log_path=""), JobStatus.FAILED, _now(), msg)
        return AgentResult(outcome, b"", (), me)
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(request.env)
    env.update({"BUILDYARD_WORKSPACE": str(root), "CI_PROJECT_DIR": str(root), "BUILDYARD_AGENT": me})
    local_request = replace(
        request, cwd=str(cwd), log_path=str(log_path), env=tuple(env.items()), workspace=None, cache=None
    )
    outcome, streamed = _run_supervised(job, local_request)
    log = log_path.read_bytes() if log_path.exists() else b""
    problem = ""
    outputs: tuple[FileRef, ...] = ()
    inline: tuple[tuple[str, bytes], ...] = ()
    if outcome.status == JobStatus.SUCCESS or job.request.reports:  # a failed job's reports matter too
        try:
            outputs, inline = _collect(job, cas, root, pin)
        except (OSError, BuildyardError) as exc:
            problem = f"outputs on {me}: {exc}"
    return AgentResult(outcome, log, outputs, me, problem, streamed, inline)


def cache_limit() -> int | None:
    """This agent's blob cache limit in bytes (``agent --cache-size``, through Dask's config; None: none)."""
    import dask.config  # noqa: PLC0415 - on an agent, already loaded

    value = dask.config.get(CACHE_SIZE_CONFIG, default=None)
    if value is None:
        return DEFAULT_CACHE_SIZE
    limit = int(value)
    return limit if limit > 0 else None


class _LiveLog:
    """Sends a job's masked output to the orchestrator as it comes (Dask events, batched by time)."""

    def __init__(self, job: AgentJob, loop: asyncio.AbstractEventLoop) -> None:
        self.worker = distributed().get_worker()
        self.topic = job.log_topic
        self.name = job.cancel_event
        self.loop = loop
        self.buffer = bytearray()
        self.sent = 0
        self.scheduled = False

    def sink(self, _job: str, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= LIVE_CHUNK:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_later(LIVE_INTERVAL_S, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self.worker.log_event(self.topic, {"job": self.name, "data": data})
            self.sent += len(data)


_executors = threading.local()


def _thread_executor() -> LocalExecutor:
    """This slot's (job thread's) local executor, kept across jobs: its process spawner, and the
    run's watchdog that kills the run's jobs if this agent dies, are made once per run, not per job."""
    executor: LocalExecutor | None = getattr(_executors, "held", None)
    if executor is None:
        executor = _executors.held = LocalExecutor("spawn")
    return executor


def _run_supervised(job: AgentJob, request: JobRequest) -> tuple[JobOutcome, int]:
    """Run ``request`` with the local executor, cancelled when the job's cancel event is set; the
    outcome and the bytes of output streamed live."""
    worker = distributed().get_worker()
    watch = _Watch(job, worker, worker.get_current_task(), distributed().get_client())
    executor = _thread_executor()
    loop = asyncio.new_event_loop()
    live = _LiveLog(job, loop) if job.log_topic else None
    task = loop.create_task(executor.execute(request, live.sink if live is not None else None))
    stop = threading.Event()

    def cancel() -> None:
        with contextlib.suppress(RuntimeError):  # the job ended meanwhile: its loop is closed
            loop.call_soon_threadsafe(task.cancel)

    watcher = threading.Thread(
        target=_watch_cancel,
        args=(watch, stop, cancel),
        name="buildyard-cancel-watch",
        daemon=True,
    )
    watcher.start()
    try:
        outcome = loop.run_until_complete(task)
    except asyncio.CancelledError:
        outcome = outcome_without_steps(request, JobStatus.CANCELLED, _now(), "cancelled")
    finally:
        if live is not None:
            live.flush()
        stop.set()
        loop.close()
    return outcome, live.sent if live is not None else 0


def _now() -> float:
    import time  # noqa: PLC0415

    return time.time()
