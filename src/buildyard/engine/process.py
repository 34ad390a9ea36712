"""Process lifecycle on the asyncio loop: spawn in a new session, stream output, time out, kill trees.

Every job process is a session and process-group leader with stdin closed. Exit is observed through
a pidfd (no SIGCHLD handler, no watcher thread), output through a non-blocking pipe. Killing escalates
SIGTERM → grace → SIGKILL on the whole group plus any descendants that left it (``terminate_tree``,
shared with the warm-shell executor in ``shellpool``). CPU time comes from
``wait4`` (the process and every descendant it waited for). Peak RSS is sampled over the live tree
(every 20 ms at first, backing off to 500 ms): ``ru_maxrss`` cannot be used because a child forked
from a large Python parent reports the parent's RSS until it execs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from buildyard.engine import watchdog

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


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (empty once ``pid`` is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


_PAGE = os.sysconf("SC_PAGE_SIZE")
_TABLE_TTL = 0.005
_table: tuple[float, int, dict[int, tuple[int, int]]] = (0.0, 0, {})


def proc_table(min_pid: int = 0) -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, rss bytes)`` of every process with a pid ≥ ``min_pid``, from ``/proc/PID/stat``.

    Pids grow until they wrap around, so a job's descendants have pids above the job's own: reading
    only those keeps a sample at a few files instead of every process of the machine (descendants
    born after a wrap-around are missed, which only lowers the measured peak). A snapshot younger
    than 5 ms is reused, so the samplers of concurrent jobs share one scan. psutil's
    ``children(recursive=True)`` reads every process and cost ~15 ms of CPU per job on a busy run.
    """
    global _table  # noqa: PLW0603 - a process-wide snapshot shared by every sampler on the loop
    now = time.monotonic()
    if now - _table[0] < _TABLE_TTL and _table[1] <= min_pid:
        return _table[2]
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):  # noqa: PTH208 - names only, hot loop
        if not entry.isdigit() or int(entry) < min_pid:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:  # noqa: PTH123 - hot loop, no Path objects
                data = f.read()
        except OSError:
            continue  # ended meanwhile
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 21:  # field 24 of proc(5): rss in pages
            table[int(entry)] = (int(fields[1]), int(fields[21]) * _PAGE)
    _table = (now, min_pid, table)
    return table


def _tree_rss(pid: int) -> int:
    """Total RSS of ``pid`` and its live descendants (0 once it is gone)."""
    table = proc_table(pid)
    if pid not in table:
        return 0
    children: dict[int, list[int]] = {}
    for child, (parent, _rss) in table.items():
        children.setdefault(parent, []).append(child)
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += table[current][1]
        stack.extend(children.get(current, ()))
    return total


class RssSampler:
    """Samples the RSS of ``pid``'s tree on the running loop (timer callbacks, no task) until ``stop``."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._pid = pid
        self._delay = 0.02
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(self._delay, self._sample)

    def _sample(self) -> None:
        self.peak = max(self.peak, _tree_rss(self._pid))
        self._delay = min(self._delay * 2, 0.5)
        self._handle = self._loop.call_later(self._delay, self._sample)

    def stop(self) -> int:
        """Stop sampling; the peak seen so far (0 if the tree ended before the first sample)."""
        self._handle.cancel()
        return self.peak


def signal_tree(pgid: int, extra: list[psutil.Process], sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid`` and to each of ``extra`` (descendants that left it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for proc in extra:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


#: Signals Python ignores that a job must see at their defaults (what ``Popen(restore_signals=True)`` does).
_RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


class Spawner:
    """Starts job processes: session leaders with only fds 0–2, default signals, an empty signal mask.

    In the current directory a process is started with ``posix_spawn`` (glibc's ``CLONE_VFORK``, no
    Python code before the exec), about 0.15 ms less per job than ``subprocess.Popen``, which is
    kept for other directories because only it can change directory. What ``Popen(close_fds=True)``
    re-reads per process is taken once here: the inheritable fds to close (Python opens its own
    close-on-exec, so these are only fds inherited from outside) and the shared empty stdin. Call
    ``close()`` when done.

    After the first job of a run (its env carries ``BUILDYARD_RUN_ID``) it starts the run's watchdog
    (buildyard.engine.watchdog: a ``sh`` loop, ~0.2 ms to spawn here, the job already running) and
    tells it every job's process group; ``close()`` dismisses it.
    """

    def __init__(self) -> None:
        # stdin: the read end of a pipe whose write end is already closed — EOF at once for every
        # job, and no dependency on /dev/null (seen replaced by a regular file in some sandboxes).
        self.stdin, write = os.pipe()
        os.close(write)
        self._closed = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
        self._path = os.environ.get("PATH", os.defpath)
        self._watchdog: tuple[int, int, int] | None = None  # (pid, write end of its pipe, slot file)
        self._watched: str | None = None  # the run id it watches
        self._slots: dict[int, int] = {}  # live job process group -> its record in the slot file
        self._free: list[int] = []  # records of reaped groups, reused

    def close(self) -> None:
        """Release the shared stdin and dismiss the watchdog (idempotent)."""
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
        self._dismiss()

    def reaped(self, pid: int) -> None:
        """Tell the watchdog the job ``pid`` (its process group) was reaped: never kill that group."""
        slot = self._slots.pop(pid, None)
        if slot is not None:
            self._record(slot, 0)
            self._free.append(slot)

    def _record(self, slot: int, pgid: int) -> None:
        """One fixed-width record of the slot file (a single pwrite: whole even if we die now)."""
        if self._watchdog is not None:
            with contextlib.suppress(OSError):  # a full disk: the marker scan remains
                os.pwrite(self._watchdog[2], b"%10d\n" % pgid, slot * watchdog.RECORD)

    def watch(self, pid: int, env: Mapping[str, str]) -> None:
        """Start the run's watchdog (see buildyard.engine.watchdog) after its first job, then list
        every job's process group with it (jobs started elsewhere, on a warm shell, are told too)."""
        run_id = env.get("BUILDYARD_RUN_ID")
        if not run_id:
            return
        if self._watched != run_id:
            self._dismiss()
            self._watched = run_id
            read, write = os.pipe()
            os.set_blocking(write, False)
            slots = _unlinked_file()
            self._slots, self._free = {}, []
            try:
                child = os.posix_spawn(
                    "/bin/sh",
                    [
                        "sh",
                        "-c",
                        watchdog.SHELL_LOOP,
                        sys.executable,
                        watchdog.__file__,
                        f"BUILDYARD_RUN_ID={run_id}",
                        str(pid - 1),
                    ],
                    {"PATH": os.defpath},
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, read, 0),
                        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                        (os.POSIX_SPAWN_DUP2, 1, 2),
                        (os.POSIX_SPAWN_DUP2, slots, 3),
                        *self._closed,
                    ],
                    setsid=True,
                )
            except OSError:
                os.close(write)  # no watchdog: the next buildyard command recovers the run instead
                os.close(slots)
                return
            finally:
                os.close(read)
            self._watchdog = (child, write, slots)
        slot = self._free.pop() if self._free else len(self._slots)
        self._slots[pid] = slot
        self._record(slot, pid)

    def _dismiss(self) -> None:
        if self._watchdog is None:
            return
        child, write, slots = self._watchdog
        self._watchdog = None
        with contextlib.suppress(OSError):
            os.write(write, b"done\n")
        os.close(write)
        os.close(slots)
        _reap_later(child)

    def spawn(self, argv: list[str], *, env: Mapping[str, str], cwd: str, stdout: int) -> int:
        """Start ``argv`` with ``stdout`` as stdout and stderr; return its pid.

        ``argv[0]`` is looked up in ``env``'s ``PATH``, as the shell would. Raises ``OSError`` when
        the program cannot be started.
        """
        pid = self._start(argv, env=env, cwd=cwd, stdout=stdout)
        self.watch(pid, env)
        return pid

    def _start(self, argv: list[str], *, env: Mapping[str, str], cwd: str, stdout: int) -> int:
        if cwd != _current_dir():
            # Popen cannot set the child's signal mask; a blocked signal of this thread (inherited
            # from whoever started buildyard) would stay blocked in the job, so only then is the mask
            # cleared in the child before the exec (preexec_fn: rare, and it forbids vfork).
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
            proc = subprocess.Popen(
                argv, stdin=self.stdin, stdout=stdout, stderr=stdout, cwd=cwd, env=env,
                start_new_session=True, close_fds=True,
                preexec_fn=_unblock_signals if blocked else None,  # noqa: PLW1509 - one sigmask call
            )  # fmt: skip
            # The caller reaps it (wait4, for the rusage): a returncode keeps Popen's finalizer
            # from reaping it first (subprocess._cleanup) or warning that it still runs.
            proc.returncode = 0
            return proc.pid
        actions = [
            (os.POSIX_SPAWN_DUP2, self.stdin, 0),
            (os.POSIX_SPAWN_DUP2, stdout, 1),
            (os.POSIX_SPAWN_DUP2, stdout, 2),
            *self._closed,
        ]
        program = argv[0]
        path = env.get("PATH", os.defpath)
        launch = os.posix_spawn
        if "/" in program:
            pass
        elif path == self._path:
            launch = os.posix_spawnp  # searches this process's PATH: the same, and done in the child
        else:
            found = shutil.which(program, path=path)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
            program = found
        return launch(
            program, argv, env, file_actions=actions, setsid=True, setsigdef=_RESTORED, setsigmask=()
        )


def _unlinked_file() -> int:
    """A private file with no name (gone with its last fd): the watchdog's list of job groups."""
    try:
        return os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:  # no O_TMPFILE on this filesystem
        fd, name = tempfile.mkstemp(prefix="buildyard-watch-")
        os.unlink(name)
        return fd


def _unblock_signals() -> None:
    """In a forked child before the exec: an empty signal mask, as ``posix_spawn`` gives."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _reap_later(pid: int) -> None:
    """Collect the exit status of ``pid`` (a dismissed watchdog) without waiting for it here."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if done == 0:
        threading.Thread(target=_wait_quietly, args=(pid,), daemon=True, name="watchdog-reaper").start()


def _wait_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _current_dir() -> str:
    """This process's working directory, or "" when it was deleted."""
    try:
        return os.getcwd()  # noqa: PTH109 - a str to compare, on every spawn
    except OSError:
        return ""


def _inheritable_fds() -> list[int]:
    """Open fds above 2 a child would inherit."""
    fds = []
    for entry in os.listdir("/proc/self/fd"):  # noqa: PTH208 - names only
        fd = int(entry)
        if fd > 2:  # not stdin, stdout, stderr
            with contextlib.suppress(OSError):  # the listing's own fd, closed by now
                if os.get_inheritable(fd):
                    fds.append(fd)
    return fds


async def run_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    timeout: float | None,
    on_output: Callable[[bytes], None],
    grace: float = 5.0,
    spawner: Spawner | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion, feeding its combined stdout/stderr to ``on_output``.

    On timeout or task cancellation the whole tree is killed; cancellation is re-raised after cleanup.
    Pass a long-lived ``spawner`` when running many processes (else one is made for this call).
    """
    if spawner is None:
        spawner = Spawner()
        try:
            return await run_process(
                argv, env=env, cwd=cwd, timeout=timeout, on_output=on_output, grace=grace, spawner=spawner
            )
        finally:
            spawner.close()
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    try:
        pid = spawner.spawn(argv, env=env, cwd=cwd, stdout=write_fd)
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        on_output(f"buildyard: cannot start {argv[0]!r}: {exc.strerror}\n".encode())
        return ProcessResult(127, False, False, time.monotonic() - start, 0.0, 0)
    os.close(write_fd)
    exited: asyncio.Future[None] = loop.create_future()
    pidfd = os.pidfd_open(pid)
    returncode: int | None = None

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    output = OutputPipe(read_fd, on_output)
    timed_out = cancelled = False
    sampler = RssSampler(pid)
    try:
        try:
            if timeout is None:
                await asyncio.shield(exited)
            else:
                await asyncio.wait_for(asyncio.shield(exited), timeout)
        except TimeoutError:
            timed_out = True
            await terminate_tree(pid, exited, grace)
        except asyncio.CancelledError:
            cancelled = True
            await asyncio.shield(terminate_tree(pid, exited, grace))
        # Background processes left in the group would keep the pipe open: they die with the job.
        # The leader is a zombie until reaped, so its pid (= the group id) cannot be reused yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        spawner.reaped(pid)
        returncode = os.waitstatus_to_exitcode(status)
        await output.drained()
    finally:
        peak_rss = sampler.stop()
        output.close()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(pidfd)
        os.close(pidfd)
        if returncode is None:  # only on an unexpected error path: never leave the tree behind
            signal_tree(pid, descendants(pid), signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            spawner.reaped(pid)
            returncode = -9
    if cancelled:
        raise asyncio.CancelledError
    code = returncode
    exit_code = 128 - code if code < 0 else code  # killed by signal N → 128+N, as shells report it
    return ProcessResult(
        exit_code=exit_code,
        timed_out=timed_out,
        cancelled=False,
        duration=time.monotonic() - start,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss=peak_rss,
    )


async def terminate_tree(pid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM group ``pid`` and its descendants, wait ``grace`` seconds, then SIGKILL whatever is left.

    ``exited`` resolves when the leader has ended; it is awaited before returning.
    """
    deadline = time.monotonic() + grace
    extra = descendants(pid)
    signal_tree(pid, extra, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), grace)
    extra += descendants(pid)
    remaining = deadline - time.monotonic()
    if extra and remaining > 0:  # give the rest of the tree what is left of the grace period
        _, alive = await asyncio.to_thread(psutil.wait_procs, extra, remaining)
        extra = list(alive)
    signal_tree(pid, extra, signal.SIGKILL)
    await asyncio.shield(exited)  # shielded: a caller's timeout around this must not cancel ``exited``


class OutputPipe:
    """The read end of a job's output pipe, streamed to ``on_output`` by the running loop until EOF.

    EOF means every process holding the write end has closed it. ``drained`` waits for that with a
    cap (a daemon that escaped the job may hold the pipe forever); ``close`` stops reading.
    """

    def __init__(self, fd: int, on_output: Callable[[bytes], None]) -> None:
        self.fd = fd
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._on_output(data)
        else:
            self._loop.remove_reader(self.fd)
            if not self._eof.done():
                self._eof.set_result(None)

    async def drained(self, timeout: float = 2.0) -> None:
        """Wait up to ``timeout`` seconds for EOF."""
        if self._eof.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._eof), timeout)

    def close(self) -> None:
        """Stop reading and close the fd (idempotent)."""
        if self.fd < 0:
            return
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
