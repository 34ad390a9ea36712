"""JUnit XML test reports: pytest, Maven Surefire/Failsafe, jest-junit, go-junit-report and others.

Dialects handled:

- root ``<testsuites>`` or a bare ``<testsuite>``; suites may nest (a case belongs to its innermost suite);
- ``<failure>`` (assertion failed) vs ``<error>`` (crash, setup error), ``<skipped>``;
- Surefire reruns (``rerunFailingTestsCount``): ``<flakyFailure>``/``<flakyError>`` on a passing case
  (it failed, then passed) and ``<rerunFailure>``/``<rerunError>`` next to a ``<failure>``/``<error>``
  (every rerun failed too);
- pytest-rerunfailures: each attempt is written as its own ``<testcase>`` with the same identity, the
  earlier ones (the reruns) without a ``<failure>`` child; the last element is the final outcome.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from buildyard.gates.reports._io import XmlDoc, float_attr, local_name, parse_xml, read_bytes
from buildyard.gates.reports.model import JUnitReport, TestCase, TestOutcome

_OUTCOME_TAGS = {"failure": TestOutcome.FAILED, "error": TestOutcome.ERROR, "skipped": TestOutcome.SKIPPED}
_SEVERITY = {TestOutcome.PASSED: 0, TestOutcome.SKIPPED: 1, TestOutcome.FAILED: 2, TestOutcome.ERROR: 3}
_FLAKY_TAGS = {"flakyFailure", "flakyError"}
_RERUN_TAGS = {"rerunFailure", "rerunError"}


def parse_junit(path: Path) -> JUnitReport:
    """Parse one JUnit XML file into a :class:`JUnitReport` (``ReportError`` if malformed)."""
    doc = parse_xml(path, read_bytes(path))
    return parse_junit_doc(doc)


def parse_junit_doc(doc: XmlDoc) -> JUnitReport:
    """Parse an already loaded XML document as JUnit."""
    root = doc.root
    kind = local_name(root)
    if kind not in ("testsuites", "testsuite"):
        expected = "<testsuites> or <testsuite>"
        raise doc.error(root, f"not a JUnit report: root element is <{kind}>, expected {expected}")
    raw: list[TestCase] = []
    _walk(doc, root, root.get("name", "") if kind == "testsuite" else "", raw)
    return JUnitReport(sources=(str(doc.path),), cases=_fold_reruns(raw))


def _walk(doc: XmlDoc, element: ET.Element, suite: str, out: list[TestCase]) -> None:
    for child in element:
        tag = local_name(child)
        if tag == "testsuite":
            _walk(doc, child, child.get("name", suite), out)
        elif tag == "testcase":
            out.append(_case(doc, child, suite))
        elif tag in ("testsuites",):
            _walk(doc, child, suite, out)


def _case(doc: XmlDoc, element: ET.Element, suite: str) -> TestCase:
    name = element.get("name")
    if not name:
        raise doc.error(element, "<testcase> lacks the 'name' attribute")
    outcome = TestOutcome.PASSED
    message = ""
    flaky = reruns = 0
    for child in element:
        tag = local_name(child)
        if tag in _OUTCOME_TAGS:
            found = _OUTCOME_TAGS[tag]
            if _SEVERITY[found] > _SEVERITY[outcome]:
                outcome = found
                message = _message(child)
        elif tag in _FLAKY_TAGS:
            flaky += 1
        elif tag in _RERUN_TAGS:
            reruns += 1
    if outcome is TestOutcome.PASSED and flaky:
        message = _message(next(c for c in element if local_name(c) in _FLAKY_TAGS))
    failed_before = flaky if outcome is TestOutcome.PASSED else reruns
    return TestCase(
        suite=suite,
        classname=element.get("classname", ""),
        name=name,
        outcome=outcome,
        duration=float_attr(doc, element, "time", 0.0),
        message=message,
        attempts=1 + failed_before,
        failed_attempts=failed_before,
    )


def _message(element: ET.Element) -> str:
    message = element.get("message") or ""
    if not message:
        text = (element.text or "").strip()
        if not text:
            trace = next((c for c in element if local_name(c) == "stackTrace"), None)
            text = (trace.text or "").strip() if trace is not None else ""
        message = text.splitlines()[0] if text else ""
    return message.strip().splitlines()[0] if message.strip() else ""


def _fold_reruns(raw: list[TestCase]) -> tuple[TestCase, ...]:
    """Merge repeated cases (pytest-rerunfailures writes one element per attempt) into one.

    The last element is the final outcome; every earlier one was an attempt that failed (that is
    why it was rerun), whatever it looks like in the XML.
    """
    if len({(c.suite, c.classname, c.name) for c in raw}) == len(raw):
        return tuple(raw)  # the common case: no reruns
    order: list[tuple[str, str, str]] = []
    groups: dict[tuple[str, str, str], list[TestCase]] = {}
    for case in raw:
        key = case.identity
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(case)
    folded: list[TestCase] = []
    for key in order:
        attempts = groups[key]
        if len(attempts) == 1:
            folded.append(attempts[0])
            continue
        last = attempts[-1]
        earlier_failed = len(attempts) - 1 + sum(c.failed_attempts for c in attempts)
        first_failure = next((c.message for c in attempts[:-1] if c.message), "")
        folded.append(
            TestCase(
                suite=last.suite,
                classname=last.classname,
                name=last.name,
                outcome=last.outcome,
                duration=last.duration,
                message=last.message or first_failure,
                attempts=sum(c.attempts for c in attempts),
                failed_attempts=earlier_failed,
            )
        )
    return tuple(folded)
