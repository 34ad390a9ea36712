"""The run watchdog: a tiny process that kills a run's jobs within milliseconds of the run's death.

A run killed with SIGKILL (or by the OOM killer) cannot clean up, and its jobs — session leaders of
their own — would keep running until the next buildyard command recovers the run (see liveness).
So the first time a :class:`~buildyard.engine.process.Spawner` starts a job of a run, it also starts
this file as ``python -I -S watchdog.py MARKER SINCE`` (it makes itself a session leader; stdout
and stderr on /dev/null) with stdin the read end of a pipe whose write end only the run's process holds.
The spawner writes ``+PGID`` for every job it starts and ``-PGID`` once it reaped it, and ``done``
before closing the pipe. End of file without ``done`` means the run's process died: the watchdog
SIGKILLs the process groups still listed, then every process whose environment carries ``MARKER``
(``BUILDYARD_RUN_ID=<run id>``: daemons that left their group), and exits.

This module imports only ``os``, ``signal`` and ``sys``: it starts in a few milliseconds, off the
run's critical path (the job is already started when the watchdog is spawned).
"""

from __future__ import annotations

import os
import signal
import sys


def last_pid() -> int:
    """The pid the kernel handed out last in this pid namespace (0 when it cannot be read)."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:  # noqa: PTH123 - one small read
            return int(f.read())
    except (OSError, ValueError):
        return 0


def kill_marked(marker: str, since: int = 0) -> int:
    """SIGKILL every process whose environment contains ``marker`` (``NAME=value``); return how many.

    Catches daemons that escaped their process group (setsid + double fork) the way the GitHub Actions
    runner does with its tracking id. ``since`` (a ``last_pid()`` from before the jobs started) limits
    the scan to younger pids — a few ``/proc`` entries instead of every process of the machine —
    unless pids wrapped around since. Each process is held by a pidfd from the environment check to
    the kill, so a reused pid is never hit.
    """
    now = last_pid()
    floor = since if 0 < since <= now else 0
    needle = marker.encode()
    me = os.getpid()
    killed = 0
    for entry in os.listdir("/proc"):  # noqa: PTH208 - names only
        if not entry.isdigit() or int(entry) <= floor or int(entry) == me:
            continue
        try:
            pidfd = os.pidfd_open(int(entry))
        except OSError:
            continue  # ended meanwhile
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:  # noqa: PTH123 - hot loop, no Path objects
                found = needle in f.read().split(b"\0")
            if found:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                killed += 1
        except OSError:
            pass  # another user's process, or ended meanwhile
        finally:
            os.close(pidfd)
    return killed


def watch(fd: int, marker: str, since: int) -> bool:
    """Follow the spawner's messages on ``fd`` until end of file; kill the run's jobs unless it said
    ``done``. Returns True when it killed (the run's process died)."""
    groups: set[int] = set()
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line == b"done":
                return False
            if line[:1] in (b"+", b"-") and line[1:].isdigit():
                (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
    for pgid in groups:
        try:  # noqa: SIM105 - no contextlib: this module imports as little as it can
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # the group is gone already
    kill_marked(marker, since)
    return True


def main(argv: list[str]) -> int:
    """``python -I -S watchdog.py MARKER SINCE`` with the spawner's pipe as stdin."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    try:  # noqa: SIM105 - its own session: a Ctrl-C or hang-up of the run's terminal never reaches it
        os.setsid()
    except OSError:
        pass
    marker, since = argv[0], int(argv[1])
    if "=" not in marker:
        return 2
    watch(0, marker, since)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
