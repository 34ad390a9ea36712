"""The run watchdog: a tiny process that kills a run's jobs within milliseconds of the run's death.

A run killed with SIGKILL (or by the OOM killer) cannot clean up, and its jobs — session leaders of
their own — would keep running until the next buildyard command recovers the run (see liveness).
So the first time a :class:`~buildyard.engine.process.Spawner` starts a job of a run, it also starts
:data:`SHELL_LOOP` in ``sh`` (its own session, signals from a terminal ignored, stdout and stderr on
/dev/null) with stdin the read end of a pipe whose write end only the run's process holds, and fd 3
an unnamed file of fixed-width records: the spawner ``pwrite``s a job's process group into a free
record when it starts the job and zero once it reaped it (no write to the pipe per job: a pipe
write wakes the shell, a file write wakes nobody). ``done`` on the pipe dismisses the watchdog. End
of file without ``done`` means the run's process died: the shell then execs this file with the
process groups still recorded, which SIGKILLs them and every process whose environment carries
``MARKER`` (``BUILDYARD_RUN_ID=<run id>``: daemons that left their group).

The resident part is a shell (dash: ~0.2 ms to spawn, under 1 ms of CPU, no Python start-up on every
run); Python — importing only ``os``, ``signal`` and ``sys`` — starts only when there is killing to do.
"""

from __future__ import annotations

import os
import signal
import sys

#: Bytes of one record of the slot file: a process group (0: a free record) right-aligned, newline.
RECORD = 11

#: Run as ``sh -c SHELL_LOOP PYTHON THIS_FILE MARKER SINCE`` with fd 3 the slot file (see the module
#: docstring); at the run's death the recorded groups become arguments.
SHELL_LOOP = """trap '' INT HUP QUIT TSTP PIPE
while IFS= read -r l; do
  [ "$l" = done ] && exit 0
done
g=
while read -r p <&3; do [ "$p" != 0 ] && g="$g $p"; done
exec "$0" -I -S "$1" "$2" "$3" $g
"""


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


def main(argv: list[str]) -> int:
    """``python -I -S watchdog.py MARKER SINCE PGID...``: the run died; kill what it left behind."""
    if len(argv) < 2 or "=" not in argv[0] or not all(a.isdigit() for a in argv[1:]):
        return 2
    for pgid in {int(a) for a in argv[2:]} - {0}:  # 0 is a free record (killpg(0) would be ours)
        try:  # noqa: SIM105 - no contextlib: this module imports as little as it can
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # the group is gone already
    kill_marked(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
