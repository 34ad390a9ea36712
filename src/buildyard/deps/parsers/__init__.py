"""Lockfile parsers, one module per ecosystem, and the registry that picks one by file name.

A parser is ``(text, file, path) -> list[Package]``: ``text`` is the file's content, ``file`` the name
to report (relative to the scanned root), ``path`` the real path (for includes and the sibling
manifest that says which dependencies are direct).
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from pathlib import Path

from buildyard.deps.model import Package

Parser = Callable[[str, str, Path], list[Package]]

#: (file-name glob, format name, "module.function" under this package), first match wins. Modules are
#: imported on first use so a command pays only for the formats it meets.
PARSERS: tuple[tuple[str, str, str], ...] = (
    ("poetry.lock", "poetry.lock", "python.parse_poetry_lock"),
    ("uv.lock", "uv.lock", "python.parse_uv_lock"),
    ("Pipfile.lock", "Pipfile.lock", "python.parse_pipfile_lock"),
    ("pylock.toml", "pylock.toml", "python.parse_pylock"),
    ("pylock.*.toml", "pylock.toml", "python.parse_pylock"),
    ("requirements*.txt", "requirements.txt", "python.parse_requirements"),
    ("constraints*.txt", "requirements.txt", "python.parse_requirements"),
    # pip-compile/rye-style pinned requirement files named *.lock (requirements.lock, requirements-dev.lock)
    ("requirements*.lock", "requirements.txt", "python.parse_requirements"),
    ("package-lock.json", "package-lock.json", "npm.parse_package_lock"),
    ("npm-shrinkwrap.json", "package-lock.json", "npm.parse_package_lock"),
    ("yarn.lock", "yarn.lock", "npm.parse_yarn_lock"),
    ("pnpm-lock.yaml", "pnpm-lock.yaml", "npm.parse_pnpm_lock"),
    ("go.mod", "go.mod", "golang.parse_go_mod"),
    ("Cargo.lock", "Cargo.lock", "rust.parse_cargo_lock"),
    ("pom.xml", "pom.xml", "jvm.parse_pom"),
    ("gradle.lockfile", "gradle.lockfile", "jvm.parse_gradle_lockfile"),
    ("Gemfile.lock", "Gemfile.lock", "others.parse_gemfile_lock"),
    ("gems.locked", "Gemfile.lock", "others.parse_gemfile_lock"),
    ("packages.lock.json", "packages.lock.json", "others.parse_nuget_lock"),
    ("composer.lock", "composer.lock", "others.parse_composer_lock"),
)


def parser_for(filename: str) -> tuple[str, Parser] | None:
    """The ``(format, parser)`` for a file name, or None if no parser claims it."""
    for pattern, fmt, target in PARSERS:
        if fnmatch.fnmatchcase(filename, pattern):
            module, function = target.rsplit(".", 1)
            parser: Parser = getattr(importlib.import_module(f"{__name__}.{module}"), function)
            return fmt, parser
    return None
