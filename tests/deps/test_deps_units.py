"""Small pure pieces: pnpm keys, SemVer ordering (property-based against semantic_version), purls,
license normalization and the ignore-file loader."""

from __future__ import annotations

import datetime as dt

import pytest
import semantic_version
from hypothesis import given, settings
from hypothesis import strategies as st
from packageurl import PackageURL

from buildyard.deps.errors import IgnoreFileError
from buildyard.deps.licenses import LicenseStatus, normalize
from buildyard.deps.model import Ecosystem, make_purl, normalize_name
from buildyard.deps.osv import AffectedEntry, Event, Range, affected
from buildyard.deps.parsers.npm import integrity_hashes, pnpm_key, spec_name
from buildyard.deps.scan import load_ignores
from buildyard.deps.versions import InvalidVersionError, semver_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/lodash/4.17.21", ("lodash", "4.17.21")),  # lockfile 5.x
        ("/@babel/core/7.22.5_supports-color@5.5.0", ("@babel/core", "7.22.5")),  # 5.x peer suffix
        ("/lodash@4.17.21", ("lodash", "4.17.21")),  # 6.x
        ("/@babel/core@7.22.5(supports-color@5.5.0)", ("@babel/core", "7.22.5")),  # 6.x peers
        ("@types/node@20.1.0", ("@types/node", "20.1.0")),  # 9.x
        ("react-dom@18.2.0(react@18.2.0)", ("react-dom", "18.2.0")),
    ],
)
def test_pnpm_keys(key, expected):
    assert pnpm_key(key) == expected


def test_spec_names_and_integrity():
    assert spec_name('"@babel/core@^7.0.0"') == "@babel/core"
    assert spec_name("lodash@npm:^4.17.15") == "lodash"
    assert integrity_hashes("sha1-AAAA sha512-" + "A" * 86 + "==") == (
        ("SHA-1", "000000"),
        ("SHA-512", "00" * 64),
    )
    assert integrity_hashes("md5-xyz") == ()


semver_ids = st.from_regex(r"\A(0|[1-9][0-9]{0,2}|[a-z][a-z0-9-]{0,3})\Z")
semvers = st.builds(
    lambda major, minor, patch, pre: f"{major}.{minor}.{patch}" + (f"-{'.'.join(pre)}" if pre else ""),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.lists(semver_ids, max_size=3),
)


@given(semvers, semvers)
def test_semver_order_agrees_with_semantic_version(a, b):
    ours = (semver_key(a) > semver_key(b)) - (semver_key(a) < semver_key(b))
    theirs = (semantic_version.Version(a) > semantic_version.Version(b)) - (
        semantic_version.Version(a) < semantic_version.Version(b)
    )
    assert ours == theirs


def test_lenient_semver_keys():
    """Spellings the SemVer grammar refuses still order (v prefix, leading zeros, 1-2 or 4 parts)."""
    assert semver_key("v1.2") == semver_key("1.2.0") == semver_key("01.02.0") == semver_key("1.2.0+build.5")
    assert hash(semver_key("1.0.0-01")) == hash(semver_key("1.0.0-1")) and semver_key(
        "1.0.0-01"
    ) == semver_key("1.0.0-1")
    assert semver_key("1.2.3") < semver_key("1.2.3.0") < semver_key("1.2.3.4-alpha") < semver_key("1.2.3.4")
    assert semver_key("0") < semver_key("0.0.1-rc.1") < semver_key("0.0.1")
    assert semver_key("1.0.0") != "1.0.0" and len({semver_key("1.0.0"), semver_key("v1.0.0")}) == 1
    with pytest.raises(InvalidVersionError):
        semver_key("1.0.0-")


def test_purls_follow_the_spec():
    assert make_purl(Ecosystem.PYPI, "Django_REST.framework", "3.0") == "pkg:pypi/django-rest-framework@3.0"
    assert make_purl(Ecosystem.MAVEN, "org.apache:commons-io", "2.0") == "pkg:maven/org.apache/commons-io@2.0"
    assert make_purl(Ecosystem.GO, "github.com/a/b", "v1.0.0") == "pkg:golang/github.com/a/b@v1.0.0"
    assert make_purl(Ecosystem.PACKAGIST, "Laravel/Framework", "9.0") == "pkg:composer/laravel/framework@9.0"
    assert make_purl(Ecosystem.NUGET, "Newtonsoft.Json", "13.0.1") == "pkg:nuget/Newtonsoft.Json@13.0.1"
    assert normalize_name(Ecosystem.PYPI, "Foo__Bar..baz") == "foo-bar-baz"
    assert make_purl(Ecosystem.NPM, "@babel/core", "7.0.0") == "pkg:npm/%40babel/core@7.0.0"
    # purl versions are percent-encoded as a whole: '+' too (as syft writes Go's +incompatible)
    plus = make_purl(Ecosystem.GO, "github.com/a/b", "v2.0.0+incompatible")
    assert plus == "pkg:golang/github.com/a/b@v2.0.0%2Bincompatible"
    assert make_purl(Ecosystem.CARGO, "serde", "") == "pkg:cargo/serde"
    assert make_purl(Ecosystem.NPM, "", "1.0") == "pkg:npm/-@1.0"  # a malformed entry still gets a valid purl


@settings(max_examples=500)
@given(
    st.sampled_from(list(Ecosystem)),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.text(max_size=10),
)
def test_every_purl_parses_back_to_its_version(ecosystem, name, version):
    """Whatever a lockfile holds (untrusted), the purl is valid and keeps the version (trimmed)."""
    parsed = PackageURL.from_string(make_purl(ecosystem, name, version))
    assert parsed.type == ecosystem.purl_type
    assert (parsed.version or "") == version.strip()


@pytest.mark.parametrize(
    ("raw", "status", "expression"),
    [
        ("MIT", LicenseStatus.SPDX, "MIT"),
        ("(MIT OR Apache-2.0)", LicenseStatus.SPDX, "MIT OR Apache-2.0"),
        ("GPL-3.0", LicenseStatus.SPDX, "GPL-3.0-only"),
        ("LicenseRef-Proprietary", LicenseStatus.SPDX, "LicenseRef-Proprietary"),
        ("BSD", LicenseStatus.UNRECOGNIZED, "BSD"),  # never guessed
        ("", LicenseStatus.UNKNOWN, None),
        (None, LicenseStatus.UNKNOWN, None),
    ],
)
def test_license_normalization(raw, status, expression):
    lic = normalize(raw)
    assert (lic.status, lic.expression) == (status, expression)


def test_ignore_file(tmp_path):
    path = tmp_path / "ignore.yml"
    path.write_text(
        "ignore:\n  - id: GHSA-1\n    reason: unreachable\n    expires: 2030-01-01\n    package: Foo_Bar\n"
    )
    [rule] = load_ignores(path)
    assert rule.expires == dt.date(2030, 1, 1) and rule.package == "Foo_Bar" and rule.line == 2
    path.write_text("ignore:\n  - id: X\n    reason: r\n  - id: Y\n    reason: r\n    expires: soon\n")
    with pytest.raises(IgnoreFileError, match=r"ignore\.yml:2: ignore of X needs 'expires: YYYY-MM-DD'"):
        load_ignores(path)
    path.write_text("ignore:\n  - id: X\n    reason: r\n    expires: 2030-01-01\n    until: x\n")
    with pytest.raises(IgnoreFileError, match="unknown key"):
        load_ignores(path)
    path.write_text("ignore: [\n")
    with pytest.raises(IgnoreFileError, match="invalid YAML"):
        load_ignores(path)


UNIVERSE = [f"{major}.{minor}.0" for major in range(3) for minor in range(4)]  # sorted SemVer universe
event_kinds = st.sampled_from(["introduced", "fixed", "last_affected", "limit"])


@given(
    st.lists(st.tuples(event_kinds, st.integers(-1, len(UNIVERSE) - 1)), min_size=1, max_size=6),
    st.integers(0, len(UNIVERSE) - 1),
)
def test_range_evaluation_matches_the_schema_pseudocode(events, probe):
    """OSV's IsVulnerable pseudocode, run on positions in a known-sorted universe, is the oracle."""
    raw = [(kind, "0" if pos < 0 and kind == "introduced" else UNIVERSE[max(pos, 0)]) for kind, pos in events]
    if not any(kind == "introduced" for kind, _ in raw):
        raw.insert(0, ("introduced", "0"))
    position = {v: i for i, v in enumerate(UNIVERSE)} | {"0": -1}
    v = probe
    limits = [position[value] for kind, value in raw if kind == "limit"]
    expected = False
    if not limits or any(v < limit for limit in limits):
        state = False
        for kind, value in sorted((e for e in raw if e[0] != "limit"), key=lambda e: position[e[1]]):
            at = position[value]
            if kind == "introduced" and (value == "0" or v >= at):
                state = True
            elif (kind == "fixed" and v >= at) or (kind == "last_affected" and v > at):
                state = False
        expected = state
    entry = AffectedEntry("X", frozenset(), (Range("SEMVER", tuple(Event(k, val) for k, val in raw)),))
    assert (affected(entry, Ecosystem.NPM, UNIVERSE[probe]) is not None) == expected
