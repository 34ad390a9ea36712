"""Job logs under pressure: huge output is capped with bounded memory, big logs are read from the end or
streamed, a full disk is reported in one line and recorded, and URL-encoded secrets are masked in any case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from buildyard.cli.render import log_tail
from buildyard.engine.masking import Masker

MB = 1000 * 1000
RSS_BOUND = 200 * 1024 * 1024
#: A job printing ``size`` bytes of numbered lines, first HEAD-START, last TAIL-END, then failing.
BIG_JOB = """\
import sys
out = sys.stdout.buffer
out.write(b"HEAD-START\\n")
block = b"".join(b"line %07d of filler text..........................\\n" % i for i in range(20000))
left = {size}
while left > 0:
    out.write(block[:left])
    left -= len(block)
out.write(b"TAIL-END\\n")
sys.exit(1)
"""


#: Runs argv, then prints the peak RSS (KiB) of it and the children it waited for: ``wait4``'s figure.
_MEASURE = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "p.returncode = code = os.waitstatus_to_exitcode(status)\n"
    "sys.stderr.write(f'\\nMAXRSS {usage.ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)


def _run(
    args: list[str], env: dict[str, str] | None = None, stdout: object = subprocess.PIPE
) -> tuple[int, str, str, int]:
    """Run ``args``; return (exit code, stdout, stderr, peak RSS in bytes of it and its children)."""
    full = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        env=full,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
    )
    err, _, rss = proc.stderr.decode(errors="replace").rpartition("\nMAXRSS ")
    out = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else ""
    return proc.returncode, out, err, int(rss) * 1024


def _buildyard(
    root: Path, *args: str, env: dict[str, str] | None = None, stdout: object = subprocess.PIPE
) -> tuple[int, str, str, int]:
    return _run([sys.executable, "-m", "buildyard", "-C", str(root), *args], env=env, stdout=stdout)


def _big_project(make_project, size: int) -> Path:
    return make_project(
        {
            "big.py": BIG_JOB.format(size=size),
            "buildyard.yml": "jobs:\n  spam: {script: python3 big.py}\n",
        }
    )


# --- item 7: memory and size of big logs --------------------------------------------------------


def test_huge_output_is_capped_keeping_head_and_tail_with_bounded_memory(make_project) -> None:
    root = _big_project(make_project, 300 * MB)
    code, out, err, rss = _buildyard(root, "run", env={"BUILDYARD_LOG_LIMIT": "1MB"})
    assert code == 1, err
    (log,) = (root / ".buildyard" / "logs").glob("*/1/spam.log")
    data = log.read_bytes()
    assert len(data) <= 1 * MB + 200  # the cap plus the marker line
    assert data.startswith(b"HEAD-START\n")
    assert data.endswith(b"TAIL-END\n")
    cut = data.split(b"\n\xe2\x80\xa6 ", 1)[1].split(b" bytes cut", 1)[0]
    printed = len(b"HEAD-START\n") + 300 * MB + len(b"TAIL-END\n")
    assert int(cut) == printed - 1 * MB  # half the cap of head, half of tail, the rest said to be cut
    assert "bytes cut from the middle of" in out  # the note in the run's output
    assert not log.with_name("spam.log.tail").exists()
    assert rss < RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB"
    assert "Traceback" not in err


@pytest.mark.parametrize("seed", range(6))
def test_capped_log_is_exactly_head_marker_tail_for_any_chunking(tmp_path: Path, seed: int) -> None:
    import random

    from buildyard.engine.joblog import JobLog

    rng = random.Random(seed)
    limit = rng.choice([4096, 5000, 10_000])
    total = rng.choice([limit - 1, limit, limit + 1, 3 * limit + 7, 50 * limit])
    data = rng.randbytes(total)
    path = tmp_path / "job.log"
    earlier = b"attempt 1\n" if seed % 2 else b""
    path.write_bytes(earlier)
    with JobLog(path, append=True, limit=limit) as log:
        pos = 0
        while pos < total:
            size = rng.choice([1, 7, 100, 4095, 20_000])
            log.write(data[pos : pos + size])
            pos += size
    stored = path.read_bytes()
    head, tail = limit // 2, limit - limit // 2
    if total <= limit:
        assert stored == earlier + data
        assert log.cut == 0
    else:
        cut = total - limit
        marker = f"\n… {cut} bytes cut (log limit {limit} bytes) …\n".encode()
        assert stored == earlier + data[:head] + marker + data[-tail:]
        assert log.cut == cut
    assert not (tmp_path / "job.log.tail").exists()


def test_default_cap_is_100mb(make_project, monkeypatch) -> None:
    from buildyard.engine.joblog import log_limit

    assert log_limit({}) == 100 * MB
    assert log_limit({"BUILDYARD_LOG_LIMIT": "512KiB"}) == 512 * 1024
    assert log_limit({"BUILDYARD_LOG_LIMIT": "0"}) == 0
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo hi}\n"})
    code, _, err, _ = _buildyard(root, "run", env={"BUILDYARD_LOG_LIMIT": "lots"})
    assert code == 2
    assert err.strip() == (
        "buildyard: error: BUILDYARD_LOG_LIMIT='lots' is not a size (e.g. 100MB, 512KiB, 0 for no cap)"
    )


def test_a_secret_stays_masked_across_the_cut(make_project) -> None:
    secret = "s3cr3t-VALUE-0123456789"
    root = make_project(
        {
            "buildyard.yml": (
                "jobs:\n  leak:\n    secrets: [TOKEN]\n"
                '    script: python3 -c "import os,sys; '
                "[sys.stdout.write(os.environ['TOKEN'] + ' ' * (i % 7)) for i in range(20000)]\"\n"
            )
        }
    )
    code, _, err, _ = _buildyard(root, "run", env={"BUILDYARD_LOG_LIMIT": "4096", "TOKEN": secret})
    assert code == 0, err
    (log,) = (root / ".buildyard" / "logs").glob("*/1/leak.log")
    data = log.read_bytes()
    assert b"bytes cut" in data
    assert b"***" in data
    for piece in (secret[:8], secret[8:16], secret[-8:]):  # no fragment either
        assert piece.encode() not in data


def _big_file(path: Path, size: int) -> None:
    """A ``size``-byte log made of lines, ending with a recognisable last line."""
    line = b"filler line of a big log ...................................................\n"
    block = line * (MB // len(line))
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(b"the last line\n")


def test_failed_job_tail_is_read_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    _big_file(log, 200 * MB)
    tracemalloc.start()
    try:
        lines = log_tail(str(log))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines[-1] == "the last line"
    assert len(lines) == 20
    assert peak < 1 * MB, f"log_tail allocated {peak} bytes"


def test_logs_command_streams_a_big_log_with_bounded_memory(make_project, tmp_path: Path) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo small}\n"})
    code, _, err, _ = _buildyard(root, "run")
    assert code == 0, err
    (log,) = (root / ".buildyard" / "logs").glob("*/1/a.log")
    _big_file(log, 300 * MB)  # as an uncapped (older, or BUILDYARD_LOG_LIMIT=0) log would be
    copy = tmp_path / "out.txt"
    with copy.open("wb") as out:
        code, _, err, rss = _buildyard(root, "logs", "1", "a", stdout=out)
    assert code == 0, err
    assert copy.stat().st_size == log.stat().st_size
    with copy.open("rb") as f:
        f.seek(-14, os.SEEK_END)
        assert f.read() == b"the last line\n"
    assert rss < RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB"


# --- item 8: a full disk ---------------------------------------------------------------------------

#: Prints 5 MB and succeeds: only the full disk can fail it.
PRINTER = "python3 -c \"import sys; [sys.stdout.write('x' * 999 + chr(10)) for _ in range(5000)]\""


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _in_full_fs(mount: Path, script: str) -> list[str]:
    """argv running ``script`` (sh) where ``mount`` is a fresh 1 MiB tmpfs (own user + mount namespace)."""
    return ["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs '{mount}' && {script}"]


def _assert_one_line(err: str, expected: str) -> None:
    assert "Traceback" not in err
    assert "Exception in callback" not in err
    assert err.strip().splitlines() == [expected]


def test_log_write_hitting_enospc_fails_the_job_and_run_in_one_line(make_project, tmp_path: Path) -> None:
    """The log itself is /dev/full (the kernel answers ENOSPC to every write); the history is elsewhere."""
    root = make_project({"buildyard.yml": f"name: full\njobs:\n  spam: {{script: {json.dumps(PRINTER)}}}\n"})
    log = root / ".buildyard" / "logs" / "full" / "1" / "spam.log"
    log.parent.mkdir(parents=True)
    log.symlink_to("/dev/full")
    code, _, err, _ = _buildyard(root, "run", "--stream")
    message = f"disk full writing {log}: free space and re-run"
    assert code == 1
    _assert_one_line(err, f"buildyard: error: {message}")
    code, out, err, _ = _buildyard(root, "show", "1", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "failed"
    assert run["message"] == message
    assert [(j["status"], j["message"]) for j in run["jobs"]] == [("failed", message)]


def test_a_job_printing_forever_on_a_full_disk_is_stopped(make_project) -> None:
    root = make_project({"buildyard.yml": "name: full\njobs:\n  spam: {script: 'yes', timeout: 60s}\n"})
    log = root / ".buildyard" / "logs" / "full" / "1" / "spam.log"
    log.parent.mkdir(parents=True)
    log.symlink_to("/dev/full")
    started = time.monotonic()
    code, _, err, _ = _buildyard(root, "run")
    assert code == 1
    _assert_one_line(err, f"buildyard: error: disk full writing {log}: free space and re-run")
    assert time.monotonic() - started < 30  # not left printing until its timeout


@pytest.mark.skipif(
    not _user_namespaces(), reason="needs unprivileged user + mount namespaces (unshare -Urm)"
)
def test_full_filesystem_for_logs_history_elsewhere(make_project, tmp_path: Path) -> None:
    root = make_project({"buildyard.yml": f"name: full\njobs:\n  spam: {{script: {json.dumps(PRINTER)}}}\n"})
    home = tmp_path / "home"
    home.mkdir()
    db = f"sqlite:///{tmp_path / 'history.db'}"
    run = f"exec {sys.executable} -m buildyard -C '{root}' run --stream"
    code, _, err, _ = _run(_in_full_fs(home, run), env={"BUILDYARD_HOME": str(home), "BUILDYARD_DB": db})
    message = f"disk full writing {home}/logs/full/1/spam.log: free space and re-run"
    assert code == 1
    _assert_one_line(err, f"buildyard: error: {message}")
    code, out, err, _ = _buildyard(root, "show", "1", "--json", env={"BUILDYARD_DB": db})
    assert code == 0, err
    recorded = json.loads(out)
    assert (recorded["status"], recorded["message"]) == ("failed", message)
    assert recorded["jobs"][0]["message"] == message


@pytest.mark.skipif(
    not _user_namespaces(), reason="needs unprivileged user + mount namespaces (unshare -Urm)"
)
def test_full_filesystem_for_logs_and_history(make_project, tmp_path: Path) -> None:
    """The history cannot be written either: one line, and the next command records the run abandoned."""
    root = make_project({"buildyard.yml": f"name: full\njobs:\n  spam: {{script: {json.dumps(PRINTER)}}}\n"})
    home = tmp_path / "home"
    home.mkdir()
    by = f"{sys.executable} -m buildyard -C '{root}'"
    script = f"{by} run --stream >/dev/null; echo rc=$? >&2; rm -r '{home}/logs'; {by} history --json"
    code, out, err, _ = _run(_in_full_fs(home, script), env={"BUILDYARD_HOME": str(home)})
    assert code == 0
    assert "Traceback" not in err
    assert "Exception in callback" not in err
    assert err.strip().splitlines() == [
        f"buildyard: error: disk full writing {home}/buildyard.db: free space and re-run "
        "(run #1 is recorded as abandoned by the next buildyard command)",
        "rc=1",
    ]
    (run,) = json.loads(out)
    assert run["status"] == "cancelled"
    assert run["message"].startswith("abandoned")


# --- item 11 (part): URL-encoded secrets in any case -----------------------------------------------


@pytest.mark.parametrize(
    "shown",
    [b"a%2Fb%2Bc%3D", b"a%2fb%2bc%3d", b"a%2fb%2Bc%3D", b"a%2Fb%2bc=", b"a%2fb+c%3d"],
)
def test_url_encoded_secret_is_masked_in_any_case(shown: bytes) -> None:
    masker = Masker(["a/b+c="])
    if shown in (b"a%2Fb%2bc=", b"a%2fb+c%3d"):  # not an encoding of the secret: left alone
        assert masker.feed(shown) + masker.flush() == shown
        return
    text = b"token=" + shown + b"&x=1"
    for size in (1, 2, 5, len(text)):  # streaming-safe: split anywhere, still masked
        out = b"".join(masker.feed(text[i : i + size]) for i in range(0, len(text), size)) + masker.flush()
        assert out == b"token=***&x=1", (size, out)


def test_lowercase_url_encoded_secret_is_masked_in_the_stored_log(make_project) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  leak:\n    secrets: [TOKEN]\n    script: \"echo 'url: p%2fq%2br%2Bs'\"\n"}
    )
    code, _, err, _ = _buildyard(root, "run", env={"TOKEN": "p/q+r+s"})
    assert code == 0, err
    (log,) = (root / ".buildyard" / "logs").glob("*/1/leak.log")
    assert log.read_bytes() == b"url: ***\n"
