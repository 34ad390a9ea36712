"""Stored logs and run details reach a terminal as safely as live output does."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

PIPELINE = r"""jobs:
  noisy:
    script:
      - printf 'plain \033[31mred\033[0m \033]52;c;ZXZpbA==\007 \033[2J\033[Hgone\n'
"""


def on_a_terminal(args: list[str], cwd: Path) -> str:
    """Run the CLI with its stdout on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    env = {**os.environ, "BUILDYARD_DAEMON": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "buildyard", *args],
        cwd=cwd,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_logs_on_a_terminal_keep_colours_only_and_raw_or_piped_logs_are_as_written(make_project, cli) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    assert cli("-C", root, "run").code == 0
    shown = on_a_terminal(["logs", "1", "noisy"], root)
    assert "\x1b[31mred\x1b[0m" in shown and "gone" in shown
    assert (
        "\x1b]52" not in shown and "ZXZpbA" not in shown and "\x1b[2J" not in shown and "\x1b[H" not in shown
    )
    raw = on_a_terminal(["logs", "1", "noisy", "--raw"], root)
    assert "\x1b]52;c;ZXZpbA==\x07" in raw and "\x1b[2J" in raw
    piped = cli("-C", root, "logs", "1", "noisy")  # not a terminal: the log as stored
    assert "\x1b]52;c;ZXZpbA==\x07" in piped.out


def test_show_escapes_what_came_from_files_and_output(make_project, cli) -> None:
    text = 'jobs:\n  t:\n    matrix: {v: ["a\\u001b]0;owned\\u0007b"]}\n    script: "exit 3"\n'
    root = make_project({"buildyard.yml": text})
    assert cli("-C", root, "run").code == 1
    shown = cli("-C", root, "show", "1").out
    assert "\x1b" not in shown and "\x07" not in shown and "a\\x1b]0;owned\\x07b" in shown
