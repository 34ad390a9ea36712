"""The warm daemon end to end: real client processes, a real daemon, real runs and signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buildyard.cli import DAEMON_SERVER
from buildyard.daemon import client, server

BY = [sys.executable, "-m", "buildyard"]


@pytest.fixture
def daemon_env() -> Iterator[dict[str, str]]:
    """An environment whose commands use (and auto-start) a daemon in a private short-path directory."""
    folder = tempfile.mkdtemp(prefix="byd-")  # sockets need short paths: not under pytest's tmp_path
    env = {**os.environ, "BUILDYARD_DAEMON": "1", "BUILDYARD_DAEMON_DIR": folder}
    env.pop("CI", None)
    try:
        yield env
    finally:
        subprocess.run([*BY, "daemon", "stop"], env=env, capture_output=True, check=False)
        _wait_gone(env)
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _status(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([*BY, "daemon", "status", "--json"], env=env, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def _wait_gone(env: dict[str, str]) -> None:
    deadline = time.monotonic() + 10
    while _status(env)["running"] and time.monotonic() < deadline:
        time.sleep(0.1)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str, int]:
    """Exit code, stdout, stderr and pid of a client process."""
    with subprocess.Popen(
        [*BY, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err, proc.pid


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


PIPELINE = """\
name: warm
jobs:
  hello:
    script:
      - echo "var=$MY_VAR cwd=$PWD" > out.txt
      - echo "$PPID" > parent.txt
      - echo hello from the job
"""


def test_commands_run_in_a_forked_child_of_the_daemon_with_the_clients_env_and_streams(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    started = subprocess.run([*BY, "daemon", "start"], env=daemon_env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    daemon_pid = int(str(_status(daemon_env)["pid"]))

    env = {**daemon_env, "MY_VAR": "from-the-client"}
    code, out, err, client_pid = _run(env, "-C", str(root), "run", "--json")
    assert code == 0, err
    summary = json.loads(out)  # the command process wrote to the client's own stdout
    assert summary["status"] == "success"
    assert (root / "out.txt").read_text() == f"var=from-the-client cwd={root}\n"
    assert int((root / "parent.txt").read_text()) != client_pid  # the job's parent: the daemon's child
    with sqlite3.connect(root / ".buildyard" / "buildyard.db") as db:
        assert db.execute("select status from runs").fetchall() == [("success",)]
    status = _status(daemon_env)
    assert status["served"] == 1
    assert status["pid"] == daemon_pid

    # exit codes and error lines come back unchanged
    (root / "buildyard.yml").write_text("name: warm\njobs:\n  bad: {script: [exit 3]}\n")
    failed = subprocess.run([*BY, "-C", str(root), "run"], env=env, capture_output=True, text=True)
    assert failed.returncode == 1
    (root / "buildyard.yml").write_text("name: warm\njobs:\n  bad: {scrpt: [true]}\n")
    invalid = subprocess.run([*BY, "-C", str(root), "run"], env=env, capture_output=True, text=True)
    assert invalid.returncode == 2
    assert "buildyard.yml:3" in invalid.stderr and "Traceback" not in invalid.stderr
    assert _status(daemon_env)["served"] == 3


def test_the_job_process_descends_from_the_daemon(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project(
        {"buildyard.yml": "name: tree\njobs:\n  sleepy:\n    script: ['echo $$ > job.pid; sleep 30']\n"}
    )
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    daemon_pid = int(str(_status(daemon_env)["pid"]))
    proc = subprocess.Popen(
        [*BY, "-C", str(root), "run"], env=daemon_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for(lambda: (root / "job.pid").exists() and (root / "job.pid").read_text().strip() != "", "job")
        job = int((root / "job.pid").read_text())
        command = _ppid(job)
        assert _ppid(command) == daemon_pid
        assert command != proc.pid
        # Ctrl-C at the client is forwarded: the run is cancelled, the job tree killed, exit 130
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    _wait_for(lambda: not Path(f"/proc/{job}").exists(), "the job to be killed")
    with sqlite3.connect(root / ".buildyard" / "buildyard.db") as db:
        assert db.execute("select status from runs").fetchall() == [("cancelled",)]


def test_a_killed_client_cancels_its_run(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project(
        {"buildyard.yml": "name: orphan\njobs:\n  sleepy:\n    script: ['echo $$ > job.pid; sleep 30']\n"}
    )
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [*BY, "-C", str(root), "run"], env=daemon_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: (root / "job.pid").exists() and (root / "job.pid").read_text().strip() != "", "job")
        job = int((root / "job.pid").read_text())
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _wait_for(lambda: not Path(f"/proc/{job}").exists(), "the job to be killed")

    def cancelled() -> bool:
        with sqlite3.connect(root / ".buildyard" / "buildyard.db") as db:
            return db.execute("select status from runs").fetchall() == [("cancelled",)]

    _wait_for(cancelled, "the run to be recorded as cancelled")


def test_first_command_starts_the_daemon_and_runs_in_process(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    assert _status(daemon_env)["running"] is False
    code, _, err, client_pid = _run(daemon_env, "-C", str(root), "run")
    assert code == 0, err
    assert int((root / "parent.txt").read_text()) == client_pid  # ran in the client process itself
    _wait_for(lambda: bool(_status(daemon_env)["running"]), "the auto-started daemon")
    code, _, err, client_pid = _run(daemon_env, "-C", str(root), "run")
    assert code == 0, err
    assert int((root / "parent.txt").read_text()) != client_pid
    assert _status(daemon_env)["served"] == 1


def test_on_ci_a_missing_daemon_is_not_started(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    env = {k: v for k, v in daemon_env.items() if k != "BUILDYARD_DAEMON"}
    env["CI"] = "true"
    proc = subprocess.run([*BY, "-C", str(root), "run"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    time.sleep(0.5)
    assert _status(daemon_env)["running"] is False
    assert not list(Path(daemon_env["BUILDYARD_DAEMON_DIR"]).glob("*.sock"))


def test_idle_daemon_exits_and_removes_its_socket(daemon_env: dict[str, str]) -> None:
    env = {**daemon_env, "BUILDYARD_DAEMON_IDLE": "0.5"}
    subprocess.run([*BY, "daemon", "start"], env=env, check=True, capture_output=True)
    pid = int(str(_status(env)["pid"]))
    _wait_for(lambda: not Path(f"/proc/{pid}").exists() or _ppid(pid) == 0, "the idle daemon to exit")
    _wait_for(lambda: not list(Path(env["BUILDYARD_DAEMON_DIR"]).glob("*.sock")), "the socket to go")


def test_policy_and_command_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.policy({"BUILDYARD_DAEMON": "0"}) == "off"
    assert client.policy({"BUILDYARD_DAEMON": "on", "CI": "true"}) == "start"
    assert client.policy({"CI": "true"}) == "use"
    assert client.policy({}) == "start"
    assert client.command_of(["-C", "dir", "run", "-j", "2"]) == "run"
    assert client.command_of(["--directory=x", "show", "3"]) == "show"
    assert client.command_of(["-Cx", "logs"]) == "logs"
    assert client.command_of(["--version"]) is None
    monkeypatch.setenv("BUILDYARD_DAEMON", "1")
    assert client.run_via_daemon(["daemon", "status"], DAEMON_SERVER) is None  # never served by itself


def test_fingerprint_follows_the_installed_code() -> None:
    source = Path(client.__file__)
    before = source.stat()
    first = server.fingerprint()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert server.fingerprint() != first
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert server.fingerprint() == first


def test_a_private_directory_is_required(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert client.private_dir(str(shared)) is False
    assert client.private_dir(str(tmp_path / "mine")) is True
    assert (tmp_path / "mine").stat().st_mode & 0o777 == 0o700


def test_a_daemon_in_a_shared_directory_or_another_context_is_not_used(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    folder = Path(daemon_env["BUILDYARD_DAEMON_DIR"])

    # other resource limits than the daemon's: the jobs must get the client's, so it runs in-process
    limited = [sys.executable, "-c", "import resource, sys, os; "
               "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
               "os.execv(sys.executable, [sys.executable, '-m', 'buildyard', *sys.argv[1:]])"]  # fmt: skip
    core = __import__("resource").getrlimit(__import__("resource").RLIMIT_CORE)
    if core != (0, 0):
        with subprocess.Popen([*limited, "-C", str(root), "run"], env=daemon_env) as proc:
            assert proc.wait(timeout=60) == 0
            assert int((root / "parent.txt").read_text()) == proc.pid
        assert _status(daemon_env)["served"] == 0

    # a directory others can enter: whatever listens there is not trusted
    folder.chmod(0o755)
    try:
        code, _, err, client_pid = _run(daemon_env, "-C", str(root), "run")
        assert code == 0, err
        assert int((root / "parent.txt").read_text()) == client_pid
    finally:
        folder.chmod(0o700)
    assert _status(daemon_env)["served"] == 0
    code, _, err, client_pid = _run(daemon_env, "-C", str(root), "run")
    assert int((root / "parent.txt").read_text()) != client_pid
    assert _status(daemon_env)["served"] == 1


def test_a_closed_terminal_cancels_the_run_cleanly(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project(
        {"buildyard.yml": "name: hup\njobs:\n  sleepy:\n    script: ['echo $$ > job.pid; sleep 30']\n"}
    )
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    with subprocess.Popen(
        [*BY, "-C", str(root), "run"], env=daemon_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        _wait_for(lambda: (root / "job.pid").exists() and (root / "job.pid").read_text().strip() != "", "job")
        job = int((root / "job.pid").read_text())
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=20) == 130
    _wait_for(lambda: not Path(f"/proc/{job}").exists(), "the job to be killed")
    with sqlite3.connect(root / ".buildyard" / "buildyard.db") as db:
        assert db.execute("select status from runs").fetchall() == [("cancelled",)]


def test_a_client_in_a_deleted_directory_runs_in_process(
    make_project: Callable[..., Path], daemon_env: dict[str, str], tmp_path: Path
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "$@"'
    argv = ["bash", "-c", script, "_", *BY, "-C", str(root), "run"]
    proc = subprocess.run(argv, env=daemon_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _status(daemon_env)["served"] == 0


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2]


def test_ctrl_z_stops_and_fg_resumes_the_command(
    make_project: Callable[..., Path], daemon_env: dict[str, str]
) -> None:
    root = make_project(
        {"buildyard.yml": "name: tstp\njobs:\n  slow:\n    script: ['echo $$ > job.pid; sleep 2']\n"}
    )
    subprocess.run([*BY, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    with subprocess.Popen(
        [*BY, "-C", str(root), "run"],
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,  # like a shell's job: a group of its own that SIGTSTP can stop
    ) as proc:
        _wait_for(lambda: (root / "job.pid").exists() and (root / "job.pid").read_text().strip() != "", "job")
        command = _ppid(int((root / "job.pid").read_text()))
        proc.send_signal(signal.SIGTSTP)
        _wait_for(lambda: _state(command) == "T" and _state(proc.pid) == "T", "both to stop")
        proc.send_signal(signal.SIGCONT)
        _wait_for(lambda: _state(command) != "T", "the command to resume")
        assert proc.wait(timeout=30) == 0
    with sqlite3.connect(root / ".buildyard" / "buildyard.db") as db:
        assert db.execute("select status from runs").fetchall() == [("success",)]
    assert command != proc.pid  # it was the daemon's child that stopped and resumed


def test_daemon_start_in_a_shared_directory_is_a_one_line_error(daemon_env: dict[str, str]) -> None:
    folder = Path(daemon_env["BUILDYARD_DAEMON_DIR"])
    folder.chmod(0o755)
    try:
        proc = subprocess.run([*BY, "daemon", "start"], env=daemon_env, capture_output=True, text=True)
    finally:
        folder.chmod(0o700)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a private directory" in proc.stderr
    assert str(folder) in proc.stderr and "Traceback" not in proc.stderr
