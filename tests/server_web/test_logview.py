"""Logs for the browser: ANSI colours as safe HTML, bounded reads of large logs, following new lines."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from buildyard.server.web.logview import PAGE_BYTES, AnsiHtml, plain, read_new, read_page


def test_sgr_colours_become_fixed_classes_and_carry_over_lines() -> None:
    colour = AnsiHtml()
    assert colour.line("\x1b[1;31merror\x1b[0m: x") == '<span class="ab f1">error</span>: x'
    assert colour.line("\x1b[32mstill") == '<span class="f2">still</span>'
    assert colour.line("green here\x1b[39m plain") == '<span class="f2">green here</span> plain'
    assert colour.line("\x1b[38;5;9mbright\x1b[38;5;200m other\x1b[48;2;1;2;3m x") == (
        '<span class="f9">bright</span> other x'
    )


def test_everything_from_the_log_is_escaped_controls_and_bidi_shown() -> None:
    hostile = '<script>alert(1)</script> "q" & \x07\x1b]0;title\x07 \u202eevil'
    html = AnsiHtml().line(hostile)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&quot;q&quot; &amp;" in html
    assert "\\x07" in html and "\\u202e" in html and "\x1b" not in html
    assert plain("\x1b[31mred\x1b[0m \x00") == "red \\x00"


def test_read_page_of_a_file_filters_escape_sequences(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(b"one\n\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\n50%\r100%\nlast")
    page = read_page(log)
    assert [ln.text for ln in page.lines] == ["one", "link", "100%", "last"]
    assert [ln.number for ln in page.lines] == [1, 2, 3, 4]
    live = read_page(log, live=True)  # the job still writes its last line: shown once complete
    assert [ln.text for ln in live.lines] == ["one", "link", "100%"] and live.end == log.stat().st_size - 4


def test_a_large_log_is_read_by_its_tail_with_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    line = b"x" * 99 + b"\n"
    with log.open("wb") as f:
        for _ in range(50):  # 50 MB: 500,000 lines of 100 bytes
            f.write(line * 10_000)
    tracemalloc.start()
    try:
        page = read_page(log)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page.truncated_before and page.size == 50 * 1000 * 1000
    assert page.lines[-1].number == 500_000 and len(page.lines) == PAGE_BYTES // 100
    assert page.first_line == page.start // 100 + 1  # numbers counted from the start of the file
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a 50 MB log"
    middle = read_page(log, offset=25_000_050, limit=1000)  # aligned to the next line start
    assert middle.start == 25_000_100 and middle.first_line == 250_002 and len(middle.lines) == 10


def test_read_new_returns_complete_lines_and_resumes(tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    log.write_bytes(b"a\nb\npart")
    lines, offset = read_new(log, 0, 1)
    assert [ln.text for ln in lines] == ["a", "b"] and offset == 4
    with log.open("ab") as f:
        f.write(b"ial\n")
    lines, offset = read_new(log, offset, 3)
    assert [(ln.number, ln.text) for ln in lines] == [(3, "partial")] and offset == 12
    with log.open("ab") as f:
        f.write(b"no newline at the end")
    assert read_new(log, offset, 4) == ([], offset)
    lines, end = read_new(log, offset, 4, final=True)
    assert [ln.text for ln in lines] == ["no newline at the end"] and end == log.stat().st_size


def test_line_numbers_stay_right_as_a_log_grows(tmp_path: Path) -> None:
    log = tmp_path / "grow.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 100_001)))
    first = read_page(log, limit=1000)
    assert first.lines[-1].text == "line 100000" and first.lines[-1].number == 100_000
    with log.open("ab") as f:  # counted from where the last count stopped
        f.write(b"".join(b"line %d\n" % i for i in range(100_001, 100_101)))
    grown = read_page(log, limit=1000)
    assert all(ln.text == f"line {ln.number}" for ln in grown.lines) and grown.lines[-1].number == 100_100
    early = read_page(log, offset=10, limit=100)  # before the remembered count: counted from the start
    assert all(ln.text == f"line {ln.number}" for ln in early.lines) and early.first_line == 3
