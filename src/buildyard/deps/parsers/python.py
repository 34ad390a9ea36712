"""Parsers for the Python ecosystem: requirements files, poetry.lock, uv.lock, Pipfile.lock, pylock.toml.

Each takes the file's text and returns ``Package`` values; the requirements parser also follows
``-r``/``-c`` includes, which are part of its input.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope, normalize_name
from buildyard.deps.parsers._util import LineIndex, expect_dict, load_json, load_toml, split_hash

_PY = Ecosystem.PYPI
_INCLUDE = re.compile(r"^(-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")
_HASH = re.compile(r"--hash[=\s]+(\S+)")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_VIA = re.compile(r"^#\s+via\b\s*(.*)$")
_VIA_CONT = re.compile(r"^#\s{2,}(\S.*)$")


def parse_requirements(
    text: str, file: str, path: Path, _seen: frozenset[Path] = frozenset()
) -> list[Package]:
    """Pinned requirements of a pip requirements/constraints file (``==``/``===`` only).

    Hashes, markers and ``-r``/``-c`` includes are followed; unpinned lines carry no version and are
    skipped. ``# via`` annotations (pip-compile, uv export) decide direct vs transitive.
    """
    seen = _seen | {path.resolve()}
    lines = text.splitlines()
    packages: list[Package] = []
    via: dict[int, list[str]] = {}
    index = 0
    current: int | None = None
    while index < len(lines):
        start = index
        raw = lines[index]
        stripped = raw.strip()
        via_match = _VIA.match(stripped)
        if via_match and current is not None:
            via.setdefault(current, []).extend(_via_names(via_match.group(1)))
            index += 1
            continue
        cont = _VIA_CONT.match(stripped)
        if cont and current is not None and current in via:
            via[current].extend(_via_names(cont.group(1)))
            index += 1
            continue
        logical = _COMMENT.sub("", raw)
        while logical.rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
            logical = logical.rstrip()[:-1] + " " + _COMMENT.sub("", lines[index])
        index += 1
        logical = logical.strip()
        if not logical:
            continue
        include = _INCLUDE.match(logical)
        if include:
            target = (path.parent / include.group(2)).resolve()
            if target in seen:
                continue
            try:
                inc_text = target.read_text(encoding="utf-8")
            except OSError as exc:
                raise LockfileError(
                    file, f"cannot read included file {include.group(2)}: {exc.strerror}", start + 1
                ) from exc
            inc_file = str(Path(file).parent / include.group(2))
            packages.extend(parse_requirements(inc_text, inc_file, target, seen))
            continue
        if logical.startswith("-"):
            continue  # options: --index-url, -e, --find-links ...
        hashes = tuple(h for h in (split_hash(v) for v in _HASH.findall(logical)) if h)
        spec = _HASH.sub("", logical).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise LockfileError(file, f"invalid requirement {spec!r}: {exc}", start + 1) from exc
        if req.url:
            continue
        pins = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(pins) != 1:
            continue
        current = len(packages)
        packages.append(Package(_PY, req.name, pins[0].version, file, start + 1, hashes=hashes))
    if not via:
        return packages
    names = {p.normalized_name for p in packages}
    result = []
    for i, pkg in enumerate(packages):
        parents = via.get(i, [])
        direct = any(p.startswith("-") or normalize_name(_PY, p) not in names for p in parents)
        result.append(replace(pkg, direct=direct))
    return result


def _via_names(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("-"):
        return [text]
    return [t.strip() for t in text.split(",") if t.strip()]


def _toml_line(lines: LineIndex, name: str) -> int:
    return lines.find(f'name = "{name}"')


def parse_poetry_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``poetry.lock`` (1.x ``category`` and 2.x ``groups``), direct ones from pyproject."""
    data = load_toml(text, file)
    lines = LineIndex(text)
    direct_names = _poetry_direct(path.parent / "pyproject.toml")
    legacy_files = expect_dict(data.get("metadata", {}), file, "[metadata]").get("files", {})
    packages = []
    for entry in data.get("package", []):
        name, version = _name_version(entry, file)
        groups = entry.get("groups") or [entry.get("category", "main")]
        scope = Scope.PROD if "main" in groups else Scope.DEV
        if entry.get("optional") and scope is Scope.PROD:
            scope = Scope.OPTIONAL
        files = entry.get("files") or legacy_files.get(name, [])
        hashes = tuple(h for h in (split_hash(f.get("hash", "")) for f in files) if h)
        deps = tuple((d, "") for d in entry.get("dependencies", {}))
        norm = normalize_name(_PY, name)
        packages.append(
            Package(
                _PY,
                name,
                version,
                file,
                _toml_line(lines, name),
                direct=(norm in direct_names) if direct_names is not None else None,
                scope=scope,
                hashes=hashes,
                dependencies=deps,
            )
        )
    return packages


def _poetry_direct(pyproject: Path) -> set[str] | None:
    try:
        data = load_toml(pyproject.read_text(encoding="utf-8"), str(pyproject))
    except (OSError, LockfileError):
        return None
    names: set[str] = set()
    poetry = data.get("tool", {}).get("poetry", {})
    for key in ("dependencies", "dev-dependencies"):
        names.update(poetry.get(key, {}))
    for group in poetry.get("group", {}).values():
        names.update(group.get("dependencies", {}))
    for spec in data.get("project", {}).get("dependencies", []):
        try:
            names.add(Requirement(spec).name)
        except InvalidRequirement:
            continue
    names.discard("python")
    return {normalize_name(_PY, n) for n in names}


def _name_version(entry: Any, file: str) -> tuple[str, str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise LockfileError(file, "a package entry has no name (regenerate the lockfile)")
    version = entry.get("version", "")
    return entry["name"], str(version)


def parse_uv_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``uv.lock``; the workspace members (virtual/editable sources) give direct deps."""
    data = load_toml(text, file)
    entries = data.get("package", [])
    lines = LineIndex(text)
    members = {normalize_name(_PY, m) for m in data.get("manifest", {}).get("members", [])}
    roots = [
        e
        for e in entries
        if _is_local(e)
        and (
            normalize_name(_PY, e["name"]) in members
            or _source(e).get("virtual", _source(e).get("editable")) == "."
        )
    ]
    direct: set[str] = set()
    dev: set[str] = set()
    for root in roots:
        direct.update(normalize_name(_PY, d["name"]) for d in root.get("dependencies", []))
        for extra in root.get("optional-dependencies", {}).values():
            direct.update(normalize_name(_PY, d["name"]) for d in extra)
        for group in root.get("dev-dependencies", {}).values():
            names = {normalize_name(_PY, d["name"]) for d in group}
            direct.update(names)
            dev.update(names)
    prod = _reachable(entries, {n for n in direct if n not in dev} | _prod_of(roots))
    packages = []
    for entry in entries:
        name, version = _name_version(entry, file)
        line = _toml_line(lines, name)
        if _is_local(entry):
            continue
        norm = normalize_name(_PY, name)
        hashes = []
        for art in [entry.get("sdist", {}), *entry.get("wheels", [])]:
            h = split_hash(art.get("hash", "")) if isinstance(art, dict) else None
            if h:
                hashes.append(h)
        packages.append(
            Package(
                _PY,
                name,
                version,
                file,
                line,
                direct=norm in direct if roots else None,
                scope=(Scope.PROD if norm in prod else Scope.DEV) if roots else Scope.UNKNOWN,
                hashes=tuple(hashes),
                dependencies=tuple((d["name"], d.get("version", "")) for d in entry.get("dependencies", [])),
            )
        )
    return packages


def _source(entry: Any) -> dict[str, Any]:
    source = entry.get("source", {}) if isinstance(entry, dict) else {}
    return source if isinstance(source, dict) else {}


def _is_local(entry: Any) -> bool:
    """Workspace members and path dependencies: built from this checkout, not from an index."""
    return bool({"virtual", "editable", "directory", "path"} & _source(entry).keys())


def _prod_of(roots: list[dict[str, Any]]) -> set[str]:
    return {normalize_name(_PY, d["name"]) for r in roots for d in r.get("dependencies", [])}


def _reachable(entries: list[dict[str, Any]], start: set[str]) -> set[str]:
    graph = {
        normalize_name(_PY, e["name"]): [normalize_name(_PY, d["name"]) for d in e.get("dependencies", [])]
        for e in entries
        if isinstance(e, dict) and "name" in e
    }
    seen = set(start)
    stack = list(start)
    while stack:
        for dep in graph.get(stack.pop(), []):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def parse_pipfile_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``Pipfile.lock`` (``default`` is prod, ``develop`` is dev); direct ones from Pipfile."""
    data = expect_dict(load_json(text, file), file, "the document")
    lines = LineIndex(text)
    direct = _pipfile_direct(path.parent / "Pipfile")
    packages = []
    for section, scope in (("default", Scope.PROD), ("develop", Scope.DEV)):
        for name, entry in expect_dict(data.get(section, {}), file, section).items():
            version = str(entry.get("version", "")) if isinstance(entry, dict) else ""
            if not version.startswith("=="):
                continue
            hashes = tuple(h for h in (split_hash(v) for v in entry.get("hashes", [])) if h)
            packages.append(
                Package(
                    _PY,
                    name,
                    version[2:],
                    file,
                    lines.find(f'"{name}": {{'),
                    direct=normalize_name(_PY, name) in direct if direct is not None else None,
                    scope=scope,
                    hashes=hashes,
                )
            )
    return packages


def _pipfile_direct(pipfile: Path) -> set[str] | None:
    try:
        data = load_toml(pipfile.read_text(encoding="utf-8"), str(pipfile))
    except (OSError, LockfileError):
        return None
    names = set(data.get("packages", {})) | set(data.get("dev-packages", {}))
    return {normalize_name(_PY, n) for n in names}


def parse_pylock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a PEP 751 ``pylock.toml`` (``lock-version`` 1.x), validated by ``packaging.pylock``."""
    from packaging.pylock import (  # noqa: PLC0415 - lazy: only projects with a pylock.toml pay its import
        Pylock,
        PylockUnsupportedVersionError,
        PylockValidationError,
    )

    data = load_toml(text, file)
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError:
        lock_version = data.get("lock-version", "")
        raise LockfileError(
            file, f"unsupported lock-version {lock_version!r} (expected 1.x per PEP 751)"
        ) from None
    except PylockValidationError as exc:
        raise LockfileError(
            file, f"not a valid PEP 751 lock file: {exc} (regenerate it)", _pylock_line(text, exc.context)
        ) from None
    lines = LineIndex(text)
    packages = []
    for entry in lock.packages:
        if entry.version is None:
            continue  # a direct URL / VCS entry without a version cannot be matched
        hashes: list[tuple[str, str] | None] = []
        for art in [entry.sdist, *(entry.wheels or ()), entry.archive]:
            if art is not None:
                hashes.extend(_alg_name(k, v) for k, v in art.hashes.items())
        packages.append(
            Package(
                _PY,
                entry.name,
                str(entry.version),
                file,
                _toml_line(lines, entry.name),
                hashes=tuple(h for h in hashes if h),
            )
        )
    return packages


def _pylock_line(text: str, context: str | None) -> int:
    """The line of the ``[[packages]]`` table an error's context (``packages[3].name``) points into."""
    found = re.match(r"packages\[(\d+)\]", context or "")
    if not found:
        return 0
    headers = [i for i, line in enumerate(text.splitlines(), 1) if line.strip() == "[[packages]]"]
    index = int(found.group(1))
    return headers[index] if index < len(headers) else 0


def _alg_name(alg: str, digest: str) -> tuple[str, str] | None:
    return split_hash(f"{alg}:{digest}")
