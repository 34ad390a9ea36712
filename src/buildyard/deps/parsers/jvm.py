"""Parsers for the JVM: Maven ``pom.xml`` (declared dependencies, properties resolved), gradle.lockfile."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope
from buildyard.deps.parsers._util import LineIndex

_MAVEN = Ecosystem.MAVEN
_PROP = re.compile(r"\$\{([^}]+)\}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _text(elem: ET.Element, name: str) -> str:
    child = _child(elem, name)
    return (child.text or "").strip() if child is not None else ""


def _parse_xml(text: str, file: str) -> ET.Element:
    try:
        root = ET.fromstring(text)  # noqa: S314 - see import comment
    except ET.ParseError as exc:
        raise LockfileError(file, f"invalid XML: {exc}", exc.position[0]) from exc
    if _local(root.tag) != "project":
        raise LockfileError(file, "the root element is not <project> (is this a Maven POM?)", 1)
    return root


def _local_parents(root: ET.Element, path: Path, limit: int = 8) -> list[ET.Element]:
    """Parent POMs found on disk through ``<relativePath>`` (default ``../pom.xml``), nearest first.

    A file is taken as the parent only if its groupId:artifactId is the one ``<parent>`` names.
    """
    chain: list[ET.Element] = []
    current, current_path = root, path
    while len(chain) < limit:
        parent = _child(current, "parent")
        if parent is None:
            break
        rel = _text(parent, "relativePath") or "../pom.xml"
        candidate = (current_path.parent / rel).resolve()
        if candidate.is_dir():
            candidate = candidate / "pom.xml"
        try:
            elem = ET.fromstring(candidate.read_text(encoding="utf-8"))  # noqa: S314 - see import comment
        except (OSError, ET.ParseError):
            break
        grandparent = _child(elem, "parent")
        group = _text(elem, "groupId") or (_text(grandparent, "groupId") if grandparent is not None else "")
        if (group, _text(elem, "artifactId")) != (_text(parent, "groupId"), _text(parent, "artifactId")):
            break
        chain.append(elem)
        current, current_path = elem, candidate
    return chain


def parse_pom(text: str, file: str, path: Path) -> list[Package]:
    """Dependencies declared in a ``pom.xml``, with ``${...}`` properties and dependencyManagement resolved.

    Properties and managed versions are inherited from parent POMs found on disk; remote parents and
    imported BOMs are not fetched, so a version that stays unresolved is an error naming the property.
    """
    root = _parse_xml(text, file)
    lineage = [*reversed(_local_parents(root, path)), root]  # farthest ancestor first: children override
    props: dict[str, str] = {}
    for pom in lineage:
        props_elem = _child(pom, "properties")
        if props_elem is not None:
            props.update({_local(p.tag): (p.text or "").strip() for p in props_elem})
    parent = _child(root, "parent")
    for key in ("groupId", "artifactId", "version"):
        value = _text(root, key) or (_text(parent, key) if parent is not None else "")
        props[f"project.{key}"] = value
        props[f"pom.{key}"] = value
        if parent is not None:
            props[f"project.parent.{key}"] = _text(parent, key)

    def resolve(value: str, depth: int = 0) -> str:
        if depth > 10 or "${" not in value:
            return value
        return resolve(_PROP.sub(lambda m: props.get(m.group(1), m.group(0)), value), depth + 1)

    managed: dict[str, str] = {}
    deps_mgmt = None
    for pom in lineage:
        mgmt = _child(pom, "dependencyManagement")
        deps_mgmt = _child(mgmt, "dependencies") if mgmt is not None else None
        for dep in deps_mgmt if deps_mgmt is not None else []:
            key = f"{resolve(_text(dep, 'groupId'))}:{resolve(_text(dep, 'artifactId'))}"
            managed[key] = resolve(_text(dep, "version"))
    lines = LineIndex(text)
    if deps_mgmt is not None:
        lines.find("</dependencyManagement>")
    packages = []
    deps = _child(root, "dependencies")
    for dep in deps if deps is not None else []:
        if _local(dep.tag) != "dependency":
            continue
        artifact = resolve(_text(dep, "artifactId"))
        name = f"{resolve(_text(dep, 'groupId'))}:{artifact}"
        line = lines.find(f"<artifactId>{_text(dep, 'artifactId')}</artifactId>")
        version = resolve(_text(dep, "version")) or managed.get(name, "")
        if "${" in version:
            prop = _PROP.search(version)
            raise LockfileError(
                file,
                f"{name}: property ${{{prop.group(1) if prop else version}}} is not defined in this POM "
                "or a parent POM on disk (define it, or add the parent's <relativePath>)",
                line,
            )
        if not version:
            continue  # managed by a parent POM or BOM outside this file
        scope_name = _text(dep, "scope") or "compile"
        scope = Scope.DEV if scope_name == "test" else Scope.PROD
        if _text(dep, "optional") == "true":
            scope = Scope.OPTIONAL
        packages.append(Package(_MAVEN, name, version, file, line, direct=True, scope=scope))
    return packages


def parse_gradle_lockfile(text: str, file: str, path: Path) -> list[Package]:
    """Entries of a ``gradle.lockfile`` (``group:artifact:version=configurations``)."""
    packages = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "empty=")):
            continue
        coords, _, configs = line.partition("=")
        parts = coords.split(":")
        if len(parts) != 3:
            raise LockfileError(
                file, f"malformed entry {line!r} (expected group:artifact:version=configs)", number
            )
        configurations = [c for c in configs.split(",") if c]
        dev = bool(configurations) and all(c.lower().startswith("test") for c in configurations)
        packages.append(
            Package(
                _MAVEN,
                f"{parts[0]}:{parts[1]}",
                parts[2],
                file,
                number,
                scope=Scope.DEV if dev else Scope.PROD,
            )
        )
    return packages
