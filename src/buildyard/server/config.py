"""What a server serves: its projects, data directory and state database (``server.yml`` or ``-C DIR``).

``server.yml``::

    data_dir: state            # optional, relative to the file (default: beside it, ``.buildyard-server``)
    db: postgresql+psycopg://… # optional (default: SQLite in the data directory)
    projects:
      - name: shop
        repo: ../shop          # a path or anything ``git clone`` accepts
        default_branch: main
        anonymous_read: false
        max_parallel_runs: 2   # optional: most runs of this project in progress at once
        poll: 1m               # optional: git ls-remote the repository this often (new heads/tags: pushes)
    trigger_chain_limit: 3     # optional: most runs in a chain of runs whose jobs pushed (default 3)

Every mistake is reported as one line with the file and line, and what to do.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildyard.errors import UsageError
from buildyard.spec.durations import parse_duration

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PROJECT_KEYS = frozenset({"name", "repo", "default_branch", "anonymous_read", "max_parallel_runs", "poll"})
_TOP_KEYS = frozenset({"projects", "data_dir", "db", "trigger_chain_limit"})
#: Default of ``trigger_chain_limit``: runs triggered by pushes of runs' jobs, one after the other.
CHAIN_LIMIT = 3
#: Shortest ``poll`` interval (seconds): ``git ls-remote`` of a hosted repository is not free.
MIN_POLL = 1.0
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(UsageError):
    """``server.yml`` is invalid."""


@dataclass(frozen=True)
class ProjectConfig:
    """One served project."""

    name: str
    #: Where runs check out from: a local repository path or a URL ``git clone`` accepts.
    repo: str
    default_branch: str
    #: The project directory: its ``.buildyard/`` holds the history, logs, outputs and cache.
    root: Path
    anonymous_read: bool = False
    #: Where the project lives inside the repository ("" for its top).
    subdir: str = ""
    #: Most runs of the project in progress at once (None: only the server's runners limit it).
    max_parallel_runs: int | None = None
    #: Seconds between two ``git ls-remote`` of the repository (None: no polling; webhooks only).
    poll: float | None = None

    @property
    def home(self) -> Path:
        """The project's ``BUILDYARD_HOME``."""
        return self.root / ".buildyard"

    @property
    def is_local(self) -> bool:
        """The repository is a directory on this machine (no mirror needed)."""
        return Path(self.repo).is_dir()


@dataclass(frozen=True)
class ServerConfig:
    """The server's projects and where its own state lives."""

    projects: tuple[ProjectConfig, ...]
    data_dir: Path
    db_url: str
    runners: int = 1
    #: Seconds a cancelled run's process has to finish after SIGTERM before SIGKILL.
    kill_grace: float = 5.0
    #: Seconds between two looks at the queue.
    poll: float = 0.2
    #: Seconds a /metrics text is reused while a fresh one is built (0: build on every scrape).
    metrics_refresh: float = 15.0
    #: Most runs triggered one by another through pushes made by their jobs (``server.chains``).
    chain_limit: int = CHAIN_LIMIT

    def project(self, name: str) -> ProjectConfig | None:
        """The project called ``name``."""
        return next((p for p in self.projects if p.name == name), None)


def state_url(data_dir: Path) -> str:
    """The embedded SQLite state database in ``data_dir``."""
    return f"sqlite:///{urllib.parse.quote(str(data_dir / 'server.db'), safe='/')}"


def _branch_of(directory: Path) -> str:
    out = subprocess.run(
        ["git", "symbolic-ref", "--short", "-q", "HEAD"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return out.stdout.strip() or "main"


def single_project(
    directory: Path, *, data_dir: Path | None = None, db_url: str | None = None, runners: int = 1
) -> ServerConfig:
    """Serve the project in ``directory`` (``serve -C DIR``), its state in ``.buildyard/server``."""
    directory = directory.resolve()
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=directory if directory.is_dir() else None,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if not directory.is_dir() or out.returncode != 0:
        raise ConfigError(f"{directory}: not in a git repository (the server runs commits: git init, commit)")
    top = Path(out.stdout.strip()).resolve()
    name = re.sub(r"[^A-Za-z0-9._-]", "-", directory.name).lstrip("._-") or "project"
    project = ProjectConfig(
        name=name[:100],
        repo=str(top),
        default_branch=_branch_of(directory),
        root=directory,
        subdir=str(directory.relative_to(top)) if directory != top else "",
    )
    data = (data_dir or directory / ".buildyard" / "server").resolve()
    return ServerConfig(projects=(project,), data_dir=data, db_url=db_url or state_url(data), runners=runners)


def load_config(
    path: Path, *, data_dir: Path | None = None, db_url: str | None = None, runners: int = 1
) -> ServerConfig:
    """Read ``server.yml``; raise ``ConfigError`` (file:line: what, what to do) on any mistake."""
    import yaml  # noqa: PLC0415 - lazy: fast CLI start

    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; is it the right file?")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read server config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    base = path.resolve().parent
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: expected a mapping with 'projects:' (see 'buildyard serve --help')")
    top = _mapping(path, node)
    for key, (knode, _value) in top.items():
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{path}:{knode.start_mark.line + 1}: unknown key '{key}' "
                f"(expected: {', '.join(sorted(_TOP_KEYS))})"
            )
    data = data_dir
    if data is None:
        data = base / _scalar(path, top["data_dir"][1]) if "data_dir" in top else base / ".buildyard-server"
    db = db_url or (_scalar(path, top["db"][1]) if "db" in top else None)
    if (
        "projects" not in top
        or not isinstance(top["projects"][1], yaml.SequenceNode)
        or not top["projects"][1].value
    ):
        where = top["projects"][1].start_mark.line + 1 if "projects" in top else 1
        raise ConfigError(
            f"{path}:{where}: 'projects' must be a list of projects (name, repo, default_branch)"
        )
    data = data.resolve()
    projects: list[ProjectConfig] = []
    for item in top["projects"][1].value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise ConfigError(f"{path}:{line}: a project is a mapping with name, repo, default_branch")
        fields = _mapping(path, item)
        for key, (knode, _value) in fields.items():
            if key not in _PROJECT_KEYS:
                raise ConfigError(
                    f"{path}:{knode.start_mark.line + 1}: unknown project key '{key}' "
                    f"(expected: {', '.join(sorted(_PROJECT_KEYS))})"
                )
        for key in ("name", "repo"):
            if key not in fields:
                raise ConfigError(f"{path}:{line}: project without '{key}'")
        name = _scalar(path, fields["name"][1])
        if not NAME.match(name):
            raise ConfigError(
                f"{path}:{fields['name'][1].start_mark.line + 1}: project name '{name}' must be letters, "
                "digits, '.', '_' or '-' (up to 100)"
            )
        if any(p.name == name for p in projects):
            raise ConfigError(f"{path}:{line}: project '{name}' is listed twice")
        repo = _scalar(path, fields["repo"][1])
        if "://" not in repo and not repo.startswith("git@") and not Path(repo).is_absolute():
            repo = str((base / repo).resolve())
        anonymous = _scalar(path, fields["anonymous_read"][1]) if "anonymous_read" in fields else "false"
        if anonymous not in ("true", "false"):
            raise ConfigError(
                f"{path}:{fields['anonymous_read'][1].start_mark.line + 1}: anonymous_read is true or false"
            )
        branch = _scalar(path, fields["default_branch"][1]) if "default_branch" in fields else "main"
        limit: int | None = None
        if "max_parallel_runs" in fields:
            text = _scalar(path, fields["max_parallel_runs"][1])
            if not text.isdigit() or not 1 <= int(text) <= 10_000:
                raise ConfigError(
                    f"{path}:{fields['max_parallel_runs'][1].start_mark.line + 1}: max_parallel_runs is "
                    f"a whole number from 1 (got '{text[:20]}')"
                )
            limit = int(text)
        poll: float | None = None
        if "poll" in fields:
            where = f"{path}:{fields['poll'][1].start_mark.line + 1}"
            try:
                poll = parse_duration(_scalar(path, fields["poll"][1]))
            except ValueError as exc:
                raise ConfigError(f"{where}: poll: {exc}") from None
            if poll < MIN_POLL:
                raise ConfigError(f"{where}: poll is at least {MIN_POLL:g}s (got {poll:g}s)")
        projects.append(
            ProjectConfig(
                name=name,
                repo=repo,
                default_branch=branch,
                root=data / "projects" / name,
                anonymous_read=anonymous == "true",
                max_parallel_runs=limit,
                poll=poll,
            )
        )
    chain_limit = CHAIN_LIMIT
    if "trigger_chain_limit" in top:
        text = _scalar(path, top["trigger_chain_limit"][1])
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise ConfigError(
                f"{path}:{top['trigger_chain_limit'][1].start_mark.line + 1}: trigger_chain_limit is a "
                f"whole number from 1 to 1000 (got '{text[:20]}')"
            )
        chain_limit = int(text)
    return ServerConfig(
        projects=tuple(projects),
        data_dir=data,
        db_url=db or state_url(data),
        runners=runners,
        chain_limit=chain_limit,
    )


def _mapping(path: Path, node: Any) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key, value in node.value:
        out[_scalar(path, key)] = (key, value)
    return out


def _scalar(path: Path, node: Any) -> str:
    import yaml  # noqa: PLC0415

    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: expected a single value here")
    return str(node.value)
