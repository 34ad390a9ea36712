"""Parser for Rust: ``Cargo.lock`` (v1-v4); local workspace members give the direct dependencies."""

from __future__ import annotations

from pathlib import Path

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope
from buildyard.deps.parsers._util import LineIndex, load_toml

_CARGO = Ecosystem.CARGO


def _dep_ref(spec: str) -> tuple[str, str]:
    parts = spec.split()
    return parts[0], parts[1] if len(parts) > 1 else ""


def parse_cargo_lock(text: str, file: str, path: Path) -> list[Package]:
    """Registry and git crates of a ``Cargo.lock``; crates without ``source`` are the workspace."""
    data = load_toml(text, file)
    entries = data.get("package", [])
    if not isinstance(entries, list):
        raise LockfileError(file, "[[package]] must be an array of tables (regenerate with cargo)")
    lines = LineIndex(text)
    direct = {
        _dep_ref(d)[0]
        for e in entries
        if isinstance(e, dict) and "source" not in e
        for d in e.get("dependencies", [])
    }
    has_members = any(isinstance(e, dict) and "source" not in e for e in entries)
    packages = []
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "version" not in entry:
            raise LockfileError(file, "a [[package]] entry lacks name or version (regenerate with cargo)")
        line = lines.find(f'name = "{entry["name"]}"')
        if "source" not in entry:
            continue
        checksum = entry.get("checksum") or data.get("metadata", {}).get(
            f"checksum {entry['name']} {entry['version']} ({entry['source']})"
        )
        packages.append(
            Package(
                _CARGO,
                entry["name"],
                str(entry["version"]),
                file,
                line,
                direct=entry["name"] in direct if has_members else None,
                scope=Scope.UNKNOWN,
                hashes=(("SHA-256", checksum),) if checksum else (),
                dependencies=tuple(_dep_ref(d) for d in entry.get("dependencies", [])),
            )
        )
    return packages
