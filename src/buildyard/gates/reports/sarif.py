"""SARIF 2.1.0 logs from any static analyser (CodeQL, Semgrep, ruff, Trivy, ...).

Per the OASIS SARIF 2.1.0 specification: a result's level is ``result.level``, else the rule's
``defaultConfiguration.level`` (rule found by ``ruleIndex`` or ``ruleId``), else ``warning``
(§3.27.10). Only results of ``kind: fail`` (the default) count; results with a non-empty
``suppressions`` array whose entries are not all ``status: rejected`` are suppressed and only counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildyard.gates.errors import ReportError
from buildyard.gates.reports._io import parse_json, read_bytes
from buildyard.gates.reports.model import SarifLevel, SarifReport, SarifResult

_LEVELS = {level.value: level for level in SarifLevel}


def parse_sarif(path: Path) -> SarifReport:
    """Parse one SARIF 2.1.0 log (``ReportError`` when malformed or another version)."""
    data = parse_json(path, read_bytes(path))
    if not isinstance(data, dict):
        raise ReportError(str(path), "not a SARIF log: top level is not an object")
    version = data.get("version")
    if version != "2.1.0":
        raise ReportError(str(path), f"unsupported SARIF version {version!r} (expected '2.1.0')")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise ReportError(str(path), "not a SARIF log: no 'runs' array")
    results: list[SarifResult] = []
    suppressed = 0
    for r, run in enumerate(runs):
        if not isinstance(run, dict):
            raise ReportError(str(path), f"runs[{r}] is not an object")
        driver = _obj(run.get("tool"), "driver")
        tool = driver.get("name") if isinstance(driver.get("name"), str) else ""
        if not tool:
            raise ReportError(str(path), f"runs[{r}].tool.driver.name is missing")
        raw_rules = driver.get("rules")
        rules: list[Any] = raw_rules if isinstance(raw_rules, list) else []
        rule_levels = _rule_levels(rules)
        raw_results = run.get("results", [])
        if not isinstance(raw_results, list):
            raise ReportError(str(path), f"runs[{r}].results is not an array")
        for i, result in enumerate(raw_results):
            where = f"runs[{r}].results[{i}]"
            if not isinstance(result, dict):
                raise ReportError(str(path), f"{where} is not an object")
            if result.get("kind", "fail") != "fail":
                continue
            if _is_suppressed(result):
                suppressed += 1
                continue
            found = _result(path, where, tool=tool, result=result, rules=rules, rule_levels=rule_levels)
            results.append(found)
    return SarifReport(sources=(str(path),), results=tuple(results), suppressed=suppressed)


def _obj(value: Any, key: str) -> Mapping[str, Any]:
    inner = value.get(key) if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


def _rule_levels(rules: list[Any]) -> dict[str, str]:
    levels: dict[str, str] = {}
    for rule in rules:
        if isinstance(rule, dict) and isinstance(rule.get("id"), str):
            level = _obj(rule, "defaultConfiguration").get("level")
            if isinstance(level, str):
                levels[rule["id"]] = level
    return levels


def _is_suppressed(result: Mapping[str, Any]) -> bool:
    suppressions = result.get("suppressions")
    if not isinstance(suppressions, list) or not suppressions:
        return False
    return any(isinstance(s, dict) and s.get("status", "accepted") != "rejected" for s in suppressions)


def _result(
    path: Path,
    where: str,
    *,
    tool: str,
    result: Mapping[str, Any],
    rules: list[Any],
    rule_levels: Mapping[str, str],
) -> SarifResult:
    rule_id = result.get("ruleId")
    index = result.get("ruleIndex")
    if not isinstance(rule_id, str) and isinstance(index, int) and 0 <= index < len(rules):
        rule = rules[index]
        rule_id = rule.get("id") if isinstance(rule, dict) else None
    rule_id = rule_id if isinstance(rule_id, str) else ""
    raw_level = result.get("level", rule_levels.get(rule_id, "warning"))
    if not isinstance(raw_level, str) or raw_level not in _LEVELS:
        raise ReportError(str(path), f"{where}.level {raw_level!r} is not one of none, note, warning, error")
    message = _obj(result, "message").get("text")
    if not isinstance(message, str):
        message = ""
    uri = ""
    line: int | None = None
    locations = result.get("locations")
    if isinstance(locations, list) and locations:
        physical = _obj(locations[0], "physicalLocation")
        uri_value = _obj(physical, "artifactLocation").get("uri")
        uri = uri_value if isinstance(uri_value, str) else ""
        start = _obj(physical, "region").get("startLine")
        line = start if isinstance(start, int) else None
    return SarifResult(
        tool=tool,
        rule_id=rule_id,
        level=_LEVELS[raw_level],
        message=message.strip().splitlines()[0] if message.strip() else "",
        uri=uri,
        line=line,
    )
