"""The local executor: runs a job's steps as processes on this machine, writing a masked log.

Every step is spawned as ``shell -c script`` (``process``), or directly when it is one plain command
(``direct_argv``: what the shell would exec anyway, without its start-up). With
``BUILDYARD_EXECUTOR=pool`` (opt-in, ~1.25× less overhead per job) bash steps run on warm shell
workers (``shellpool``) instead; steps a
worker cannot stand in for are still spawned. Spawning stays the default until the pool has a longer
record: it has subtle differences (``$$`` is the worker's pid) and a young bug history.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from buildyard.engine.joblog import JobLog
from buildyard.engine.masking import Masker
from buildyard.engine.process import ProcessResult, Spawner, run_process
from buildyard.engine.request import JobOutcome, JobRequest, OutputSink, StepOutcome, StepRequest
from buildyard.engine.shellpool import ShellPool
from buildyard.engine.warmshell import warm_shell
from buildyard.errors import UsageError
from buildyard.model import JobStatus
from buildyard.settings import load as load_settings

EXECUTOR_MODES = ("pool", "spawn")


#: Words a shell gives meaning to on its own: a script starting with one always runs in the shell.
# fmt: off
_SHELL_WORDS = frozenset((
    ".", ":", "[", "[[", "]]", "!", "{", "}", "alias", "bg", "bind", "break", "builtin", "caller", "case",
    "cd", "command", "compgen", "complete", "compopt", "continue", "coproc", "declare", "dirs", "disown",
    "do", "done", "echo", "elif", "else", "enable", "esac", "eval", "exec", "exit", "export", "false",
    "fc", "fg", "fi", "for", "function", "getopts", "hash", "help", "history", "if", "in", "jobs", "kill",
    "let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray", "readonly",
    "return", "select", "set", "shift", "shopt", "source", "suspend", "test", "then", "time", "times",
    "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
))
# fmt: on
#: One line of plain words: no quoting, expansion, redirection, globbing, assignment or separators.
_PLAIN = re.compile(r"[A-Za-z0-9_./@%+,:-]+(?: +[A-Za-z0-9_./@%+,:=-]+)*")
_POSIX_SHELLS = frozenset({"bash", "sh", "dash", "zsh"})


@functools.lru_cache(maxsize=64)
def _shell_words(shell: str) -> tuple[str, ...]:
    return tuple(shlex.split(shell))


def direct_argv(step: StepRequest, path: str | None) -> list[str] | None:
    """The argv that runs a plain one-line command without a shell, or None when a shell is needed.

    ``bash -eo pipefail -c "npm run build"`` and ``npm run build`` run the same process (bash execs a
    lone simple command), minus the shell's start-up — about 2 ms of CPU per job, what make saves the
    same way. Only for POSIX shells, plain words (see ``_PLAIN``), a first word that is no shell
    builtin or keyword and that resolves on ``path``; anything else keeps the shell and its messages.
    """
    parts = _shell_words(step.shell)
    if not parts or os.path.basename(parts[0]) not in _POSIX_SHELLS:  # noqa: PTH119
        return None
    if _PLAIN.fullmatch(step.script) is None:
        return None
    words = step.script.split()
    if words[0] in _SHELL_WORDS or "/" in words[0]:  # a path is the job's, relative to its directory
        return None
    program = shutil.which(words[0], path=path)
    return [program, *words[1:]] if program is not None else None


def shell_argv(step: StepRequest, script_file: str | None = None) -> list[str]:
    """The command line of a step: ``shell -c script``, or ``shell`` with ``{0}`` → script file."""
    parts = _shell_words(step.shell)
    if script_file is not None:
        return [p.replace("{0}", script_file) for p in parts]
    return [*parts, "-c", step.script]


class LocalExecutor:
    """Executes requests as local subprocesses (one process tree per step, in the request's cwd).

    ``mode`` is ``pool`` (bash steps on warm workers; the default) or ``spawn`` (a new shell per
    step); it defaults to the ``executor`` setting (``BUILDYARD_EXECUTOR``). Call ``close()`` when done
    to stop the workers.
    """

    def __init__(self, mode: str | None = None) -> None:
        mode = mode or load_settings().executor
        if mode not in EXECUTOR_MODES:
            raise UsageError(f"BUILDYARD_EXECUTOR={mode!r} is not one of: {', '.join(EXECUTOR_MODES)}")
        self.pool = ShellPool() if mode == "pool" else None
        self._spawner: Spawner | None = None

    def close(self) -> None:
        """Stop the warm shell workers, if any (the executor stays usable: they restart on demand)."""
        if self.pool is not None:
            self.pool.close()
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None

    async def _run_step(
        self,
        step: StepRequest,
        env: dict[str, str],
        cwd: str,
        limit: float | None,
        emit: Callable[[bytes], None],
        grace: float,
    ) -> ProcessResult:
        if self._spawner is None:
            self._spawner = Spawner()
        if self.pool is not None:
            shell = warm_shell(step.shell, env, step.script, cwd)
            if shell is not None:
                spawner, started = self._spawner, []

                def watched(pid: int) -> None:  # the run's watchdog kills it if buildyard dies
                    started.append(pid)
                    spawner.watch(pid, env)

                try:
                    result = await self.pool.run(
                        shell,
                        step.script,
                        env=env,
                        cwd=cwd,
                        timeout=limit,
                        on_output=emit,
                        grace=grace,
                        on_start=watched,
                    )
                finally:
                    for pid in started:  # ended: its pid may be reused, never kill that group
                        spawner.reaped(pid)
                if result is not None:
                    return result
        script_file = _script_file(step) if "{0}" in step.shell else None
        argv = None if script_file else direct_argv(step, env.get("PATH"))
        try:
            return await run_process(
                argv or shell_argv(step, script_file),
                env=env,
                cwd=cwd,
                timeout=limit,
                on_output=emit,
                grace=grace,
                spawner=self._spawner,
            )
        finally:
            if script_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(script_file)

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run the steps in order; stop at the first failing step unless it may continue on error."""
        masker = Masker(request.mask)
        log_path = Path(request.log_path)
        started_at = time.time()
        start = time.monotonic()
        deadline = start + request.timeout if request.timeout else None
        steps: list[StepOutcome] = []
        status = JobStatus.SUCCESS
        exit_code: int | None = 0
        cpu = 0.0
        rss = 0
        message = ""
        with JobLog(log_path, append=request.attempt > 1, limit=request.log_limit) as log:
            if request.attempt > 1:
                log.write(f"\n──── attempt {request.attempt} ────\n".encode())

            current: list[asyncio.Future[ProcessResult]] = []  # the running step

            def emit(data: bytes) -> None:
                out = masker.feed(data)
                if out:
                    log.write(out)
                    if log.error is not None and current and not current[0].done():
                        current[0].cancel()  # its output can no longer be recorded (disk full…): stop it
                    if sink is not None:
                        sink(request.job_id, out)

            base_env = dict(request.env)
            for index, step in enumerate(request.steps):
                remaining = deadline - time.monotonic() if deadline else None
                if remaining is not None and remaining <= 0:
                    status, exit_code = JobStatus.TIMED_OUT, None
                    message = f"timed out after {request.timeout:g}s"
                    break
                limits = [t for t in (step.timeout, remaining) if t is not None]
                limit = min(limits) if limits else None
                if len(request.steps) > 1:
                    emit(f"▶ {step.name}\n".encode())
                env = {**base_env, **dict(step.env), "BUILDYARD_STEP": str(index + 1)}
                step_start, step_mono = time.time(), time.monotonic()
                step_run = asyncio.ensure_future(
                    self._run_step(step, env, request.cwd, limit, emit, request.kill_grace)
                )
                current[:] = [step_run]
                try:
                    result = await step_run
                except asyncio.CancelledError:
                    me = asyncio.current_task()
                    if log.error is None or (me is not None and me.cancelling()):
                        log.write(masker.flush() + b"\nbuildyard: cancelled\n")
                        raise
                    # ``emit`` stopped the step: its log cannot be written
                    status, exit_code, message = JobStatus.FAILED, None, log.problem
                    ended = time.time()
                    steps.append(
                        StepOutcome(step.name, status, None, step_start, ended, time.monotonic() - step_mono)
                    )
                    break
                cpu += result.cpu_seconds
                rss = max(rss, result.peak_rss)
                if result.timed_out:
                    step_status = JobStatus.TIMED_OUT
                    which = "step" if step.timeout is not None and step.timeout == limit else "job"
                    shown = step.timeout if which == "step" else request.timeout
                    message = f"{which} timed out after {shown:g}s" if shown else "timed out"
                    emit(f"\nbuildyard: {message}\n".encode())
                else:
                    step_status = JobStatus.SUCCESS if result.exit_code == 0 else JobStatus.FAILED
                steps.append(
                    StepOutcome(
                        step.name,
                        step_status,
                        result.exit_code,
                        step_start,
                        time.time(),
                        time.monotonic() - step_mono,
                    )
                )
                if log.error is not None:  # e.g. a full disk: the job's record would be incomplete
                    status, exit_code, message = JobStatus.FAILED, result.exit_code, log.problem
                    break
                if step_status != JobStatus.SUCCESS:
                    if step_status == JobStatus.FAILED and step.continue_on_error:
                        note = f"buildyard: step {step.name!r} failed (exit {result.exit_code}), continuing\n"
                        emit(note.encode())
                        continue
                    status = step_status
                    exit_code = result.exit_code if step_status == JobStatus.FAILED else None
                    if step_status == JobStatus.FAILED:
                        message = f"step '{step.name}' exited with code {result.exit_code}"
                    break
            tail = masker.flush()
            if tail:
                log.write(tail)
                if sink is not None:
                    sink(request.job_id, tail)
        if log.error is not None:  # also when only the final splice or flush failed
            status, message = JobStatus.FAILED, log.problem
        return JobOutcome(
            job_id=request.job_id,
            attempt=request.attempt,
            status=status,
            exit_code=exit_code,
            started_at=started_at,
            finished_at=time.time(),
            duration_s=time.monotonic() - start,
            cpu_seconds=cpu,
            peak_rss=rss,
            steps=tuple(steps),
            message=masker.mask_text(message),
            log_path=str(log_path),
            log_cut=log.cut,
            log_problem=log.problem,
        )


def _script_file(step: StepRequest) -> str:
    fd, path = tempfile.mkstemp(prefix="buildyard-step-", suffix=".sh")
    with os.fdopen(fd, "w") as f:
        f.write(step.script)
    return path
