"""Machine-readable renderings of deps results: JSON documents and SARIF 2.1.0 logs.

Pure functions from result objects to JSON-ready dicts; the CLI writes them.
"""

from __future__ import annotations

from typing import Any

from buildyard import __version__
from buildyard.deps.model import Inventory, Package
from buildyard.deps.scan import Finding, ScanResult
from buildyard.model import Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NONE: "note",
    Severity.UNKNOWN: "warning",
}


def package_json(pkg: Package) -> dict[str, Any]:
    """One package as a JSON object."""
    return {
        "ecosystem": pkg.ecosystem.value,
        "name": pkg.name,
        "version": pkg.version,
        "purl": pkg.purl,
        "direct": pkg.direct,
        "scope": pkg.scope.value,
        "source": pkg.source,
        "line": pkg.line,
        "license": pkg.license,
        "hashes": [{"alg": a, "content": c} for a, c in pkg.hashes],
        "dependencies": [f"{n}@{v}" if v else n for n, v in pkg.dependencies],
    }


def inventory_json(inventory: Inventory) -> dict[str, Any]:
    """The inventory document of ``deps ls --json``."""
    return {
        "files": inventory.files,
        "packages": [package_json(p) for p in inventory.packages],
        "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in inventory.problems],
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    """One finding as a JSON object."""
    ignore = finding.ignored_by
    return {
        "id": finding.id,
        "aliases": list(finding.aliases),
        "package": {
            "ecosystem": finding.package.ecosystem.value,
            "name": finding.package.name,
            "version": finding.package.version,
            "purl": finding.package.purl,
            "source": finding.package.source,
            "line": finding.package.line,
        },
        "summary": finding.summary,
        "severity": finding.severity.value,
        "cvss": {
            "score": finding.rating.score,
            "vector": finding.rating.vector,
            "type": finding.rating.method,
        }
        if finding.rating.score is not None
        else None,
        "fixed_version": finding.fixed,
        "references": list(finding.references),
        "ignored": {"reason": ignore.reason, "expires": ignore.expires.isoformat()} if ignore else None,
        "below_threshold": finding.below_threshold,
    }


def scan_json(result: ScanResult) -> dict[str, Any]:
    """The document of ``deps scan --format json``."""
    return {
        "threshold": result.threshold.value,
        "files": result.inventory.files,
        "packages_scanned": len(result.inventory.packages),
        "findings": [finding_json(f) for f in result.findings],
        "failing": len(result.failing),
        "warnings": result.warnings,
        "problems": [
            {"file": p.file, "line": p.line, "message": p.message} for p in result.inventory.problems
        ],
    }


def sarif_log(result: ScanResult) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one rule per vulnerability and one result per affected package."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding in result.findings:
        if finding.id not in rules:
            rules[finding.id] = {
                "id": finding.id,
                "name": finding.id.replace("-", ""),
                "shortDescription": {"text": finding.summary or finding.id},
                "fullDescription": {"text": finding.summary or finding.id},
                "helpUri": finding.references[0]
                if finding.references
                else f"https://osv.dev/vulnerability/{finding.id}",
                "help": {"text": _help(finding)},
                "properties": {
                    "tags": ["security", "vulnerability", *finding.aliases],
                    **(
                        {"security-severity": f"{finding.rating.score:.1f}"}
                        if finding.rating.score is not None
                        else {}
                    ),
                },
            }
        pkg = finding.package
        entry: dict[str, Any] = {
            "ruleId": finding.id,
            "ruleIndex": list(rules).index(finding.id),
            "level": _SARIF_LEVEL[finding.severity],
            "message": {
                "text": f"{pkg.name} {pkg.version} is affected by {finding.id} ({finding.severity.value})"
                + (f"; upgrade to {finding.fixed}" if finding.fixed else "; no fixed version is known"),
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": pkg.source},
                        "region": {"startLine": max(pkg.line, 1)},
                    }
                }
            ],
            "partialFingerprints": {"packageVulnerability": f"{pkg.purl}|{finding.id}"},
        }
        if finding.ignored_by is not None:
            entry["suppressions"] = [
                {"kind": "external", "justification": finding.ignored_by.reason, "status": "accepted"}
            ]
        results.append(entry)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "buildyard-deps",
                        "version": __version__,
                        "informationUri": "https://osv.dev",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def _help(finding: Finding) -> str:
    lines = [finding.summary or finding.id]
    if finding.aliases:
        lines.append("Aliases: " + ", ".join(finding.aliases))
    lines.append(f"Fixed in: {finding.fixed}" if finding.fixed else "No fixed version is known.")
    return "\n".join(lines)
