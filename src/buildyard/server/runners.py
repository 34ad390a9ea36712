"""The runner pool: takes runs from the queue and executes each in a child process, in its own
checkout of the requested commit under the data directory (removed afterwards).

One supervisor thread looks at the queue every ``poll`` seconds: while fewer than ``runners`` entries
hold a runner (``running`` or ``cancelling``), it gives one back to the entries that ask for it
(``resuming``: an approval let their run go on), then starts a worker for each queued entry; and it
tells workers of entries marked ``cancelling`` to stop. An entry ``waiting`` for an approval holds no
runner: its process sleeps in the engine's approval wait, and its scheduler runs no job until the
pool has made it ``running`` again (``runjob.RunnerLease``), so at no moment do more than ``runners``
runs execute jobs. A worker checks out, starts
``python -m buildyard.server.runjob`` in a new session, waits, records the outcome and cleans up.

Cancelling sends SIGTERM to the child (the engine treats it as Ctrl-C: its jobs' process groups are
ended and the run recorded ``cancelled``); after the grace period the child's group gets SIGKILL and
the run is closed as abandoned. At start, entries left executing by a server that died (SIGKILL,
power loss) are closed: their child, if still alive, is killed, then the engine's own recovery
records the run abandoned and kills the job processes it left behind. Queued entries just wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from buildyard.server.concurrency import hold_group, keeps_message
from buildyard.server.queue import EXECUTING, HOLDING, Entry
from buildyard.server.state import GitError, git

_SHA = re.compile(r"^[0-9a-f]{7,64}$")

if TYPE_CHECKING:
    from buildyard.server.state import ServerState
    from buildyard.spec.models import Pipeline
    from buildyard.triggers.match import Match

#: Least seconds between two looks at the queue: the wakes of a burst of deliveries make one look.
TICK_INTERVAL = 0.05
#: Seconds a cancelled run's process gets beyond the jobs' kill grace before SIGKILL.
EXTRA_GRACE = 10.0


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _same_process(pid: int, started: float | None) -> bool:
    """Whether ``pid`` is still the process that was started at ``started`` (not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        return (
            started is not None
            and abs(proc.create_time() - started) < 1.0
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


class Worker(threading.Thread):
    """Executes one claimed queue entry."""

    def __init__(self, pool: RunnerPool, entry: Entry) -> None:
        super().__init__(name=f"runner-{entry.id[:8]}", daemon=True)
        self.pool = pool
        self.entry = entry
        self.cancelled = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None

    def cancel(self) -> None:
        """Stop the run (SIGTERM now, SIGKILL after the grace period)."""
        self.cancelled.set()

    def run(self) -> None:
        """Check out, execute, record, clean up."""
        state = self.pool.state
        entry = self.entry
        checkout = self.pool.checkouts / entry.id
        log = self.pool.logs / f"{entry.id}.log"
        status, message = "error", ""
        try:
            project = state.project(entry.project)
            if self.cancelled.is_set():
                status, message = "cancelled", "cancelled before it started"
                return
            source = state.source(project)
            checkout.parent.mkdir(parents=True, exist_ok=True)
            git("clone", "--shared", "--no-checkout", "-q", "--", str(source), str(checkout))
            git("checkout", "-q", "--detach", self._commit(source), cwd=checkout)
            where = checkout / project.subdir if project.subdir else checkout
            pipeline = _pipeline(where)
            verdict = _match(pipeline, entry.options.get("match"))
            if verdict is not None and not verdict.triggered:
                status, message = "skipped", f"not triggered: {verdict.reason}"
                return
            ended = hold_group(state.engine, entry, pipeline, self.cancelled)  # concurrency: its turn
            if ended is not None:
                status, message = ended
                return
            status, message = self._execute(where, log)
        except Exception as exc:  # noqa: BLE001 - any failure ends this entry with its reason
            message = " ".join(str(exc).split())[:500] or type(exc).__name__
        finally:
            final = "cancelled" if self.cancelled.is_set() and status not in ("success", "failed") else status
            if final == "cancelled" and not message:
                message = "cancelled: the server stopped" if self.pool.stopping else "cancelled"
            shutil.rmtree(checkout, ignore_errors=True)  # before the entry says finished: nothing left then
            values: dict[str, Any] = {
                "status": final,
                "finished_at": time.time(),
                "message": message,
                "pid": None,
            }
            if final == "cancelled" and keeps_message(state.run_queue.get(entry.id).message):
                del values["message"]  # superseded by a newer run of its concurrency group: says which
            state.run_queue.update(entry.id, **values)
            self.pool.finished(self)

    def _commit(self, source: Path) -> str:
        """The commit to check out: the entry's sha, or (a tag announced without one) the tag's."""
        entry = self.entry
        if entry.sha:
            if not _SHA.match(entry.sha):
                raise GitError(f"'{entry.sha[:60]}' is not a commit sha")
            return entry.sha
        tag = str(entry.options.get("tag") or "")
        ref = f"refs/tags/{tag}" if tag else f"refs/heads/{entry.branch}"
        git("check-ref-format", ref)
        sha = git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=source).strip()
        self.pool.state.run_queue.update(entry.id, sha=sha)
        return sha

    def _execute(self, checkout: Path, log: Path) -> tuple[str, str]:
        state = self.pool.state
        entry = self.entry
        project = state.project(entry.project)
        spec = {
            "entry_id": entry.id,
            "state_url": state.config.db_url,
            "checkout": str(checkout),
            "home": str(project.home),
            "history_url": state.history_url(entry.project),
            "event": entry.event,
            "branch": entry.branch,
            "tag": str(entry.options.get("tag") or ""),
            "variables": entry.variables,
            "options": entry.options,
            "requested_by": entry.requested_by,
            "enqueued_at": entry.enqueued_at,
            "kill_grace": state.config.kill_grace,
            "secrets": state.secrets.values(entry.project),
        }
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "buildyard.server.runjob"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=out,
                cwd=checkout,
                env=_child_env(),
                start_new_session=True,  # its own group: cancelling signals the run, not the server
            )
        self.proc = proc
        started = psutil.Process(proc.pid).create_time()
        state.run_queue.update(entry.id, pid=proc.pid, pid_started=started)
        assert proc.stdin is not None  # noqa: S101 - piped above
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        deadline: float | None = None
        while proc.poll() is None:
            if self.cancelled.is_set() and deadline is None:
                _kill_group(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + state.config.kill_grace + EXTRA_GRACE
            if deadline is not None and time.monotonic() > deadline:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                self.pool.recover(entry.project)
                return "cancelled", "cancelled; the run's process did not stop in time and was killed"
            time.sleep(0.1)
        _kill_group(proc.pid, signal.SIGKILL)  # anything of its group left behind
        current = state.run_queue.get(entry.id)
        if current.run_id is None:
            return "error", _last_line(
                log
            ) or f"the run process exited with {proc.returncode} before starting"
        record = state.sql_history(entry.project).get_run(current.run_id)
        return record.status, record.message


def _pipeline(checkout: Path) -> Pipeline | None:
    """The commit's pipeline, loaded once for ``on:`` and ``concurrency:`` (``None``: it does not
    load, which the run itself then reports)."""
    from buildyard.errors import UserError  # noqa: PLC0415
    from buildyard.spec.load import find_file, load  # noqa: PLC0415

    try:
        return load(find_file(checkout))
    except UserError:
        return None


def _match(pipeline: Pipeline | None, stored: object) -> Match | None:
    """The commit's ``on:`` verdict on the event that queued the run (``None``: nothing to match,
    or a pipeline that does not load)."""
    from buildyard.triggers.deliveries import event_from_json  # noqa: PLC0415
    from buildyard.triggers.match import matches  # noqa: PLC0415

    event = event_from_json(stored)
    if event is None or pipeline is None:
        return None
    return matches(pipeline.on, event)


def _child_env() -> dict[str, str]:
    """The server's environment, with this buildyard importable first (the child runs our code)."""
    import buildyard  # noqa: PLC0415

    here = str(Path(buildyard.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    return env


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


class RunnerPool:
    """``runners`` workers fed from the queue (see the module docstring)."""

    def __init__(self, state: ServerState, runners: int | None = None) -> None:
        self.state = state
        self.runners = runners if runners is not None else state.config.runners
        self.name = f"{os.uname().nodename[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.checkouts = state.config.data_dir / "checkouts"
        self.logs = state.config.data_dir / "runner-logs"
        self.workers: dict[str, Worker] = {}
        #: ``max_parallel_runs`` of the projects that set one.
        self.limits = {
            p.name: p.max_parallel_runs for p in state.config.projects if p.max_parallel_runs is not None
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Close what a dead server left executing, then start taking runs."""
        self.recover_dead()
        self._thread = threading.Thread(target=self._loop, name="runner-pool", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now (a run was queued or cancelled)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether the pool is stopping (the server shuts down)."""
        return self._stop.is_set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking runs; cancel the executing ones and wait for them (up to ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.cancel()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def finished(self, worker: Worker) -> None:
        """A worker is done: its runner is free."""
        with self._lock:
            self.workers.pop(worker.entry.id, None)
        self._wake.set()

    def recover(self, project: str) -> None:
        """Close the abandoned runs of ``project`` (killing what they left behind)."""
        from buildyard.engine.liveness import recover_abandoned  # noqa: PLC0415

        recover_abandoned(self.state.sql_history(project), self.state.project(project).home)

    def recover_dead(self) -> None:
        """Entries a dead server left executing: kill their process, close their run as abandoned
        (queue again those whose run had not started)."""
        for entry in self.state.run_queue.list(statuses=EXECUTING):
            if entry.pid is not None and _same_process(entry.pid, entry.pid_started):
                _kill_group(entry.pid, signal.SIGKILL)
                with contextlib.suppress(psutil.Error):
                    psutil.Process(entry.pid).wait(5)
            if self.state.config.project(entry.project) is not None:
                self.recover(entry.project)
            shutil.rmtree(self.checkouts / entry.id, ignore_errors=True)
            if entry.run_id is None and entry.status != "cancelling":
                # claimed, but its run never started (checkout, concurrency wait): nothing ran, so it
                # is queued again and runs once, instead of a delivered push that never runs at all
                self.state.run_queue.update(
                    entry.id,
                    only_if=EXECUTING,
                    status="queued",
                    runner="",
                    started_at=None,
                    pid=None,
                    pid_started=None,
                    message="",
                )
                continue
            status, message = (
                "abandoned",
                "abandoned: the server stopped (killed?) while the run was executing",
            )
            ended = self._ended_run(entry)
            if ended is not None:  # the run finished (and queued its notifications) before the server died
                status, message = ended
            self.state.run_queue.update(
                entry.id, status=status, finished_at=time.time(), pid=None, message=message
            )
            shutil.rmtree(self.checkouts / entry.id, ignore_errors=True)

    def _ended_run(self, entry: Entry) -> tuple[str, str] | None:
        """The final (status, message) of ``entry``'s history run when the run itself ended it."""
        from buildyard.engine.liveness import ABANDONED  # noqa: PLC0415

        if entry.run_id is None or self.state.config.project(entry.project) is None:
            return None
        try:
            record = self.state.sql_history(entry.project).get_run(entry.run_id)
        except Exception:  # noqa: BLE001 - no record: closed as abandoned
            return None
        if record.status in ("success", "failed", "cancelled") and record.message != ABANDONED:
            return record.status, record.message
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            ticked = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the pool
                print(f"buildyard serve: runner pool: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
            self._wake.wait(self.state.config.poll)
            # one look at the queue per batch of wakes: 100 deliveries a second each woke the pool,
            # whose queries then competed for the GIL with the answers to the next deliveries
            self._stop.wait(max(0.0, TICK_INTERVAL - (time.monotonic() - ticked)))
            self._wake.clear()

    def _tick(self) -> None:
        executing = self.state.run_queue.list(statuses=EXECUTING)
        with self._lock:
            mine = {e.id: e for e in executing if e.id in self.workers}
            for entry_id, entry in mine.items():
                if entry.status == "cancelling":
                    self.workers[entry_id].cancel()
            busy = sum(1 for e in mine.values() if e.status in HOLDING)
            busy += sum(1 for w in self.workers if w not in mine)  # claimed, status not yet visible
        # runs going on after an approval first (oldest first): they were started before any queued one
        for entry in mine.values():
            if busy >= self.runners or self._stop.is_set():
                return
            if entry.status == "resuming" and self.state.run_queue.resume(entry.id):
                busy += 1
        while busy < self.runners and not self._stop.is_set():
            claimed = self.state.run_queue.claim(self.name, self.limits)
            if claimed is None:
                break
            worker = Worker(self, claimed)
            with self._lock:
                self.workers[claimed.id] = worker
            worker.start()
            busy += 1
