"""OSV matching: the schema's evaluation rules on small records, and an independent re-computation
over a random sample of real packages and versions from the shared PyPI and Go dumps."""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path

import pytest
import semantic_version
from packaging.version import InvalidVersion, Version

from buildyard.deps import api
from buildyard.deps.errors import DatabaseError
from buildyard.deps.inventory import build_inventory
from buildyard.deps.model import Ecosystem, Inventory, Package
from buildyard.deps.osv import affected, index_records
from buildyard.deps.osvdb import DumpSource, RecordsSource, load_index
from buildyard.deps.scan import match_package, scan_inventory
from buildyard.deps.severity import cvss_base_score, rate
from buildyard.deps.versions import semver_key, sort_key
from buildyard.model import Severity

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/osv")


def record(vid, eco, name, ranges=(), versions=(), **extra):
    return {
        "id": vid,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {"package": {"ecosystem": eco, "name": name}, "ranges": list(ranges), "versions": list(versions)}
        ],
        **extra,
    }


def rng(kind, *events):
    return {"type": kind, "events": [dict([e]) for e in events]}


def ids(records, eco, name, version):
    index = index_records(records)
    return sorted(f.id for f in match_package(index, Package(eco, name, version, "x")))


PY = Ecosystem.PYPI


def test_introduced_fixed_multiple_intervals():
    r = [
        record(
            "A",
            "PyPI",
            "pkg",
            [
                rng(
                    "ECOSYSTEM",
                    ("introduced", "1.0"),
                    ("fixed", "1.2"),
                    ("introduced", "2.0"),
                    ("fixed", "2.0.5"),
                )
            ],
        )
    ]
    assert ids(r, PY, "pkg", "0.9") == []
    assert ids(r, PY, "pkg", "1.0") == ["A"]
    assert ids(r, PY, "pkg", "1.1.9") == ["A"]
    assert ids(r, PY, "pkg", "1.2") == []
    assert ids(r, PY, "pkg", "2.0.4") == ["A"]
    assert ids(r, PY, "pkg", "2.0.5") == []


def test_events_are_sorted_before_evaluation():
    r = [record("A", "PyPI", "pkg", [rng("ECOSYSTEM", ("fixed", "1.10"), ("introduced", "1.2"))])]
    assert ids(r, PY, "pkg", "1.9") == ["A"]  # PEP 440 order, not string order, and events sorted
    assert ids(r, PY, "pkg", "1.10") == []


def test_last_affected_is_inclusive_and_limit_bounds():
    r = [record("A", "npm", "p", [rng("SEMVER", ("introduced", "0"), ("last_affected", "1.4.0"))])]
    assert ids(r, Ecosystem.NPM, "p", "1.4.0") == ["A"]
    assert ids(r, Ecosystem.NPM, "p", "1.4.1") == []
    limited = [record("B", "npm", "p", [rng("SEMVER", ("introduced", "1.0.0"), ("limit", "1.5.0"))])]
    assert ids(limited, Ecosystem.NPM, "p", "1.4.9") == ["B"]
    assert ids(limited, Ecosystem.NPM, "p", "1.5.0") == []
    star = [record("C", "npm", "p", [rng("SEMVER", ("introduced", "1.0.0"), ("limit", "*"))])]
    assert ids(star, Ecosystem.NPM, "p", "99.0.0") == ["C"]


def test_semver_prerelease_order_and_introduced_zero():
    r = [record("A", "npm", "p", [rng("SEMVER", ("introduced", "0"), ("fixed", "1.0.0-rc.1"))])]
    assert ids(r, Ecosystem.NPM, "p", "1.0.0-beta.11") == ["A"]
    assert ids(r, Ecosystem.NPM, "p", "1.0.0-rc.1") == []
    assert ids(r, Ecosystem.NPM, "p", "1.0.0") == []
    assert ids(r, Ecosystem.NPM, "p", "0.0.0-alpha") == ["A"]


def test_versions_list_pep440_equality_and_pep503_names():
    r = [record("A", "PyPI", "Foo_Bar.baz", versions=["1.0"])]
    assert ids(r, PY, "foo-bar-baz", "1.0.0") == ["A"]  # 1.0 == 1.0.0 under PEP 440
    assert ids(r, PY, "FOO.BAR_BAZ", "1.0") == ["A"]
    assert ids(r, PY, "foo-bar-baz", "1.0.1") == []


def test_git_ranges_ignored_withdrawn_skipped_aliases_merged():
    git = [record("G", "PyPI", "p", [{"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}]}])]
    assert ids(git, PY, "p", "1.0") == []
    withdrawn = [record("W", "PyPI", "p", versions=["1.0"], withdrawn="2024-01-01T00:00:00Z")]
    assert ids(withdrawn, PY, "p", "1.0") == []
    both = [
        record(
            "PYSEC-1",
            "PyPI",
            "p",
            [rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "1.1"))],
            aliases=["GHSA-x"],
        ),
        record(
            "GHSA-x",
            "PyPI",
            "p",
            [rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "1.2"))],
            aliases=["CVE-1"],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        ),
    ]
    [finding] = match_package(index_records(both), Package(PY, "p", "1.0", "x"))
    assert finding.id == "PYSEC-1" and finding.aliases == ("CVE-1", "GHSA-x")
    assert finding.severity is Severity.CRITICAL and finding.rating.score == 9.8
    assert finding.fixed == "1.2"  # the version that fixes every merged record


def test_other_ecosystem_orderings():
    assert sort_key(Ecosystem.MAVEN, "1.0-SNAPSHOT") < sort_key(Ecosystem.MAVEN, "1.0")
    assert sort_key(Ecosystem.RUBYGEMS, "1.0.0.pre") < sort_key(Ecosystem.RUBYGEMS, "1.0.0")
    assert sort_key(Ecosystem.NUGET, "1.0.0-beta") < sort_key(Ecosystem.NUGET, "1.0.0")
    assert sort_key(Ecosystem.GO, "v0.0.0-20200101000000-abcdef") < sort_key(Ecosystem.GO, "v0.1.0")
    assert sort_key(Ecosystem.GO, "v2.0.0+incompatible") == sort_key(Ecosystem.GO, "v2.0.0")
    r = [record("M", "Maven", "g:a", [rng("ECOSYSTEM", ("introduced", "2.0-beta9"), ("fixed", "2.15.0"))])]
    assert ids(r, Ecosystem.MAVEN, "g:a", "2.14.1") == ["M"]
    assert ids(r, Ecosystem.MAVEN, "g:a", "2.15.0") == []


SEMVER_SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


def test_semver_spec_precedence_example():
    assert sorted(SEMVER_SPEC_ORDER, key=semver_key) == SEMVER_SPEC_ORDER
    shuffled = SEMVER_SPEC_ORDER[::-1]
    assert sorted(shuffled, key=semver_key) == SEMVER_SPEC_ORDER


@pytest.mark.parametrize(
    ("vector", "score"),
    [  # base scores as published by NVD for these vectors
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ],
)
def test_cvss_v3_base_scores(vector, score):
    assert cvss_base_score("CVSS_V3", vector) == score


def test_rating_fallbacks():
    assert rate([{"type": "CVSS_V3", "score": "garbage"}]).severity is Severity.UNKNOWN
    assert rate(None, {"severity": "MODERATE"}).severity is Severity.MEDIUM
    assert Severity.UNKNOWN.at_least(Severity.CRITICAL) and not Severity.LOW.at_least(Severity.HIGH)


# ------------------------------------------------------------------ independent re-computation on real data


def _pep440(v):
    try:
        return Version(v)
    except InvalidVersion:
        return None


def _intervals_pypi(events):
    """Independent model: sort events, pair each introduced with the next fixed/last_affected."""
    parsed = []
    for e in events:
        ((kind, value),) = e.items()
        key = Version("0") if (kind == "introduced" and value == "0") else _pep440(value)
        if key is None:
            return None
        parsed.append((key, 0 if value == "0" else 1, kind, value))
    parsed.sort(key=lambda t: (t[1], t[0]))
    intervals, start = [], None
    for key, _, kind, _ in parsed:
        if kind == "introduced" and start is None:
            start = (key, True)
        elif kind in ("fixed", "last_affected") and start is not None:
            intervals.append((start[0], key, kind == "last_affected"))
            start = None
    if start is not None:
        intervals.append((start[0], None, False))
    return intervals


def _expected_pypi(records, name, version):
    v = Version(version)
    hits = set()
    for rec in records:
        if rec.get("withdrawn"):
            continue
        for aff in rec["affected"]:
            pkg = aff["package"]
            if pkg["ecosystem"] != "PyPI" or pkg["name"].lower().replace("_", "-").replace(".", "-") != name:
                continue
            if any(_pep440(x) == v for x in aff.get("versions", [])):
                hits.add(rec["id"])
            for r in aff.get("ranges", []):
                if r["type"] != "ECOSYSTEM":
                    continue
                intervals = _intervals_pypi(r["events"])
                for lo, hi, inclusive in intervals or []:
                    if v >= lo and (hi is None or (v <= hi if inclusive else v < hi)):
                        hits.add(rec["id"])
    return hits


def _load(eco):
    with zipfile.ZipFile(SHARED / eco / "all.zip") as z:
        return [json.loads(z.read(n)) for n in z.namelist() if n.endswith(".json")]


def _raw_ids(index, eco, name, version):
    """Record ids matched (before alias merging) — what the independent model computes."""

    return {e.vuln_id for e in index.by_package.get((eco, name), []) if affected(e, eco, version)}


@pytest.mark.skipif(not (SHARED / "PyPI" / "all.zip").is_file(), reason="shared OSV data not present")
def test_pypi_sample_matches_independent_model(tmp_path):
    records = _load("PyPI")
    loaded = load_index(SHARED, [Ecosystem.PYPI], tmp_path)
    rnd = random.Random(20241010)
    names = sorted(
        {
            a["package"]["name"].lower().replace("_", "-").replace(".", "-")
            for r in records
            for a in r["affected"]
        }
    )
    checked = positives = 0
    for name in rnd.sample(names, 250):
        candidates = set()
        for r in records:
            for a in r["affected"]:
                if a["package"]["name"].lower().replace("_", "-").replace(".", "-") == name:
                    candidates.update(a.get("versions", [])[:20])
                    for rg in a.get("ranges", []):
                        for e in rg["events"]:
                            candidates.update(v for v in e.values() if v != "0")
        candidates.update({"0.0.1", "999.0"})
        for version in rnd.sample(sorted(candidates), min(8, len(candidates))):
            if _pep440(version) is None:
                continue
            expected = _expected_pypi(records, name, version)
            got = _raw_ids(loaded.index, Ecosystem.PYPI, name, version)
            assert got == expected, (name, version)
            checked += 1
            positives += bool(expected)
    assert checked > 1000 and positives > 300


@pytest.mark.skipif(not (SHARED / "Go" / "all.zip").is_file(), reason="shared OSV data not present")
def test_go_sample_matches_semantic_version_model(tmp_path):
    """Go SEMVER ranges re-computed with the semantic_version library as the independent ordering."""
    records = _load("Go")
    loaded = load_index(SHARED, [Ecosystem.GO], tmp_path)
    rnd = random.Random(7)
    by_module = {}
    for r in records:
        if r.get("withdrawn"):
            continue
        for a in r["affected"]:
            by_module.setdefault(a["package"]["name"], []).append((r["id"], a))
    checked = positives = 0
    for module in rnd.sample(sorted(by_module), 300):
        versions = {
            v
            for _, a in by_module[module]
            for rg in a.get("ranges", [])
            for e in rg["events"]
            for v in e.values()
            if v != "0"
        } | {"0.0.1", "99.0.0"}
        for version in rnd.sample(sorted(versions), min(6, len(versions))):
            sv = semantic_version.Version(version)
            expected = set()
            for vid, a in by_module[module]:
                for rg in a.get("ranges", []):
                    state = False
                    evs = sorted(
                        (semantic_version.Version("0.0.0-0") if v == "0" else semantic_version.Version(v), k)
                        for e in rg["events"]
                        for k, v in e.items()
                    )
                    for ev, kind in evs:
                        if kind == "introduced" and sv >= ev:
                            state = True
                        elif kind == "fixed" and sv >= ev:
                            state = False
                    if state:
                        expected.add(vid)
            got = _raw_ids(loaded.index, Ecosystem.GO, module, "v" + version)
            assert got == expected, (module, version)
            checked += 1
            positives += bool(expected)
    assert checked > 1000 and positives > 300


def test_cache_is_keyed_by_dump_digest(tmp_path):
    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    records = [record("A", "PyPI", "p", versions=["1.0"])]
    with zipfile.ZipFile(db / "PyPI" / "all.zip", "w") as z:
        z.writestr("A.json", json.dumps(records[0]))
    cache = tmp_path / "cache"
    first = load_index(db, [Ecosystem.PYPI], cache)
    second = load_index(db, [Ecosystem.PYPI], cache)
    assert (first.cache_misses, second.cache_hits) == (1, 1)
    assert "A" in second.index.vulns
    with zipfile.ZipFile(db / "PyPI" / "all.zip", "w") as z:
        z.writestr("B.json", json.dumps(record("B", "PyPI", "p", versions=["2.0"])))
    third = load_index(db, [Ecosystem.PYPI], cache)
    assert third.cache_misses == 1 and set(third.index.vulns) == {"B"}
    assert len(list(cache.glob("*.msgpack"))) == 1  # the stale index is evicted
    [entry] = cache.glob("*.msgpack")
    entry.write_bytes(b"not an index")
    fourth = load_index(db, [Ecosystem.PYPI], cache)
    assert fourth.cache_misses == 1 and set(fourth.index.vulns) == {"B"}


def test_a_planted_pickle_in_the_index_cache_is_never_loaded(tmp_path):
    """A cache file is data: a pickle that would run code when unpickled is only a miss."""
    import pickle

    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    with zipfile.ZipFile(db / "PyPI" / "all.zip", "w") as z:
        z.writestr("A.json", json.dumps(record("A", "PyPI", "p", versions=["1.0"])))
    cache = tmp_path / "cache"
    load_index(db, [Ecosystem.PYPI], cache)
    [entry] = cache.glob("*.msgpack")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("code ran",))

    entry.write_bytes(pickle.dumps(Payload()))
    again = load_index(db, [Ecosystem.PYPI], cache)
    assert not marker.exists() and again.cache_misses == 1 and "A" in again.index.vulns


def test_corrupt_and_missing_database(tmp_path):
    with pytest.raises(DatabaseError, match="not found"):
        load_index(tmp_path / "nope", [Ecosystem.PYPI], None)
    (tmp_path / "PyPI").mkdir()
    (tmp_path / "PyPI" / "all.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatabaseError, match=r"PyPI/all.zip: corrupt dump"):
        load_index(tmp_path, [Ecosystem.PYPI], None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatabaseError, match=r"no <Ecosystem>/all\.zip"):
        load_index(empty, [Ecosystem.PYPI], None)


def test_real_scan_of_uv_fixture(tmp_path):

    fixtures = Path(__file__).parent / "fixtures"
    inv: Inventory = build_inventory([fixtures / "uv"], fixtures)
    loaded = load_index(SHARED, [Ecosystem.PYPI], tmp_path)
    result = scan_inventory(inv, loaded.index)
    found = {(f.package.name, f.id) for f in result.findings}
    assert ("jinja2", "PYSEC-2019-217") in found and ("requests", "PYSEC-2018-28") in found
    req = next(f for f in result.findings if f.id == "PYSEC-2018-28")
    assert req.fixed == "2.20.0" and "CVE-2018-18074" in req.aliases
    shutil.rmtree(tmp_path)


ECOSYSTEM_RECORDS = [
    # faithful reductions of real advisories, one per ecosystem the shared data does not cover
    (
        "npm",
        record(
            "GHSA-p6mc-m468-83gw",
            "npm",
            "lodash",
            [rng("SEMVER", ("introduced", "0"), ("fixed", "4.17.19"))],
            aliases=["CVE-2020-8203"],
        ),
    ),
    (
        "crates.io",
        record(
            "RUSTSEC-2021-0003",
            "crates.io",
            "smallvec",
            [
                rng(
                    "SEMVER",
                    ("introduced", "0.6.3"),
                    ("fixed", "0.6.14"),
                    ("introduced", "1.0.0"),
                    ("fixed", "1.6.1"),
                )
            ],
        ),
    ),
    (
        "Maven",
        record(
            "GHSA-jfh8-c2jp-5v3q",
            "Maven",
            "org.apache.logging.log4j:log4j-core",
            [rng("ECOSYSTEM", ("introduced", "2.0-beta9"), ("fixed", "2.15.0"))],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
        ),
    ),
    (
        "RubyGems",
        record(
            "GHSA-vr8q-g5c7-m54m",
            "RubyGems",
            "nokogiri",
            [rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "1.11.0.rc4"))],
        ),
    ),
    (
        "NuGet",
        record(
            "GHSA-5crp-9r3c-p9vr",
            "NuGet",
            "newtonsoft.json",
            [rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "13.0.1"))],
        ),
    ),
    (
        "Packagist",
        record(
            "GHSA-q559-8m2m-g699",
            "Packagist",
            "guzzlehttp/psr7",
            [rng("ECOSYSTEM", ("introduced", "2.0.0"), ("fixed", "2.1.1"))],
        ),
    ),
]


def test_every_ecosystem_through_a_dump(tmp_path):
    """Dumps laid out like osv.dev's; the fixtures' packages match by each ecosystem's rules."""
    db = tmp_path / "db"
    for eco, rec in ECOSYSTEM_RECORDS:
        (db / eco).mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(db / eco / "all.zip", "w") as z:
            z.writestr(f"{rec['id']}.json", json.dumps(rec))
    fixtures = Path(__file__).parent / "fixtures"
    names = ["npm-v3", "cargo", "maven", "ruby", "nuget", "composer"]
    inventory = build_inventory([fixtures / n for n in names], fixtures)
    loaded = load_index(db, {p.ecosystem for p in inventory.packages}, tmp_path / "cache")
    result = scan_inventory(inventory, loaded.index)
    got = {(f.package.name, f.package.version, f.id, f.fixed) for f in result.findings}
    assert got == {
        ("lodash", "4.17.15", "GHSA-p6mc-m468-83gw", "4.17.19"),
        ("smallvec", "1.6.0", "RUSTSEC-2021-0003", "1.6.1"),
        ("org.apache.logging.log4j:log4j-core", "2.14.1", "GHSA-jfh8-c2jp-5v3q", "2.15.0"),
        ("nokogiri", "1.10.4", "GHSA-vr8q-g5c7-m54m", "1.11.0.rc4"),  # platform suffix stripped
        ("Newtonsoft.Json", "12.0.1", "GHSA-5crp-9r3c-p9vr", "13.0.1"),  # NuGet names are case-insensitive
        ("guzzlehttp/psr7", "2.1.0", "GHSA-q559-8m2m-g699", "2.1.1"),
    }
    log4j = next(f for f in result.findings if f.id == "GHSA-jfh8-c2jp-5v3q")
    assert log4j.severity is Severity.CRITICAL and log4j.rating.score == 10.0


def test_api_scan_with_in_memory_source_and_missing_dump_warning(tmp_path):
    (tmp_path / "requirements.txt").write_text("Jinja2==2.10\n")
    (tmp_path / "Cargo.lock").write_text(
        'version = 3\n[[package]]\nname = "smallvec"\nversion = "1.6.0"\n'
        'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
    )
    source = RecordsSource((record("X-1", "PyPI", "jinja2", versions=["2.10"]),))
    result = api.scan([tmp_path], project=tmp_path, source=source)
    assert [(f.package.name, f.id) for f in result.findings] == [("Jinja2", "X-1")]
    result = api.scan([tmp_path], project=tmp_path, source=DumpSource(SHARED, tmp_path / "cache"))
    assert any(f.id == "PYSEC-2019-217" for f in result.findings)
    assert result.warnings == [
        f"no crates.io database in {SHARED} (crates.io/all.zip); crates.io packages were not checked"
    ]
