"""CycloneDX 1.6 JSON SBOMs (via cyclonedx-python-lib): components with purls, hashes, licenses,
the dependency graph, and optionally the vulnerabilities of a scan."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from buildyard import __version__
from buildyard.deps.licenses import LicenseStatus, licenses_of, normalize
from buildyard.deps.model import Inventory, Package, Scope, Severity

if TYPE_CHECKING:
    from buildyard.deps.scan import Finding

_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.NONE: "none",
    Severity.UNKNOWN: "unknown",
}


def build_bom(inventory: Inventory, findings: Sequence[Finding] = (), project_name: str = "project") -> Any:
    """A ``cyclonedx.model.bom.Bom`` for the inventory (and the findings as vulnerabilities)."""
    from cyclonedx.model import HashAlgorithm, HashType  # noqa: PLC0415 - heavy import, only for SBOMs
    from cyclonedx.model.bom import Bom  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentScope, ComponentType  # noqa: PLC0415
    from cyclonedx.model.contact import OrganizationalEntity  # noqa: PLC0415, F401
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression  # noqa: PLC0415
    from cyclonedx.model.tool import Tool  # noqa: PLC0415
    from packageurl import PackageURL  # noqa: PLC0415

    bom = Bom()
    bom.metadata.tools.tools.add(Tool(vendor="buildyard", name="buildyard", version=__version__))
    root = Component(name=project_name, type=ComponentType.APPLICATION, bom_ref=f"root:{project_name}")
    bom.metadata.component = root
    known = licenses_of(inventory)
    components: dict[str, Any] = {}
    by_name: dict[tuple[str, str, str], str] = {}
    unique: list[Package] = []
    for pkg in inventory.packages:
        ref = pkg.purl
        if ref in components:
            continue
        lic = normalize(known.get((pkg.ecosystem, pkg.normalized_name, pkg.version)))
        licenses: list[Any] = []
        if lic.status is LicenseStatus.SPDX and lic.expression:
            if " " in lic.expression:
                licenses.append(LicenseExpression(lic.expression))
            else:
                licenses.append(DisjunctiveLicense(id=lic.expression))
        elif lic.expression:
            licenses.append(DisjunctiveLicense(name=lic.expression))
        hashes = []
        for alg, digest in pkg.hashes:
            try:
                hashes.append(HashType(alg=HashAlgorithm(alg), content=digest))
            except ValueError:
                continue
        component = Component(
            name=pkg.name,
            version=pkg.version,
            purl=PackageURL.from_string(ref),
            bom_ref=ref,
            hashes=hashes,
            licenses=licenses,
            scope=ComponentScope.OPTIONAL if pkg.scope in (Scope.DEV, Scope.OPTIONAL) else ComponentScope.REQUIRED,
        )
        components[ref] = component
        by_name[(pkg.source, pkg.normalized_name, pkg.version)] = ref
        unique.append(pkg)
        bom.components.add(component)
    from buildyard.deps.model import normalize_name  # noqa: PLC0415

    direct = []
    for pkg in unique:
        deps = [
            components[ref]
            for name, version in pkg.dependencies
            if (ref := by_name.get((pkg.source, normalize_name(pkg.ecosystem, name), version))) is not None
        ]
        bom.register_dependency(components[pkg.purl], deps)
        if pkg.direct or pkg.direct is None:
            direct.append(components[pkg.purl])
    bom.register_dependency(root, direct)
    if findings:
        _add_vulnerabilities(bom, findings)
    return bom


def _add_vulnerabilities(bom: Any, findings: Sequence[Finding]) -> None:
    from cyclonedx.model.impact_analysis import ImpactAnalysisJustification, ImpactAnalysisState  # noqa: PLC0415, F401
    from cyclonedx.model.vulnerability import (  # noqa: PLC0415
        BomTarget,
        BomTargetVersionRange,
        Vulnerability,
        VulnerabilityAdvisory,
        VulnerabilityAnalysis,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    merged: dict[str, Any] = {}
    for finding in findings:
        vuln = merged.get(finding.id)
        if vuln is None:
            rating = VulnerabilityRating(severity=VulnerabilitySeverity(_SEVERITY[finding.severity]))
            if finding.rating.score is not None:
                method = {"CVSS_V3": VulnerabilityScoreSource.CVSS_V3_1, "CVSS_V4": VulnerabilityScoreSource.CVSS_V4,
                          "CVSS_V2": VulnerabilityScoreSource.CVSS_V2}.get(finding.rating.method)
                rating = VulnerabilityRating(
                    score=Decimal(str(finding.rating.score)), severity=rating.severity, method=method, vector=finding.rating.vector
                )
            vuln = Vulnerability(
                bom_ref=finding.id,
                id=finding.id,
                source=VulnerabilitySource(name="OSV"),
                description=finding.summary or None,
                ratings=[rating],
                references=[
                    VulnerabilityReference(id=alias, source=VulnerabilitySource(name="OSV")) for alias in finding.aliases
                ],
                advisories=[VulnerabilityAdvisory(url=_xsuri(u)) for u in finding.references[:5]],
                recommendation=f"Upgrade to {finding.fixed}" if finding.fixed else None,
            )
            if finding.ignored_by is not None:
                vuln.analysis = VulnerabilityAnalysis(
                    state=ImpactAnalysisState.NOT_AFFECTED if False else ImpactAnalysisState.IN_TRIAGE,
                    detail=f"ignored until {finding.ignored_by.expires}: {finding.ignored_by.reason}",
                )
            merged[finding.id] = vuln
            bom.vulnerabilities.add(vuln)
        vuln.affects.add(
            BomTarget(ref=finding.package.purl, versions=[BomTargetVersionRange(version=finding.package.version)])
        )


def _xsuri(url: str) -> Any:
    from cyclonedx.model import XsUri  # noqa: PLC0415

    return XsUri(url)


def bom_json(bom: Any) -> str:
    """Serialize a BOM as CycloneDX 1.6 JSON."""
    from cyclonedx.output.json import JsonV1Dot6  # noqa: PLC0415

    return str(JsonV1Dot6(bom).output_as_string(indent=2))


def validate_bom_json(text: str) -> str | None:
    """Validate CycloneDX 1.6 JSON against the schema; the first error message, or None if valid."""
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)
