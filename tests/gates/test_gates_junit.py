"""JUnit XML parsing: real pytest (+ pytest-rerunfailures) output and faithful dialect fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from gatestools import FIXTURES, write

from buildyard.gates.errors import ReportError
from buildyard.gates.reports import TestOutcome, parse_junit


def _by_name(path: Path) -> dict[str, object]:
    return {c.name: c for c in parse_junit(path).cases}


def test_real_pytest_report_outcomes_and_rerun(junit_from_pytest: Path) -> None:
    report = parse_junit(junit_from_pytest)
    cases = {c.name: c for c in report.cases}
    assert cases["test_ok"].outcome is TestOutcome.PASSED
    assert cases["test_fails"].outcome is TestOutcome.FAILED
    assert "lists differ" in cases["test_fails"].message
    # pytest writes a fixture crash as <error>, distinct from an assertion failure.
    assert cases["test_setup_error"].outcome is TestOutcome.ERROR
    assert "setup exploded" in cases["test_setup_error"].message
    assert cases["test_skipped"].outcome is TestOutcome.SKIPPED
    assert cases["test_xfail"].outcome is TestOutcome.SKIPPED
    assert cases["test_param[1]"].classname == "test_sample.TestGroup"
    # pytest-rerunfailures writes one <testcase> per attempt; they fold into one flaky case.
    flaky = cases["test_flaky_once"]
    assert flaky.outcome is TestOutcome.PASSED
    assert flaky.flaky and flaky.attempts == 2 and flaky.failed_attempts == 1
    # A test that fails every attempt is rerun too: one failed case with 2 attempts, not flaky.
    assert cases["test_fails"].attempts == 2 and not cases["test_fails"].flaky
    totals = report.totals
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped, totals.flaky) == (
        8,
        4,
        1,
        1,
        2,
        1,
    )


def test_surefire_reruns_flaky_and_error_vs_failure() -> None:
    # Format: maven-surefire-plugin surefire-test-report-3.0.xsd (flakyFailure, rerunFailure elements).
    cases = _by_name(FIXTURES / "surefire-TEST-com.example.CalculatorTest.xml")
    assert cases["adds"].outcome is TestOutcome.PASSED
    assert cases["dividesByZero"].outcome is TestOutcome.ERROR
    assert cases["dividesByZero"].message == "/ by zero"
    subtracts = cases["subtracts"]
    assert subtracts.outcome is TestOutcome.FAILED
    assert (subtracts.attempts, subtracts.failed_attempts, subtracts.flaky) == (3, 2, False)
    assert subtracts.message == "expected: <2> but was: <3>"
    flaky = cases["multipliesConcurrently"]
    assert flaky.outcome is TestOutcome.PASSED and flaky.flaky
    assert flaky.message == "Timed out after 10 ms"
    assert cases["ignoredForNow"].outcome is TestOutcome.SKIPPED
    assert all(c.suite == "com.example.CalculatorTest" for c in cases.values())


def test_jest_junit_message_from_text() -> None:
    # Format: jest-junit README (testsuites > testsuite per describe, <failure> with text only).
    report = parse_junit(FIXTURES / "jest-junit.xml")
    cases = {c.name: c for c in report.cases}
    failing = cases["math utils divides evenly"]
    assert failing.outcome is TestOutcome.FAILED
    assert failing.message == "Error: expect(received).toBe(expected) // Object.is equality"
    assert cases["strings capitalizes"].suite == "strings"
    assert report.totals.skipped == 1 and report.totals.total == 4


def test_go_junit_report_build_error_and_subtests() -> None:
    # Format: go-junit-report v2 output (one testsuite per package, build failures as <error>).
    cases = _by_name(FIXTURES / "go-junit-report.xml")
    assert cases["[build failed]"].outcome is TestOutcome.ERROR
    assert cases["[build failed]"].suite == "example.com/broken"
    assert cases["TestDiv"].outcome is TestOutcome.FAILED
    assert cases["TestTable/negative_numbers"].outcome is TestOutcome.PASSED
    assert cases["TestNetwork"].outcome is TestOutcome.SKIPPED


def test_nested_suites_use_innermost_suite() -> None:
    # Format: PHPUnit's JUnit logger (suites nested per test suite, directory and class).
    cases = _by_name(FIXTURES / "phpunit-nested.xml")
    assert cases["testAdd"].suite == "Tests\\Unit\\MoneyTest"
    assert cases["testStore"].suite == "Integration"
    assert cases["testStore"].outcome is TestOutcome.FAILED
    assert cases["testStore"].message == "Tests\\Integration\\StoreTest::testStore"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('<testsuite name="s"><testcase name="a">', r"junit.xml:1: malformed XML: no element found"),
        ("<html><body/></html>", r"junit.xml:1: not a JUnit report: root element is <html>"),
        (
            '<testsuite name="s">\n  <testcase classname="c"/>\n</testsuite>',
            r"junit.xml:2: <testcase> lacks the 'name'",
        ),
        (
            '<testsuite name="s">\n\n<testcase name="a" time="fast"/></testsuite>',
            r"junit.xml:3: .*time='fast' is not a number",
        ),
        ("", r"junit.xml:1: malformed XML"),
    ],
)
def test_malformed_junit_names_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        parse_junit(path)


def test_entity_expansion_is_refused(tmp_path: Path) -> None:
    bomb = write(
        tmp_path / "bomb.xml",
        """
        <?xml version="1.0"?>
        <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
        <testsuite name="&lol2;"><testcase name="a"/></testsuite>
        """,
    )
    with pytest.raises(ReportError, match=r"bomb.xml: unsafe XML refused"):
        parse_junit(bomb)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"nope.xml: report file does not exist"):
        parse_junit(tmp_path / "nope.xml")
