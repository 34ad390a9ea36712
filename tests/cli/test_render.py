"""The live terminal view (Rich) renders a real run without errors and prints every finished job."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from buildyard.cli.render import RichRenderer
from buildyard.engine.runner import RunOptions, RunResult, execute_run


def _render(root: Path) -> tuple[RunResult, str]:
    """Run the project with the live view on a (forced) terminal; the result and what was drawn."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    renderer = RichRenderer(console=console)
    try:
        result = execute_run(RunOptions(project_dir=root, cache=False), renderer)
    finally:
        renderer.close()
    return result, buffer.getvalue()


def test_rich_live_view_on_a_terminal(make_project) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  a: {script: 'sleep 0.3; echo a'}\n  b: {needs: [a], script: 'exit 3'}\n"}
    )
    result, text = _render(root)
    assert str(result.status) == "failed"
    assert "✓ a success" in text and "✗ b failed (exit 3)" in text
    assert "jobs" in text  # the progress line of the live area was drawn at least once


def test_rich_live_view_shows_a_deployment_waiting_for_approval(make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": "jobs:\n  deploy:\n    script: 'true'\n    environment:\n"
            "      {name: prod, artifact: a@1.0.0, approval: required, approval_timeout: 1s}\n"
        }
    )
    result, text = _render(root)
    assert str(result.status) == "success"
    assert "deploy waiting for approval: buildyard approve 1 deploy" in text
    assert "1 waiting for approval" in text  # the live area showed it while it waited
    assert "○ deploy skipped" in text and "no decision within approval_timeout 1.0s" in text
