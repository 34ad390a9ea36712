"""Job logs for the browser: bounded reads of a log file and ANSI colours rendered as safe HTML.

A log can be 100 MB: a page shows at most ``PAGE_BYTES`` of it (the tail by default, or from a byte
offset), counting line numbers by streaming the part before it in chunks, never holding the file.
Rendering goes through ``termtext.OutputFilter`` first (it keeps SGR colours only and drops every
other escape sequence and control character), then each line becomes HTML: text escaped, SGR colours
turned into ``<span class>`` from a fixed set (no style attribute, nothing from the log in markup),
and any character that could still confuse a reader (C0/C1 controls, bidirectional overrides) shown
as a visible ``\\xNN``/``\\uNNNN`` escape.
"""

from __future__ import annotations

import html
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from buildyard.termtext import OutputFilter, last_overwrite

#: Most bytes of a log one page (or one JSON response) shows.
PAGE_BYTES = 256 * 1024
#: Most bytes one server-sent event batch carries.
STREAM_BYTES = 64 * 1024
_CHUNK = 1 << 20

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_VISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BASIC_FG = {**{30 + i: i for i in range(8)}, **{90 + i: 8 + i for i in range(8)}}
_BASIC_BG = {**{40 + i: i for i in range(8)}, **{100 + i: 8 + i for i in range(8)}}
_FLAGS = {1: "b", 2: "d", 3: "i", 4: "u", 7: "r", 9: "s"}
_CLEAR = {22: ("b", "d"), 23: ("i",), 24: ("u",), 27: ("r",), 29: ("s",)}


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _escape(text: str) -> str:
    return html.escape(_VISIBLE.sub(_visible, text), quote=True)


@dataclass
class _Style:
    fg: int | None = None
    bg: int | None = None
    flags: frozenset[str] = frozenset()

    def classes(self) -> str:
        parts = sorted(f"a{f}" for f in self.flags)
        if self.fg is not None:
            parts.append(f"f{self.fg}")
        if self.bg is not None:
            parts.append(f"g{self.bg}")
        return " ".join(parts)

    def apply(self, params: str) -> None:
        codes = [int(p) if p.isdigit() else 0 for p in (params.split(";") if params else ["0"])]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.fg, self.bg, self.flags = None, None, frozenset()
            elif code in _FLAGS:
                self.flags |= {_FLAGS[code]}
            elif code in _CLEAR:
                self.flags -= set(_CLEAR[code])
            elif code in _BASIC_FG:
                self.fg = _BASIC_FG[code]
            elif code in _BASIC_BG:
                self.bg = _BASIC_BG[code]
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48) and i + 1 < len(codes):
                # 256-colour: the 16 basic ones are kept; others (and truecolor) fall back to default
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    value = codes[i + 2] if codes[i + 2] < 16 else None
                    if code == 38:
                        self.fg = value
                    else:
                        self.bg = value
                    i += 2
                elif codes[i + 1] == 2:
                    i += 4
            i += 1


class AnsiHtml:
    """SGR-coloured text (one line at a time, colours carry over lines) → escaped HTML."""

    def __init__(self) -> None:
        self._style = _Style()

    def line(self, text: str) -> str:
        """The HTML of one line (without its newline)."""
        out: list[str] = []
        pos = 0
        open_span = self._open()
        out.append(open_span)
        for match in _SGR.finditer(text):
            out.append(_escape(text[pos : match.start()]))
            self._style.apply(match.group(1))
            if open_span:
                out.append("</span>")
            open_span = self._open()
            out.append(open_span)
            pos = match.end()
        out.append(_escape(text[pos:]))
        if open_span:
            out.append("</span>")
        return "".join(p for p in out if p)

    def _open(self) -> str:
        classes = self._style.classes()
        return f'<span class="{classes}">' if classes else ""


def plain(text: str) -> str:
    """A line without its colours, control characters shown escaped (for JSON and search)."""
    return _VISIBLE.sub(_visible, _SGR.sub("", text))


@dataclass(frozen=True)
class LogLine:
    """One rendered line of a log."""

    number: int
    text: str  # colours stripped, controls shown escaped
    html: str  # escaped HTML with colour spans


@dataclass(frozen=True)
class LogPage:
    """A window of a log file."""

    size: int  # bytes in the file when read
    start: int  # byte offset of the first line shown
    end: int  # byte offset after the last complete line shown (where following resumes)
    first_line: int  # line number of the first line shown (1-based)
    lines: list[LogLine]
    truncated_before: bool  # lines before ``start`` are not shown


_counted: OrderedDict[tuple[str, int, int], tuple[int, int]] = OrderedDict()
_counted_lock = threading.Lock()


def count_lines(path: Path, end: int) -> int:
    """Newlines in the first ``end`` bytes of ``path`` (read in chunks: bounded memory).

    A log only grows (a retry appends), so counts are remembered per file (path, device, inode): the
    next page of a growing 100 MB log counts only what was written since."""
    st = path.stat()
    key = (str(path), st.st_dev, st.st_ino)
    start, count = 0, 0
    with _counted_lock:
        known = _counted.get(key)
        if known is not None and known[0] <= end:
            start, count = known
    with path.open("rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
    with _counted_lock:
        _counted[key] = (end, count)
        _counted.move_to_end(key)
        while len(_counted) > 256:
            _counted.popitem(last=False)
    return count


def _render(data: bytes, first: int, *, final: bool) -> list[LogLine]:
    shown = OutputFilter()
    text = shown.feed(data) + (shown.flush() if final else "")
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    colour = AnsiHtml()
    out: list[LogLine] = []
    for i, raw in enumerate(parts):
        line = last_overwrite(raw)
        out.append(LogLine(first + i, plain(line), colour.line(line)))
    return out


def read_page(
    path: Path, *, offset: int | None = None, limit: int = PAGE_BYTES, live: bool = False
) -> LogPage:
    """Up to ``limit`` bytes of whole lines of ``path``: from byte ``offset`` (aligned to the next line
    start), or the tail when ``offset`` is None. An incomplete last line is shown unless ``live`` (the
    job still writes it: a follow from ``end`` sends it once complete)."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(size - limit, 0) if offset is None else min(max(offset, 0), size)
        if start > 0:  # begin at a line start: the first newline at or after start - 1
            f.seek(start - 1)
            buf = f.read(limit + 1)
            nl = buf.find(b"\n")
            if nl < 0:  # no line starts in the window: show it from ``start``
                data = buf[1:]
            else:
                start += nl
                data = buf[nl + 1 :]
        else:
            f.seek(0)
            data = f.read(limit)
    complete = data.rfind(b"\n") + 1
    first_line = count_lines(path, start) + 1 if start else 1
    lines = _render(data[:complete] if live else data, first_line, final=True)
    return LogPage(
        size=size,
        start=start,
        end=start + complete,
        first_line=first_line,
        lines=lines,
        truncated_before=start > 0,
    )


def page_of_bytes(data: bytes, *, limit: int = PAGE_BYTES) -> LogPage:
    """A page of a log held in memory (a cache entry's log): its last ``limit`` bytes, whole lines."""
    start = max(len(data) - limit, 0)
    if start:
        nl = data.find(b"\n", start - 1)
        start = nl + 1 if nl >= 0 else start
    first_line = data.count(b"\n", 0, start) + 1
    lines = _render(data[start:], first_line, final=True)
    return LogPage(len(data), start, len(data), first_line, lines, truncated_before=start > 0)


def read_new(
    path: Path, offset: int, first_line: int, *, limit: int = STREAM_BYTES, final: bool = False
) -> tuple[list[LogLine], int]:
    """Complete lines written after byte ``offset`` (all of the rest when ``final``): lines and new offset."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except OSError:
        return [], offset
    if not final or len(data) == limit:
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) == limit:  # a line longer than a batch: send it in pieces
            cut = len(data)
        data = data[:cut]
    return _render(data, first_line, final=True), offset + len(data)


def iter_raw(path: Path, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The log file's bytes in chunks (the raw download)."""
    with path.open("rb") as f:
        while block := f.read(chunk):
            yield block
