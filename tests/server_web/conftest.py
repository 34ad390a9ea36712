"""Fixtures of the dashboard tests: a real project with real runs in its history, the dashboard served
by uvicorn on a free 127.0.0.1 port, and background runs of the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from buildyard.server.web import ProjectDirSource, create_dashboard_app
from buildyard.server.web.standalone import User
from by_testutil import free_port, git

PY = sys.executable
ADMIN = User("admin", "admin")

PIPELINE = f"""\
name: yard
gates:
  - tests: {{junit: "reports/junit.xml", max_failures: 0}}
jobs:
  build:
    script:
      - printf '\\033[32mgreen\\033[0m <b>&amp; tag\\n'
      - mkdir -p dist && echo "app $BUILDYARD_RUN_NUMBER" > dist/app.txt
    publish: {{name: yard-app, paths: ["dist/*"], version: "1.0.0"}}
  test:
    needs: [build]
    env: {{PYTHONPATH: "."}}
    script: {PY} -m pytest -q -p no:cacheprovider --junitxml=reports/junit.xml tests
    artifacts: {{paths: [reports/]}}
  lint:
    script: echo lint
  deploy:
    needs: [build]
    environment: {{name: dev, wait_for_gates: false}}
    script: cp "$BUILDYARD_ARTIFACT_DIR/app.txt" live.txt
"""
PASSING = "def test_ok():\n    assert True\n\n\ndef test_add():\n    assert 1 + 1 == 2\n"
FAILING = "def test_ok():\n    assert True\n\n\ndef test_add():\n    assert 1 + 1 == 3\n"


def buildyard(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess on ``root``."""
    result = subprocess.run(
        [PY, "-m", "buildyard", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode not in (0, 1):
        raise AssertionError(f"buildyard {args} exited {result.returncode}: {result.stderr}")
    return result


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository on branch main with ``files`` committed."""
    root.mkdir(parents=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two real runs: #1 passes, #2 fails a test (a new failure); both publish a signed
    version and deploy it to ``dev``."""
    root = make_repo(
        tmp_path_factory.mktemp("yard") / "yard",
        {
            "buildyard.yml": PIPELINE,
            "tests/test_a.py": PASSING,
            ".gitignore": ".buildyard/\nreports/\ndist/\nlive.txt\n",
        },
    )
    buildyard(root, "keys", "generate")
    assert buildyard(root, "run").returncode == 0
    (root / "tests/test_a.py").write_text(FAILING)
    git(root, "commit", "-qam", "break test_add")
    assert buildyard(root, "run").returncode == 1
    return root


@pytest.fixture(scope="module")
def yard_source(yard: Path) -> Iterator[ProjectDirSource]:
    """The dashboard source of the ``yard`` project."""
    source = ProjectDirSource(yard, name="yard")
    yield source
    source.close()


class Served:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Serve a dashboard of a source (as ``user``, or per request with ``X-Test-User``)."""
    running: list[Served] = []

    def start(source: object, *, user: User | None = ADMIN, header_users: bool = True) -> Served:
        served = Served(create_dashboard_app(source, user=user, header_users=header_users))  # type: ignore[arg-type]
        running.append(served.__enter__())
        return served

    yield start
    for served in running:
        served.__exit__()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client (no redirects followed)."""
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``buildyard ARGS`` in a subprocess, stopped (SIGINT, then SIGKILL) at teardown if still running."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [PY, "-m", "buildyard", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
