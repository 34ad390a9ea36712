"""Warm bash workers with real processes: same results as ``bash -c``, isolation, kills, fallbacks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildyard.engine.local import LocalExecutor
from buildyard.engine.process import ProcessResult, run_process
from buildyard.engine.request import JobRequest, StepRequest
from buildyard.engine.shellpool import ShellPool
from buildyard.engine.warmshell import warm_shell
from buildyard.errors import UsageError
from buildyard.model import JobStatus
from by_testutil import STUBBORN, gone

SHELL = "bash -eo pipefail"

# Ignores SIGTERM and starts a grandchild that ignores it too; both write their pids, then sleep.

TRICKY = [
    "echo out; echo err >&2; exit 3",
    'echo "it\'s" \'a "quote"\' \\$HOME \\\\ back`echo tick`slash',
    'x=$((6 * 7)); echo "$x ${#x} $(printf %s "$x")"',
    "printf '%s\\n' 'ünïcödé ✓ 日本'",
    'echo "a $LINENO"\n\necho "b $LINENO"\nnot-a-command-xyz\necho never',
    "false | true; echo pipefail-off-would-print",
    "cat <<'EOF'\n$not $expanded\n  indented\nEOF\necho done",
    'echo $- $# "$0" $SHLVL',
    "f() { return 4; }\nf || echo \"f=$?\"\ntrap 'echo bye' EXIT\nexit 0",
    "echo no newline at end",
    "",
    "if then",
]


@pytest.fixture
def pool() -> Iterator[ShellPool]:
    p = ShellPool()
    yield p
    p.close()


async def on_pool(
    pool: ShellPool,
    script: str,
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = 20,
    shell: str = SHELL,
) -> tuple[ProcessResult, bytes]:
    env = dict(os.environ) if env is None else env
    cwd = cwd or os.getcwd()
    warm = warm_shell(shell, env, script, cwd)
    assert warm is not None, "expected a warm worker to apply"
    out: list[bytes] = []
    result = await pool.run(warm, script, env=env, cwd=cwd, timeout=timeout, on_output=out.append, grace=0.3)
    assert result is not None, pool.broken
    return result, b"".join(out)


async def spawned(
    script: str, *, env: dict[str, str] | None = None, cwd: str | None = None, shell: str = SHELL
) -> tuple[ProcessResult, bytes]:
    out: list[bytes] = []
    result = await run_process(
        [*shell.split(), "-c", script],
        env=dict(os.environ) if env is None else env,
        cwd=cwd or os.getcwd(),
        timeout=20,
        on_output=out.append,
    )
    return result, b"".join(out)


def test_same_output_and_exit_codes_as_bash_c(pool: ShellPool) -> None:
    async def main() -> None:
        for script in TRICKY:
            for shell in (SHELL, "bash", "bash -e -o pipefail -u", "/bin/bash --noprofile --norc -e"):
                (warm, warm_out), (cold, cold_out) = (
                    await on_pool(pool, script, shell=shell),
                    await spawned(script, shell=shell),
                )
                # the one documented difference: syntax errors come from ``eval``, not ``-c``
                warm_out = warm_out.replace(b"bash: eval: line", b"bash: -c: line")
                assert (warm.exit_code, warm_out) == (cold.exit_code, cold_out), (shell, script)

    asyncio.run(main())


def test_environment_is_exactly_the_requested_one(pool: ShellPool, tmp_path: Path) -> None:
    script = "env -0 | sort -z | tr '\\0' '\\n' | grep -v '^_='"
    envs = [
        dict(os.environ),
        {"PATH": os.environ["PATH"], "ONLY": "me", "SHLVL": "7", "PWD": "/nowhere", "OLDPWD": str(tmp_path)},
        {
            "PATH": os.environ["PATH"],
            "MULTI": "line\none",
            "QUOTES": "'\"$x`",
            "EMPTY": "",
            "PWD": str(tmp_path),
        },
        {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "UNI": "ünï ✓", "RAW": "\udcff\udcfe", "ONLY": "me"},
        dict(os.environ),  # one worker serves them all in turn: each step gets exactly its own
    ]

    async def main() -> None:
        for env in envs:
            (warm, warm_out), (_, cold_out) = (
                await on_pool(pool, script, env=env, cwd=str(tmp_path)),
                await spawned(script, env=env, cwd=str(tmp_path)),
            )
            assert warm.exit_code == 0
            assert warm_out == cold_out

    asyncio.run(main())


def test_nothing_carries_over_between_steps(pool: ShellPool, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "KEEP": "1"}

    async def main() -> list[bytes]:
        outs = []
        for script in (
            "export LEAK=1; shellvar=2; alias ll=ls; f() { :; }; set -u; cd /; umask 077; echo $$",
            'echo "${LEAK-unset} ${shellvar-unset} $(type -t f ll || echo none) $- $KEEP"; pwd; umask\n'
            "echo $$",
        ):
            result, out = await on_pool(pool, script, env=env, cwd=str(tmp_path), shell="bash")
            assert result.exit_code == 0, out
            outs.append(out)
        return outs

    first, second = asyncio.run(main())
    lines = second.decode().splitlines()
    assert lines[0] == "unset unset none hBc 1"
    assert lines[1] == str(tmp_path.resolve())
    mask = os.umask(0o22)
    os.umask(mask)
    assert lines[2] == f"{mask:04o}"  # the worker's, i.e. ours: not the first step's 077
    assert first.strip() == lines[3].encode()  # same worker ($$), still a clean slate


def test_only_the_documented_worker_variable_is_visible(pool: ShellPool) -> None:
    async def main() -> list[bytes]:
        return [(await on_pool(pool, "compgen -v __by_ || true"))[1] for _ in range(2)]

    assert asyncio.run(main()) == [b"__by_s\n", b"__by_s\n"]


def test_working_directory(pool: ShellPool, tmp_path: Path) -> None:
    (tmp_path / "sub dir").mkdir()

    async def main() -> None:
        result, out = await on_pool(pool, "pwd; ls", cwd=str(tmp_path))
        assert out == f"{tmp_path.resolve()}\nsub dir\n".encode()
        result, out = await on_pool(pool, "echo never", cwd=str(tmp_path / "missing"))
        assert result.exit_code == 127 and b"cannot enter working directory" in out

    asyncio.run(main())


def test_cpu_time_and_peak_rss(pool: ShellPool) -> None:
    # holds 150 MB (written, so resident), then burns 0.8 s of CPU time (not wall time: the machine may be
    # busy), long enough for the sampler (20 ms, backing off to 500 ms) to see it after the allocation
    hog = (
        "x = bytes(range(256)) * (600 * 1024); import time; t = time.process_time()\n"
        "while time.process_time() - t < 0.8: pass"
    )

    async def main() -> ProcessResult:
        result, _ = await on_pool(pool, f"{sys.executable} -c '{hog}'; echo after")
        return result

    result = asyncio.run(main())
    assert result.cpu_seconds >= 0.4
    assert 150 * 1024 * 1024 <= result.peak_rss < 400 * 1024 * 1024


def test_timeout_kills_tree_even_when_sigterm_is_ignored(pool: ShellPool, tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def main() -> tuple[ProcessResult, bytes, ProcessResult]:
        result, out = await on_pool(pool, f"{sys.executable} -c '{STUBBORN}' {pids}", timeout=1.0)
        after, _ = await on_pool(pool, "echo still works")
        return result, out, after

    start = time.monotonic()
    result, out, after = asyncio.run(main())
    assert result.timed_out and b"ready" in out
    assert result.exit_code in (128 + signal.SIGTERM, 128 + signal.SIGKILL)
    assert time.monotonic() - start < 5
    parent, child = map(int, pids.read_text().split())
    assert gone(parent) and gone(child)
    assert after.exit_code == 0


def test_cancellation_kills_and_reraises(pool: ShellPool, tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def main() -> None:
        task = asyncio.create_task(on_pool(pool, f"{sys.executable} -c '{STUBBORN}' {pids}"))
        while not pids.exists() or not pids.read_text():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result, out = await on_pool(pool, "echo next")
        assert (result.exit_code, out) == (0, b"next\n")

    asyncio.run(main())
    parent, child = map(int, pids.read_text().split())
    assert gone(parent) and gone(child)


def test_background_processes_die_with_the_step(pool: ShellPool, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"

    async def main() -> float:
        start = time.monotonic()
        result, _ = await on_pool(pool, f"sleep 30 & echo $! > {pidfile}; exit 0")
        assert result.exit_code == 0
        return time.monotonic() - start

    assert asyncio.run(main()) < 2
    assert gone(int(pidfile.read_text()))


def test_no_output_bleeds_into_the_next_step(pool: ShellPool, tmp_path: Path) -> None:
    pidfile = tmp_path / "escaped"
    # A process that escapes the step's group keeps its stdout: its late line must not reach step 2.
    first = (
        f"echo first; setsid bash -c 'echo $$ > {pidfile}; sleep 0.4; echo LATE' &\n"
        f"until [ -s {pidfile} ]; do sleep 0.01; done; head -c 300000 /dev/zero"
    )

    async def main() -> list[bytes]:
        outs = []
        for script in (first, "sleep 0.8; echo second", "echo third"):
            _, out = await on_pool(pool, script, shell="bash")
            outs.append(out)
        return outs

    one, two, three = asyncio.run(main())
    assert one.startswith(b"first\n") and one.count(b"\0") == 300000
    assert (two, three) == (b"second\n", b"third\n")
    assert gone(int(pidfile.read_text()))


def test_a_killed_worker_is_replaced(pool: ShellPool) -> None:
    async def main() -> None:
        _, out = await on_pool(pool, "echo $$")
        worker = int(out)
        os.kill(worker, signal.SIGKILL)
        assert gone(worker)
        result, out = await on_pool(pool, "echo $$")
        assert result.exit_code == 0 and int(out) != worker

    asyncio.run(main())


def test_a_worker_that_stops_answering_is_replaced() -> None:
    async def main() -> None:
        pool = ShellPool(start_timeout=0.5)
        try:
            _, out = await on_pool(pool, "echo $$")
            stuck = int(out)
            os.kill(stuck, signal.SIGSTOP)  # alive, but it will never read the next step
            start = time.monotonic()
            result, out = await on_pool(pool, "echo $$")
            assert result.exit_code == 0 and int(out) != stuck
            assert time.monotonic() - start < 3
            assert gone(stuck)
        finally:
            pool.close()

    asyncio.run(main())


def test_a_worker_that_never_reports_the_end_is_dropped() -> None:
    async def main() -> None:
        pool = ShellPool(watch_interval=0.2)
        try:
            _, out = await on_pool(pool, "echo $$")
            worker = int(out)
            task = asyncio.create_task(on_pool(pool, "sleep 0.3; echo done"))
            await asyncio.sleep(0.1)
            os.kill(worker, signal.SIGSTOP)  # the step ends, but nobody reports it
            result, out = await task
            assert result.exit_code == 128 + signal.SIGKILL and not result.timed_out
            assert out.startswith(b"done\n") and b"was lost" in out
            assert gone(worker)
            result, out = await on_pool(pool, "echo next")
            assert (result.exit_code, out) == (0, b"next\n")
        finally:
            pool.close()

    asyncio.run(main())


def test_kill_dollar_dollar_ends_the_step_like_bash_c(pool: ShellPool, tmp_path: Path) -> None:
    pidfile = tmp_path / "child"

    async def main() -> None:
        start = time.monotonic()
        result, out = await on_pool(pool, f"sleep 30 & echo $! > {pidfile}; kill $$; sleep 30")
        assert result.exit_code == 128 + signal.SIGTERM
        assert time.monotonic() - start < 5
        assert b"shell worker running this step was lost" in out
        result, out = await on_pool(pool, "echo fine")
        assert (result.exit_code, out) == (0, b"fine\n")

    asyncio.run(main())
    assert gone(int(pidfile.read_text()))


def test_close_stops_every_worker() -> None:
    async def main() -> list[int]:
        pool = ShellPool()
        outs = await asyncio.gather(*(on_pool(pool, "sleep 0.2; echo $$") for _ in range(3)))
        pool.close()
        return [int(out) for _, out in outs]

    workers = asyncio.run(main())
    assert len(set(workers)) == 3
    assert all(gone(pid, wait=0) for pid in workers)


def test_many_quick_steps_each_report_their_own_status(pool: ShellPool) -> None:
    """Steps that end before the worker waits for them still report their status (no 127s)."""

    async def lane(start: int) -> list[tuple[int, int, bytes]]:
        seen = []
        for i in range(start, start + 150):
            result, out = await on_pool(pool, f"echo {i}; exit {i % 4}", shell="bash")
            seen.append((i, result.exit_code, out))
        return seen

    async def main() -> list[tuple[int, int, bytes]]:
        first, second = await asyncio.gather(lane(0), lane(1000))
        return first + second

    for i, code, out in asyncio.run(main()):
        assert (code, out) == (i % 4, f"{i}\n".encode())


def test_a_stopped_step_ends_instead_of_hanging(pool: ShellPool) -> None:
    async def main() -> ProcessResult:
        result, _ = await on_pool(pool, "echo $BASHPID; kill -STOP $BASHPID; echo never", timeout=30)
        return result

    start = time.monotonic()
    result = asyncio.run(main())
    assert result.exit_code == 128 + signal.SIGSTOP and not result.timed_out
    assert time.monotonic() - start < 5


def test_which_steps_get_a_warm_worker(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    cwd = str(tmp_path)
    assert warm_shell("bash -eo pipefail", env, "x", cwd) is not None
    assert warm_shell("bash --noprofile --norc -e -o errexit", env, "x", cwd) is not None
    for shell in (
        "sh -e",
        "python {0}",
        "bash {0}",
        "bash -l",
        "bash -i",
        "bash -O extglob",
        "bash -o vi",
        "zsh",
    ):
        assert warm_shell(shell, env, "x", cwd) is None, shell
    for bad in (
        {"BASH_ENV": "/x"},
        {"A-B": "1"},
        {"SHELLOPTS": "x"},
        {"TMOUT": "5"},
        {"__by_s": ""},
        {"X": "\0"},
    ):
        assert warm_shell("bash", {**env, **bad}, "x", cwd) is None, bad
    assert warm_shell("bash", env, "nul\0", cwd) is None
    assert warm_shell("bash", {"PATH": str(tmp_path)}, "x", cwd) is None  # no bash on that PATH


def request(tmp_path: Path, *steps: StepRequest, timeout: float | None = None) -> JobRequest:
    return JobRequest(
        run_id="r1",
        job_id="job",
        attempt=1,
        steps=steps,
        env=tuple(os.environ.items()),
        cwd=str(tmp_path),
        log_path=str(tmp_path / "logs" / "job.log"),
        timeout=timeout,
        kill_grace=0.3,
    )


@pytest.mark.parametrize("mode", ["pool", "spawn"])
def test_local_executor_modes(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``BUILDYARD_EXECUTOR=spawn`` starts a shell per step (``$$`` is the step's own shell)."""
    monkeypatch.setenv("BUILDYARD_EXECUTOR", mode)
    executor = LocalExecutor()
    same = "[ $$ = $BASHPID ] && echo own-shell || echo warm-worker"
    req = request(
        tmp_path,
        StepRequest("bash", SHELL, same),
        StepRequest("sh", "sh -e", "echo from sh"),
        StepRequest("file", "bash {0}", same),
        StepRequest("fails", SHELL, "echo boom; exit 5", continue_on_error=True),
        StepRequest("last", SHELL, "echo $BUILDYARD_STEP"),
    )
    try:
        outcome = asyncio.run(executor.execute(req))
    finally:
        executor.close()
    assert outcome.status == JobStatus.SUCCESS
    assert [s.exit_code for s in outcome.steps] == [0, 0, 0, 5, 0]
    log = Path(outcome.log_path).read_text()
    expected = "warm-worker" if mode == "pool" else "own-shell"
    assert log.count(expected) == 1 + (mode == "spawn")
    assert "from sh" in log and "boom" in log and "5\n" in log


def test_local_executor_step_timeout(tmp_path: Path) -> None:
    executor = LocalExecutor("pool")
    req = request(tmp_path, StepRequest("slow", SHELL, "echo started; sleep 30", timeout=0.5))
    try:
        outcome = asyncio.run(executor.execute(req))
    finally:
        executor.close()
    assert outcome.status == JobStatus.TIMED_OUT
    assert "step timed out after 0.5s" in Path(outcome.log_path).read_text()


def test_unknown_executor_mode_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDYARD_EXECUTOR", "threads")
    with pytest.raises(UsageError, match="BUILDYARD_EXECUTOR"):
        LocalExecutor()
