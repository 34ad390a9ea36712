"""buildyard's settings: one typed object, each value with where it came from (core).

Precedence, highest first: the command line > the environment (``BUILDYARD_*``) > the project's
``.buildyard/config.toml`` > the user's ``~/.config/buildyard/config.toml`` > the default. This module
is the one place that reads ``BUILDYARD_*`` settings; it reads only the environment mapping and the
files it is given (:func:`resolve` is pure apart from reading those files), and :func:`load` is the
convenience that passes ``os.environ`` and the default files. Variables buildyard *sets* for jobs
(``BUILDYARD_RUN_ID``, ``BUILDYARD_JOB``, ...) are job environment, not settings.

Config files are TOML with one top-level key per setting name (``executor = "pool"``,
``cache_max_size = "5GB"``, ``kill_grace = 2``). Relative paths in a file are relative to the project
directory. Secrets (tokens, salts, passphrases) and the daemon's switches are read from the
environment only: a config file is too easily shared or committed, and the daemon client decides
before anything is imported. ``BUILDYARD_CONFIG`` names another user file (empty: none).

Every problem is one line naming the variable or the file and the expected form
(:class:`SettingsError`, a user error).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from buildyard.errors import UsageError

#: Most bytes read from one config file (settings are a few lines; anything bigger is a mistake).
MAX_CONFIG_BYTES = 64 * 1024
#: The project's own config file, relative to the project directory (git-ignored with ``.buildyard/``).
PROJECT_FILE = Path(".buildyard") / "config.toml"
CONFIG_ENV = "BUILDYARD_CONFIG"


class SettingsError(UsageError):
    """A setting has an invalid value, or a config file is unreadable (one line: where, what is expected)."""


class Source(StrEnum):
    """Where a setting's value came from."""

    DEFAULT = "default"
    FILE = "file"
    ENV = "env"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Origin:
    """A value's source and, for a file or a variable, which one (``env BUILDYARD_HOME``)."""

    source: Source
    where: str = ""

    def __str__(self) -> str:
        """``default``, ``file PATH``, ``env VAR`` or ``cli --flag``."""
        return f"{self.source} {self.where}".strip()


# --- value parsers: raw text -> typed value, or ValueError saying what is expected ------------------

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)", re.IGNORECASE)
_TRUE = frozenset({"1", "on", "true", "yes"})
_FALSE = frozenset({"0", "off", "false", "no"})


def parse_size(text: str) -> int:
    """Bytes from ``5GB``, ``512MiB``, ``100mb``, ``1k`` or ``1000000`` (KB = 1000, KiB = 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("is not a size (e.g. 100MB, 512KiB, 5GB)")
    number, prefix, binary, _ = match.groups()
    if binary and not prefix:
        raise ValueError("is not a size (e.g. 100MB, 512KiB, 5GB)")
    power = "kmgt".index(prefix.lower()) + 1 if prefix else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("is empty (expected a path)")
    return Path(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number of seconds (e.g. 5, 0.5)") from None
    if not 0 <= value < float("inf"):
        raise ValueError("must be a finite, non-negative number of seconds")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _threads(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError("is not a positive whole number of threads")
    return int(text)


def _cache_size(text: str) -> int | None:
    if text.strip().lower() in ("0", "off", "none"):
        return None
    try:
        return parse_size(text)
    except ValueError:
        raise ValueError("is not a size (e.g. 5GB, 512MiB; 0 or off for no limit)") from None


def _log_limit(text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError:
        raise ValueError("is not a size (e.g. 100MB, 512KiB, 0 for no cap)") from None
    if 0 < value < MIN_LOG_LIMIT:
        raise ValueError(f"is too small (at least {MIN_LOG_LIMIT} bytes, or 0)")
    return value


def _salt(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ValueError("must be 64 hex characters (32 bytes)")
    return value


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _daemon(text: str) -> str:
    value = text.strip().lower()
    if value and value not in _TRUE | _FALSE:
        raise ValueError("is not one of: 1, on, true, yes, 0, off, false, no (or empty: automatic)")
    return "off" if value in _FALSE else "on" if value else "auto"


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"is not one of: {', '.join(choices)}")
        return text

    return parse


# --- the documented list of every setting ---------------------------------------------------------

#: Default cap of one job attempt's log (100 MB) and the smallest cap accepted (a marker line fits).
DEFAULT_LOG_LIMIT = 100 * 1000 * 1000
MIN_LOG_LIMIT = 4096
DEFAULT_CACHE_MAX_SIZE = 10 * 1024**3
DEFAULT_KILL_GRACE = 5.0
#: Seconds without news from the orchestrator after which agents kill its jobs.
DEFAULT_CLUSTER_HEARTBEAT = 60.0
DEFAULT_DAEMON_IDLE = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its name (attribute and config file key), variable, form, default and meaning."""

    name: str
    env: str
    form: str  # the expected form, as shown to users
    default: str  # the default, as shown to users
    help: str
    parse: Callable[[str], Any]
    #: May be set in a config file (secrets and the daemon's switches: environment only).
    in_file: bool = True
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "BUILDYARD_HOME", "path", "<project>/.buildyard",
            "State directory: history database, cache, logs, keys, artifacts.", _path),
    Setting("db", "BUILDYARD_DB", "URL", "SQLite <home>/buildyard.db",
            "History database URL (sqlite:///... or postgresql://...).", _text),
    Setting("artifacts_dir", "BUILDYARD_ARTIFACTS", "path", "<home>/artifacts",
            "Artifact repository directory.", _path),
    Setting("keys_dir", "BUILDYARD_KEYS_DIR", "path", "<home>/keys",
            "Signing and trusted keys directory.", _path),
    Setting("osv_db", "BUILDYARD_OSV_DB", "path", "<home>/osv when 'deps db update' wrote one",
            "OSV vulnerability database (<Ecosystem>/all.zip dumps) of the vulnerabilities gate.", _path),
    Setting("cache_max_size", "BUILDYARD_CACHE_MAX_SIZE", "size, or 0/off", "10GiB",
            "Size limit of the job cache (least recently used entries are evicted).", _cache_size),
    Setting("cache_salt", "BUILDYARD_CACHE_SALT", "64 hex characters", "a random salt per cache",
            "Secret salt of cache keys; share it with the machines that share a remote cache.", _salt,
            in_file=False, secret=True),
    Setting("remote_cache", "BUILDYARD_REMOTE_CACHE", "URL", "none",
            "Remote cache server of 'run'.", _text),
    Setting("remote_cache_token", "BUILDYARD_REMOTE_CACHE_TOKEN", "token", "none",
            "Bearer token for the remote cache.", _text, in_file=False, secret=True),
    Setting("cache_tokens", "BUILDYARD_CACHE_TOKENS", "tokens, space-separated", "none",
            "Read-write tokens accepted by 'cache serve'.", _tokens, in_file=False, secret=True),
    Setting("cache_read_tokens", "BUILDYARD_CACHE_READ_TOKENS", "tokens, space-separated", "none",
            "Read-only tokens accepted by 'cache serve'.", _tokens, in_file=False, secret=True),
    Setting("log_limit", "BUILDYARD_LOG_LIMIT", "size, or 0", "100MB",
            "Cap of one job attempt's log (0: no cap).", _log_limit),
    Setting("executor", "BUILDYARD_EXECUTOR", "executor", "local",
            "Where jobs run: local (a shell per step), pool (warm shells), dask://HOST:PORT or "
            "tls://HOST:PORT (agents of a cluster); over 'executor:' in buildyard.yml.", _text),
    Setting("cluster_heartbeat", "BUILDYARD_CLUSTER_HEARTBEAT", "seconds", "60",
            "Agents kill a run's jobs after this long without news from its orchestrator "
            "(killed, frozen, or cut off by a lost scheduler).", _positive_seconds),
    Setting("cluster_certs", "BUILDYARD_CLUSTER_CERTS", "path", "none",
            "The cluster's TLS files (ca.pem, client.pem, client.key from 'cluster certs') that "
            "run --executor tls://... connects with.", _path),
    Setting("workspace_method", "BUILDYARD_WORKSPACE_METHOD", "auto, copy or overlay", "auto",
            "How isolated workspaces are made.", _choice("auto", "copy", "overlay")),
    Setting("kill_grace", "BUILDYARD_KILL_GRACE", "seconds", "5",
            "Seconds between SIGTERM and SIGKILL when a job is stopped.", _seconds),
    Setting("artifact_threads", "BUILDYARD_ARTIFACT_THREADS", "positive integer", "CPUs available, at most 4",
            "Threads hashing and compressing artifacts.", _threads),
    Setting("actor", "BUILDYARD_ACTOR", "text", "the login name",
            "Who the artifact audit log names.", _text),
    Setting("backup_passphrase", "BUILDYARD_BACKUP_PASSPHRASE", "text", "a prompt on a terminal",
            "Passphrase sealing the keys in a backup.", _text, in_file=False, secret=True),
    Setting("daemon", "BUILDYARD_DAEMON", "1/on or 0/off", "automatic (off when CI is set)",
            "Whether commands run through the warm daemon.", _daemon, in_file=False),
    Setting("daemon_dir", "BUILDYARD_DAEMON_DIR", "path", "$XDG_RUNTIME_DIR/buildyard",
            "Private directory of the daemon's socket.", _path, in_file=False),
    Setting("daemon_idle", "BUILDYARD_DAEMON_IDLE", "seconds", "10800",
            "The daemon exits after this long without a command.", _positive_seconds),
    Setting("profile", "BUILDYARD_PROFILE", "path", "none",
            "Write a cProfile of the command to this file.", _path, in_file=False),
    Setting("config", CONFIG_ENV, "path, or empty", "~/.config/buildyard/config.toml",
            "The user's config file (empty: none).", str, in_file=False),
)  # fmt: skip
BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting's value, typed, and where each came from (``origins[name]``)."""

    project_dir: Path
    home: Path
    db: str | None  # None: SQLite in ``home`` (the store names the file)
    artifacts_dir: Path
    keys_dir: Path
    osv_db: Path | None
    cache_max_size: int | None  # None: no limit
    cache_salt: bytes | None
    remote_cache: str | None
    remote_cache_token: str | None
    cache_tokens: tuple[str, ...]
    cache_read_tokens: tuple[str, ...]
    log_limit: int
    executor: str
    cluster_heartbeat: float
    cluster_certs: Path | None
    workspace_method: str
    kill_grace: float
    artifact_threads: int | None  # None: the CPUs available, at most 4
    actor: str | None
    backup_passphrase: str | None
    daemon: str  # auto | on | off
    daemon_dir: Path | None
    daemon_idle: float
    profile: Path | None
    config: str | None
    origins: Mapping[str, Origin]
    files: tuple[Path, ...]  # the config files read, lowest precedence first

    def shown(self, name: str) -> str:
        """The value of ``name`` for display: secrets masked, unset values empty."""
        value = getattr(self, name)
        if value is None or value == ():
            return ""
        if BY_NAME[name].secret:
            return "***"
        if isinstance(value, tuple):
            return " ".join(value)
        return str(value)


def user_file(env: Mapping[str, str]) -> Path | None:
    """``$BUILDYARD_CONFIG`` (empty: none), else ``$XDG_CONFIG_HOME/buildyard/config.toml``.

    ``XDG_CONFIG_HOME`` defaults to ``~/.config``.
    """
    if CONFIG_ENV in env:
        return Path(env[CONFIG_ENV]) if env[CONFIG_ENV].strip() else None
    base = env.get("XDG_CONFIG_HOME") or (str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    return Path(base) / "buildyard" / "config.toml" if base else None


def config_files(project_dir: Path, env: Mapping[str, str]) -> list[Path]:
    """The config files in precedence order, lowest first: the user's, then the project's."""
    user = user_file(env)
    return [*([user] if user is not None else []), project_dir / PROJECT_FILE]


def read_file(path: Path) -> dict[str, str]:
    """The settings of one TOML file as ``{name: raw text}``; a missing file is empty."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the config file ({exc.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise SettingsError(f"{path}: config file larger than {MAX_CONFIG_BYTES // 1024} KiB")
    import tomllib  # noqa: PLC0415 - only when a config file exists

    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    out: dict[str, str] = {}
    for key, value in table.items():
        setting = BY_NAME.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, [s.name for s in SETTINGS if s.in_file], n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see 'buildyard config'"
            raise SettingsError(f"{path}: unknown setting {key!r} ({hint})")
        if not setting.in_file:
            raise SettingsError(f"{path}: {key!r} is read from the environment only (set {setting.env})")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SettingsError(f"{path}: {key} must be a string or a number ({setting.form})")
        out[key] = str(value)
    return out


def resolve(
    project_dir: Path,
    env: Mapping[str, str],
    files: Sequence[Path] = (),
    cli: Mapping[str, tuple[str, str]] | None = None,
) -> Settings:
    """Every setting: ``cli`` (``{name: (flag, raw text)}``) > ``env`` > ``files`` (lowest first) > default.

    Relative paths from a file are taken relative to ``project_dir``; from the environment or the
    command line, as given (relative to the working directory). Raises :class:`SettingsError` for
    the first invalid value, naming its variable, file or flag and the expected form.
    """
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    from_files = [(path, read_file(path)) for path in files]
    for setting in SETTINGS:
        raw: str | None = None
        origin = Origin(Source.DEFAULT)
        for path, table in from_files:
            if setting.name in table:
                raw, origin = table[setting.name], Origin(Source.FILE, str(path))
        if env.get(setting.env) or (
            setting.name == "config" and setting.env in env
        ):  # BUILDYARD_CONFIG=: none
            raw, origin = env[setting.env], Origin(Source.ENV, setting.env)
        if cli and setting.name in cli:
            flag, raw = cli[setting.name]
            origin = Origin(Source.CLI, flag)
        if raw is None:
            values[setting.name] = None
        else:
            values[setting.name] = _parse(setting, raw, origin)
            if origin.source is Source.FILE and isinstance(values[setting.name], Path):
                values[setting.name] = project_dir / values[setting.name]
        origins[setting.name] = origin
    home: Path = values["home"] or project_dir / ".buildyard"
    return Settings(
        project_dir=project_dir,
        home=home,
        db=values["db"],
        artifacts_dir=values["artifacts_dir"] or home / "artifacts",
        keys_dir=values["keys_dir"] or home / "keys",
        osv_db=values["osv_db"],
        cache_max_size=DEFAULT_CACHE_MAX_SIZE if origins["cache_max_size"].source is Source.DEFAULT
        else values["cache_max_size"],
        cache_salt=values["cache_salt"],
        remote_cache=values["remote_cache"],
        remote_cache_token=values["remote_cache_token"],
        cache_tokens=values["cache_tokens"] or (),
        cache_read_tokens=values["cache_read_tokens"] or (),
        log_limit=DEFAULT_LOG_LIMIT if values["log_limit"] is None else values["log_limit"],
        executor=values["executor"] or "spawn",
        cluster_heartbeat=values["cluster_heartbeat"] or DEFAULT_CLUSTER_HEARTBEAT,
        cluster_certs=values["cluster_certs"],
        workspace_method=values["workspace_method"] or "auto",
        kill_grace=DEFAULT_KILL_GRACE if values["kill_grace"] is None else values["kill_grace"],
        artifact_threads=values["artifact_threads"],
        actor=values["actor"],
        backup_passphrase=values["backup_passphrase"],
        daemon=values["daemon"] or "auto",
        daemon_dir=values["daemon_dir"],
        daemon_idle=values["daemon_idle"] or DEFAULT_DAEMON_IDLE,
        profile=values["profile"],
        config=_shown_path(user_file(env)),
        origins=origins,
        files=tuple(path for path, table in from_files if table),
    )  # fmt: skip


def _shown_path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _parse(setting: Setting, raw: str, origin: Origin) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        shown = "***" if setting.secret else repr(raw)
        if origin.source is Source.ENV:
            where = f"{setting.env}={shown}"
        elif origin.source is Source.FILE:
            where = f"{origin.where}: {setting.name} = {shown}"
        else:
            where = f"{origin.where} {shown}"
        raise SettingsError(f"{where} {exc} ({setting.env})" if origin.source is not Source.ENV
                            else f"{where} {exc}") from None  # fmt: skip


def load(project_dir: Path | None = None, cli: Mapping[str, tuple[str, str]] | None = None) -> Settings:
    """The settings of ``project_dir`` from this process's environment, the user's and the project's
    config files, and ``cli``.

    Without a project (a library call that has none), the project file is not read and the path
    defaults are relative to the working directory (which may even have been removed).
    """
    if project_dir is None:
        user = user_file(os.environ)
        return resolve(Path(), os.environ, [user] if user is not None else [], cli)
    return resolve(project_dir, os.environ, config_files(project_dir, os.environ), cli)


def field_names() -> list[str]:
    """The attribute names of :class:`Settings` that are settings (for tests and docs)."""
    return [f.name for f in fields(Settings) if f.name in BY_NAME]
