"""Warm bash workers: run bash steps without starting a shell per step.

Starting ``bash`` costs over a millisecond per step here, which dominates runs of many small jobs. A
``ShellPool`` keeps long-lived bash workers (one per concurrently running step) and forks each step
from one of them instead. Each worker is::

    bash -c LOOP   env: empty (env -i)   cwd: /   own session   stdin: an empty, already-closed pipe
                   fd 3: wake-ups from buildyard      fd 1/2: control messages to buildyard

Protocol. For each step buildyard writes a *payload* (bash text; every value goes through
``shlex.quote``) into the worker's private payload file, then a newline on fd 3 (the payload does not
travel through the pipe: bash reads pipes one byte per system call). The worker sources the payload,
which

1. makes the worker's exported environment exactly the step's, as a difference from the previous
   step's (the worker starts from an empty one, so nothing leaks in from buildyard or between steps;
   changing variables in the worker is far cheaper than in the forked child, where every touched page
   is a copy-on-write fault), ``cd``s to the step's directory and sets ``PWD``/``OLDPWD``/``SHLVL`` as
   ``bash -c`` would;
2. sets ``__by_c`` (the child's prelude), ``__by_o`` (the ``set`` options) and ``__by_s`` (the script).

The worker runs with ``set -m``, so the step ``( eval "$__by_c"; set $__by_o; eval "$__by_s" ) &`` is
a process group of its own. The prelude points stdout/stderr at a fresh pipe made by buildyard for
this step (opened through ``/proc/<buildyard>/fd/<n>``), reports ``start <pid>`` and closes the
worker's fds. The script is eval'ed on line 1 of the worker's text, so ``$LINENO`` and ``bash: line
N:`` messages read as under ``bash -c``. The worker ``wait``s for the step, then reports ``exit
<status>`` and ``times`` (CPU time of all it reaped, i.e. the step's tree).

Output and kills: every step has its own output pipe, so end-of-output means what it means for a
spawned step (every holder closed it) and nothing a step leaves behind can write into a later step's
log. Timeouts and cancellation use ``process.terminate_tree`` on the step's group; leftovers in the
group are killed when the step ends. A worker that dies, does not start a step within
``start_timeout``, or does not report the end of a step whose leader is gone (a watchdog) is killed
and replaced: a step it was running ends with 128 + signal and a note in its log; a step it never
started is retried once on a fresh worker. If the prelude cannot open ``/proc`` the pool marks itself
``broken`` and every step is spawned. ``close`` stops all workers.

Differences from ``bash -c`` that a script can observe: ``$$`` is the worker's pid (use ``$BASHPID``);
``$BASH_SUBSHELL`` is 1; ``$BASH_EXECUTION_STRING`` is the worker's loop; the shell variable ``__by_s``
holds the script; a syntax error reads ``bash: eval: line N: ...`` instead of ``bash: -c: line N: ...``;
``kill $$`` kills the worker, after which the step's processes are killed and the step ends with
128 + the signal, as it would under ``bash -c``; a step whose last command ignores SIGTERM reports 143
rather than 137 when it times out (the group's leader is a bash subshell that dies of the SIGTERM);
a step stopped by a signal is reported as ended (128 + the signal) and killed instead of hanging until
its timeout.
Steps that need anything else are spawned (``process.run_process``): ``warmshell.warm_shell`` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from buildyard.engine.process import (
    OutputPipe,
    ProcessResult,
    RssSampler,
    descendants,
    signal_tree,
    terminate_tree,
)
from buildyard.engine.warmshell import WarmShell, step_payload
from buildyard.errors import BuildyardError

START_TIMEOUT = 10.0
"""Seconds a worker may take to start a step (or to report its end once killed) before it is dropped."""

WATCH_INTERVAL = 2.5
"""A worker that has not reported the end of a step 1-2 intervals after the step ended is dropped."""

_TIMES = re.compile(rb"(\d+)m([\d.,]+)s (\d+)m([\d.,]+)s")  # the decimal point follows the locale


def _loop(payload_file: str) -> str:
    """The worker's text: wait for a newline on fd 3, source the payload file, fork the step.

    One line on purpose: the step's script is eval'ed on line 1, so its line numbers match ``bash -c``.
    The payload travels in a file because bash reads pipes one byte per system call. Plain
    ``wait $!``: ``wait -f $!`` was seen spinning forever after its job had ended, and ``wait -n``
    returning 127 for a job that had already ended and been cleaned up; ``wait $!`` falls back on
    the remembered status. Its stderr is closed so that job-control notices cost no write. Leftovers
    in the step's group are killed by the worker right after it reaped the leader: the group id cannot
    have been reused in those microseconds (pids wrap quickly where ``pid_max`` is 32768).
    """
    return (
        f"set -m; while IFS= read -r __by_g <&3; do if . {shlex.quote(payload_file)}; then "
        '( eval "$__by_c" || exit 126; set +m $__by_o; unset -v __by_o; eval "$__by_s" ) & '
        "unset -v __by_c __by_o __by_s; wait $! 2>&-; __by_r=$?; kill -KILL -- -$! 2>&-; "
        'echo "exit $__by_r"; '
        'else echo "exit 126"; fi; times; done'
    )


class _WorkerLost(BuildyardError):
    """The worker ended before reporting the step's start: nothing of the step ran."""


@dataclass(eq=False)
class _Job:
    """One step on a worker: futures resolved by control messages."""

    out_w: int  # buildyard's write end of the step's output pipe, closed once the step opened it
    started: asyncio.Future[int | None]
    exited: asyncio.Future[None]
    exit_code: int | None = None
    cpu_seconds: float = 0.0
    times_lines: int = -1  # lines of ``times`` still expected after ``exit``; -1 before ``exit``
    lost: bool = False
    sampler: RssSampler | None = None
    peak_rss: int = 0
    watchdog: asyncio.TimerHandle | None = None

    def release_pipe(self) -> None:
        if self.out_w >= 0:
            os.close(self.out_w)
            self.out_w = -1


@dataclass(eq=False)
class _Worker:
    """One warm bash process and the buildyard ends of its pipes."""

    shell: WarmShell
    proc: subprocess.Popen[bytes]
    cmd_w: int
    ctl_r: int
    payload_fd: int
    payload_file: str
    loop: asyncio.AbstractEventLoop
    job: _Job | None = None
    alive: bool = True
    cpu_base: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)
    exported: dict[str, str] = field(default_factory=dict)  # the step environment the worker holds
    watch_interval: float = WATCH_INTERVAL

    @classmethod
    def start(cls, shell: WarmShell, loop: asyncio.AbstractEventLoop, payload_file: str) -> _Worker:
        payload_fd = os.open(payload_file, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        cmd_r, cmd_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        stdin_r, stdin_w = os.pipe()
        os.close(stdin_w)
        try:
            proc = subprocess.Popen(
                [
                    shell.argv0,
                    "-c",
                    (f"exec 3<&{cmd_r} {cmd_r}<&-; " if cmd_r != 3 else "") + _loop(payload_file),
                ],
                executable=shell.executable,
                stdin=stdin_r,
                stdout=ctl_w,
                stderr=ctl_w,
                pass_fds=(cmd_r,),
                cwd="/",
                env={},
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            os.close(cmd_w)
            os.close(ctl_r)
            os.close(payload_fd)
            os.unlink(payload_file)
            raise
        finally:
            os.close(cmd_r)
            os.close(ctl_w)
            os.close(stdin_r)
        worker = cls(shell, proc, cmd_w, ctl_r, payload_fd, payload_file, loop)
        os.set_blocking(ctl_r, False)
        loop.add_reader(ctl_r, worker.on_control)
        return worker

    def submit(self, payload: bytes, exported: dict[str, str], out_w: int) -> _Job:
        """Write the payload file and wake the worker; raises ``_WorkerLost`` if it is gone."""
        job = _Job(out_w, self.loop.create_future(), self.loop.create_future())
        try:
            os.pwrite(self.payload_fd, payload, 0)
            os.ftruncate(self.payload_fd, len(payload))
            os.write(self.cmd_w, b"\n")
        except OSError as exc:
            self.alive = False
            raise _WorkerLost from exc
        self.job = job
        self.exported = exported
        return job

    def on_control(self) -> None:
        try:
            data = os.read(self.ctl_r, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self.buffer += data
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = bytearray(rest)
        try:
            for line in lines:
                self._message(bytes(line))
        except ValueError:  # garbled control message: replace the worker (EOF follows the kill)
            with contextlib.suppress(OSError):
                self.proc.kill()

    def _message(self, line: bytes) -> None:
        job = self.job
        if job is None:
            return  # bash's own notices between steps ("[1]+ Done ...")
        if line.startswith(b"start ") and not job.started.done():
            pid = int(line[6:])
            job.release_pipe()
            job.sampler = RssSampler(pid)
            job.watchdog = self.loop.call_later(self.watch_interval, self._watch, job, pid, False)
            job.started.set_result(pid)
        elif line.startswith(b"exit ") and job.times_lines < 0:
            job.exit_code = int(line[5:])
            job.times_lines = 2
        elif job.times_lines > 0 and (m := _TIMES.fullmatch(line)):
            job.times_lines -= 1
            if job.times_lines == 0:  # second line: children's user and system time
                user, system = (float(x.replace(b",", b".")) for x in (m[2], m[4]))
                total = int(m[1]) * 60 + user + int(m[3]) * 60 + system
                job.cpu_seconds = max(total - self.cpu_base, 0.0)
                self.cpu_base = total
                self._finish(job)

    def _watch(self, job: _Job, pid: int, suspicious: bool) -> None:
        """Drop the worker if the step's leader has been gone for a whole interval unreported."""
        if job is not self.job:
            return
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if alive or not suspicious:
            job.watchdog = self.loop.call_later(self.watch_interval, self._watch, job, pid, not alive)
        else:
            self.abandon()

    def _finish(self, job: _Job) -> None:
        self.job = None
        job.release_pipe()
        if job.watchdog is not None:
            job.watchdog.cancel()
        if job.sampler is not None:
            job.peak_rss = job.sampler.stop()
        if not job.started.done():
            job.started.set_result(None)
        if not job.exited.done():
            job.exited.set_result(None)

    def _lost(self) -> None:
        self.alive = False
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.ctl_r)
        if self.job is not None:
            self.job.lost = True
            self._finish(self.job)

    def abandon(self) -> None:
        """Kill a worker that stopped answering, with whatever it forked, and settle its step as lost."""
        doomed = [*descendants(self.proc.pid)]
        with contextlib.suppress(OSError):
            self.proc.kill()
        for proc in doomed:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._lost()  # now: a stuck child may hold the control pipe open, so EOF may never come

    def death_status(self) -> int:
        """Exit status of a worker that died, shell-style (128 + signal); reaps it."""
        self.stop(kill=True)
        code = self.proc.returncode or 0
        return 128 - code if code < 0 else code

    def stop(self, *, kill: bool = False) -> None:
        """Close the pipes (the worker exits at EOF), reap it; SIGKILL it if asked or if it lingers."""
        self.alive = False
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            self.loop.remove_reader(self.ctl_r)
        for fd in (self.cmd_w, self.ctl_r, self.payload_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.cmd_w = self.ctl_r = self.payload_fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.payload_file)
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _shutdown(workers: set[_Worker], directory: list[str]) -> None:
    """Stop every worker: close all command pipes first so they exit in parallel, then reap."""
    for worker in workers:
        if worker.job is not None:  # a step still running (only on an error path): kill it
            pid = worker.job.started.result() if worker.job.started.done() else None
            if pid:
                signal_tree(pid, descendants(pid), signal.SIGKILL)
            worker.job.release_pipe()
        with contextlib.suppress(OSError):
            os.close(worker.cmd_w)
        worker.cmd_w = -1
    for worker in workers:
        worker.stop()
    workers.clear()
    for path in directory:
        shutil.rmtree(path, ignore_errors=True)
    directory.clear()


class ShellPool:
    """Warm bash workers for ``LocalExecutor``; ``run`` mirrors ``process.run_process``.

    Workers are started on demand, one per concurrently running step, and bound to the running
    event loop (a new loop gets new workers). ``close()`` stops them all; so does garbage collection.
    """

    def __init__(
        self, *, start_timeout: float = START_TIMEOUT, watch_interval: float = WATCH_INTERVAL
    ) -> None:
        self.start_timeout = start_timeout
        self.watch_interval = watch_interval
        self._workers: set[_Worker] = set()
        self._idle: dict[WarmShell, list[_Worker]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.broken: str | None = None  # why the pool cannot work here (then every step spawns)
        self._directory: list[str] = []  # the private directory of the payload files, once made
        self._spawned = 0
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._directory)

    def close(self) -> None:
        """Stop every worker (idempotent; no step may be running)."""
        _shutdown(self._workers, self._directory)
        self._idle.clear()
        self._loop = None

    def _acquire(self, shell: WarmShell) -> _Worker:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop = loop
        idle = self._idle.get(shell)
        while idle:
            worker = idle.pop()
            if worker.alive and worker.proc.poll() is None:
                return worker
            self._discard(worker)
        if not self._directory:
            self._directory.append(tempfile.mkdtemp(prefix="buildyard-shells-"))
        self._spawned += 1
        worker = _Worker.start(shell, loop, f"{self._directory[0]}/payload-{self._spawned}.sh")
        worker.watch_interval = self.watch_interval
        self._workers.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        if worker.alive and worker.job is None:
            self._idle.setdefault(worker.shell, []).append(worker)
        else:
            self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        worker.stop(kill=True)

    async def run(
        self,
        shell: WarmShell,
        script: str,
        *,
        env: Mapping[str, str],
        cwd: str,
        timeout: float | None,
        on_output: Callable[[bytes], None],
        grace: float = 5.0,
        on_start: Callable[[int], None] | None = None,
    ) -> ProcessResult | None:
        """Run ``script`` on a worker like ``run_process`` runs ``shell -c script``; ``on_start``
        gets the step's pid once it runs (the run's watchdog is told, as for spawned jobs).

        Returns None, having run nothing, when workers cannot be used here (``broken`` says why): the
        caller then spawns the step instead.
        """
        if self.broken is not None:
            return None
        start = time.monotonic()
        cwd = str(Path(cwd).absolute())
        for _attempt in range(2):
            try:
                worker = self._acquire(shell)
            except OSError as exc:
                self.broken = f"cannot start {shell.executable}: {exc.strerror}"
                return None
            try:
                result = await self._run_on(
                    worker, shell, script, env, cwd, timeout, on_output, grace, start, on_start
                )
            except _WorkerLost:
                self._discard(worker)
                continue
            self._release(worker)
            return result
        self.broken = "shell workers keep dying before a step starts"
        return None

    async def _run_on(
        self,
        worker: _Worker,
        shell: WarmShell,
        script: str,
        env: Mapping[str, str],
        cwd: str,
        timeout: float | None,
        on_output: Callable[[bytes], None],
        grace: float,
        start: float,
        on_start: Callable[[int], None] | None = None,
    ) -> ProcessResult | None:
        read_fd, write_fd = os.pipe()
        output = OutputPipe(read_fd, on_output)
        try:
            out_path = f"/proc/{os.getpid()}/fd/{write_fd}"  # getpid now, not at import: fork-safe
            payload, exported = step_payload(shell, script, env, cwd, out_path, worker.exported)
            job = worker.submit(payload, exported, write_fd)
        except BaseException:
            os.close(write_fd)
            output.close()
            raise
        timed_out = cancelled = False
        try:
            try:
                pid = await self._started(worker, job)
                if pid is not None and on_start is not None:
                    on_start(pid)
                if pid is not None and not await _wait(job.exited, timeout):
                    timed_out = True
                    await self._terminate(worker, job, pid, grace)
            except asyncio.CancelledError:
                cancelled = True
                await asyncio.shield(self._cancel(worker, job, grace))
            pid = job.started.result()
            if pid is None:
                if cancelled:
                    raise asyncio.CancelledError
                if job.lost:
                    raise _WorkerLost
                # The step's prelude failed (no /proc/<pid>/fd here?): nothing of the script ran.
                self.broken = f"a shell worker could not open /proc/<pid>/fd/<fd> (exit {job.exit_code})"
                return None
            exit_code = job.exit_code  # (the worker has killed what was left in the step's group)
            if job.lost:  # the worker died under the step (``kill $$``?): take the step down too
                signal_tree(pid, descendants(pid), signal.SIGKILL)
                exit_code = worker.death_status()
                lost = f"\nbuildyard: the shell worker running this step was lost (status {exit_code})\n"
                on_output(lost.encode())
            await output.drained()
        finally:
            output.close()
            job.release_pipe()
            if job.sampler is not None:
                job.peak_rss = max(job.peak_rss, job.sampler.stop())
        if cancelled:
            raise asyncio.CancelledError
        return ProcessResult(
            exit_code=exit_code if exit_code is not None else 1,
            timed_out=timed_out,
            cancelled=False,
            duration=time.monotonic() - start,
            cpu_seconds=job.cpu_seconds,
            peak_rss=job.peak_rss,
        )

    async def _started(self, worker: _Worker, job: _Job) -> int | None:
        """The step's pid once it reports; None if it never will (a worker that does not start a
        step within ``start_timeout`` is killed and the step counts as lost)."""
        try:
            return await asyncio.wait_for(asyncio.shield(job.started), self.start_timeout)
        except TimeoutError:
            worker.abandon()
            return None

    async def _terminate(self, worker: _Worker, job: _Job, pid: int, grace: float) -> None:
        """``terminate_tree`` on the step; if the worker then fails to report its end, drop the worker."""
        try:
            await asyncio.wait_for(terminate_tree(pid, job.exited, grace), grace + self.start_timeout)
        except TimeoutError:
            signal_tree(pid, descendants(pid), signal.SIGKILL)
            worker.abandon()

    async def _cancel(self, worker: _Worker, job: _Job, grace: float) -> None:
        pid = await self._started(worker, job)
        if pid is not None:
            await self._terminate(worker, job, pid, grace)


async def _wait(future: asyncio.Future[None], timeout: float | None) -> bool:
    """Wait for ``future`` (never cancelling it); False on timeout."""
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        return False
    return True
