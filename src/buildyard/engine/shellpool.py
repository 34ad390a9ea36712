"""Warm bash workers: run bash steps without starting a shell per step.

Starting ``bash`` costs about a millisecond per step, which dominates runs of many small jobs. A
``ShellPool`` keeps long-lived bash workers (one per concurrently running step) and forks each step
from one of them instead. Each worker is::

    bash -c LOOP     env: empty   cwd: /   own session   stdin: an empty, already-closed pipe
                     fd 3: commands from buildyard      fd 1/2: control messages to buildyard

A command is ``<length>\\n<payload>``, read with ``read -r -N`` (byte counts: the worker runs in the C
locale), so no quoting of the protocol is involved. The payload is bash text built here with
``shlex.quote`` around every value. The worker runs with ``set -m``, so each step is a background job
``( eval payload; eval script ) &`` in a process group of its own; it then waits for it and reports
``exit <status>`` plus the output of ``times`` (the CPU time of everything it reaped). The payload

1. redirects stdout/stderr to a fresh output pipe made by buildyard for this step, opened through
   ``/proc/<buildyard>/fd/<n>``, reports ``start <pid>`` and closes the control and command fds;
2. clears the worker's own variables, ``cd``s to the step's directory and exports exactly the
   step's environment (the worker's is empty, so nothing leaks in from it or between steps);
3. assigns the options and the script to variables; the worker applies ``set -eo pipefail`` (or
   whatever the shell options say) and ``eval``s the script on line 1 of its own text, so ``$LINENO``
   and ``bash: line N:`` messages read as they do under ``bash -c``.

Because every step gets its own output pipe, end-of-output means what it means for spawned steps
(every holder of the pipe closed it) and nothing a step leaves behind can write into a later step's
log. Timeouts and cancellation reuse ``process.terminate_tree`` on the step's process group; leftovers
in the group are killed when the step ends. A worker that dies is replaced; ``close`` stops them all.

Differences from ``bash -c`` that a script can observe: ``$$`` is the worker's pid (use
``$BASHPID``), ``$BASH_SUBSHELL`` is 1, ``$BASH_EXECUTION_STRING`` is the worker's loop, the shell
variable ``__by_s`` holds the script, and a syntax error reads ``bash: eval: line N: ...`` instead of
``bash: -c: line N: ...``. ``kill $$`` kills the
worker: the step's processes are then killed and the step ends with 128 + the signal, as it would
under ``bash -c``. A step whose last command outlives a SIGTERM reports 143 rather than 137 when it
times out, since the step's leader is a bash subshell. Steps that need anything else run through
``process.run_process``: see ``warm_shell`` for exactly which.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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

SET_LETTERS = frozenset("abefhkuBCEHPTo")
"""Single-letter bash options that ``set`` applies as the command line would (``o`` takes a name).

Not ``-x``/``-v``: traces inside ``eval`` are prefixed ``++``, so traced steps are spawned."""

SET_O_NAMES = frozenset(
    [
        "allexport",
        "braceexpand",
        "errexit",
        "errtrace",
        "functrace",
        "hashall",
        "histexpand",
        "history",
        "ignoreeof",
        "interactive-comments",
        "keyword",
        "noclobber",
        "noexec",
        "noglob",
        "nolog",
        "notify",
        "nounset",
        "physical",
        "pipefail",
        "posix",
        "privileged",
    ]
)
"""``-o`` names accepted (not ``monitor``, ``onecmd``, ``emacs``/``vi``: they only make sense at start)."""

FALLBACK_NAMES = frozenset(
    [
        "BASHOPTS",
        "SHELLOPTS",
        "BASH_ENV",
        "ENV",
        "POSIXLY_CORRECT",
        "BASH_VERSINFO",
        "BASH_VERSION",
        "EUID",
        "UID",
        "PPID",
        "BASHPID",
        "BASH_ARGV0",
        "BASH_SUBSHELL",
        "BASH_XTRACEFD",
        "BASH_EXECUTION_STRING",
        "BASH_COMMAND",
        "BASH_ARGC",
        "BASH_ARGV",
        "BASH_LINENO",
        "BASH_SOURCE",
        "BASH_ALIASES",
        "BASH_CMDS",
        "BASH_REMATCH",
        "BASH_MONOSECONDS",
        "BASH_TRAPSIG",
        "IFS",
        "PS4",
        "SECONDS",
        "RANDOM",
        "SRANDOM",
        "LINENO",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "GROUPS",
        "FUNCNAME",
        "HISTCMD",
        "DIRSTACK",
        "PIPESTATUS",
        "OPTIND",
        "COMP_WORDBREAKS",
        "TMOUT",
        "BASH_COMPAT",
    ]
)
"""Environment names bash reads at start-up, refuses to export or computes itself, or that would change
how the worker itself behaves (``TMOUT`` times out its ``read``, ``IFS`` its word splitting): a step
whose environment holds one is spawned."""

START_TIMEOUT = 10.0
"""Seconds a worker may take to start a step (or to report its end once killed) before it is dropped."""

WATCH_INTERVAL = 2.5
"""A worker that has not reported the end of a step 1-2 intervals after the step ended is dropped."""

_SHELL_MANAGED = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
_TIMES = re.compile(rb"(\d+)m([\d.,]+)s (\d+)m([\d.,]+)s")  # the decimal point follows the locale
_PROC_FD = f"/proc/{os.getpid()}/fd"


def _loop(payload_file: str) -> str:
    """The worker's text: wait for a newline on fd 3, source the payload file, fork the step.

    One line on purpose: the step's script is eval'ed on line 1, so its line numbers match ``bash -c``.
    The payload travels in a file because bash reads pipes one byte per system call. ``wait -n``
    rather than ``wait $!``: it looks nothing up by pid (``wait -f $!`` was seen spinning forever
    after its job had ended); its stderr is closed so that job-control notices cost no write.
    """
    return (
        f"set -m; while IFS= read -r __by_g <&3; do if . {shlex.quote(payload_file)}; then "
        '( eval "$__by_c" || exit 126; set +m $__by_o; unset -v __by_o; eval "$__by_s" ) & '
        'unset -v __by_c __by_o __by_s; wait -n 2>&-; echo "exit $?"; '
        'else echo "exit 126"; fi; times; done'
    )


class _WorkerLost(Exception):
    """The worker ended before reporting the step's start: nothing of the step ran."""


@dataclass(frozen=True, slots=True)
class WarmShell:
    """A step shell that a warm worker can stand in for: which bash, its ``$0``, its ``set`` options."""

    executable: str
    argv0: str
    options: tuple[str, ...]  # ``set`` arguments, applied just before the script is eval'ed


@functools.lru_cache(maxsize=64)
def _parse_options(shell: str) -> tuple[str, tuple[str, ...]] | None:
    """``(argv0, set arguments)`` of a ``bash [options]`` shell string, or None if not one we can run."""
    try:
        parts = shlex.split(shell)
    except ValueError:
        return None
    if not parts or "{0}" in shell:
        return None
    options: list[str] = []
    rest = iter(parts[1:])
    for word in rest:
        if word in ("--noprofile", "--norc"):
            continue
        sign, letters = word[:1], word[1:]
        if sign not in ("-", "+") or not letters or letters.count("o") > 1 or not set(letters) <= SET_LETTERS:
            return None
        options.append(word)
        if "o" in letters:
            name = next(rest, None)
            if name not in SET_O_NAMES:
                return None
            options.append(name)
    return parts[0], tuple(options)


@functools.lru_cache(maxsize=64)
def _resolve_bash(argv0: str, path: str | None) -> str | None:
    found = shutil.which(argv0, path=path if path is not None else os.defpath)
    if found is None or Path(found).resolve().name != "bash":
        return None
    return found


def warm_shell(shell: str, env: Mapping[str, str], script: str, cwd: str) -> WarmShell | None:
    """How a warm worker can run ``script`` under ``shell``, or None when it must be spawned.

    A worker applies when ``shell`` is bash (as found on the step's ``PATH``) with only ``set``-able
    options (``-e``, ``-o pipefail``, ``-x``, ``--noprofile``...), no ``{0}`` script file, every
    environment name is a plain shell identifier outside ``FALLBACK_NAMES``, and no value holds NUL.
    """
    parsed = _parse_options(shell)
    if parsed is None:
        return None
    argv0, options = parsed
    if "\0" in script or "\0" in cwd:
        return None
    for name, value in env.items():
        if (
            not (name.isascii() and name.isidentifier())
            or name in FALLBACK_NAMES
            or name.startswith("__by_")
            or "\0" in value
        ):
            return None
    executable = _resolve_bash(argv0, env.get("PATH"))
    if executable is None:
        return None
    return WarmShell(executable, argv0, options)


def _shell_level(value: str | None) -> int:
    """``$SHLVL`` as ``bash -c`` would set it from the inherited value."""
    try:
        level = int(value or "0") + 1
    except ValueError:
        level = 1
    return 1 if level >= 1000 else max(level, 0)


@functools.lru_cache(maxsize=4096)
def _export_word(name: str, value: str) -> str:
    return shlex.quote(f"{name}={value}")


def _payload(
    shell: WarmShell,
    script: str,
    env: Mapping[str, str],
    cwd: str,
    out_path: str,
    exported: Mapping[str, str],
) -> tuple[bytes, dict[str, str]]:
    """The bash text a worker ``eval``s for one step, and what the worker exports afterwards.

    The worker itself takes the step's directory and environment, as a difference from what it
    exported for its previous step (``exported``), so the forked step inherits them without work
    of its own: changing variables in the child costs copy-on-write page faults, changing a few
    in the parent costs next to nothing. ``__by_c`` is the child's prelude.
    """
    q = shlex.quote
    wanted = {k: v for k, v in env.items() if k not in _SHELL_MANAGED}
    lines = []
    gone = [k for k in exported if k not in wanted]
    if gone:
        lines.append("unset -v " + " ".join(gone))
    changed = [_export_word(k, v) for k, v in wanted.items() if exported.get(k) != v]
    if changed:
        lines.append("export -- " + " ".join(changed))
    lines.append(f"cd -P -- {q(cwd)} 2>&- && __by_d=0 || __by_d=1")
    pwd = env.get("PWD")
    if pwd is not None and pwd.startswith("/"):  # bash -c keeps an inherited $PWD naming its directory
        lines.append(f"[[ {q(pwd)} -ef . ]] && PWD={q(pwd)}")
    lines.append("unset -v OLDPWD; declare -x OLDPWD")  # bash -c: exported, without a value ...
    old = env.get("OLDPWD")
    if old is not None:  # ... unless it inherits one naming a directory
        lines.append(f"[[ -d {q(old)} ]] && OLDPWD={q(old)}")
    lines.append(f"export SHLVL={_shell_level(env.get('SHLVL'))}")
    cannot = f"buildyard: cannot start {shell.argv0!r}: cannot enter working directory {cwd}"
    prelude = "\n".join(
        (
            f"exec 4>&1 1>{q(out_path)} 2>&1 || exit 126",
            'printf "start %d\\n" "$BASHPID" >&4; exec 3<&- 4>&-',
            f"if ((__by_d)); then printf '%s\\n' {q(cannot)}; exit 127; fi",
            "unset -v __by_g __by_c __by_d",
        )
    )
    lines.append(f"__by_c={q(prelude)}")
    lines.append(f"__by_o={q(' '.join(shell.options))}")
    lines.append(f"__by_s={q(script)}")
    return "\n".join(lines).encode("utf-8", "surrogateescape"), wanted


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
    ) -> ProcessResult | None:
        """Run ``script`` on a worker like ``run_process`` runs ``shell -c script``.

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
                result = await self._run_on(worker, shell, script, env, cwd, timeout, on_output, grace, start)
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
    ) -> ProcessResult | None:
        read_fd, write_fd = os.pipe()
        output = OutputPipe(read_fd, on_output)
        try:
            payload, exported = _payload(shell, script, env, cwd, f"{_PROC_FD}/{write_fd}", worker.exported)
            job = worker.submit(payload, exported, write_fd)
        except BaseException:
            os.close(write_fd)
            output.close()
            raise
        timed_out = cancelled = False
        try:
            try:
                pid = await self._started(worker, job)
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
                self.broken = f"a shell worker could not open {_PROC_FD}/<fd> (exit {job.exit_code})"
                return None
            # Leftovers in the group would keep the output pipe open: they die with the step.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            exit_code = job.exit_code
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
