"""SemVer 2.0.0 versions of artifacts: python-semver's parsing and precedence behind buildyard's thin layer
(identifiers as tuples, the build-number tie-break, release and branch versions), checked against the spec."""

from __future__ import annotations

import random

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from buildyard.artifacts.semver import (
    Version,
    VersionError,
    branch_version,
    prerelease_version,
    release_version,
)

numeric = st.integers(min_value=0, max_value=10**6).map(str)
alnum = st.from_regex(r"\A[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*\Z", fullmatch=True).filter(
    lambda s: len(s) <= 8
)
pre_ident = st.one_of(numeric, alnum)
build_ident = st.from_regex(r"\A[0-9A-Za-z-]{1,8}\Z", fullmatch=True)


@st.composite
def versions(draw: st.DrawFn) -> str:
    core = ".".join(draw(numeric) for _ in range(3))
    pre = draw(st.lists(pre_ident, max_size=4))
    build = draw(st.lists(build_ident, max_size=3))
    return core + ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")


def _cmp(a: Version, b: Version) -> int:
    ka, kb = a.precedence_key(), b.precedence_key()
    return (ka > kb) - (ka < kb)


@given(versions(), versions())
def test_precedence_and_sort_keys_agree_with_python_semver(a: str, b: str) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert _cmp(va, vb) == semver.Version.parse(a).compare(b)
    if _cmp(va, vb):  # the tie-break only orders versions of equal precedence
        assert (va.sort_key() < vb.sort_key()) == (_cmp(va, vb) < 0)
    else:
        assert (va.sort_key() == vb.sort_key()) == (
            va.build_number == vb.build_number and va.build == vb.build
        )


@given(versions())
def test_round_trip(text: str) -> None:
    v = Version.parse(text)
    assert str(v) == text and v == Version.parse(text) and hash(v) == hash(Version.parse(text))
    rebuilt = f"{v.major}.{v.minor}.{v.patch}"
    rebuilt += ("-" + ".".join(v.prerelease) if v.prerelease else "") + (
        "+" + ".".join(v.build) if v.build else ""
    )
    assert rebuilt == text
    assert v.base() == text.split("+", 1)[0]


@given(st.text(alphabet="0123456789.-+abzAZ", max_size=16))
def test_validity_agrees_with_python_semver(text: str) -> None:
    try:
        Version.parse(text)
        ours = True
    except VersionError:
        ours = False
    assert ours == semver.Version.is_valid(text)


def test_spec_example_chain() -> None:
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]
    shuffled = chain[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled, key=lambda s: Version.parse(s).precedence_key()) == chain


def test_build_metadata_ignored_by_precedence_and_tie_broken_by_build_number() -> None:
    a, b, c = (Version.parse(s) for s in ("1.4.0+build.9.zzz", "1.4.0+build.57.aaa", "1.4.0"))
    assert a.precedence_key() == b.precedence_key() == c.precedence_key()
    assert [str(v) for v in sorted([b, c, a], key=Version.sort_key)] == [
        "1.4.0",
        "1.4.0+build.9.zzz",
        "1.4.0+build.57.aaa",
    ]
    assert b.build_number == 57 and c.build_number is None
    assert a != b and a == Version.parse("1.4.0+build.9.zzz")  # equal text, not equal precedence


@pytest.mark.parametrize(
    "bad", ["1.4", "v1.4.0", "01.4.0", "1.4.0-01", "1.4.0+", "1.4.0-a..b", " 1.4.0", "", "1.4.0\n"]
)
def test_invalid_versions_are_rejected_with_a_hint(bad: str) -> None:
    with pytest.raises(VersionError, match=r"MAJOR.MINOR.PATCH"):
        Version.parse(bad)


def test_release_and_branch_versions() -> None:
    commit = "a1b2c3d4e5f6"
    assert str(release_version("1.4.0", build_number=57, commit=commit)) == "1.4.0+build.57.a1b2c3d"
    branch = branch_version("1.4.0", "feature/x", 57)
    assert str(branch) == "1.4.1-feature-x.57"
    assert Version.parse("1.4.0").precedence_key() < branch.precedence_key()
    assert branch.precedence_key() < Version.parse("1.4.1").precedence_key()
    assert str(prerelease_version("2.0.0", "123", 3, commit=commit)) == "2.0.0-b123.3+build.3.a1b2c3d"
