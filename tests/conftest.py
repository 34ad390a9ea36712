"""Shared fixtures: projects made from a dict of files (a real git repo), the CLI run in-process,
and a guard that fails any test leaking child processes or environment changes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from buildyard.cli import run_cli
from by_testutil import git

# The suite runs the same on a laptop and on a CI machine: variables a CI service sets (which change
# defaults such as making a signing key on first use) and a user's own BUILDYARD_* settings are
# cleared; tests that need one set it themselves.
for _name in [n for n in os.environ if n.startswith("BUILDYARD_") and not n.startswith("BUILDYARD_TEST_")]:
    del os.environ[_name]
for _name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL"):
    os.environ.pop(_name, None)
# Commands started by tests run in-process, never through a user's warm daemon (tests/daemon opt in).
os.environ["BUILDYARD_DAEMON"] = "0"
# Nor with the settings of the user's ~/.config/buildyard/config.toml (tests that need a file set one).
os.environ["BUILDYARD_CONFIG"] = ""

_ONLY_FILES = pytest.StashKey[frozenset[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--only-files FILE``: run only the test files listed in FILE (a shard of the suite)."""
    parser.addoption(
        "--only-files",
        metavar="FILE",
        help="collect only the test files listed in FILE, one path relative to the rootdir per line "
        "(the shards of buildyard.yml: .ci/test-shard)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Read the ``--only-files`` list once."""
    listed = config.getoption("--only-files")
    if listed:
        lines = Path(listed).read_text(encoding="utf-8").splitlines()
        config.stash[_ONLY_FILES] = frozenset(line.strip() for line in lines if line.strip())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--only-files``, skip the test files not listed.

    Selecting files this way, rather than naming them on the command line, keeps collection as in a
    whole run: directory by directory, each directory's conftest.py loaded when it is entered (named
    files load every conftest.py up front, and a test module's ``from conftest import`` then gets the
    last one loaded).
    """
    only = config.stash.get(_ONLY_FILES, None)
    name = collection_path.name
    if only is None or not (name.startswith("test_") or name.endswith("_test.py")) or name[-3:] != ".py":
        return None
    return collection_path.relative_to(config.rootpath).as_posix() not in only


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Create a git repository from ``{path: content}`` (committed on branch ``main``)."""

    def make(files: dict[str, str], *, name: str = "proj", commit: bool = True) -> Path:
        root = tmp_path / name
        root.mkdir()
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        (root / ".gitignore").write_text(".buildyard/\n")
        git(root, "init", "-q", "-b", "main")
        if commit:
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", "init")
        return root

    return make


@dataclass
class CliResult:
    """Exit code and captured output of an in-process CLI call."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``buildyard ARGS`` in-process; returns exit code and output."""

    def invoke(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = run_cli([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves child processes behind or changes os.environ.

    Autouse and independent of ``monkeypatch``, so it is torn down after monkeypatch has undone
    the test's own (legitimate) changes.
    """
    before = dict(os.environ)
    os.environ["BUILDYARD_KILL_GRACE"] = "0.5"
    try:
        yield
    finally:
        os.environ.pop("BUILDYARD_KILL_GRACE", None)
    me = psutil.Process()
    deadline = time.monotonic() + 3
    children = [
        c for c in me.children(recursive=True) if c.is_running() and c.status() != psutil.STATUS_ZOMBIE
    ]
    while children and time.monotonic() < deadline:
        time.sleep(0.05)
        children = [
            c for c in me.children(recursive=True) if c.is_running() and c.status() != psutil.STATUS_ZOMBIE
        ]
    for child in children:
        child.kill()
    assert not children, f"test leaked child processes: {[c.cmdline() for c in children]}"
    ignore = ("PYTEST_CURRENT_TEST",)
    after = {k: v for k, v in os.environ.items() if k not in ignore}
    assert after == {k: v for k, v in before.items() if k not in ignore}, "test leaked environment changes"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session, as a libpq URI.

    ``BUILDYARD_TEST_POSTGRES_URL`` when set, else a server started with ``pgserver`` (PostgreSQL's own
    binaries from PyPI) in a temporary directory, reached over a unix socket there: no TCP port.
    """
    given = os.environ.get("BUILDYARD_TEST_POSTGRES_URL")
    if given:
        yield given.replace("postgresql+psycopg://", "postgresql://")
        return
    import warnings

    with warnings.catch_warnings():  # platformdirs warns at import time when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

    # Outside pytest's temporary directories: another pytest session starting meanwhile rotates (deletes)
    # old ones, which killed this server mid-run; a short path also keeps its unix socket path legal.
    data = Path(tempfile.mkdtemp(prefix="by-pg-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on the session's PostgreSQL server (dropped after)."""
    import uuid

    import psycopg
    import sqlalchemy as sa

    name = f"buildyard_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(postgres_server).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:  # a given server (BUILDYARD_TEST_POSTGRES_URL) must not fill up with test databases
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A history database URL, once per backend: an embedded SQLite file, a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return str(request.getfixturevalue("postgres_url"))
