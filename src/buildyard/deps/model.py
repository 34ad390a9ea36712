"""Value types of the deps service: ecosystems, packages, inventories, severities.

Every parser turns one lockfile into ``Package`` values; everything downstream (vulnerability
matching, licenses, SBOM) receives these frozen objects, never raw dicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from packageurl import PackageURL


class Ecosystem(StrEnum):
    """Package ecosystems, spelled as the OSV schema spells them."""

    PYPI = "PyPI"
    NPM = "npm"
    GO = "Go"
    CARGO = "crates.io"
    MAVEN = "Maven"
    RUBYGEMS = "RubyGems"
    NUGET = "NuGet"
    PACKAGIST = "Packagist"

    @property
    def purl_type(self) -> str:
        """The package-url type of this ecosystem."""
        return _PURL_TYPES[self]


_PURL_TYPES = {
    Ecosystem.PYPI: "pypi",
    Ecosystem.NPM: "npm",
    Ecosystem.GO: "golang",
    Ecosystem.CARGO: "cargo",
    Ecosystem.MAVEN: "maven",
    Ecosystem.RUBYGEMS: "gem",
    Ecosystem.NUGET: "nuget",
    Ecosystem.PACKAGIST: "composer",
}

_PEP503 = re.compile(r"[-_.]+")


def normalize_name(ecosystem: Ecosystem, name: str) -> str:
    """The name under which ``ecosystem`` considers two spellings the same package.

    PyPI follows PEP 503; NuGet and Packagist names are case-insensitive; the others are exact.
    """
    if ecosystem is Ecosystem.PYPI:
        return _PEP503.sub("-", name).lower()
    if ecosystem in (Ecosystem.NUGET, Ecosystem.PACKAGIST):
        return name.lower()
    return name


class Scope(StrEnum):
    """Whether a dependency ships with the product, as far as the lockfile says."""

    PROD = "prod"
    DEV = "dev"
    OPTIONAL = "optional"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Package:
    """One resolved dependency as a lockfile records it.

    ``direct`` is None when the format does not say; ``dependencies`` holds ``(name, version)`` of
    the packages it requires (version empty when the format names only the dependency).
    """

    ecosystem: Ecosystem
    name: str
    version: str
    source: str
    line: int = 0
    direct: bool | None = None
    scope: Scope = Scope.UNKNOWN
    hashes: tuple[tuple[str, str], ...] = ()
    license: str | None = None
    dependencies: tuple[tuple[str, str], ...] = ()
    #: Where ``license`` was read when not from ``source`` itself (an installed package's metadata).
    license_source: str = ""

    @property
    def normalized_name(self) -> str:
        """Name as the ecosystem compares it (PEP 503 for PyPI)."""
        return normalize_name(self.ecosystem, self.name)

    @property
    def purl(self) -> str:
        """The package-url of this package at its version."""
        return make_purl(self.ecosystem, self.name, self.version)

    @property
    def location(self) -> str:
        """``file:line`` (or just the file) where the lockfile records this package."""
        return f"{self.source}:{self.line}" if self.line else self.source


def make_purl(ecosystem: Ecosystem, name: str, version: str) -> str:
    """The package-url of ``name`` at ``version`` (``packageurl-python``, the purl-spec's reference library).

    Only the split of an ecosystem's name into purl namespace and name is decided here (Maven
    ``group:artifact``, npm ``@scope/name``, Go and Composer paths; PyPI names normalised per PEP 503);
    escaping and each type's own normalisation are the library's.
    """
    namespace: str | None = None
    pname = name
    if ecosystem is Ecosystem.MAVEN and ":" in name:
        namespace, pname = name.split(":", 1)
    elif ecosystem is Ecosystem.NPM and name.startswith("@") and "/" in name:
        namespace, pname = name.split("/", 1)
    elif ecosystem in (Ecosystem.GO, Ecosystem.PACKAGIST) and "/" in name:
        namespace, pname = name.rsplit("/", 1)
    elif ecosystem is Ecosystem.PYPI:
        pname = normalize_name(ecosystem, name)
    if not pname:  # "a/" or "g:": nothing to split off, the whole text is the name
        namespace, pname = None, name
    try:
        return str(PackageURL(ecosystem.purl_type, namespace or None, pname, version or None).to_string())
    except (ValueError, TypeError):  # nothing left of the name once trimmed (a malformed lockfile entry)
        return str(PackageURL(ecosystem.purl_type, None, "-", version or None).to_string())


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A lockfile that could not be read; reported while the other files still are."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Inventory:
    """Every package found under a project, with the files read and the ones that failed."""

    packages: list[Package] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
