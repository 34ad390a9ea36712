"""Versions as people write them, normalised to SemVer 2.0.0 text (pure, no I/O).

Artifact versions are SemVer inside buildyard (ordering, build numbers), but projects write
``v1.4.0`` tags, two-part versions such as ``3.7`` and PEP 440 versions (``2.0rc1``,
``1.0.dev3``). :func:`to_semver` maps each to the SemVer version with the same meaning and order:

==================  ====================  ================================================
written             SemVer                why
==================  ====================  ================================================
``v1.4.0``          ``1.4.0``             a tag's ``v`` is not part of the version
``3.7`` / ``3``     ``3.7.0`` / ``3.0.0`` missing parts are zero (PEP 440 and npm agree)
``2.0a1``, ``b2``   ``2.0.0-a.1``         ``a`` < ``b`` < ``rc`` in both orders
``2.0rc1``          ``2.0.0-rc.1``
``1.0.dev3``        ``1.0.0-0.dev.3``     a numeric first identifier sorts before ``a``
``1.0+local.7``     ``1.0.0+local.7``     local versions are build metadata
==================  ====================  ================================================

Post-releases, epochs, more than three release numbers and pre-releases of dev releases have no
SemVer equivalent with the same order: they are refused with the reason.

SemVer itself (grammar, precedence) is the ``semver`` library's; :class:`Precedence` is the one sort key
built on it, used by artifact versions and by vulnerability ranges alike.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from buildyard.errors import UserError

if TYPE_CHECKING:
    import semver

_PRE = {"a": "a", "b": "b", "rc": "rc"}


class VersionFormatError(UserError, ValueError):
    """A version with no SemVer equivalent; the message says why and what to write instead."""


def to_semver(text: str) -> str:
    """``text`` as SemVer 2.0.0 (already SemVer: unchanged; see the module table), else
    :class:`VersionFormatError`."""
    import semver  # noqa: PLC0415 - lazy: only pipelines that publish versions pay its import

    text = text.strip()
    bare = text[1:] if text[:1] in ("v", "V") and text[1:2].isdigit() else text
    if semver.Version.is_valid(bare):  # SemVer's own grammar, from the library buildyard orders versions with
        return bare
    try:
        pep = Version(bare)
    except InvalidVersion:
        raise VersionFormatError(
            f"{text!r} is not a version (write MAJOR.MINOR.PATCH such as 1.4.0, or a PEP 440 version)"
        ) from None
    if pep.epoch:
        raise VersionFormatError(f"{text!r}: version epochs have no SemVer equivalent; drop the '!'")
    if pep.post is not None:
        raise VersionFormatError(
            f"{text!r}: post-releases have no SemVer equivalent with the same order; release a new patch"
        )
    release = list(pep.release)
    while len(release) > 3 and release[-1] == 0:
        release.pop()
    if len(release) > 3:
        raise VersionFormatError(f"{text!r}: more than three release numbers have no SemVer equivalent")
    release += [0] * (3 - len(release))
    out = ".".join(map(str, release))
    if pep.pre is not None and pep.dev is not None:
        raise VersionFormatError(f"{text!r}: a dev release of a pre-release has no SemVer equivalent")
    if pep.pre is not None:
        out += f"-{_PRE[pep.pre[0]]}.{pep.pre[1]}"
    elif pep.dev is not None:
        out += f"-0.dev.{pep.dev}"
    if pep.local:
        out += "+" + re.sub(r"[^0-9A-Za-z.-]", "-", pep.local)
    return out


@functools.total_ordering
class Precedence:
    """A sort key ordering versions by SemVer precedence (build metadata ignored).

    The numeric core is compared as a tuple of integers (fast: most comparisons end there, and a
    library comparison costs microseconds); equal cores are ordered by python-semver, whose rules
    decide pre-releases. ``extra`` numbers, for lenient data such as ``1.2.3.4``, extend the core.
    """

    __slots__ = ("_core", "_version")

    def __init__(self, version: semver.Version, extra: tuple[int, ...] = ()) -> None:
        self._core = (version.major, version.minor, version.patch, *extra)
        self._version = version.replace(build=None) if version.build else version

    def _compare(self, other: Precedence) -> int:
        if self._core != other._core:
            return -1 if self._core < other._core else 1
        return self._version.compare(other._version)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Precedence) and self._compare(other) == 0

    def __lt__(self, other: Precedence) -> bool:
        if not isinstance(other, Precedence):
            return NotImplemented
        return self._compare(other) < 0

    def __hash__(self) -> int:
        pre = self._version.prerelease
        ids = tuple(str(int(i)) if i.isdigit() else i for i in pre.split(".")) if pre else None
        return hash((self._core, ids))

    def __repr__(self) -> str:
        return f"Precedence({self._version}{''.join(f'.{n}' for n in self._core[3:])})"
