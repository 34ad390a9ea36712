"""Making untrusted text safe for the reader's terminal.

Two tools, for the two kinds of text buildyard prints:

- ``safe_text``: names and values taken from a pipeline file (key names, ``needs``, ``stage``, matrix
  values) in messages. Every control character (C0, DEL, C1) and every bidirectional-override
  character is shown escaped (``\\x1b``, ``\\n``, ``\\u202e``): a message stays one line and cannot
  drive the terminal.
- ``OutputFilter``: live job output. Decodes UTF-8 incrementally (a character split across two reads
  stays whole) and keeps SGR colours (``ESC [ params m``) only: OSC (titles, OSC 8 links, OSC 52
  clipboard), DCS/SOS/PM/APC strings, other CSI (cursor movement, erase, modes), other escape
  sequences and control characters are dropped. Tab, newline and carriage return pass (the renderer
  resolves carriage returns per line). A sequence split across reads is still recognised; an
  unterminated string is discarded up to its end however long it is, an unterminated CSI is given
  up (shown as text, without its ESC) past ``MAX_PENDING`` characters.
"""

from __future__ import annotations

import codecs
import re

_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_ESCAPES: dict[int, str] = {
    code: _NAMED.get(code, f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    for code in [*range(0x20), *range(0x7F, 0xA0), *_BIDI]
}


def last_overwrite(line: str) -> str:
    """What a terminal ends up showing for a line with carriage returns: its last non-empty part.

    A trailing CR (CRLF) is dropped; ``50%\r100%`` shows ``100%`` (progress bars print one line).
    """
    if "\r" not in line:
        return line
    parts = [part for part in line.split("\r") if part]
    return parts[-1] if parts else ""


def safe_text(text: str) -> str:
    """``text`` with control and bidi-override characters escaped (``\\x1b``, ``\\n``, ``\\u202e``)."""
    return text.translate(_ESCAPES)


#: Longest incomplete CSI/escape sequence held back between reads.
MAX_PENDING = 256

# Anything that may need filtering: C0 controls other than tab/newline/CR, DEL, C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Start of a string sequence (OSC, DCS, SOS, PM, APC), discarded up to its terminator.
_STRING = re.compile(r"\x1b[\]PX^_]")
# A complete string (its end as below; a bare ESC ends it but is not part of it): dropped in one pass.
_STRING_DONE = re.compile(
    r"\x1b[\]PX^_][^\x07\x9c\x18\x1a\x1b]*(?:[\x07\x9c\x18\x1a]|\x1b\\|(?=\x1b.))", re.DOTALL
)
# End of a string: BEL, ST (ESC \ or C1), CAN/SUB; a bare ESC ends it too and starts a new sequence.
_STRING_END = re.compile(r"\x07|\x9c|\x18|\x1a|\x1b\\?")
# An escape sequence cut off at the end of a read: held back until the next one.
_PARTIAL = re.compile(r"\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|[\x20-\x2f]*)\Z")
# What is dropped outside strings: escape sequences but SGR (CSI, nF/Fp/Fe/Fs), a stray ESC; then
# the other controls. Two patterns: one with a literal first character scans ~20x faster than one
# alternation, and ESCs go first so that removing a control cannot join an ESC to a sequence.
_DROP_ESC = re.compile(
    r"\x1b(?![\[][0-9;:]*m)(?:\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]|[\x20-\x2f]*[\x30-\x7e])?"
)
_DROP_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def _drop(text: str) -> str:
    text = _DROP_ESC.sub("", text)
    return _DROP_CONTROL.sub("", text) if _DROP_CONTROL.search(text) else text


class OutputFilter:
    """Bytes of one output stream in, terminal-safe text out (SGR colours kept); ``raw`` only decodes."""

    def __init__(self, *, raw: bool = False) -> None:
        self.raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # an escape sequence cut off at the end of the last read
        self._in_string = False  # inside an OSC/DCS/... string: discard up to its terminator

    def feed(self, data: bytes) -> str:
        """The safe text of the next chunk of output."""
        text = self._decoder.decode(data)
        return text if self.raw else self._filter(text)

    def flush(self) -> str:
        """The rest at the end of the stream (an incomplete character becomes U+FFFD)."""
        text = self._decoder.decode(b"", final=True)
        if self.raw:
            return text
        out = self._filter(text)
        self._pending, self._in_string = "", False  # an unfinished sequence shows nothing
        return out

    def _filter(self, text: str) -> str:
        if self._pending:
            text, self._pending = self._pending + text, ""
        if self._in_string:
            text = text[self._skip_string(text, 0) :]
        if not _CONTROL.search(text):
            return text
        cut = text.rfind("\x1b", max(0, len(text) - MAX_PENDING))
        if cut >= 0 and _PARTIAL.match(text, cut):
            if len(text) - cut < MAX_PENDING:
                text, self._pending = text[:cut], text[cut:]
            else:
                text = text[:cut] + text[cut + 1 :]  # never completed: give it up as text
        if "\x1b" in text:
            text = _STRING_DONE.sub("", text)
        out: list[str] = []
        pos = 0
        while (start := _STRING.search(text, pos)) is not None:
            out.append(_drop(text[pos : start.start()]))
            pos = self._skip_string(text, start.end())
            if self._in_string:
                break
        else:
            out.append(_drop(text[pos:]))
        return "".join(out)

    def _skip_string(self, text: str, pos: int) -> int:
        """Where the text after the string sequence whose content starts at ``pos`` begins."""
        end = _STRING_END.search(text, pos)
        if end is None or (end.group() == "\x1b" and end.end() == len(text)):
            self._in_string = True
            if end is not None:  # maybe the first half of ESC \ (else keep what _filter held back)
                self._pending = "\x1b"
            return len(text)
        self._in_string = False
        return end.start() if end.group() == "\x1b" else end.end()
