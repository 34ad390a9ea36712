"""Coverage reports: Cobertura XML (coverage.py and others), LCOV, coverage.py JSON, JaCoCo XML.

Each parser yields a :class:`CoverageReport` with per-file line/branch counts and totals. Totals are
the sums over files, so merging reports of disjoint sources stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildyard.gates.errors import ReportError
from buildyard.gates.reports._io import (
    XmlDoc,
    decode_text,
    float_attr,
    int_attr,
    local_name,
    parse_json,
    parse_xml,
    read_bytes,
)
from buildyard.gates.reports.model import CoverageReport, FileCoverage

COVERAGE_FORMATS = ("cobertura", "lcov", "coverage-json", "jacoco")
_CONDITION = re.compile(r"\((\d+)/(\d+)\)")


def parse_coverage(path: Path, fmt: str = "auto") -> CoverageReport:
    """Parse a coverage report; ``fmt`` is one of :data:`COVERAGE_FORMATS` or ``auto`` (sniffed)."""
    data = read_bytes(path)
    if fmt == "auto":
        fmt = _sniff(path, data)
    if fmt == "cobertura":
        return _cobertura(parse_xml(path, data))
    if fmt == "jacoco":
        return _jacoco(parse_xml(path, data))
    if fmt == "lcov":
        return _lcov(path, decode_text(path, data))
    if fmt == "coverage-json":
        return _coverage_json(path, parse_json(path, data))
    choices = ", ".join(COVERAGE_FORMATS)
    raise ReportError(str(path), f"unknown coverage format {fmt!r} (use one of {choices})")


def _sniff(path: Path, data: bytes) -> str:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        doc = parse_xml(path, data)
        root = local_name(doc.root)
        if root == "coverage":
            return "cobertura"
        if root == "report":
            return "jacoco"
        message = f"unknown coverage XML: root element <{root}> (expected Cobertura or JaCoCo)"
        raise ReportError(str(path), message)
    if head.startswith(b"{"):
        return "coverage-json"
    if re.match(rb"[A-Z]+:", head):  # LCOV: every line is KEY:VALUE with an upper-case key
        return "lcov"
    expected = "Cobertura/JaCoCo XML, LCOV or coverage.py JSON"
    raise ReportError(str(path), f"unknown coverage format (expected {expected})")


def _report(doc_path: str, fmt: str, files: Mapping[str, FileCoverage], has_branches: bool) -> CoverageReport:
    values = tuple(files.values())
    return CoverageReport(
        sources=(doc_path,),
        format=fmt,
        files=values,
        lines_valid=sum(f.lines_valid for f in values),
        lines_covered=sum(f.lines_covered for f in values),
        branches_valid=sum(f.branches_valid for f in values),
        branches_covered=sum(f.branches_covered for f in values),
        has_branches=has_branches,
    )


def _cobertura(doc: XmlDoc) -> CoverageReport:
    root = doc.root
    if local_name(root) != "coverage":
        raise doc.error(root, f"not a Cobertura report: root element is <{local_name(root)}>")
    # Line sets per file: several <class> elements (Java inner classes) may describe one file.
    lines: dict[str, dict[int, bool]] = {}
    branches: dict[str, dict[int, tuple[int, int]]] = {}
    for cls in root.iter():
        if local_name(cls) != "class":
            continue
        filename = cls.get("filename")
        if not filename:
            raise doc.error(cls, "<class> lacks the 'filename' attribute")
        file_lines = lines.setdefault(filename, {})
        file_branches = branches.setdefault(filename, {})
        for line in cls.iter():
            if local_name(line) != "line":
                continue
            number = int_attr(doc, line, "number")
            hits = float_attr(doc, line, "hits")
            file_lines[number] = file_lines.get(number, False) or hits > 0
            if line.get("branch") == "true":
                match = _CONDITION.search(line.get("condition-coverage", ""))
                if match is None:
                    raise doc.error(line, "branch <line> lacks a 'condition-coverage' like '50% (1/2)'")
                covered, valid = int(match.group(1)), int(match.group(2))
                if covered > valid:
                    raise doc.error(line, f"condition-coverage covers {covered} of {valid} branches")
                file_branches[number] = (valid, covered)
    # coverage.py writes branch-rate="0" and no branch lines without --branch; other tools write
    # branches-valid. Treat the report as branch-aware if any branch data or a nonzero count exists.
    has_branches = any(branches.values()) or int_attr(doc, root, "branches-valid", 0) > 0
    files = {
        name: FileCoverage(
            path=name,
            lines_valid=len(file_lines),
            lines_covered=sum(file_lines.values()),
            branches_valid=sum(v for v, _ in branches[name].values()),
            branches_covered=sum(c for _, c in branches[name].values()),
        )
        for name, file_lines in lines.items()
    }
    return _report(str(doc.path), "cobertura", files, has_branches)


def _jacoco(doc: XmlDoc) -> CoverageReport:
    root = doc.root
    if local_name(root) != "report":
        raise doc.error(root, f"not a JaCoCo report: root element is <{local_name(root)}>")
    files: dict[str, FileCoverage] = {}
    has_branches = False
    for package in root.iter("package"):
        pkg = package.get("name", "")
        for source in package.iter("sourcefile"):
            name = source.get("name")
            if not name:
                raise doc.error(source, "<sourcefile> lacks the 'name' attribute")
            counters = {c.get("type"): c for c in source if local_name(c) == "counter"}
            line_counter = counters.get("LINE")
            if line_counter is None:
                raise doc.error(source, f"<sourcefile name={name!r}> has no LINE counter")
            missed = int_attr(doc, line_counter, "missed")
            covered = int_attr(doc, line_counter, "covered")
            b_missed = b_covered = 0
            branch_counter = counters.get("BRANCH")
            if branch_counter is not None:
                has_branches = True
                b_missed = int_attr(doc, branch_counter, "missed")
                b_covered = int_attr(doc, branch_counter, "covered")
            path = f"{pkg}/{name}" if pkg else name
            files[path] = FileCoverage(path, missed + covered, covered, b_missed + b_covered, b_covered)
    if not files:
        # A report without source files may still carry totals (built without sources).
        totals = {c.get("type"): c for c in root if local_name(c) == "counter"}
        if "LINE" not in totals:
            raise doc.error(root, "JaCoCo report has neither <sourcefile> elements nor a LINE counter")
        missed = int_attr(doc, totals["LINE"], "missed")
        covered = int_attr(doc, totals["LINE"], "covered")
        b_missed = b_covered = 0
        if "BRANCH" in totals:
            has_branches = True
            b_missed = int_attr(doc, totals["BRANCH"], "missed")
            b_covered = int_attr(doc, totals["BRANCH"], "covered")
        files["(total)"] = FileCoverage("(total)", missed + covered, covered, b_missed + b_covered, b_covered)
    return _report(str(doc.path), "jacoco", files, has_branches)


def _lcov(path: Path, text: str) -> CoverageReport:
    files: dict[str, FileCoverage] = {}
    current: str | None = None
    lines: dict[int, bool] = {}
    branches: dict[tuple[str, str, str], bool] = {}
    summary: dict[str, int] = {}
    saw_branch_data = False

    def bad(lineno: int, message: str) -> ReportError:
        return ReportError(str(path), message, line=lineno)

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("TN:"):
            continue
        key, sep, value = line.partition(":")
        if line == "end_of_record":
            if current is None:
                raise bad(lineno, "end_of_record without a preceding SF: record")
            lines_valid = summary.get("LF", len(lines))
            lines_hit = summary.get("LH", sum(lines.values()))
            branches_valid = summary.get("BRF", len(branches))
            branches_hit = summary.get("BRH", sum(branches.values()))
            if lines_hit > lines_valid or branches_hit > branches_valid:
                raise bad(lineno, f"record for {current} covers more than it has (LH > LF or BRH > BRF)")
            previous = files.get(current)
            if previous is not None:  # the same file in two records (e.g. two test runs): add up
                lines_valid += previous.lines_valid
                lines_hit += previous.lines_covered
                branches_valid += previous.branches_valid
                branches_hit += previous.branches_covered
            files[current] = FileCoverage(current, lines_valid, lines_hit, branches_valid, branches_hit)
            current, lines, branches, summary = None, {}, {}, {}
            continue
        if not sep:
            raise bad(lineno, f"malformed LCOV line {line[:40]!r} (expected KEY:VALUE)")
        if key == "SF":
            if current is not None:
                raise bad(lineno, f"SF: before end_of_record of {current}")
            current = value
            continue
        if current is None:
            raise bad(lineno, f"{key}: outside a record (missing SF:)")
        try:
            if key == "DA":
                parts = value.split(",")
                lines[int(parts[0])] = lines.get(int(parts[0]), False) or int(parts[1]) > 0
            elif key == "BRDA":
                block_line, block, branch, taken = value.split(",")
                saw_branch_data = True
                hit = taken != "-" and int(taken) > 0
                branches[(block_line, block, branch)] = hit
            elif key in ("LF", "LH", "BRF", "BRH"):
                summary[key] = int(value)
                saw_branch_data = saw_branch_data or (key == "BRF" and int(value) > 0)
        except (ValueError, IndexError):
            raise bad(lineno, f"malformed LCOV {key} line {line[:60]!r}") from None
    if current is not None:
        raise ReportError(str(path), f"truncated LCOV: record for {current} has no end_of_record")
    if not files:
        raise ReportError(str(path), "LCOV file has no records (SF: ... end_of_record)")
    return _report(str(path), "lcov", files, saw_branch_data)


def _coverage_json(path: Path, data: Any) -> CoverageReport:
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ReportError(str(path), "not a coverage.py JSON report: no 'files' object")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    has_branches = bool(meta.get("branch_coverage", False)) if isinstance(meta, dict) else False
    files: dict[str, FileCoverage] = {}
    for name, entry in data["files"].items():
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise ReportError(str(path), f"files[{name!r}] has no 'summary' object")
        try:
            statements = _count(summary, "num_statements")
            covered = _count(summary, "covered_lines")
            branches = _count(summary, "num_branches") if has_branches else 0
            covered_branches = _count(summary, "covered_branches") if has_branches else 0
        except (KeyError, ValueError) as exc:
            raise ReportError(str(path), f"files[{name!r}].summary: {exc.args[0]}") from None
        if covered > statements or covered_branches > branches:
            raise ReportError(str(path), f"files[{name!r}].summary covers more than it has")
        files[name] = FileCoverage(name, statements, covered, branches, covered_branches)
    return _report(str(path), "coverage-json", files, has_branches)


def _count(summary: Mapping[str, Any], key: str) -> int:
    if key not in summary:
        raise KeyError(f"missing {key!r}")
    value = summary[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key!r} must be a non-negative integer, got {value!r}")
    return value
