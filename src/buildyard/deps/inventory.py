"""Find the lockfiles under a project (respecting .gitignore) and parse them into one ``Inventory``.

A file that cannot be read or parsed becomes a ``FileProblem``; the other files are still reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from buildyard.deps.errors import LockfileError
from buildyard.deps.installed import is_installed_env, scan_installed
from buildyard.deps.model import FileProblem, Inventory, Package, normalize_name
from buildyard.deps.parsers import parser_for

#: Directories never searched for lockfiles (installed trees are scanned only when named explicitly).
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".tox",
        ".nox",
        ".buildyard",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
    }
)

_Specs = list[tuple[Path, Any]]


def discover(root: Path) -> list[Path]:
    """Every file under ``root`` that a parser claims, skipping what .gitignore files exclude."""
    found: list[Path] = []
    _walk(root, [], found)
    return found


def _walk(directory: Path, specs: _Specs, found: list[Path]) -> None:
    ignore = directory / ".gitignore"
    if ignore.is_file():
        try:
            lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        import pathspec  # noqa: PLC0415 - only projects with .gitignore files pay for it

        specs = [*specs, (directory, pathspec.GitIgnoreSpec.from_lines(lines))]
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name in SKIP_DIRS:
            continue
        path = Path(entry.path)
        is_dir = entry.is_dir(follow_symlinks=False)
        if _ignored(path, is_dir, specs):
            continue
        if is_dir:
            _walk(path, specs, found)
        elif entry.is_file() and parser_for(entry.name):
            found.append(path)


def _ignored(path: Path, is_dir: bool, specs: _Specs) -> bool:
    for base, spec in specs:
        rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(rel):
            return True
    return False


def _display(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def build_inventory(paths: Sequence[Path], base: Path | None = None) -> Inventory:
    """Parse every lockfile found at ``paths`` (files, directories or installed environments).

    Names are reported relative to ``base`` (default: the current directory).
    """
    base = base or Path.cwd()
    inventory = Inventory()
    for target in paths:
        if not target.exists():
            inventory.problems.append(FileProblem(str(target), 0, "no such file or directory"))
            continue
        if is_installed_env(target):
            name = _display(target, base)
            inventory.files.append(name)
            try:
                inventory.packages.extend(scan_installed(target, name))
            except LockfileError as exc:
                inventory.problems.append(FileProblem(exc.file, exc.line, exc.detail))
            continue
        files = discover(target) if target.is_dir() else [target]
        for file in files:
            _parse_one(file, _display(file, base), inventory, explicit=not target.is_dir())
    inventory.packages = _link_dependencies(inventory.packages)
    return inventory


def _parse_one(path: Path, name: str, inventory: Inventory, explicit: bool) -> None:
    found = parser_for(path.name)
    if found is None:
        if explicit:
            inventory.problems.append(
                FileProblem(
                    name, 0, "unknown lockfile format (see 'buildyard deps ls --help' for supported files)"
                )
            )
        return
    _, parser = found
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        inventory.problems.append(FileProblem(name, 0, f"cannot read: {reason}"))
        return
    try:
        packages = parser(text, name, path)
    except LockfileError as exc:
        inventory.problems.append(FileProblem(exc.file, exc.line, exc.detail))
        return
    inventory.files.append(name)
    inventory.packages.extend(packages)


def _link_dependencies(packages: list[Package]) -> list[Package]:
    """Fill the version of dependencies named without one, when the file has a single candidate."""
    by_file: dict[tuple[str, str], set[str]] = {}
    for pkg in packages:
        by_file.setdefault((pkg.source, pkg.normalized_name), set()).add(pkg.version)
    out = []
    for pkg in packages:
        if any(not v for _, v in pkg.dependencies):
            deps = []
            for dep, version in pkg.dependencies:
                resolved = version
                if not resolved:
                    candidates = by_file.get((pkg.source, normalize_name(pkg.ecosystem, dep)), set())
                    if len(candidates) != 1:
                        continue
                    resolved = next(iter(candidates))
                deps.append((dep, resolved))
            out.append(replace(pkg, dependencies=tuple(deps)))
        else:
            out.append(pkg)
    return out
