"""A whole run recorded in PostgreSQL by the CLI, then read back by history, show and logs."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.postgres


def test_a_run_recorded_in_postgres_end_to_end(make_project, cli, postgres_url: str) -> None:
    root = make_project(
        {
            "buildyard.yml": """\
name: shop
jobs:
  build: {script: "echo built $APP", env: {APP: shop}}
  test:
    needs: [build]
    matrix: {py: ["3.11", "3.12"]}
    script: echo testing ${{ matrix.py }}
  broken: {needs: [build], script: "exit 3", allow_failure: true}
  deploy: {needs: [test], script: echo deployed}
"""
        }
    )
    for number in (1, 2):
        result = cli("-C", root, "run", "--db", postgres_url, "--no-cache", "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["number"] == number
    assert not (root / ".buildyard" / "buildyard.db").exists(), "nothing was written to SQLite"
    listed = json.loads(cli("-C", root, "history", "--db", postgres_url, "--json").out)
    assert [(r["number"], r["status"]) for r in listed] == [(2, "success"), (1, "success")]
    shown = json.loads(cli("-C", root, "show", "2", "--db", postgres_url, "--json").out)
    statuses = {j["id"]: (j["status"], j["exit_code"]) for j in shown["jobs"]}
    assert statuses == {
        "build": ("success", 0),
        "test[3.11]": ("success", 0),
        "test[3.12]": ("success", 0),
        "broken": ("failed", 3),
        "deploy": ("success", 0),
    }
    logs = cli("-C", root, "logs", "2", "test[3.12]", "--db", postgres_url)
    assert logs.code == 0 and "testing 3.12" in logs.out


def test_an_unreachable_server_is_one_located_line_without_the_password(make_project, cli) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: 'true'}\n"})
    url = f"postgresql+psycopg://ci:hunter2@127.0.0.1:{port}/history"
    for command in ("run", "history"):
        result = cli("-C", root, command, "--db", url)
        assert result.code == 2
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        shown = f"postgresql+psycopg://ci:***@127.0.0.1:{port}/history"
        assert f"cannot open history database {shown}" in lines[0]
        assert "hunter2" not in result.err and "Traceback" not in result.err
