"""Fixtures of the dashboard tests: a real project with real runs in its history, the dashboard served
by uvicorn on a free 127.0.0.1 port, and background runs of the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_testutil import Served, buildyard, make_repo

from buildyard.server.web import ProjectDirSource, create_dashboard_app
from buildyard.server.web.standalone import User
from by_testutil import git

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
