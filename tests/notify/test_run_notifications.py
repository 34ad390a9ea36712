"""``buildyard run`` sends the notifications of notify: at its end (a real receiver on 127.0.0.1)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_failed_then_fixed_run_notifies_twice_without_secrets(
    make_project: Callable[..., Path],
    cli: Callable[..., Any],
    inbox: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    url, got = inbox
    project = make_project(
        {
            "buildyard.yml": (
                f"notify:\n  - on: [failure, fixed]\n    webhook: {{url: '{url}'}}\n"
                "jobs:\n"
                "  test-hunter2x:\n"  # a job name holding the secret's value is masked in the payload
                "    secrets: [TOKEN]\n"
                "    script: 'test -f ok'\n"
            )
        }
    )
    secrets = tmp_path / "secrets.env"
    secrets.write_text("TOKEN=hunter2x\n")
    failed = cli("-C", project, "run", "--branch", "main", "--secrets-file", secrets)
    assert failed.code == 1
    (project / "ok").write_text("")
    fixed = cli("-C", project, "run", "--branch", "main", "--secrets-file", secrets, "--no-cache")
    assert fixed.code == 0, fixed.err
    assert cli("-C", project, "run", "--branch", "main", "--secrets-file", secrets, "--no-cache").code == 0
    assert [(m["status"], m["reason"], m["run"]["number"]) for m in got] == [
        ("failed", "failure", 1),
        ("success", "fixed", 2),  # the third run (success after success) sends nothing
    ]
    assert "hunter2x" not in json.dumps(got)
    assert got[0]["failed_jobs"] == ["test-***"]
    assert got[0]["title"].endswith("failed on main (" + got[0]["sha"][:8] + "): failed test-***")
