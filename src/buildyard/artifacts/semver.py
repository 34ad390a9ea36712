"""Strict SemVer 2.0.0 versions of artifacts: python-semver's parsing and precedence, plus buildyard's
build-number tie-break.

Pure code, no I/O. Parsing and precedence are the ``semver`` library's (https://semver.org/#spec-item-11:
MAJOR.MINOR.PATCH numerically, a pre-release before its release, pre-release identifiers left to right,
numeric below alphanumeric; build metadata ignored). This module adds only what SemVer leaves open:

**Tie-break** (buildyard's, not SemVer's): two versions of equal precedence are ordered by build
number — the integer after ``build.`` in the build metadata (``1.4.0+build.57.a1b2c3d`` is build 57);
no build number sorts before any build number; remaining ties fall back to the build metadata string
in ASCII order, so the order is total and "latest build of 1.4.0" is well defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import semver

from buildyard.errors import UserError
from buildyard.versioning import Precedence

_BUILD_NUMBER_RE = re.compile(r"(?:^|\.)build\.(0|[1-9]\d*)(?:\.|$)")


class VersionError(UserError):
    """A version string is not a valid SemVer 2.0.0 version."""


@dataclass(frozen=True, slots=True, eq=False)
class Version:
    """A parsed SemVer 2.0.0 version; compare with :meth:`precedence_key` or :meth:`sort_key`.

    Two versions are equal when their text is (build metadata included), unlike their precedence.
    """

    parsed: semver.Version

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text`` strictly (no leading ``v``, no leading zeros in numeric identifiers)."""
        try:
            return cls(semver.Version.parse(text))
        except (ValueError, TypeError):
            raise VersionError(
                f"{text!r} is not a semantic version (expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
                "e.g. 1.4.0+build.57.a1b2c3d)"
            ) from None

    def __str__(self) -> str:
        return str(self.parsed)

    @property
    def major(self) -> int:
        """MAJOR."""
        return self.parsed.major

    @property
    def minor(self) -> int:
        """MINOR."""
        return self.parsed.minor

    @property
    def patch(self) -> int:
        """PATCH."""
        return self.parsed.patch

    @property
    def prerelease(self) -> tuple[str, ...]:
        """The pre-release identifiers (``("rc", "1")`` for ``1.0.0-rc.1``)."""
        return tuple(self.parsed.prerelease.split(".")) if self.parsed.prerelease else ()

    @property
    def build(self) -> tuple[str, ...]:
        """The build metadata identifiers (``("build", "57", "a1b2c3d")``)."""
        return tuple(self.parsed.build.split(".")) if self.parsed.build else ()

    @property
    def build_number(self) -> int | None:
        """The integer after ``build.`` in the build metadata, if any."""
        m = _BUILD_NUMBER_RE.search(self.parsed.build or "")
        return int(m.group(1)) if m else None

    @property
    def is_prerelease(self) -> bool:
        """True for versions with a pre-release part (branch builds)."""
        return bool(self.parsed.prerelease)

    def base(self) -> str:
        """The version without build metadata (what SemVer precedence sees)."""
        return str(self.parsed.replace(build=None))

    def precedence_key(self) -> Precedence:
        """Key whose order is exactly SemVer precedence (build metadata ignored)."""
        return Precedence(self.parsed)

    def sort_key(self) -> tuple[Precedence, int, str]:
        """Precedence, then the documented tie-break: build number, then build metadata text."""
        number = self.build_number
        return (self.precedence_key(), -1 if number is None else number, self.parsed.build or "")


def parse_version(text: str) -> Version:
    """Shorthand for :meth:`Version.parse`."""
    return Version.parse(text)


def _sanitize_identifier(text: str) -> str:
    cleaned = re.sub(r"[^0-9A-Za-z-]+", "-", text).strip("-")
    return cleaned or "branch"


def release_version(base: str, *, build_number: int | None = None, commit: str | None = None) -> Version:
    """``base`` with build metadata: ``release_version("1.4.0", build_number=57, commit="a1b2c3d…")``
    is ``1.4.0+build.57.a1b2c3d`` (short commit: 7 hex digits)."""
    v = Version.parse(base)
    build: list[str] = []
    if build_number is not None:
        build += ["build", str(build_number)]
    if commit:
        build.append(_sanitize_identifier(commit[:7]))
    text = v.base() + ("+" + ".".join(build) if build else "")
    return Version.parse(text)


def prerelease_version(version: str, branch: str, build_number: int, *, commit: str | None = None) -> Version:
    """A branch build of the upcoming ``version``: ``("1.4.1", "feature/x", 57)`` gives ``1.4.1-feature-x.57``
    (plus ``+build.57.<short commit>`` when ``commit`` is given)."""
    v = Version.parse(version)
    pre = _sanitize_identifier(branch)
    if pre.isdigit():
        pre = f"b{pre}"  # a purely numeric identifier would sort below every named branch
    text = f"{v.major}.{v.minor}.{v.patch}-{pre}.{build_number}"
    if commit:
        text += f"+build.{build_number}.{_sanitize_identifier(commit[:7])}"
    return Version.parse(text)


def branch_version(
    last_release: str, branch: str, build_number: int, *, commit: str | None = None
) -> Version:
    """A branch build after ``last_release``, as a pre-release of the next patch: ``("1.4.0", "feature/x",
    57)`` gives ``1.4.1-feature-x.57``."""
    v = Version.parse(last_release)
    return prerelease_version(f"{v.major}.{v.minor}.{v.patch + 1}", branch, build_number, commit=commit)
