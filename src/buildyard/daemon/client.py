"""The client side of the daemon: imported before anything else, so built-in modules only.

Every import here is paid by every command, daemon or not: ``_socket``/``_signal`` instead of their
enum-building wrappers, ``marshal`` instead of ``json``, ``os.path`` instead of ``pathlib``. The whole
client costs about a millisecond on top of the interpreter's start.

The daemon's switches are settings (documented and validated by :mod:`buildyard.settings`, shown by
``buildyard config``) that this client reads from the environment itself, before anything is imported.
``BUILDYARD_DAEMON`` selects the policy: ``0``/``off`` never uses it; ``1``/``on`` uses it and starts
it when absent; unset uses a running daemon and starts one unless ``CI`` is set (CI machines run one
command per fresh machine: a daemon would only cost memory). Any problem talking to the daemon
falls back to running the command in-process: the daemon is an accelerator, never a dependency.

Protocol (one Unix stream connection per command): the client sends a 4-byte big-endian length and
a ``marshal``-encoded dict (``argv``, ``cwd``, ``env``, ``umask``; or ``control``) with its stdin,
stdout and stderr attached (``SCM_RIGHTS``). The daemon answers with lines: ``pid N`` when the
command's process started, ``exit N`` when it ended, ``stale`` when the installation changed, or
one ``marshal``-encoded status dict for a control request.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum classes
import _socket
import marshal
import os
import resource
import sys
import zlib

#: Commands served by the daemon (the ones whose start-up time users feel on every build).
SERVED = frozenset({"run", "validate", "history", "show", "logs", "explain"})
MAX_REQUEST = 16 << 20
_TRUE = {"1", "on", "true", "yes"}
_FALSE = {"0", "off", "false", "no"}
_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def policy(env: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """``off``, ``use`` (a running daemon only) or ``start`` (start one when absent)."""
    value = env.get("BUILDYARD_DAEMON", "").strip().lower()
    if value in _FALSE:
        return "off"
    if value in _TRUE:
        return "start"
    return "use" if env.get("CI", "").strip().lower() in _TRUE else "start"


def socket_dir() -> str:
    """``BUILDYARD_DAEMON_DIR``, else ``$XDG_RUNTIME_DIR/buildyard``, else ``/tmp/buildyard-UID``."""
    explicit = os.environ.get("BUILDYARD_DAEMON_DIR")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "buildyard") if runtime else f"/tmp/buildyard-{os.getuid()}"  # noqa: S108, PTH118


def socket_path() -> str:
    """The socket of the daemon for this interpreter and this buildyard installation."""
    import buildyard  # noqa: PLC0415 - already imported; for its location and version

    ident = f"{sys.executable}\0{os.path.dirname(buildyard.__file__)}\0{buildyard.__version__}"  # noqa: PTH120
    return os.path.join(socket_dir(), f"d-{zlib.crc32(ident.encode()):08x}.sock")  # noqa: PTH118


def private_dir(path: str) -> bool:
    """Create ``path`` 0700 if needed; True when it is ours and private (else the daemon is not used)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)  # noqa: PTH103
    except OSError:
        return False
    return owned_private(path)


def command_of(argv: list[str]) -> str | None:
    """The subcommand name of ``argv`` (skipping ``-C DIR`` / ``--directory DIR``)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-C", "--directory"):
            i += 2
            continue
        if arg.startswith("-"):
            if arg.startswith("--directory=") or (arg.startswith("-C") and len(arg) > 2):
                i += 1
                continue
            return None  # --version, --help: cheap already
        return arg
    return None


def connect(path: str, timeout: float = 0.5) -> _socket.socket | None:
    """A connection to the daemon at ``path``, or None."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def send_message(sock: _socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    """One length-prefixed ``marshal`` message, with ``fds`` attached to its first byte."""
    payload = marshal.dumps(message)
    data = len(payload).to_bytes(4, "big") + payload
    fd_bytes = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds or ())
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd_bytes)] if fds else []
    sent = sock.sendmsg([data], ancillary)
    while sent < len(data):
        sent += sock.send(data[sent:])


def read_all(sock: _socket.socket) -> bytes:
    """Everything the daemon sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def start_daemon(path: str, server: str) -> bool:
    """Start ``python -m SERVER PATH`` (the face's daemon module) in the background, in its own session."""
    if not private_dir(os.path.dirname(path)):  # noqa: PTH120
        return False
    import subprocess  # noqa: PLC0415 - only when starting one

    env = {k: v for k, v in os.environ.items() if k != "BUILDYARD_DAEMON"}
    env["BUILDYARD_DAEMON_DIR"] = os.path.dirname(path)  # noqa: PTH120
    try:
        subprocess.Popen(
            [sys.executable, "-m", server, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd="/",
        )
    except OSError:
        return False
    return True


def owned_private(path: str) -> bool:
    """True when ``path`` is a real directory of this user that nobody else can enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_mode & 0o170000 == 0o040000 and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder)


def context_digest() -> str:
    """What a forked child inherits from the daemon rather than from the client: groups, limits,
    cgroup, namespaces. A client whose own differ runs in-process (its jobs get *its* context)."""
    parts = [repr(sorted(os.getgroups())), str(os.getuid()), str(os.getgid())]
    for name in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK", "RLIMIT_CPU"):
        parts.append(repr(resource.getrlimit(getattr(resource, name))))
    try:
        with open("/proc/self/cgroup", "rb") as f:  # noqa: PTH123
            parts.append(f.read().decode(errors="replace"))
        parts += [os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "pid", "net", "user")]  # noqa: PTH115
    except OSError:
        pass
    parts.append(str(os.nice(0)))
    return f"{zlib.crc32(chr(0).join(parts).encode()):08x}"


def run_via_daemon(argv: list[str], server: str) -> int | None:
    """Run ``argv`` in a daemon child; its exit code, or None to run in-process instead.

    ``server`` is the module that runs the daemon (``python -m SERVER SOCKET``), started when absent.
    """
    mode = policy()
    if mode == "off" or command_of(argv) not in SERVED:
        return None
    path = socket_path()
    if not owned_private(os.path.dirname(path)):  # noqa: PTH120 - a socket anyone could plant: never
        if mode == "start" and private_dir(os.path.dirname(path)):  # noqa: PTH120
            start_daemon(path, server)
        return None
    sock = connect(path) if os.path.exists(path) else None  # noqa: PTH110
    if sock is None:
        if mode == "start":
            start_daemon(path, server)
        return None
    try:
        if peer_uid(sock) != os.getuid():
            return None
        return _hand_over(sock, argv)
    finally:
        sock.close()


#: Seconds to wait for the daemon to start the command (a stuck daemon is bypassed, not waited for).
START_TIMEOUT = 10.0


def _hand_over(sock: _socket.socket, argv: list[str]) -> int | None:
    mask = os.umask(0o022)
    os.umask(mask)
    try:
        cwd = os.getcwd()  # noqa: PTH109
    except OSError:
        return None  # a deleted working directory: let the command itself report what it can
    request = {
        "argv": list(argv),
        "cwd": cwd,
        "env": dict(os.environ),
        "umask": mask,
        "context": context_digest(),
    }
    try:
        send_message(sock, request, [0, 1, 2])
    except OSError:
        return None
    child = 0
    early: list[int] = []  # signals received before the command's process was known

    def forward(signum: int, _frame: object) -> None:
        target = _signal.SIGTERM if signum == _signal.SIGHUP else signum  # closed terminal: cancel cleanly
        if not child:
            early.append(target)
            return
        try:  # noqa: SIM105 - contextlib is one import too many here
            os.kill(child, target)
        except ProcessLookupError:
            pass

    def suspend(_signum: int, _frame: object) -> None:  # Ctrl-Z: stop the command, then ourselves
        if child:  # SIGSTOP: the command's process group is orphaned, where SIGTSTP is discarded
            try:  # noqa: SIM105
                os.kill(child, _signal.SIGSTOP)
            except ProcessLookupError:
                pass
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGTSTP)

    def resume(_signum: int, _frame: object) -> None:  # fg / bg: the command goes on too
        _signal.signal(_signal.SIGTSTP, suspend)
        if child:
            try:  # noqa: SIM105
                os.kill(child, _signal.SIGCONT)
            except ProcessLookupError:
                pass

    previous = {s: _signal.signal(s, forward) for s in _FORWARDED}
    previous[_signal.SIGTSTP] = _signal.signal(_signal.SIGTSTP, suspend)
    previous[_signal.SIGCONT] = _signal.signal(_signal.SIGCONT, resume)
    buffer = b""
    sock.settimeout(START_TIMEOUT)
    try:
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:  # reset by a daemon that went away, or no answer in time
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                word, _, value = line.decode().partition(" ")
                if word == "pid":
                    child = int(value)
                    sock.settimeout(None)  # the command runs as long as it needs
                    for signum in early:
                        forward(signum, None)
                elif word == "exit":
                    return int(value)
                elif word in ("stale", "elsewhere"):
                    return None  # run here (a stale daemon exits; the next command starts a fresh one)
        if child == 0:
            if early:
                return 130  # interrupted before anything started
            return None  # refused or unanswered before starting anything: run here
        sys.stderr.write(
            "buildyard: error: the daemon's process ended unexpectedly (BUILDYARD_DAEMON=0: no daemon)\n"
        )
        return 1
    finally:
        for s, handler in previous.items():
            _signal.signal(s, handler)
