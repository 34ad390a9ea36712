"""Coverage parsing: real coverage.py output (Cobertura XML, JSON, LCOV) and a JaCoCo fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from gatestools import FIXTURES, run_tool, write

from buildyard.gates.errors import ReportError
from buildyard.gates.reports import parse_coverage


def test_coverage_py_three_formats_agree(coverage_reports: dict[str, Path]) -> None:
    reports = {fmt: parse_coverage(path) for fmt, path in coverage_reports.items()}
    assert {fmt: r.format for fmt, r in reports.items()} == {f: f for f in reports}  # sniffed correctly
    cobertura, as_json, lcov = reports["cobertura"], reports["coverage-json"], reports["lcov"]
    # Same numbers whichever format coverage.py wrote.
    for other in (as_json, lcov):
        assert (other.lines_valid, other.lines_covered) == (cobertura.lines_valid, cobertura.lines_covered)
        assert (other.branches_valid, other.branches_covered) == (
            cobertura.branches_valid,
            cobertura.branches_covered,
        )
    assert cobertura.has_branches and as_json.has_branches and lcov.has_branches
    # ... and the same as coverage.py's own totals.
    totals = json.loads(coverage_reports["coverage-json"].read_text())["totals"]
    assert cobertura.lines_valid == totals["num_statements"]
    assert cobertura.lines_covered == totals["covered_lines"]
    assert cobertura.branches_valid == totals["num_branches"]
    assert cobertura.branches_covered == totals["covered_branches"]
    root = SafeET.parse(coverage_reports["cobertura"]).getroot()
    assert cobertura.totals.line == pytest.approx(100 * float(root.get("line-rate")), abs=0.01)
    assert cobertura.totals.branch == pytest.approx(100 * float(root.get("branch-rate")), abs=0.01)
    assert 0 < cobertura.totals.line < 100  # unused() is never called
    assert [f.path for f in cobertura.files] == ["sample.py"]


def test_coverage_py_without_branch_has_no_branch_data(tmp_path: Path) -> None:
    write(tmp_path / "mod.py", "def f(x):\n    if x:\n        return 1\n    return 2\n")
    write(tmp_path / "test_mod_nb.py", "from mod import f\n\ndef test_f():\n    assert f(1) == 1\n")
    run_tool(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--source=.",
            "--omit=test_*",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        tmp_path,
    )
    run_tool([sys.executable, "-m", "coverage", "xml", "-o", "cov.xml"], tmp_path)
    run_tool([sys.executable, "-m", "coverage", "json", "-o", "cov.json"], tmp_path)
    for name in ("cov.xml", "cov.json"):
        report = parse_coverage(tmp_path / name)
        assert not report.has_branches and report.totals.branch is None
        assert (report.lines_valid, report.lines_covered) == (4, 3)


def test_jacoco_counters() -> None:
    # Format: JaCoCo XML report (report.dtd 1.1): LINE/BRANCH counters per <sourcefile>.
    report = parse_coverage(FIXTURES / "jacoco.xml")
    assert report.format == "jacoco"
    assert (report.lines_valid, report.lines_covered) == (8, 3)
    assert (report.branches_valid, report.branches_covered) == (6, 1)
    assert sorted(f.path for f in report.files) == [
        "com/example/Calculator.java",
        "com/example/util/Strings.java",
    ]
    assert report.totals.line == pytest.approx(37.5)


def test_lcov_records_and_merging(tmp_path: Path) -> None:
    path = write(
        tmp_path / "lcov.info",
        """
        TN:
        SF:src/a.js
        DA:1,1
        DA:2,0
        BRDA:2,0,0,1
        BRDA:2,0,1,-
        end_of_record
        SF:src/b.js
        DA:1,3
        LF:1
        LH:1
        end_of_record
        """,
    )
    report = parse_coverage(path)
    assert report.format == "lcov"
    assert (report.lines_valid, report.lines_covered, report.branches_valid, report.branches_covered) == (
        3,
        2,
        2,
        1,
    )
    merged = report.merged(parse_coverage(FIXTURES / "jacoco.xml"))
    assert merged.format == "mixed" and merged.lines_valid == 11 and merged.sources[0].endswith("lcov.info")
    # The same file measured twice is not double counted.
    other = write(tmp_path / "other.info", "SF:src/a.js\nDA:1,0\nDA:2,4\nend_of_record\n")
    again = report.merged(parse_coverage(other))
    assert (again.lines_valid, again.lines_covered) == (3, 2)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("c.info", "SF:a.py\nDA:1\nend_of_record\n", r"c.info:2: malformed LCOV DA line"),
        ("c.info", "SF:a.py\nDA:1,1\n", r"c.info: truncated LCOV: record for a.py has no end_of_record"),
        ("c.info", "DA:1,1\n", r"c.info:1: DA: outside a record"),
        ("c.xml", "<coverage><packages><package><classes><class name='x'>", r"c.xml:1: malformed XML"),
        (
            "c.xml",
            "<coverage>\n<packages><package><classes>\n<class name='x'/>"
            "</classes></package></packages></coverage>",
            r"c.xml:3: <class> lacks the 'filename' attribute",
        ),
        ("c.xml", "<foo/>", r"c.xml: unknown coverage XML: root element <foo>"),
        (
            "c.json",
            '{"files": {"a.py": {"summary": {"num_statements": 3}}}}',
            r"c.json: files\['a.py'\].summary: missing 'covered_lines'",
        ),
        ("c.json", '{"files": ', r"c.json:1: malformed JSON"),
        ("c.txt", "hello", r"c.txt: unknown coverage format"),
    ],
)
def test_malformed_coverage(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        parse_coverage(path)
