"""Any input gives a report or a ReportError naming the file -- never another exception."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildyard.gates.errors import ReportError
from buildyard.gates.reports import (
    TestOutcome,
    parse_benchmarks,
    parse_coverage,
    parse_junit,
    parse_sarif,
)

PARSERS: dict[str, Callable[[Path], object]] = {
    "junit": parse_junit,
    "coverage": parse_coverage,
    "benchmarks": parse_benchmarks,
    "sarif": parse_sarif,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "benchmarks",
                    "results",
                    "runs",
                    "files",
                    "name",
                    "samples",
                    "unit",
                    "stats",
                    "times",
                    "command",
                    "version",
                    "tool",
                    "driver",
                    "summary",
                    "meta",
                    "level",
                    "rounds",
                    "data",
                    "real_time",
                    "time_unit",
                    "run_type",
                    "num_statements",
                    "covered_lines",
                    "locations",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def _check(parser: Callable[[Path], object], content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report"
        path.write_bytes(content)
        try:
            parser(path)
        except ReportError as exc:
            assert str(exc).startswith(str(path)), exc
            assert "\n" not in str(exc)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_random_bytes(kind: str, data: bytes) -> None:
    _check(PARSERS[kind], data)


@pytest.mark.parametrize("kind", ["benchmarks", "sarif", "coverage"])
@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_random_json_structures(kind: str, value: Any) -> None:
    if kind == "sarif" and isinstance(value, dict):
        value = {**value, "version": "2.1.0"}
    _check(PARSERS[kind], json.dumps(value).encode())


xml_names = st.sampled_from(
    [
        "testsuites",
        "testsuite",
        "testcase",
        "failure",
        "error",
        "skipped",
        "flakyFailure",
        "rerunFailure",
        "coverage",
        "class",
        "line",
        "report",
        "package",
        "sourcefile",
        "counter",
    ]
)
xml_attrs = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "classname",
            "time",
            "filename",
            "number",
            "hits",
            "branch",
            "condition-coverage",
            "type",
            "missed",
            "covered",
            "message",
        ]
    ),
    st.sampled_from(["", "a", "1", "-1", "0.5", "true", "50% (1/2)", "x,y", "nan", "LINE"]),
    max_size=4,
)


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    element = ET.Element(draw(xml_names), draw(xml_attrs))
    if depth < 3:
        for child in draw(st.lists(xml_trees(depth + 1), max_size=3)):  # type: ignore[call-arg]
            element.append(child)
    return element


@pytest.mark.parametrize("kind", ["junit", "coverage"])
@settings(max_examples=150, deadline=None)
@given(tree=xml_trees())
def test_random_xml_trees(kind: str, tree: ET.Element) -> None:
    _check(PARSERS[kind], ET.tostring(tree))


cases = st.lists(
    st.tuples(
        st.text(alphabet="abcXYZ_./", min_size=1, max_size=6),
        st.text(alphabet="abcXYZ_[]", min_size=1, max_size=6),
        st.sampled_from(list(TestOutcome)),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=15,
    unique_by=lambda c: (c[0], c[1]),
)


@settings(max_examples=80, deadline=None)
@given(cases=cases)
def test_junit_round_trip(cases: list[tuple[str, str, TestOutcome, float]]) -> None:
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {"name": "s"})
    for classname, name, outcome, duration in cases:
        case = ET.SubElement(
            suite, "testcase", {"classname": classname, "name": name, "time": repr(duration)}
        )
        if outcome is not TestOutcome.PASSED:
            tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[outcome.value]
            ET.SubElement(case, tag, {"message": "m"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junit.xml"
        path.write_bytes(ET.tostring(root))
        parsed = parse_junit(path)
    assert [(c.classname, c.name, c.outcome, c.duration) for c in parsed.cases] == cases


@pytest.mark.parametrize(
    ("kind", "content"),
    [  # inputs that once escaped as TypeError (unhashable values used as keys)
        ("benchmarks", '{"context": {}, "benchmarks": [{"name": "a", "real_time": 1, "time_unit": []}]}'),
        ("benchmarks", '{"benchmarks": [{"name": "a", "unit": {}, "samples": [1]}]}'),
        ("benchmarks", '{"machine_info": {}, "benchmarks": [{"name": "a", "stats": {"rounds": true}}]}'),
        (
            "sarif",
            '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": []}]}]}',
        ),
    ],
)
def test_wrongly_typed_values(kind: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(content)
        with pytest.raises(ReportError, match=r"report.json: "):
            PARSERS[kind](path)
