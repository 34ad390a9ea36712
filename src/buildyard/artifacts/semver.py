"""Strict SemVer 2.0.0 versions of artifacts: parsing, precedence, the build-number tie-break.

Pure code, no I/O. Precedence follows https://semver.org/#spec-item-11: MAJOR.MINOR.PATCH compared
numerically, a pre-release sorts before its release, pre-release identifiers compared left to right
(numeric identifiers numerically and below alphanumeric ones, which compare in ASCII order; a shorter
list of equal identifiers sorts first). Build metadata is ignored by SemVer precedence.

**Tie-break** (buildyard's, not SemVer's): two versions of equal precedence are ordered by build
number — the integer after ``build.`` in the build metadata (``1.4.0+build.57.a1b2c3d`` is build 57);
no build number sorts before any build number; remaining ties fall back to the build metadata string
in ASCII order, so the order is total and "latest build of 1.4.0" is well defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from buildyard.errors import UserError

_NUM = r"0|[1-9]\d*"
_PRE_ID = rf"(?:{_NUM}|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER_RE = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?$"
)
_BUILD_NUMBER_RE = re.compile(r"(?:^|\.)build\.(0|[1-9]\d*)(?:\.|$)")


class VersionError(UserError):
    """A version string is not a valid SemVer 2.0.0 version."""


def _pre_key(identifier: str) -> tuple[int, int, str]:
    # numeric identifiers sort below alphanumeric ones (spec item 11.4.3)
    if identifier.isdigit():
        return (0, int(identifier), "")
    return (1, 0, identifier)


@dataclass(frozen=True, slots=True, order=False)
class Version:
    """A parsed SemVer 2.0.0 version; compare with :meth:`precedence_key` or :meth:`sort_key`."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    _text: str = field(default="", compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text`` strictly (no leading ``v``, no leading zeros in numeric identifiers)."""
        m = _SEMVER_RE.match(text)
        if m is None:
            raise VersionError(
                f"{text!r} is not a semantic version (expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
                "e.g. 1.4.0+build.57.a1b2c3d)"
            )
        pre = tuple(m["pre"].split(".")) if m["pre"] else ()
        build = tuple(m["build"].split(".")) if m["build"] else ()
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, build, text)

    def __str__(self) -> str:
        if self._text:
            return self._text
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def build_number(self) -> int | None:
        """The integer after ``build.`` in the build metadata, if any."""
        m = _BUILD_NUMBER_RE.search(".".join(self.build))
        return int(m.group(1)) if m else None

    @property
    def is_prerelease(self) -> bool:
        """True for versions with a pre-release part (branch builds)."""
        return bool(self.prerelease)

    def base(self) -> str:
        """The version without build metadata (what SemVer precedence sees)."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        return text + ("-" + ".".join(self.prerelease) if self.prerelease else "")

    def precedence_key(self) -> tuple[object, ...]:
        """Key whose order is exactly SemVer precedence (build metadata ignored)."""
        # a release sorts after all its pre-releases: (1,) > (0, ...)
        pre: tuple[object, ...] = (1,) if not self.prerelease else (0, *map(_pre_key, self.prerelease))
        return (self.major, self.minor, self.patch, pre)

    def sort_key(self) -> tuple[object, ...]:
        """Precedence, then the documented tie-break: build number, then build metadata text."""
        number = self.build_number
        return (*self.precedence_key(), -1 if number is None else number, ".".join(self.build))


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
