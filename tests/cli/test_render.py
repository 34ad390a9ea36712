"""The live terminal view (Rich) renders a real run without errors and prints every finished job."""

from __future__ import annotations

import io

from rich.console import Console

from buildyard.cli.render import RichRenderer
from buildyard.engine.runner import RunOptions, execute_run


def test_rich_live_view_on_a_terminal(make_project) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  a: {script: 'sleep 0.3; echo a'}\n  b: {needs: [a], script: 'exit 3'}\n"}
    )
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    renderer = RichRenderer(console=console)
    try:
        result = execute_run(RunOptions(project_dir=root, cache=False), renderer)
    finally:
        renderer.close()
    text = buffer.getvalue()
    assert str(result.status) == "failed"
    assert "✓ a success" in text and "✗ b failed (exit 3)" in text
    assert "jobs" in text  # the progress line of the live area was drawn at least once
