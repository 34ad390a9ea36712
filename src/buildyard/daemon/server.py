"""The daemon: import once, fork a fresh buildyard process per command.

Single-threaded on purpose (only a single-threaded process forks safely): an accept loop with a
one-second timeout that also reaps finished children, exits after ``BUILDYARD_DAEMON_IDLE`` seconds
without a command (default 3 h), when its socket is taken over by another daemon, or when the
buildyard installation changed (its source files, the interpreter's site-packages, or the file of
any module it has loaded — edited in place, replaced or removed: a daemon never runs stale code — it
answers ``stale`` and the client runs the command itself).

The daemon knows nothing of the commands it serves: the face that starts it passes the function
that runs one command line (``run``) and the modules to import before the first fork (``preload``).
``python -m buildyard.cli.daemon_server SOCKET`` is the CLI's daemon (``buildyard daemon start`` runs it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import marshal
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from buildyard.daemon.client import MAX_REQUEST, context_digest, peer_uid

#: Runs one command line in a forked child and returns its exit code (the CLI's ``run_cli``).
CommandRunner = Callable[[list[str]], int]
IDLE_DEFAULT = 3 * 3600.0


def fingerprint() -> str:
    """Digest of what the daemon's code is made of: buildyard's sources and the installed packages.

    Checked before every command (~0.5 ms: one ``scandir`` per package directory).
    """
    import buildyard  # noqa: PLC0415

    h = hashlib.blake2b(digest_size=16)
    h.update(sys.executable.encode())
    stack: list[str] = [os.path.dirname(buildyard.__file__)]  # noqa: PTH120
    sources: list[str] = []
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    st = entry.stat(follow_symlinks=False)
                    sources.append(f"{entry.path}:{st.st_mtime_ns}:{st.st_size}\n")
    h.update("".join(sorted(sources)).encode())
    for folder in sys.path:
        if folder.endswith("-packages"):
            with contextlib.suppress(OSError):
                h.update(f"{folder}:{os.stat(folder).st_mtime_ns}\n".encode())  # noqa: PTH116
    return h.hexdigest()


Stamp = tuple[int, int, int] | None


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)  # noqa: PTH116 - hot loop over str paths
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ModuleWatch:
    """``(mtime, size, inode)`` of the file of every module loaded in the daemon (buildyard's and its
    dependencies'): a file edited in place, replaced or removed means the daemon's copy of that code
    is stale. :meth:`changed` re-stats them all (about 1 ms for the ~450 files loaded after
    :func:`preload` on the dev machine) and adopts modules imported since the last check."""

    def __init__(self) -> None:
        self.stamps: dict[str, Stamp] = {}
        self._seen = 0
        self._adopt()

    def _adopt(self) -> None:
        modules = list(sys.modules.values())
        if len(modules) == self._seen:
            return
        self._seen = len(modules)
        for module in modules:
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path not in self.stamps:
                self.stamps[path] = _stamp(path)

    def changed(self) -> str | None:
        """The first loaded module file that changed since it was stamped, or None."""
        for path, stamp in self.stamps.items():
            if _stamp(path) != stamp:
                return path
        self._adopt()
        return None


class Daemon:
    """Accepts commands on ``path`` and runs each in a forked child."""

    def __init__(self, path: Path, *, run: CommandRunner, idle: float, lock_fd: int = -1) -> None:
        self.path = path
        self.run = run
        self.lock_fd = lock_fd  # held by the daemon only: closed in every forked child
        self.idle = idle
        self.started = time.time()
        self.served = 0
        self.children: set[int] = set()
        self.code = fingerprint()
        self.modules = ModuleWatch()
        self.context = context_digest()
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        self.sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        self.sock.listen(64)
        tmp.rename(path)  # atomic take-over: a client never sees a socket nobody listens on
        self.inode = path.stat().st_ino
        self.sock.settimeout(1.0)

    def owns_socket(self) -> bool:
        """False once the socket file was removed or replaced (``daemon stop``, another daemon)."""
        try:
            return self.path.stat().st_ino == self.inode
        except OSError:
            return False

    def serve(self) -> None:
        """Accept commands until idle, replaced or stopped."""
        last = time.monotonic()
        try:
            while True:
                self.reap()
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    if not self.owns_socket():
                        return
                    if not self.children and time.monotonic() - last > self.idle:
                        return
                    continue
                last = time.monotonic()
                if not self.handle(conn):
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening; remove the socket if it is still ours (never from a forked child)."""
        if os.getpid() == self.pid and self.owns_socket():
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.sock.close()

    def reap(self) -> None:
        """Collect finished children (no zombies)."""
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            self.children.discard(pid)

    def handle(self, conn: socket.socket) -> bool:
        """Serve one connection; False when the daemon must exit."""
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            if peer_uid(conn) != os.getuid():
                return True  # the directory is private anyway; never unmarshal a stranger's bytes
            message, fds = receive(conn)
            control = message.get("control")
            if control is not None:
                return self.control(conn, str(control))
            if fingerprint() != self.code or self.modules.changed() is not None:
                conn.sendall(b"stale\n")
                return False
            if message.get("context") != self.context:
                conn.sendall(b"elsewhere\n")  # other groups/limits/cgroup/namespaces: client runs it
                return True
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through the client's exit code
                try:
                    self.sock.close()
                    if self.lock_fd >= 0:
                        os.close(self.lock_fd)
                    run_child(conn, fds, message, self.run)
                finally:
                    os._exit(1)
            self.children.add(pid)
            self.served += 1
        except Exception:  # noqa: BLE001, S110 - a client that went away or spoke garbage: nothing started
            pass
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            conn.close()
        return True

    def control(self, conn: socket.socket, command: str) -> bool:
        """``status`` and ``stop``."""
        self.reap()
        status = {
            "pid": os.getpid(),
            "socket": str(self.path),
            "started": self.started,
            "served": self.served,
            "commands_running": len(self.children),
            "idle_timeout_s": self.idle,
        }
        conn.sendall(marshal.dumps(status))
        return command != "stop"


def receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """One length-prefixed ``marshal`` message and the file descriptors attached to it."""
    fds: list[int] = []
    data, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    for fd in fds:
        os.set_inheritable(fd, False)  # never leak a client's pipe into another command's jobs
    try:
        message = _message(conn, data)
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return message, fds


def _message(conn: socket.socket, data: bytes) -> dict[str, object]:
    if len(data) < 4:
        raise ValueError("short request")
    size = int.from_bytes(data[:4], "big")
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = bytearray(data[4:])
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    message = marshal.loads(bytes(body))  # noqa: S302 - a peer of our own uid (checked), trusted like us
    if not isinstance(message, dict):
        raise TypeError("bad request")
    return message


def run_child(conn: socket.socket, fds: list[int], message: dict[str, object], run: CommandRunner) -> None:
    """Become the client's buildyard process, run its command, report the exit code. Never returns."""
    code = 1
    try:
        conn.settimeout(None)
        conn.sendall(f"pid {os.getpid()}\n".encode())
    except OSError:
        os._exit(0)  # the client gave up waiting (and runs the command itself): do nothing
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT, signal.SIGTSTP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random.seed()
        _adopt(fds, message)
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        argv = message.get("argv")
        code = run([str(a) for a in argv] if isinstance(argv, list) else [])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a bug: show it where the user looks, like the in-process CLI
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


def _adopt(fds: list[int], message: dict[str, object]) -> None:
    """Take the client's standard streams, directory, environment and umask."""
    if len(fds) != 3:
        raise ValueError("expected the client's stdin, stdout and stderr")
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    env = message.get("env")
    os.environ.clear()
    if isinstance(env, dict):
        os.environ.update({str(k): str(v) for k, v in env.items()})
    os.chdir(str(message.get("cwd", "/")))
    umask = message.get("umask")
    if isinstance(umask, int):
        os.umask(umask)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stdout = open(  # noqa: SIM115
        1,
        "w",
        encoding="utf-8",
        errors="surrogateescape",
        closefd=False,
        buffering=1 if os.isatty(1) else -1,
    )
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)  # noqa: SIM115
    if unbuffered:
        sys.stdout.reconfigure(write_through=True)


def _watch_client(conn: socket.socket) -> None:
    """The client went away (killed, terminal closed): cancel the command as SIGTERM would."""
    with contextlib.suppress(OSError):
        while conn.recv(4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def preload(modules: Iterable[str]) -> None:
    """Import what the served commands need (a module that fails to import is left to the command)."""
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def main(
    argv: list[str], *, run: CommandRunner, modules: Iterable[str] = (), idle: float = IDLE_DEFAULT
) -> int:
    """Serve commands on the socket ``argv[0]`` with ``run``, after importing ``modules``."""
    if len(argv) != 1:
        sys.stderr.write("usage: SOCKET (the daemon's socket path)\n")
        return 2
    path = Path(argv[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lock = path.with_name(path.name + ".lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another daemon for this socket is starting or running
    preload(modules)
    try:
        daemon = Daemon(path, run=run, idle=idle, lock_fd=lock.fileno())
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EEXIST):
            return 0
        raise
    daemon.serve()
    return 0
