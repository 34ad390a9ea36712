"""Minimal findings of a dependency scan, as the vulnerabilities and licenses gates consume them.

The deps service produces richer objects; anything with the attributes of
:class:`~buildyard.gates.checks.VulnerabilityFinding` / :class:`~buildyard.gates.checks.LicenseFinding`
works. For ``buildyard gates check --findings FILE`` the same data is read from JSON::

    {"vulnerabilities": [{"id": "GHSA-xxxx", "package": "requests", "severity": "high"}],
     "licenses": [{"package": "left-pad", "license": "WTFPL", "verdict": "review"}]}

A missing key means "that scan did not run" (the gate then cannot pass); an empty list means
"scanned, nothing found".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildyard.gates.errors import ReportError
from buildyard.gates.reports._io import parse_json, read_bytes

LICENSE_VERDICTS = ("allowed", "denied", "review", "unknown")


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """One known vulnerability affecting a dependency."""

    id: str
    package: str
    severity: str


@dataclass(frozen=True, slots=True)
class LicenseVerdict:
    """One dependency's license and the policy's verdict on it."""

    package: str
    license: str
    verdict: str


@dataclass(frozen=True, slots=True)
class Findings:
    """Findings read from a file; None where that scan did not run."""

    vulnerabilities: tuple[Vulnerability, ...] | None
    licenses: tuple[LicenseVerdict, ...] | None


def load_findings(path: Path) -> Findings:
    """Read the findings JSON documented above (``ReportError`` when malformed)."""
    data = parse_json(path, read_bytes(path))
    if not isinstance(data, dict):
        raise ReportError(
            str(path), "findings must be a JSON object with 'vulnerabilities' and/or 'licenses'"
        )
    vulns = None
    if "vulnerabilities" in data:
        vulns = tuple(
            Vulnerability(**_fields(path, f"vulnerabilities[{i}]", item, ("id", "package", "severity")))
            for i, item in enumerate(_items(path, data, "vulnerabilities"))
        )
    licenses = None
    if "licenses" in data:
        licenses = tuple(
            LicenseVerdict(**_fields(path, f"licenses[{i}]", item, ("package", "license", "verdict")))
            for i, item in enumerate(_items(path, data, "licenses"))
        )
        for i, verdict in enumerate(licenses):
            if verdict.verdict.lower() not in LICENSE_VERDICTS:
                message = (
                    f"licenses[{i}].verdict {verdict.verdict!r} is not one of {', '.join(LICENSE_VERDICTS)}"
                )
                raise ReportError(str(path), message)
    return Findings(vulnerabilities=vulns, licenses=licenses)


def _items(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise ReportError(str(path), f"'{key}' must be a list")
    return value


def _fields(path: Path, where: str, item: Any, keys: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(item, dict):
        raise ReportError(str(path), f"{where} is not an object")
    out: dict[str, str] = {}
    for key in keys:
        value = item.get(key, "")
        if not isinstance(value, str):
            raise ReportError(str(path), f"{where}.{key} must be a string")
        out[key] = value
    if not out[keys[0]]:
        raise ReportError(str(path), f"{where}.{keys[0]} is missing")
    return out
