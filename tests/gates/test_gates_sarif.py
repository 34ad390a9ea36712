"""SARIF 2.1.0 parsing: real ruff output and a multi-tool fixture following the OASIS spec."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gatestools import FIXTURES, run_tool, write

from buildyard.gates.errors import ReportError
from buildyard.gates.reports import SarifLevel, parse_sarif


def test_real_ruff_sarif(tmp_path: Path) -> None:
    write(tmp_path / "bad.py", "import os\n\n\ndef f(x):\n    return eval(x)\n")
    out = tmp_path / "ruff.sarif"
    proc = run_tool(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            "--select",
            "F401,S307",
            "--output-format",
            "sarif",
            "bad.py",
        ],
        tmp_path,
        ok_codes=(1,),
    )
    out.write_text(proc.stdout)
    report = parse_sarif(out)
    rules = sorted(r.rule_id for r in report.results)
    assert rules == ["F401", "S307"]
    assert {r.tool for r in report.results} == {"ruff"}
    f401 = next(r for r in report.results if r.rule_id == "F401")
    assert f401.uri.endswith("bad.py") and f401.line == 1
    assert f401.level in set(SarifLevel)


def test_levels_rules_suppressions_kinds() -> None:
    # Format: OASIS SARIF 2.1.0 (result.level, rule defaultConfiguration, ruleIndex, suppressions, kind).
    report = parse_sarif(FIXTURES / "sarif-multi-tool.sarif")
    by_uri = {r.uri: r for r in report.results}
    assert by_uri["app/db.py"].level is SarifLevel.ERROR  # from the rule's defaultConfiguration
    assert by_uri["app/db.py"].message == "This SQL query depends on a user-provided value."
    assert by_uri["app/db.py"].location == "app/db.py:42"
    assert by_uri["app/util.py"].rule_id == "py/unused-import"  # resolved through ruleIndex
    assert by_uri["app/util.py"].level is SarifLevel.NOTE
    assert by_uri["app/hash.py"].level is SarifLevel.WARNING  # no level anywhere: warning
    assert by_uri["app/calc.py"].tool == "Semgrep OSS"
    assert "app/admin.py" not in by_uri and report.suppressed == 1  # accepted suppression
    assert len(report.results) == 4  # the kind: pass result is not a finding


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"version": "2.0.0", "runs": []}', r"unsupported SARIF version '2.0.0'"),
        ('{"version": "2.1.0"}', r"no 'runs' array"),
        (
            '{"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}',
            r"runs\[0\].tool.driver.name is missing",
        ),
        (
            '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},'
            ' "results": [{"level": "fatal"}]}]}',
            r"runs\[0\].results\[0\].level 'fatal' is not one of",
        ),
        ("{", r"s.sarif:1: malformed JSON"),
    ],
)
def test_malformed_sarif(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "s.sarif"
    path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        parse_sarif(path)
