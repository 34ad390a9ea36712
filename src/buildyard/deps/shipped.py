"""What an artifact ships: its declared runtime requirements, resolved through the lockfiles.

The declaration comes from the published wheel's ``Requires-Dist`` (``METADATA``) when a wheel is
among the artifact's files, else from the project's ``pyproject.toml`` ``[project].dependencies``
and ``package.json`` ``dependencies``. The packages those names reach through the lockfile's
dependency graph are the shipped ones (scope ``prod``); every other locked package -- test tools,
linters, dev groups -- is marked ``dev`` (CycloneDX scope ``excluded``). Without any declaration the
lockfiles' own scopes stand.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from buildyard.deps.model import Ecosystem, Inventory, Package, Scope, normalize_name

#: A wheel's METADATA larger than this is not read (a real one is a few KB to a few hundred KB).
MAX_METADATA = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Declared:
    """Runtime requirements an artifact declares: ``(ecosystem, name)`` pairs and where they were read."""

    requirements: tuple[tuple[Ecosystem, str], ...]
    sources: tuple[str, ...]


def declared_requirements(project: Path, artifacts: Sequence[Path] = ()) -> Declared | None:
    """The artifact's declared runtime requirements (None: nothing declares them)."""
    wheels = {w: names for w in _wheels(artifacts) if (names := _wheel_requirements(w)) is not None}
    if wheels:
        reqs = [(Ecosystem.PYPI, name) for names in wheels.values() for name in names]
        return Declared(tuple(dict.fromkeys(reqs)), tuple(f"{w.name} Requires-Dist" for w in wheels))
    found: list[tuple[Ecosystem, str]] = []
    sources: list[str] = []
    python = _pyproject_requirements(project / "pyproject.toml")
    if python is not None:
        found.extend((Ecosystem.PYPI, name) for name in python)
        sources.append("pyproject.toml [project].dependencies")
    node = _package_json_requirements(project / "package.json")
    if node is not None:
        found.extend((Ecosystem.NPM, name) for name in node)
        sources.append("package.json dependencies")
    return Declared(tuple(dict.fromkeys(found)), tuple(sources)) if sources else None


def _wheels(artifacts: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in artifacts:
        if path.is_file() and path.suffix == ".whl":
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.whl") if p.is_file()))
    return list(dict.fromkeys(found))


def _runtime_names(specs: Sequence[str]) -> list[str]:
    """Names of the PEP 508 requirements that apply without an extra (invalid ones are skipped)."""
    names = []
    for spec in specs:
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            continue
        if req.marker is not None and "extra" in str(req.marker):
            continue  # an optional extra: not shipped by default
        names.append(req.name)
    return names


def _wheel_requirements(wheel: Path) -> list[str] | None:
    """Runtime ``Requires-Dist`` names of a wheel (None: not a readable wheel)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            meta = [
                i
                for i in zf.infolist()
                if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")
            ]
            if not meta or meta[0].file_size > MAX_METADATA:
                return None
            text = zf.read(meta[0]).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile):
        return None
    return _runtime_names(HeaderParser().parsestr(text).get_all("Requires-Dist") or [])


def _pyproject_requirements(path: Path) -> list[str] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = data.get("project")
    if not isinstance(project, dict) or "dependencies" in (project.get("dynamic") or []):
        return None
    deps = project.get("dependencies") or []
    return _runtime_names([d for d in deps if isinstance(d, str)]) if isinstance(deps, list) else None


def _package_json_requirements(path: Path) -> list[str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    deps = data.get("dependencies") or {}
    return [str(name) for name in deps] if isinstance(deps, dict) else []


def shipped_inventory(inventory: Inventory, declared: Declared | None) -> Inventory:
    """``inventory`` with the packages the declaration reaches marked ``prod`` (declared ones direct)
    and every other one ``dev``; declared names no lockfile pins are added without a version.
    Without a declaration, the lockfiles' scopes stand."""
    if declared is None:
        return inventory
    by_name: dict[tuple[Ecosystem, str], list[Package]] = {}
    for pkg in inventory.packages:
        by_name.setdefault((pkg.ecosystem, pkg.normalized_name), []).append(pkg)
    direct = {(eco, normalize_name(eco, name)) for eco, name in declared.requirements}
    reached: set[tuple[Ecosystem, str, str]] = set()
    stack = [(eco, name, "") for eco, name in sorted(direct)]
    while stack:
        eco, name, version = stack.pop()
        for pkg in by_name.get((eco, name), []):
            key = (eco, pkg.normalized_name, pkg.version)
            if (version and pkg.version != version) or key in reached:
                continue
            reached.add(key)
            stack.extend(
                (eco, normalize_name(eco, dep), dep_version) for dep, dep_version in pkg.dependencies
            )
    packages = [
        replace(p, scope=Scope.PROD, direct=(p.ecosystem, p.normalized_name) in direct)
        if (p.ecosystem, p.normalized_name, p.version) in reached
        else replace(p, scope=Scope.DEV, direct=False)
        for p in inventory.packages
    ]
    unpinned = sorted(key for key in direct if key not in by_name)
    packages.extend(
        Package(eco, name, "", declared.sources[0], direct=True, scope=Scope.PROD) for eco, name in unpinned
    )
    return Inventory(packages=packages, files=inventory.files, problems=inventory.problems)
