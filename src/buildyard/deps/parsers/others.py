"""Parsers for RubyGems (``Gemfile.lock``), NuGet (``packages.lock.json``), Composer (``composer.lock``)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope
from buildyard.deps.parsers._util import LineIndex, expect_dict, load_json

_SPEC = re.compile(r"^    (\S+) \(([^)]+)\)$")
_SPEC_DEP = re.compile(r"^      (\S+)(?: \(.*\))?$")
_DIRECT = re.compile(r"^  (\S+?)!?(?: \(.*\))?$")


def parse_gemfile_lock(text: str, file: str, path: Path) -> list[Package]:
    """Gems of a ``Gemfile.lock``: GEM/GIT/PATH specs, DEPENDENCIES for direct ones, platforms stripped."""
    section = ""
    specs: list[tuple[str, str, int, list[str]]] = []
    direct: set[str] = set()
    in_specs = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.strip()
            in_specs = False
            continue
        if section in ("GEM", "GIT", "PATH", "PLUGIN SOURCE"):
            if line.strip() == "specs:":
                in_specs = True
                continue
            if not in_specs:
                continue
            spec = _SPEC.match(line)
            if spec:
                version = spec.group(2).split("-")[0]
                specs.append((spec.group(1), version, number, []))
                continue
            dep = _SPEC_DEP.match(line)
            if dep and specs:
                specs[-1][3].append(dep.group(1))
                continue
            raise LockfileError(file, f"cannot parse spec line {line.strip()!r}", number)
        if section == "DEPENDENCIES":
            match = _DIRECT.match(line)
            if match:
                direct.add(match.group(1))
    if not specs and "GEM" not in text:
        raise LockfileError(file, "no GEM section found (is this a Gemfile.lock?)", 1)
    versions = {name: version for name, version, _, _ in specs}
    return [
        Package(
            Ecosystem.RUBYGEMS,
            name,
            version,
            file,
            number,
            direct=name in direct,
            scope=Scope.UNKNOWN,
            dependencies=tuple((d, versions.get(d, "")) for d in deps),
        )
        for name, version, number, deps in specs
    ]


def parse_nuget_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a NuGet ``packages.lock.json`` (all target frameworks, deduplicated)."""
    data = expect_dict(load_json(text, file), file, "the document")
    lines = LineIndex(text)
    seen: dict[tuple[str, str], Package] = {}
    for framework in expect_dict(data.get("dependencies", {}), file, "dependencies").values():
        for name, entry in expect_dict(framework, file, "a target framework").items():
            if not isinstance(entry, dict):
                raise LockfileError(file, f"{name}: entry is not an object (regenerate the lockfile)")
            kind = entry.get("type", "")
            version = str(entry.get("resolved", ""))
            line = lines.find(f'"{name}": {{')
            if kind == "Project" or not version or (name.lower(), version) in seen:
                continue
            hashes: tuple[tuple[str, str], ...] = ()
            if entry.get("contentHash"):
                try:
                    hashes = (("SHA-512", base64.b64decode(entry["contentHash"]).hex()),)
                except (binascii.Error, ValueError):
                    hashes = ()
            seen[(name.lower(), version)] = Package(
                Ecosystem.NUGET,
                name,
                version,
                file,
                line,
                direct=kind == "Direct",
                scope=Scope.PROD,
                hashes=hashes,
                dependencies=tuple((d, "") for d in entry.get("dependencies") or {}),
            )
    return list(seen.values())


def _composer_version(version: str) -> str:
    return version[1:] if len(version) > 1 and version[0] in "vV" and version[1].isdigit() else version


def parse_composer_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``composer.lock`` (packages: prod, packages-dev: dev); direct from composer.json."""
    data = expect_dict(load_json(text, file), file, "the document")
    lines = LineIndex(text)
    direct = _composer_direct(path.parent / "composer.json")
    packages = []
    for section, scope in (("packages", Scope.PROD), ("packages-dev", Scope.DEV)):
        for entry in data.get(section) or []:
            if not isinstance(entry, dict) or "name" not in entry or "version" not in entry:
                raise LockfileError(
                    file, f"an entry of {section} lacks name or version (run composer update --lock)"
                )
            name = entry["name"]
            licenses = entry.get("license") or []
            shasum = (entry.get("dist") or {}).get("shasum") or ""
            packages.append(
                Package(
                    Ecosystem.PACKAGIST,
                    name,
                    _composer_version(str(entry["version"])),
                    file,
                    lines.find(f'"name": "{name}"'),
                    direct=name.lower() in direct if direct is not None else None,
                    scope=scope,
                    hashes=(("SHA-1", shasum),) if shasum else (),
                    license=" OR ".join(licenses) if isinstance(licenses, list) and licenses else None,
                    dependencies=tuple((d, "") for d in entry.get("require") or {} if "/" in d),
                )
            )
    return packages


def _composer_direct(manifest: Path) -> set[str] | None:
    try:
        data: Any = load_json(manifest.read_text(encoding="utf-8"), str(manifest))
    except (OSError, LockfileError):
        return None
    if not isinstance(data, dict):
        return None
    return {n.lower() for key in ("require", "require-dev") for n in (data.get(key) or {})}
