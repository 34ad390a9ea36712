"""Hardening of what reaches the terminal: names from the spec are escaped in error messages, live job
output keeps SGR colours only (everything with ``--raw``), and ``--stream`` never splits a character."""

from __future__ import annotations

import os
import sys
import time

import pytest

from buildyard.cli.render import OutputFilter, PlainRenderer, safe_text

CONTROLS = ("\x1b", "\x07", "\x9b", "\r")


def _no_controls(text: str) -> None:
    for char in CONTROLS:
        assert char not in text, repr(text)


def test_escape_sequences_from_the_spec_are_escaped_in_errors(cli, make_project) -> None:
    root = make_project(
        {
            "buildyard.yml": (
                "stages: [build]\n"
                "jobs:\n"
                '  a: {script: [x], "\\e]52;c;QUFB\\a\\nfake: line": 1}\n'
                '  b: {script: [x], needs: ["\\e[2J\\e[H"], stage: build}\n'
                '  c: {script: [x], stage: "\\e]8;;http://evil/\\e\\\\x\\r"}\n'
            )
        }
    )
    result = cli("-C", root, "validate")
    assert result.code == 2
    _no_controls(result.err)
    lines = result.err.splitlines()
    assert len(lines) == 3, result.err
    assert all(line.startswith("buildyard: error: ") for line in lines)
    assert r"\x1b]52;c;QUFB\x07\nfake: line" in result.err
    assert r"unknown job '\x1b[2J\x1b[H'" in result.err
    assert r"stage '\x1b]8;;http://evil/\x1b\x\r'" in result.err


def test_escape_sequences_in_a_command_line_error_are_escaped(cli, make_project) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: [x]}\n"})
    result = cli("-C", root, "run", "\x1b]0;title\x07")
    assert result.code == 2
    _no_controls(result.err)
    assert r"\x1b]0;title\x07" in result.err


NOISY = (
    "import os, time\n"
    "w = lambda b: (os.write(1, b), time.sleep(0.2))\n"
    r"w(b'\x1b]52;c;SGVsbG8=\x07\x1b[2A\x1b[?25l\x1b[31mred\x1b[0m\x1bPq#0\x1b\\ok\n')"
    "\n"
    r"w(b'split \x1b]52;c;'); w(b'U0VDUkVU\x07\n')"
    "\n"
    r"w(b'\x1b['); w(b'1;32mgreen\x1b[0m\r\n')"
    "\n"
    r"w('▶'.encode()[:1]); w('▶'.encode()[1:] + b' arrow\n')"
    "\n"
)


def _noisy_project(make_project):
    return make_project(
        {"noisy.py": NOISY, "buildyard.yml": f"jobs:\n  loud: {{script: ['{sys.executable} noisy.py']}}\n"}
    )


def test_live_output_keeps_colours_only(cli, make_project) -> None:
    result = cli("-C", _noisy_project(make_project), "run", "--stream", "--no-cache")
    assert result.code == 0, result.err
    out = result.out
    assert "\x1b[31mred\x1b[0m" in out and "\x1b[1;32mgreen\x1b[0m" in out
    for bad in ("\x1b]", "\x1b[2A", "\x1b[?25l", "\x1bP", "\x07", "\r", "SGVsbG8", "U0VDUkVU", "#0"):
        assert bad not in out, (bad, out)
    assert "loud | split \n" in out
    assert "loud | \x1b[31mred\x1b[0mok\n" in out
    assert "loud | ▶ arrow\n" in out and "\ufffd" not in out


def test_raw_shows_everything(cli, make_project) -> None:
    result = cli("-C", _noisy_project(make_project), "run", "--stream", "--raw", "--no-cache")
    assert result.code == 0, result.err
    out = result.out
    assert "\x1b]52;c;SGVsbG8=\x07\x1b[2A\x1b[?25l" in out
    assert "\x1b]52;c;U0VDUkVU\x07" in out
    assert "loud | ▶ arrow\n" in out and "\ufffd" not in out


MIXED = (
    "plain text é ▶\n\x1b[1;31mbold red\x1b[0m \x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\ "
    "\x1b]0;title\x07\x1b[5;10H\x1b[2K\x1b7\x1b(B\x9b31m\x1bPdata\x1b\\\x00\x08end\r\n"
)
CLEAN = "plain text é ▶\n\x1b[1;31mbold red\x1b[0m link 31mend\r\n"


def test_filter_is_streaming_safe_at_every_split() -> None:
    data = MIXED.encode()
    assert OutputFilter().feed(data) == CLEAN
    for cut in range(len(data) + 1):
        f = OutputFilter()
        assert f.feed(data[:cut]) + f.feed(data[cut:]) + f.flush() == CLEAN, cut
    f = OutputFilter()
    assert "".join(f.feed(data[i : i + 1]) for i in range(len(data))) + f.flush() == CLEAN


def test_an_unterminated_string_sequence_is_bounded() -> None:
    f = OutputFilter()
    assert f.feed(b"a\x1b]52;c;") == "a"
    assert f.feed(b"A" * 1_000_000) == ""
    assert f.feed(b"\x07b") == "b"
    assert f.feed(b"\x1b[" + b"1" * 10_000) == "1" * 10_000  # given up: shown as text, without ESC [
    assert f.feed(b"c") == "c"


BUILD_LOG = "".join(
    f"\x1b[32mPASSED\x1b[0m tests/test_mod{i % 50}.py::test_case_{i} [{i % 100:3d}%]\n"
    + ("Downloading 45%\r\x1b[2KDownloading 100%\n" if i % 10 == 0 else "")
    + ("\x1b]8;;https://example.com/x\x1b\\link\x1b]8;;\x1b\\\n" if i % 25 == 0 else "")
    + f"compiling src/module/file_{i}.c with -O2 -Wall\n"
    for i in range(2000)
).encode()


def _best_of(runs: int, work) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def test_filter_is_not_the_bottleneck_of_streamed_output() -> None:
    """Filtering costs less than the rest of showing output (split, prefix, write a line), measured alike."""
    chunks = [BUILD_LOG[i : i + 65536] for i in range(0, len(BUILD_LOG), 65536)] * 20

    def filtered() -> None:
        f = OutputFilter()
        for chunk in chunks:
            f.feed(chunk)

    def rendered_raw() -> None:
        with open(os.devnull, "w") as out:  # a real file: the renderer flushes each line, as on a terminal
            renderer = PlainRenderer(out, stream=True, raw=True)
            for chunk in chunks:
                renderer.output("job", chunk)

    assert _best_of(3, filtered) < _best_of(3, rendered_raw)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("a\x1b[2Jb", r"a\x1b[2Jb"), ("x\ny", r"x\ny"), ("\u202e", r"\u202e"), ("é ▶", "é ▶")],
)
def test_safe_text(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown
