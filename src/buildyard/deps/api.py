"""The deps service's public entry points: one function per command, usable by the CLI and the engine.

Each takes explicit paths and options and returns result objects; rendering is left to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from buildyard.deps.installed import with_installed_licenses
from buildyard.deps.inventory import build_inventory
from buildyard.deps.licenses import LicenseReport, Policy, check_licenses
from buildyard.deps.model import Inventory, Package, Scope
from buildyard.deps.osvdb import DumpSource, VulnerabilitySource, default_cache_dir, default_db_dir
from buildyard.deps.sbom import bom_json, build_bom
from buildyard.deps.scan import ScanResult, load_ignores, scan_inventory
from buildyard.deps.shipped import declared_requirements, shipped_inventory
from buildyard.model import Severity


def inventory(paths: Sequence[Path], base: Path | None = None) -> Inventory:
    """Parse every lockfile under ``paths`` (see :func:`buildyard.deps.inventory.build_inventory`)."""
    return build_inventory(paths, base)


def scan(
    paths: Sequence[Path],
    *,
    project: Path,
    db_dir: Path | None = None,
    cache_dir: Path | None = None,
    source: VulnerabilitySource | None = None,
    threshold: Severity = Severity.NONE,
    ignore_file: Path | None = None,
) -> ScanResult:
    """Inventory ``paths`` and match it against ``source`` (default: the OSV dumps in ``db_dir``, else
    the project database, indexed into ``cache_dir``).

    Raises ``DatabaseError``/``IgnoreFileError`` for a bad database or ignore file; unreadable
    lockfiles are returned as ``result.inventory.problems``.
    """
    ignores = load_ignores(ignore_file) if ignore_file else []
    inv = build_inventory(paths, project)
    if source is None:
        source = DumpSource(db_dir or default_db_dir(project), cache_dir or default_cache_dir(project))
    scanned = {p.ecosystem for p in inv.packages}
    loaded = source.load(scanned)
    result = scan_inventory(inv, loaded.index, threshold=threshold, ignores=ignores)
    for eco in loaded.missing:
        if eco in scanned:
            result.warnings.append(
                f"no {eco.value} database in {loaded.location} ({eco.value}/all.zip); "
                f"{eco.value} packages were not checked"
            )
    return result


def licenses(paths: Sequence[Path], policy: Policy, *, project: Path) -> LicenseReport:
    """Evaluate ``policy`` on every package found under ``paths``; installed trees next to the lockfiles
    (node_modules, .venv) supply licenses the lockfiles do not declare."""
    inv = build_inventory(paths, project)
    inv.packages = with_installed_licenses(inv.packages, project, inv.files)
    return check_licenses(inv, policy)


def sbom(
    paths: Sequence[Path], *, project: Path, name: str | None = None, result: ScanResult | None = None
) -> str:
    """CycloneDX 1.6 JSON for the packages under ``paths`` (with ``result``'s vulnerabilities if given)."""
    inv = result.inventory if result is not None else build_inventory(paths, project)
    inv.packages = with_installed_licenses(inv.packages, project, inv.files)
    return bom_json(build_bom(inv, result.findings if result else (), name or project.resolve().name))


def artifact_sbom(project: Path, name: str, artifacts: Sequence[Path] = ()) -> tuple[str, list[Package]]:
    """CycloneDX 1.6 JSON of what an artifact of ``project`` ships, and the shipped packages.

    Shipped: the requirements the artifact declares (a wheel's ``Requires-Dist`` among ``artifacts``,
    else ``pyproject.toml``/``package.json`` runtime dependencies) and what they reach in the
    lockfiles, at the locked versions; every other locked package is listed with scope ``excluded``
    (see :mod:`buildyard.deps.shipped`). Without a declaration, the lockfiles' dev scopes decide.
    """
    inv = shipped_inventory(build_inventory([project], project), declared_requirements(project, artifacts))
    inv.packages = with_installed_licenses(inv.packages, project, inv.files)
    shipped = [p for p in inv.packages if p.scope is not Scope.DEV]
    return bom_json(build_bom(inv, (), name)), shipped
