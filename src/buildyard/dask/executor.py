"""The ``dask`` executor backend: each job attempt runs on an agent of a Dask cluster.

``buildyard run --executor dask://HOST:PORT`` (or ``BUILDYARD_EXECUTOR=dask://…``) selects it. It sits
under the wrappers of ``engine.stack``: a cache hit is resolved on the orchestrator and never reaches
it. For a job it is given, the orchestrator

1. lists the job's files the way an isolated local job sees them (``workspace_files``: the
   git-visible files, uncommitted edits included, plus the outputs of the jobs it needs), digests
   them (a stat cache skips unchanged files) and puts the blobs its CAS lacks there;
2. serves that CAS over HTTP to the agents (``server.cache_app``, a random bearer token per
   executor, bound to ``cas_host`` on a free port); agents fetch only the blobs they lack;
3. submits :func:`buildyard.dask.agent.run_job` with an explicit key (``pure=False``); Dask re-runs
   the task on another worker when its agent dies (a second start event: the attempt's log notes
   ``agent_lost``); while connected it advances a heartbeat ``Variable`` the agents watch;
4. appends the masked output the agent streams live (Dask events on the run's topic) to the job's
   local log and shows it, replaces that with the agent's whole log at the end, and restores the
   declared outputs and gate reports (uploaded by the agent into the same CAS) into the project
   through the action cache's checked restore (``ActionCache.materialize``: confined to the
   declared patterns, verified blobs, atomic). Undeclared files a job writes stay on the agent.

Cancelling the attempt (Ctrl-C) sets the job's Dask ``Event``: the agent's supervisor kills the
job's process tree; the orchestrator waits for that (bounded) before it lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import secrets
import socket
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.cache.action_cache import ActionCache, ActionEntry, OutputFile
from buildyard.cache.hashing import FileHasher, StatCache, list_inputs
from buildyard.cache.pathsafe import UnsafePathError
from buildyard.cache.store import CacheStore
from buildyard.dask.agent import run_job
from buildyard.dask.certs import ClusterTLS, load_tls
from buildyard.dask.cluster import LABEL_PREFIX, AgentInfo, agents_of, parse_size, require_loopback
from buildyard.dask.wire import AgentJob, AgentResult, FileRef, distributed
from buildyard.engine.local import LocalExecutor
from buildyard.engine.request import (
    Executor,
    JobOutcome,
    JobRequest,
    OutputSink,
    log_note,
    outcome_without_steps,
)
from buildyard.engine.workspace import workspace_files
from buildyard.errors import UsageError
from buildyard.extras import require_extra
from buildyard.model import JobStatus
from buildyard.settings import DEFAULT_CLUSTER_HEARTBEAT
from buildyard.settings import load as load_settings

if TYPE_CHECKING:
    import uvicorn

Client = Any  # distributed.Client (partly annotated)
Future = Any  # distributed.Future

#: Default scheduler port of ``dask://HOST`` without one.
DEFAULT_PORT = 8786
#: ``runs_on: local``: the job runs on the orchestrator's machine, not on an agent.
LOCAL = "local"
#: The most output content an agent may return inline with a result (it sends at most 256 KiB).
INLINE_LIMIT = 1024 * 1024
#: How long the list of live agents (for placement checks) is reused.
AGENTS_TTL_S = 2.0


def scheduler_address(target: str) -> str:
    """``tcp://HOST:PORT`` for a ``dask://`` target (``HOST:PORT``, ``HOST``, ``tcp://…``, ``tls://…``).

    Plain ``tcp://`` is refused (``UsageError``) unless the host is a loopback address: between
    machines the cluster speaks TLS only.
    """
    target = target.strip().rstrip("/")
    if not target:
        raise UsageError("the dask executor needs a scheduler: use --executor dask://HOST:PORT")
    if "://" in target:
        address = target
    else:
        host, sep, port = target.rpartition(":")
        address = (
            f"tcp://{target}:{DEFAULT_PORT}" if not sep or not port.isdigit() else f"tcp://{host}:{port}"
        )
    scheme, _, rest = address.partition("://")
    if scheme not in ("tcp", "tls"):
        raise UsageError(
            f"scheduler {address!r}: use tls://HOST:PORT (or tcp://127.0.0.1:PORT on this machine)"
        )
    if scheme == "tcp":
        require_loopback(rest.rpartition(":")[0] or rest, "tcp://" + rest)
    return address


def serving_host(address: str) -> str:
    """The local address the agents of the scheduler at ``address`` reach this machine at."""
    host, _, port = address.partition("://")[2].rpartition(":")
    host = host.strip("[]")
    try:
        require_loopback(host, address)
    except UsageError:
        pass
    else:
        return "127.0.0.1"
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as probe:
            probe.connect(info[4])  # a UDP "connection" sends nothing: it only picks the route
            return str(probe.getsockname()[0])
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot find this machine's address toward {address}: {exc}") from None


class _CasServer:
    """The orchestrator's CAS served over HTTP to the agents, in a thread, on a free port."""

    def __init__(self, store: CacheStore, host: str, tls: ClusterTLS | None = None) -> None:
        import ssl  # noqa: PLC0415

        import uvicorn  # noqa: PLC0415 - only with the dask executor

        from buildyard.server.cache_app import Tokens, create_cache_app  # noqa: PLC0415

        self.token = secrets.token_urlsafe(32)
        app = create_cache_app(store, Tokens(write=frozenset({self.token})))
        # on a TLS cluster the job files are served over mutual TLS with the orchestrator's
        # certificate: only members of the cluster (a certificate of its CA) connect at all
        ssl_options: dict[str, Any] = (
            {
                "ssl_certfile": str(tls.cert),
                "ssl_keyfile": str(tls.key),
                "ssl_ca_certs": str(tls.ca),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
            if tls is not None
            else {}
        )
        config = uvicorn.Config(
            app, host=host, port=0, log_level="warning", access_log=False, lifespan="off", **ssl_options
        )
        self._server: uvicorn.Server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="buildyard-dask-cas", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"cannot serve the job files to the agents on {host}")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        port = sockets[0].getsockname()[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{port}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5.0)


class _LiveLog:
    """A job's output as it arrives from the agent: appended to its local log (``logs --follow``) and
    shown; replaced by the agent's whole log when the job ends (atomically)."""

    def __init__(self, request: JobRequest, sink: OutputSink | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.request = request
        self.sink = sink
        self.path = Path(request.log_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # earlier attempts stay in the log; this one's output starts at ``base``
        self.base = self.path.stat().st_size if request.attempt > 1 and self.path.exists() else 0
        if not self.base:  # a stale log of an earlier run with this number is not this job's
            self.path.unlink(missing_ok=True)
        self.received = 0
        self.closed = False

    def feed(self, data: bytes) -> None:
        """The event loop: one chunk of live output."""
        if self.closed:
            return
        self.received += len(data)
        with contextlib.suppress(OSError), self.path.open("ab") as log:  # the final log says it all
            log.write(data)
        if self.sink is not None:
            self.sink(self.request.job_id, data)

    def write_final(self, log: bytes) -> None:
        """The attempt's whole log after the earlier attempts' (temp file + rename)."""
        earlier = b""
        if not self.base and not log:  # a silent job has no log file, as a local one
            self.path.unlink(missing_ok=True)
            return
        if self.base:
            with self.path.open("rb") as f:
                earlier = f.read(self.base)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        with tmp.open("wb") as f:
            f.write(earlier + log)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


class DaskExecutor:
    """Runs job requests on the agents of the Dask scheduler at ``address`` (see the module docstring)."""

    #: Every job runs in a fresh workspace of its own on an agent: the stack adds no ``workspace`` layer.
    isolates = True

    def __init__(
        self, address: str | None = None, *, cas_host: str | None = None, certs: Path | None = None
    ) -> None:
        require_extra("dask", "the dask executor")
        self.address = scheduler_address(address or "")
        #: Where the job files are served (default: loopback, or on a TLS cluster elsewhere the
        #: address of this machine's interface that routes to the scheduler).
        self.cas_host = cas_host
        #: The directory of the cluster's TLS files (``tls://`` only; default: the ``cluster_certs`` setting).
        self.certs = certs
        self._tls: ClusterTLS | None = None
        self._project: Path | None = None
        self._client: Client | None = None
        self._live: dict[str, _LiveLog] = {}
        #: Job (its cancel event's name) → the agents that said they started it, in order.
        self._starts: dict[str, list[str]] = {}
        #: ``(project, run id)`` → the git-visible files, listed once per run: on a cluster the
        #: project changes during a run only by restored outputs, which jobs see as upstream outputs.
        self._listing: tuple[tuple[Path, str], list[str]] | None = None
        self._topics: set[str] = set()
        self._local: Executor | None = None
        self._agents_cache: list[AgentInfo] = []
        self._agents_at: float | None = None
        self._unreachable = ""
        self._cas: _CasServer | None = None
        self._store: CacheStore | None = None
        self._hasher = FileHasher(StatCache())
        self._lock = threading.Lock()
        #: The Dask ``Variable`` this orchestrator advances while it lives (agents watch it).
        self._alive = f"buildyard-alive-{secrets.token_hex(8)}"
        self._heartbeat_s = DEFAULT_CLUSTER_HEARTBEAT
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    @property
    def client(self) -> Client:
        """The Dask client (connected on first use); ``UsageError`` once the scheduler is lost."""
        with self._lock:
            if self._client is not None and self._client.status != "running":
                raise UsageError(self._lost())
            if self._client is None:
                if self._unreachable:  # said once: the run's other jobs fail at once, not after 10 s each
                    raise UsageError(self._unreachable)
                options: dict[str, Any] = {}
                tls = self._cluster_tls()
                if tls is not None:
                    options["security"] = tls.security("client")
                try:
                    self._client = distributed().Client(
                        self.address, set_as_default=False, timeout="10s", **options
                    )
                except (OSError, TimeoutError) as exc:
                    self._unreachable = f"cannot reach the Dask scheduler {self.address}: {exc}"
                    raise UsageError(self._unreachable) from None
                _one_line_dask_logs()
                self._beating = threading.Thread(
                    target=self._beat, args=(self._client,), name="buildyard-dask-alive", daemon=True
                )
                self._beating.start()
            return self._client

    def _lost(self) -> str:
        return (
            f"lost the Dask scheduler {self.address}: the run cannot go on (the agents kill its jobs "
            f"within {self._heartbeat_s:g}s)"
        )

    def _beat(self, client: Client) -> None:
        """Advance the alive variable every quarter of the heartbeat timeout until closed: agents
        kill this orchestrator's jobs when it stops (killed, frozen, cut off)."""
        variable = distributed().Variable(self._alive, client=client)
        interval = max(0.25, min(5.0, self._heartbeat_s / 4))
        beat = 0
        while True:
            beat += 1
            with contextlib.suppress(Exception):  # a scheduler gone: the jobs fail on their own
                variable.set(beat, timeout=interval)
            if self._stop.wait(interval):
                return

    def _cluster_tls(self) -> ClusterTLS | None:
        """The orchestrator's TLS files on a ``tls://`` cluster (``UsageError`` when there are none)."""
        if not self.address.startswith("tls://"):
            return None
        if self._tls is None:
            certs = self.certs or load_settings(self._project).cluster_certs
            if certs is None:
                raise UsageError(
                    f"{self.address} needs the cluster's client certificate: set BUILDYARD_CLUSTER_CERTS "
                    "to the directory 'buildyard cluster certs' wrote"
                )
            self._tls = load_tls(certs, "client")
        return self._tls

    def _serve(self, project: Path) -> tuple[CacheStore, _CasServer]:
        with self._lock:
            if self._project is None:
                self._project = project
                self._heartbeat_s = load_settings(project).cluster_heartbeat
            if self._store is None or self._cas is None:
                self._store = CacheStore(load_settings(project).home / "cas", private=True)
                self._store.ensure_root()
                host = self.cas_host or serving_host(self.address)
                self._cas = _CasServer(self._store, host, self._cluster_tls())
            return self._store, self._cas

    def close(self) -> None:
        """Disconnect from the scheduler and stop serving blobs."""
        self._stop.set()
        if self._beating is not None:
            self._beating.join(timeout=10.0)
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    distributed().Variable(self._alive, client=self._client).delete()
                with contextlib.suppress(Exception):  # a scheduler already gone: nothing to release
                    self._client.close()
                self._client = None
            if self._cas is not None:
                self._cas.close()
                self._cas = None
            close = getattr(self._local, "close", None)
            if callable(close):
                close()

    def _local_executor(self) -> Executor:
        if self._local is None:
            self._local = LocalExecutor("spawn")
        return self._local

    def _agents(self, client: Client) -> list[AgentInfo]:
        """The live agents (asked at most every ``AGENTS_TTL_S``)."""
        now = time.monotonic()
        if self._agents_at is None or now - self._agents_at > AGENTS_TTL_S:
            self._agents_cache = agents_of(client.scheduler_info(n_workers=-1))
            self._agents_at = now
        return self._agents_cache

    def _placement(self, client: Client, request: JobRequest) -> dict[str, float]:
        """Blocking: the Dask resources ``request`` takes; ``UsageError`` when no live agent has them."""
        labels = tuple(sorted(set(request.runs_on) - {LOCAL}))
        agents = self._agents(client)
        wanted = {f"{LABEL_PREFIX}{label}": 1.0 for label in labels}
        declared = {name for a in agents for name in a.resources}
        for name, value in request.resources:
            if name in declared:  # counted only where agents declare it (else it would match none)
                wanted[name] = parse_size(value) if name == "mem" else float(value)
        if not wanted:
            return wanted
        if any(all(a.capacity(k) >= v for k, v in wanted.items()) for a in agents):
            return wanted
        if not any(set(labels) <= set(a.labels) for a in agents):
            self._agents_at = None  # ask again next time: an agent may join
            raise UsageError(f"no agent has labels {', '.join(labels)} (agents: {_describe(agents)})")
        asked = ", ".join(f"{k}={v:g}" for k, v in sorted(wanted.items()) if not k.startswith(LABEL_PREFIX))
        raise UsageError(f"no agent has resources {asked} (agents: {_describe(agents)})")

    def _prepare(self, request: JobRequest) -> AgentJob:
        """Blocking: the job's files by content (their blobs put into the CAS) and the agent's job."""
        project = Path(request.project_root or (request.cache.project_root if request.cache else request.cwd))
        store, cas_server = self._serve(project)
        cwd = _relative_cwd(request, project)
        dependencies = _dependency_paths(request, cwd)
        with self._lock:
            listing = self._listing
        if listing is None or listing[0] != (project, request.run_id):
            listing = ((project, request.run_id), list_inputs(project))
            with self._lock:
                self._listing = listing
        rels = workspace_files(project, (*request.upstream_outputs, *dependencies), git_files=listing[1])
        regular: list[str] = []
        links: dict[str, str] = {}
        modes: dict[str, tuple[int, int]] = {}
        for rel in rels:
            try:
                st = os.lstat(project / rel)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links[rel] = str((project / rel).readlink())
            elif stat.S_ISREG(st.st_mode):
                regular.append(rel)
                modes[rel] = (0o755 if st.st_mode & 0o111 else 0o644, st.st_size)
        digests = self._hasher.digest_paths(project, regular)
        cas = store.cas
        files: list[FileRef] = []
        for rel in rels:
            if rel in links:
                files.append(FileRef(rel, symlink=links[rel]))
            elif rel in digests:
                digest = digests[rel]
                if not cas.has(digest):
                    digest = cas.put_file(project / rel)  # the content now (it may have changed)
                files.append(FileRef(rel, digest, *modes[rel]))
        token = secrets.token_hex(6)
        name = f"{request.run_id}-{request.job_id}-{request.attempt}-{token}"
        return AgentJob(
            request=replace(request, cwd=cwd, log_path="", cache=None, workspace=None),
            files=tuple(files),
            cas_url=cas_server.url,
            cas_token=cas_server.token,
            cancel_event=f"buildyard-cancel-{name}",
            log_topic=f"buildyard-log-{request.run_id}",
            collect=_collected(request, dependencies),
            alive_variable=self._alive,
            orchestrator_timeout=self._heartbeat_s,
        )

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run ``request`` on an agent; restore its outputs and write its log here."""
        if request.runs_on == (LOCAL,):
            return await self._local_executor().execute(request, sink)
        started_at = time.time()
        try:
            job, client, wanted = await asyncio.to_thread(self._ready, request)
        except (OSError, UsageError) as exc:
            message = str(exc) if isinstance(exc, UsageError) else f"cannot ship the job's files: {exc}"
            log_note(request, message, sink)
            return outcome_without_steps(request, JobStatus.FAILED, started_at, message)
        key = f"buildyard-job-{job.cancel_event.removeprefix('buildyard-cancel-')}"
        live = _LiveLog(request, sink)
        self._follow(client, job, live)
        future = client.submit(run_job, job, key=key, pure=False, resources=wanted or None)
        done = _bridge(future)
        try:
            try:
                result = await asyncio.shield(done)
            finally:
                self._live.pop(job.cancel_event, None)
                live.closed = True  # late chunks are dropped: the final log is whole
        except asyncio.CancelledError:
            await self._cancel(client, job, future, done, request.kill_grace)
            raise
        except Exception as exc:  # noqa: BLE001 - Dask gave up (KilledWorker: every agent it ran on died)
            if client.status != "running":  # the scheduler is gone: Dask cancelled every future
                message = self._lost()
            else:
                message = f"agent_lost: {type(exc).__name__}: {exc}"[:500]
            log_note(request, message, sink)
            return outcome_without_steps(request, JobStatus.FAILED, started_at, message)
        finally:
            starts = self._starts.pop(job.cancel_event, [])
        lost = next((agent for agent in starts if agent != result.agent), "")
        return await asyncio.to_thread(self._finish, request, result, sink, live, lost)

    def _ready(self, request: JobRequest) -> tuple[AgentJob, Client, dict[str, float]]:
        """Blocking, in one thread hop: the agent's job, the client, the resources it takes."""
        job = self._prepare(request)
        client = self.client
        return job, client, self._placement(client, request)

    async def _cancel(
        self, client: Client, job: AgentJob, future: Future, done: asyncio.Future[Any], grace: float
    ) -> None:
        """Have the agent kill the job's process tree, wait for it (bounded), drop the task."""

        with contextlib.suppress(Exception):
            await asyncio.to_thread(distributed().Event(job.cancel_event, client=client).set)
            await asyncio.wait_for(asyncio.shield(done), timeout=grace + 5.0)
        with contextlib.suppress(Exception):
            future.cancel()

    def _follow(self, client: Client, job: AgentJob, live: _LiveLog) -> None:
        """Route the job's live output (events of its run's topic) to ``live``."""
        self._live[job.cancel_event] = live
        if job.log_topic not in self._topics:
            self._topics.add(job.log_topic)
            client.subscribe_topic(job.log_topic, self._on_event)

    def _on_event(self, event: tuple[float, Any]) -> None:
        """Dask's client thread: hand a chunk of live output to its job's loop."""
        msg = event[1]
        if not isinstance(msg, dict):
            return
        name = str(msg.get("job", ""))
        start = msg.get("start")
        if isinstance(start, str) and name in self._live:
            self._starts.setdefault(name, []).append(start[:200])
            return
        live = self._live.get(name)
        data = msg.get("data")
        if live is not None and isinstance(data, bytes):
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                live.loop.call_soon_threadsafe(live.feed, data)

    def _finish(
        self,
        request: JobRequest,
        result: AgentResult,
        sink: OutputSink | None,
        live: _LiveLog,
        lost_agent: str = "",
    ) -> JobOutcome:
        """Blocking: the agent's log into the local log (replacing the live copy), its outputs into
        the project."""
        live.write_final(result.log)
        if sink is not None:
            if not result.streamed:
                sink(request.job_id, result.log)
            elif result.streamed > live.received:  # the last chunks were still on their way: the tail
                sink(request.job_id, result.log[len(result.log) - (result.streamed - live.received) :])
        outcome = replace(result.outcome, log_path=request.log_path)
        if lost_agent:
            note = f"agent_lost: agent {lost_agent} was lost mid-job; re-run on {result.agent}"
            log_note(request, note, sink)
            outcome = replace(outcome, message=outcome.message or note)
        if outcome.status != JobStatus.SUCCESS:
            if result.outputs:  # its reports (the gates, test analytics), as a failed local job leaves them
                self._restore(request, result)
            return outcome
        problem = result.problem or self._restore(request, result)
        if problem:
            log_note(request, problem, sink)
            return replace(outcome, status=JobStatus.FAILED, exit_code=None, message=problem)
        # the outputs were collected into the project now (like an isolated job's): the cache refuses
        # an output changed after that moment, and the restore must not look like such a change
        return replace(
            outcome, finished_at=max(outcome.finished_at, time.time()), outputs_root=request.project_root
        )

    def _restore(self, request: JobRequest, result: AgentResult) -> str:
        """Write the agent's outputs into the project; "" or what went wrong (one line)."""
        if not result.outputs:
            return ""
        assert self._store is not None  # noqa: S101 - served before the job was submitted
        entry = ActionEntry(
            key=f"dask-{request.job_id}",
            job=request.job_id,
            outputs=tuple(
                OutputFile(o.path, symlink=o.symlink)
                if o.symlink is not None
                else OutputFile(o.path, o.digest, o.mode, o.size)
                for o in result.outputs
            ),
            exit_code=0,
            log_digest=None,
            duration_s=result.outcome.duration_s,
            created=time.time(),
        )
        project = Path(request.project_root)
        # small outputs came with the result: into the CAS, each checked against its digest (bounded)
        refused = f"outputs of {request.job_id} from {result.agent} not restored"
        if sum(len(data) for _digest, data in result.inline) > INLINE_LIMIT:
            return f"{refused}: too large to travel inline"
        for digest, data in result.inline:
            if self._store.cas.put_bytes(data) != digest:
                return f"{refused}: a blob does not match its digest"
        try:
            allowed = _collected(request, _dependency_paths(request, _relative_cwd(request, project)))
            # the orchestrator's own patterns, never the agent's word: an agent writes nothing else
            written = ActionCache(self._store).materialize(entry, project, outputs=allowed)
        except (UnsafePathError, OSError) as exc:
            return f"outputs of {request.job_id} from {result.agent} not restored: {exc}"
        if written is None:
            return (
                f"outputs of {request.job_id} from {result.agent} not restored: a blob is missing or corrupt"
            )
        return ""


#: Dask's loggers that report a lost connection (with tracebacks) on the orchestrator.
_DASK_LOGGERS = (
    "distributed.client",
    "distributed.core",
    "distributed.utils",
    "distributed.batched",
    "distributed.comm.core",
    "distributed.comm.tcp",
)


class _OneLine(logging.Filter):
    """A Dask error as one line, without its traceback: a lost scheduler or agent is reported by the
    run itself, in one line; Dask's own account stays, shortened."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            shown = f"{type(error).__name__}: {error}" if error is not None else ""
            record.msg = " ".join(part for part in (record.getMessage().strip(), shown) if part)
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _one_line_dask_logs() -> None:
    for name in _DASK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())


def _relative_cwd(request: JobRequest, project: Path) -> str:
    """The job's directory relative to the project ("" for the project itself)."""
    cwd = os.path.relpath(request.cwd, project)
    return "" if cwd == "." or cwd.startswith("..") else cwd


def _dependency_paths(request: JobRequest, cwd: str) -> tuple[str, ...]:
    """The job's dependency cache paths (``cache: paths``, relative to its directory), project-relative:
    restored into the project before the job, they travel like inputs, and come back like outputs."""
    if request.cache is None:
        return ()
    paths = [p for dep in request.cache.dependency_caches for p in dep.paths]
    return tuple(posixpath.normpath(posixpath.join(cwd, p)) if cwd else p for p in paths)


def _collected(request: JobRequest, dependencies: tuple[str, ...]) -> tuple[str, ...]:
    """What comes back from the agent: outputs, gate reports, dependency cache paths (no repeats)."""
    return tuple(dict.fromkeys((*request.output_globs, *request.reports, *dependencies)))


def _describe(agents: list[AgentInfo]) -> str:
    if not agents:
        return "none"
    shown = []
    for a in agents:
        resources = " ".join(f"{k}={v:g}" for k, v in sorted(a.resources.items()))
        shown.append(f"{a.name} [{','.join(a.labels) or '-'}] {resources}".rstrip())
    return "; ".join(shown)


def dask_executor(target: str = "") -> DaskExecutor:
    """The ``dask`` backend (entry point): ``target`` is ``HOST:PORT`` of ``dask://HOST:PORT``."""
    return DaskExecutor(target or None)


def dask_tls_executor(target: str = "") -> DaskExecutor:
    """The ``tls`` backend (entry point): ``tls://HOST:PORT``, a cluster spoken to over mutual TLS."""
    if not target:
        raise UsageError("the tls executor needs a scheduler: use --executor tls://HOST:PORT")
    return DaskExecutor(f"tls://{target}")


def _bridge(future: Future) -> asyncio.Future[Any]:
    """An asyncio future of this loop settled with the Dask ``future``'s result (no thread per job)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(_: object) -> None:
        try:
            value = future.result()  # Dask runs done callbacks in a thread of its own: may block
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
            error = exc

            def fail() -> None:
                if not done.done():
                    done.set_exception(error)

            loop.call_soon_threadsafe(fail)
            return

        def ok() -> None:
            if not done.done():
                done.set_result(value)

        loop.call_soon_threadsafe(ok)

    future.add_done_callback(settle)
    return done
