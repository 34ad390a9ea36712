"""Reading report files safely: bytes, JSON and XML (via defusedxml), errors as ``ReportError``.

This is the only I/O the parsers do: read their one input file.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from buildyard.gates.errors import ReportError

#: Reports larger than this are refused (a runaway log written as XML should not exhaust memory).
MAX_REPORT_BYTES = 512 * 1024 * 1024


def read_bytes(path: Path) -> bytes:
    """Return the content of ``path`` or raise ``ReportError`` naming it."""
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            raise ReportError(str(path), f"report is too large ({size} bytes, limit {MAX_REPORT_BYTES})")
        return path.read_bytes()
    except FileNotFoundError:
        raise ReportError(str(path), "report file does not exist") from None
    except IsADirectoryError:
        raise ReportError(str(path), "is a directory, expected a report file") from None
    except OSError as exc:
        raise ReportError(str(path), f"cannot read report: {exc.strerror}") from None


def decode_text(path: Path, data: bytes) -> str:
    """Decode UTF-8 (with or without BOM) or raise ``ReportError``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(str(path), f"not UTF-8 text (byte {exc.start})") from None


def parse_json(path: Path, data: bytes) -> Any:
    """Parse JSON, mapping syntax errors to ``ReportError`` with the line."""
    text = decode_text(path, data)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON: {exc.msg} (column {exc.colno})"
        raise ReportError(str(path), message, line=exc.lineno) from None


class XmlDoc:
    """A parsed XML document that can say on which line an element starts.

    Parsing uses the C tree builder (fast); line numbers are only needed for error messages, so
    they are computed on demand by re-parsing with a builder that records each element's line.
    """

    def __init__(self, path: Path, data: bytes, root: ET.Element) -> None:
        self.path = path
        self.root = root
        self._data = data
        self._lines: list[int] | None = None

    def line_of(self, element: ET.Element) -> int | None:
        """The line where ``element`` starts (None if it is not part of this document)."""
        index = next((i for i, e in enumerate(self.root.iter()) if e is element), None)
        if index is None:
            return None
        if self._lines is None:
            builder = _LineTreeBuilder()
            parser = SafeET.DefusedXMLParser(target=builder)
            builder.parser = parser
            parser.feed(self._data)
            parser.close()
            self._lines = builder.lines
        return self._lines[index] if index < len(self._lines) else None

    def error(self, element: ET.Element, message: str) -> ReportError:
        """A ``ReportError`` located at ``element``."""
        return ReportError(str(self.path), message, line=self.line_of(element))


class _LineTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder recording the expat line number of each element start, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []
        self.parser: Any = None

    def start(self, tag: Any, attrs: dict[Any, Any]) -> ET.Element:
        self.lines.append(self.parser.parser.CurrentLineNumber)
        return super().start(tag, attrs)


def parse_xml(path: Path, data: bytes) -> XmlDoc:
    """Parse XML with defusedxml (no entity expansion, no external references)."""
    try:
        root: ET.Element = SafeET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        message = str(exc).split(":", 1)[0]
        raise ReportError(str(path), f"malformed XML: {message} (column {col + 1})", line=line) from None
    except defusedxml.DefusedXmlException as exc:
        raise ReportError(str(path), f"unsafe XML refused: {exc}") from None
    return XmlDoc(path, data, root)


def local_name(element: ET.Element) -> str:
    """The tag without any ``{namespace}`` prefix."""
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def float_attr(doc: XmlDoc, element: ET.Element, name: str, default: float | None = None) -> float:
    """A finite, non-negative numeric attribute (``default`` when absent), else ``ReportError``."""
    raw = element.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise doc.error(element, f"<{local_name(element)}> lacks the '{name}' attribute")
        return default
    try:
        # Some writers use a comma as thousands separator for times ("1,234.5").
        value = float(raw.replace(",", ""))
    except ValueError:
        message = f"<{local_name(element)}> attribute {name}={raw!r} is not a number"
        raise doc.error(element, message) from None
    if not math.isfinite(value) or value < 0:
        raise doc.error(element, f"<{local_name(element)}> attribute {name}={raw!r} must be >= 0")
    return value


def int_attr(doc: XmlDoc, element: ET.Element, name: str, default: int | None = None) -> int:
    """A non-negative integer attribute (``default`` when absent), else ``ReportError``."""
    raw = element.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise doc.error(element, f"<{local_name(element)}> lacks the '{name}' attribute")
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"<{local_name(element)}> attribute {name}={raw!r} is not an integer"
        raise doc.error(element, message) from None
    if value < 0:
        raise doc.error(element, f"<{local_name(element)}> attribute {name}={raw!r} must be >= 0")
    return value
