"""Inventory of installed environments: Python ``site-packages`` (``*.dist-info``) and ``node_modules``.

Installed metadata is the best license source: PEP 639 ``License-Expression``, then classifiers, then
the free-text ``License`` field; for npm the ``license`` of each ``package.json``.
"""

from __future__ import annotations

import json
import os
import sysconfig
from dataclasses import replace
from email.parser import HeaderParser
from pathlib import Path

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope
from buildyard.deps.parsers.npm import license_field


def is_installed_env(path: Path) -> bool:
    """True for a directory that holds installed packages rather than lockfiles."""
    return path.is_dir() and (path.name in ("site-packages", "dist-packages", "node_modules"))


def scan_installed(path: Path, file: str) -> list[Package]:
    """Packages installed in ``path`` (a site-packages or node_modules directory)."""
    if path.name == "node_modules":
        return _node_modules(path, file)
    return _site_packages(path, file)


def _site_packages(path: Path, file: str) -> list[Package]:
    packages = []
    for info in sorted(path.glob("*.dist-info")):
        meta_path = info / "METADATA"
        try:
            raw = meta_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise LockfileError(f"{file}/{info.name}/METADATA", f"cannot read: {exc.strerror}") from exc
        meta = HeaderParser().parsestr(raw)
        name, version = meta.get("Name"), meta.get("Version")
        if not name or not version:
            raise LockfileError(f"{file}/{info.name}/METADATA", "missing Name or Version header")
        packages.append(
            Package(
                Ecosystem.PYPI,
                str(name),
                str(version),
                f"{file}/{info.name}",
                0,
                license=python_license(
                    meta.get("License-Expression"), meta.get_all("Classifier") or [], meta.get("License")
                ),
            )
        )
    return packages


#: Trove classifiers that name exactly one SPDX license.
CLASSIFIER_SPDX = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: Zope Public License": "ZPL-2.1",
    "License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}


def python_license(expression: str | None, classifiers: list[str], free_text: str | None) -> str | None:
    """Best declared license of a distribution: PEP 639 expression > classifiers > License field."""
    if expression:
        return expression.strip()
    mapped = sorted({CLASSIFIER_SPDX[c] for c in classifiers if c in CLASSIFIER_SPDX})
    if mapped:
        return " OR ".join(mapped) if len(mapped) > 1 else mapped[0]
    if free_text and free_text.strip() and "\n" not in free_text.strip() and len(free_text) < 100:
        return free_text.strip()
    return None


def _node_modules(path: Path, file: str) -> list[Package]:
    packages = []
    for manifest in sorted(path.glob("*/package.json")) + sorted(path.glob("@*/*/package.json")):
        rel = f"{file}/{manifest.relative_to(path)}"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LockfileError(rel, f"cannot read package.json: {exc}") from exc
        if not isinstance(data, dict) or not data.get("name") or not data.get("version"):
            continue
        packages.append(
            Package(
                Ecosystem.NPM,
                str(data["name"]),
                str(data["version"]),
                rel,
                0,
                scope=Scope.UNKNOWN,
                license=license_field(data.get("license") or data.get("licenses")),
            )
        )
        nested = manifest.parent / "node_modules"
        if nested.is_dir():
            packages.extend(_node_modules(nested, f"{file}/{manifest.parent.relative_to(path)}/node_modules"))
    return packages


def nearby_environments(directories: list[Path]) -> list[Path]:
    """Installed trees next to lockfiles: ``node_modules`` and ``.venv``/``venv`` site-packages."""
    found: list[Path] = []
    for directory in dict.fromkeys(directories):
        candidates = [directory / "node_modules"]
        for venv in (".venv", "venv"):
            candidates.extend(sorted((directory / venv / "lib").glob("python*/site-packages")))
        found.extend(c for c in candidates if c.is_dir() and c not in found)
    return found


def interpreter_environments() -> list[Path]:
    """site-packages of the activated virtualenv (``$VIRTUAL_ENV``) and of the running interpreter."""
    found: list[Path] = []
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        found.extend(sorted((Path(venv) / "lib").glob("python*/site-packages")))
    paths = sysconfig.get_paths()
    found.extend(Path(paths[key]) for key in ("purelib", "platlib") if paths.get(key))
    return [p for p in dict.fromkeys(found) if p.is_dir()]


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def with_installed_licenses(packages: list[Package], base: Path, files: list[str]) -> list[Package]:
    """Fill the license of packages whose lockfile does not declare one from installed metadata (the
    best source: PEP 639 expressions, classifiers, package.json): installed trees next to the lockfiles
    (``node_modules``, ``.venv``) first, then the activated virtualenv and the running interpreter's
    site-packages. Only the exact locked version counts; ``license_source`` names the metadata read."""
    if all(p.license for p in packages):
        return packages
    envs = nearby_environments([(base / f).parent for f in files] + [base])
    if any(p.ecosystem is Ecosystem.PYPI and not p.license for p in packages):
        envs.extend(e for e in interpreter_environments() if e not in envs)
    known: dict[tuple[Ecosystem, str, str], tuple[str, str]] = {}
    for env in envs:
        try:
            installed = scan_installed(env, _shown(env, base))
        except LockfileError:
            continue  # an unreadable installed tree only costs license data
        for pkg in installed:
            if pkg.license:
                known.setdefault((pkg.ecosystem, pkg.normalized_name, pkg.version), (pkg.license, pkg.source))
    if not known:
        return packages
    out = []
    for p in packages:
        found = None if p.license else known.get((p.ecosystem, p.normalized_name, p.version))
        out.append(replace(p, license=found[0], license_source=found[1]) if found else p)
    return out
