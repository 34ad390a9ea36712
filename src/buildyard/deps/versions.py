"""Version ordering per ecosystem, as OSV ``ECOSYSTEM`` and ``SEMVER`` ranges require.

PyPI follows PEP 440 (``packaging``); npm, crates.io and Go follow SemVer 2.0 precedence (Go with its
``v`` prefix and ``+incompatible`` suffix); Maven, RubyGems, NuGet and Packagist use ``univers``.
Every key is cached: range evaluation compares the same event versions again and again.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion as _PackagingInvalid
from packaging.version import Version

from buildyard.deps.model import Ecosystem
from buildyard.errors import BuildyardError
from buildyard.versioning import Precedence


class InvalidVersionError(BuildyardError, ValueError):
    """A version string that the ecosystem's ordering cannot place."""


#: SemVer as real-world data spells it (``v`` prefix, leading zeros, one to four+ numbers).
_LENIENT_SEMVER = re.compile(
    r"^v?(?P<nums>\d+(?:\.\d+)*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)


@lru_cache(maxsize=200_000)
def semver_key(version: str) -> Precedence:
    """SemVer 2.0 precedence key (section 11), compared by the ``semver`` library.

    Lenient like real-world SemVer data: a leading ``v``, leading zeros and missing minor/patch are
    accepted, extra numeric components compare in order, build metadata is ignored.
    """
    import semver  # noqa: PLC0415 - lazy: only vulnerability matching orders SemVer versions

    match = _LENIENT_SEMVER.match(version.strip())
    if not match:
        raise InvalidVersionError(version)
    nums = [int(n) for n in match.group("nums").split(".")]
    nums += [0] * (3 - len(nums))
    core = semver.Version(nums[0], nums[1], nums[2], prerelease=match.group("pre"))
    return Precedence(core, tuple(nums[3:]))


@lru_cache(maxsize=200_000)
def _pep440_key(version: str) -> Version:
    try:
        return Version(version)
    except _PackagingInvalid as exc:
        raise InvalidVersionError(version) from exc


@lru_cache(maxsize=50_000)
def _univers_key(ecosystem: Ecosystem, version: str) -> Any:
    from univers import versions as uv  # noqa: PLC0415 - costly import, only for these ecosystems

    cls = {
        Ecosystem.MAVEN: uv.MavenVersion,
        Ecosystem.RUBYGEMS: uv.RubygemsVersion,
        Ecosystem.NUGET: uv.NugetVersion,
        Ecosystem.PACKAGIST: uv.ComposerVersion,
    }[ecosystem]
    try:
        return cls(version)
    except Exception as exc:
        raise InvalidVersionError(version) from exc


def sort_key(ecosystem: Ecosystem, version: str) -> Any:
    """A key ordering ``version`` within ``ecosystem`` (the ``ECOSYSTEM`` range type)."""
    if ecosystem is Ecosystem.PYPI:
        return _pep440_key(version)
    if ecosystem is Ecosystem.GO:
        return semver_key(go_semver(version))
    if ecosystem in (Ecosystem.NPM, Ecosystem.CARGO):
        return semver_key(version)
    return _univers_key(ecosystem, version)


def go_semver(version: str) -> str:
    """A Go module version as plain SemVer (``v1.2.3+incompatible`` → ``1.2.3``)."""
    version = version.removeprefix("v")
    return version.removesuffix("+incompatible")


def canonical(ecosystem: Ecosystem, version: str) -> str:
    """The spelling under which two equal versions compare equal in a ``versions`` list."""
    if ecosystem is Ecosystem.PYPI:
        try:
            return canonicalize_version(_pep440_key(version))
        except InvalidVersionError:
            return version
    if ecosystem is Ecosystem.GO:
        return go_semver(version)
    return version
