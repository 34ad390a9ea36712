"""The client side of the daemon: stdlib only, imported before anything heavy.

``BUILDYARD_DAEMON`` selects the policy: ``0``/``off`` never uses it; ``1``/``on`` uses it and starts
it when absent; unset uses a running daemon and starts one unless ``CI`` is set (CI machines run one
command per fresh machine: a daemon would only cost memory). Any problem talking to the daemon
falls back to running the command in-process: the daemon is an accelerator, never a dependency.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

#: Commands served by the daemon (the ones whose start-up time users feel on every build).
SERVED = frozenset({"run", "validate", "history", "show", "logs", "explain"})
HEADER = struct.Struct("!I")
_TRUE = {"1", "on", "true", "yes"}
_FALSE = {"0", "off", "false", "no"}


def policy(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``off``, ``use`` (a running daemon only) or ``start`` (start one when absent)."""
    value = env.get("BUILDYARD_DAEMON", "").strip().lower()
    if value in _FALSE:
        return "off"
    if value in _TRUE:
        return "start"
    return "use" if env.get("CI", "").strip().lower() in _TRUE else "start"


def socket_dir() -> Path:
    """``BUILDYARD_DAEMON_DIR``, else ``$XDG_RUNTIME_DIR/buildyard``, else ``/tmp/buildyard-UID``."""
    explicit = os.environ.get("BUILDYARD_DAEMON_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "buildyard" if runtime else Path(f"/tmp/buildyard-{os.getuid()}")  # noqa: S108


def socket_path() -> Path:
    """The socket of the daemon for this interpreter and this buildyard installation."""
    import buildyard  # noqa: PLC0415 - the package is already imported; this is for its location

    ident = f"{sys.executable}\0{Path(buildyard.__file__).parent}\0{buildyard.__version__}"
    return socket_dir() / f"d-{hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()}.sock"


def private_dir(path: Path) -> bool:
    """Create ``path`` 0700 if needed; True when it is ours and private (else the daemon is not used)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


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


def connect(path: Path, timeout: float = 0.5) -> socket.socket | None:
    """A connection to the daemon at ``path``, or None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def send_message(sock: socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with ``fds`` attached to its first byte."""
    payload = json.dumps(message).encode()
    data = HEADER.pack(len(payload)) + payload
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sent = sock.sendmsg([data], ancillary)
    if sent < len(data):
        sock.sendall(data[sent:])


def read_lines(sock: socket.socket) -> list[dict[str, object]]:
    """Read newline-delimited JSON replies until EOF (used for control commands)."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    return [json.loads(line) for line in b"".join(chunks).splitlines() if line.strip()]


def start_daemon(path: Path) -> subprocess.Popen[bytes] | None:
    """Start a daemon for ``path`` in the background (its own session, no terminal)."""
    if not private_dir(path.parent):
        return None
    env = {k: v for k, v in os.environ.items() if k != "BUILDYARD_DAEMON"}
    env["BUILDYARD_DAEMON_DIR"] = str(path.parent)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "buildyard.daemon.server", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd="/",
        )
    except OSError:
        return None


def run_via_daemon(argv: list[str]) -> int | None:
    """Run ``argv`` in a daemon child; its exit code, or None to run in-process instead."""
    mode = policy()
    if mode == "off" or command_of(argv) not in SERVED:
        return None
    path = socket_path()
    sock = connect(path) if path.exists() else None
    if sock is None:
        if mode == "start":
            start_daemon(path)
        return None
    with sock:
        return _hand_over(sock, argv)


def _hand_over(sock: socket.socket, argv: list[str]) -> int | None:
    request = {
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "umask": _umask(),
    }
    try:
        send_message(sock, request, [0, 1, 2])
    except OSError:
        return None
    reader = sock.makefile("rb")
    child = 0

    def forward(signum: int, _frame: object) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for line in reader:
            reply = json.loads(line)
            if "pid" in reply:
                child = int(reply["pid"])
            elif "exit" in reply:
                return int(reply["exit"])
            elif reply.get("stale"):
                return None  # the daemon exits (installation changed); run here, next run starts a new one
        if child == 0:
            return None  # refused before starting anything
        sys.stderr.write(
            "buildyard: error: the daemon's process ended unexpectedly (BUILDYARD_DAEMON=0: no daemon)\n"
        )
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
