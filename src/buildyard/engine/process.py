"""Process lifecycle on the asyncio loop: spawn in a new session, stream output, time out, kill trees.

Every job process is a session and process-group leader with stdin closed. Exit is observed through
a pidfd (no SIGCHLD handler, no watcher thread), output through a non-blocking pipe. Killing escalates
SIGTERM → grace → SIGKILL on the whole group plus any descendants that left it. CPU time comes from
``wait4`` (the process and every descendant it waited for). Peak RSS is sampled over the live tree
(every 20 ms at first, backing off to 500 ms): ``ru_maxrss`` cannot be used because a child forked
from a large Python parent reports the parent's RSS until it execs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

READ_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How one process ended."""

    exit_code: int
    timed_out: bool
    cancelled: bool
    duration: float
    cpu_seconds: float
    peak_rss: int


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _tree_rss(pid: int) -> int:
    try:
        leader = psutil.Process(pid)
        procs = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


async def _sample_rss(pid: int, peak: list[int]) -> None:
    """Record the peak RSS of ``pid``'s tree into ``peak[0]`` until cancelled."""
    delay = 0.02
    while True:
        await asyncio.sleep(delay)
        peak[0] = max(peak[0], _tree_rss(pid))
        delay = min(delay * 2, 0.5)


def _signal_tree(pgid: int, extra: list[psutil.Process], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for proc in extra:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment contains ``marker`` (``NAME=value``); return how many.

    Catches daemons that escaped their process group (setsid + double fork) the way the GitHub Actions
    runner does with its tracking id.
    """
    killed = 0
    me = os.getpid()
    key, _, value = marker.partition("=")
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(key) == value:
                proc.kill()
                killed += 1
        except psutil.Error:
            continue
    return killed


async def run_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    timeout: float | None,
    on_output: Callable[[bytes], None],
    grace: float = 5.0,
) -> ProcessResult:
    """Run ``argv`` to completion, feeding its combined stdout/stderr to ``on_output``.

    On timeout or task cancellation the whole tree is killed; cancellation is re-raised after cleanup.
    """
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    # stdin: the read end of a pipe whose write end is already closed — EOF at once, and no
    # dependency on /dev/null (seen replaced by a regular file in some sandboxes).
    stdin_fd, stdin_w = os.pipe()
    os.close(stdin_w)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin_fd,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        os.close(stdin_fd)
        on_output(f"buildyard: cannot start {argv[0]!r}: {exc.strerror}\n".encode())
        return ProcessResult(127, False, False, time.monotonic() - start, 0.0, 0)
    os.close(write_fd)
    os.close(stdin_fd)
    os.set_blocking(read_fd, False)
    exited: asyncio.Future[None] = loop.create_future()
    eof: asyncio.Future[None] = loop.create_future()
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        if not exited.done():
            exited.set_result(None)

    def on_readable() -> None:
        try:
            data = os.read(read_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            on_output(data)
        else:
            loop.remove_reader(read_fd)
            if not eof.done():
                eof.set_result(None)

    loop.add_reader(pidfd, on_exit)
    loop.add_reader(read_fd, on_readable)
    timed_out = cancelled = False
    peak = [0]
    sampler = asyncio.create_task(_sample_rss(proc.pid, peak))
    try:
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
        except TimeoutError:
            timed_out = True
            await _terminate(proc.pid, exited, grace)
        except asyncio.CancelledError:
            cancelled = True
            await asyncio.shield(_terminate(proc.pid, exited, grace))
        # Background processes left in the group would keep the pipe open: they die with the job.
        # The leader is a zombie until reaped, so its pid (= the group id) cannot be reused yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(eof), 2.0)
    finally:
        sampler.cancel()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(read_fd)
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(pidfd)
        os.close(read_fd)
        os.close(pidfd)
        if proc.returncode is None:  # only on an unexpected error path: never leave the tree behind
            _signal_tree(proc.pid, _descendants(proc.pid), signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -9
    if cancelled:
        raise asyncio.CancelledError
    code = proc.returncode
    exit_code = 128 - code if code < 0 else code  # killed by signal N → 128+N, as shells report it
    return ProcessResult(
        exit_code=exit_code,
        timed_out=timed_out,
        cancelled=False,
        duration=time.monotonic() - start,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss=peak[0],
    )


async def _terminate(pid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the tree, wait ``grace`` seconds for the leader, then SIGKILL whatever is left."""
    deadline = time.monotonic() + grace
    extra = _descendants(pid)
    _signal_tree(pid, extra, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), grace)
    extra += _descendants(pid)
    remaining = deadline - time.monotonic()
    if extra and remaining > 0:  # give the rest of the tree what is left of the grace period
        _, alive = await asyncio.to_thread(psutil.wait_procs, extra, remaining)
        extra = list(alive)
    _signal_tree(pid, extra, signal.SIGKILL)
    await exited
