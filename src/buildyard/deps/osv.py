"""OSV records reduced to what matching needs, and the schema's evaluation algorithm.

``index_records`` turns OSV JSON records into an ``OsvIndex`` keyed by (ecosystem, normalized name);
``affected`` evaluates one ``AffectedEntry`` against a version exactly as the OSV schema's
``IsVulnerable`` pseudocode says (``versions`` list, then ``ECOSYSTEM``/``SEMVER`` ranges with
``introduced``/``fixed``/``last_affected``/``limit``; ``GIT`` ranges need a repository and are skipped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from buildyard.deps.model import Ecosystem, normalize_name
from buildyard.deps.severity import Rating, rate
from buildyard.deps.versions import InvalidVersionError, canonical, go_semver, semver_key, sort_key

_ECOSYSTEMS = {e.value: e for e in Ecosystem}


@dataclass(frozen=True, slots=True)
class Event:
    """One range event: ``kind`` is introduced, fixed, last_affected or limit."""

    kind: str
    version: str


@dataclass(frozen=True, slots=True)
class Range:
    """An ``ECOSYSTEM`` or ``SEMVER`` range with its events in record order."""

    type: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class AffectedEntry:
    """One ``affected[]`` item of a record, for one package."""

    vuln_id: str
    versions: frozenset[str]
    ranges: tuple[Range, ...]
    rating: Rating | None = None


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """The record-level facts a finding reports."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    rating: Rating
    published: str = ""
    modified: str = ""
    references: tuple[str, ...] = ()


@dataclass(slots=True)
class OsvIndex:
    """Records of one or more dumps, keyed for lookup by package."""

    by_package: dict[tuple[Ecosystem, str], list[AffectedEntry]] = field(default_factory=dict)
    vulns: dict[str, Vulnerability] = field(default_factory=dict)
    withdrawn: int = 0

    def merge(self, other: OsvIndex) -> None:
        """Add ``other``'s records to this index."""
        for key, entries in other.by_package.items():
            self.by_package.setdefault(key, []).extend(entries)
        self.vulns.update(other.vulns)
        self.withdrawn += other.withdrawn


def ecosystem_of(value: str) -> Ecosystem | None:
    """The ecosystem of an OSV ``package.ecosystem`` string (``Maven:<repo>`` suffixes dropped)."""
    if value in _ECOSYSTEMS:
        return _ECOSYSTEMS[value]
    base = value.split(":", 1)[0]
    if base in ("Maven", "Packagist"):
        return _ECOSYSTEMS[base]
    return None


def index_records(records: Iterable[dict[str, Any]]) -> OsvIndex:
    """Build an index from OSV records; ``withdrawn`` records are counted and left out."""
    index = OsvIndex()
    for record in records:
        vuln_id = record["id"]
        if record.get("withdrawn"):
            index.withdrawn += 1
            continue
        index.vulns[vuln_id] = Vulnerability(
            id=vuln_id,
            aliases=tuple(a for a in record.get("aliases") or [] if a != vuln_id),
            summary=(record.get("summary") or record.get("details") or "").strip().split("\n", 1)[0][:200],
            rating=rate(record.get("severity"), record.get("database_specific")),
            published=record.get("published", ""),
            modified=record.get("modified", ""),
            references=tuple(
                r["url"] for r in record.get("references") or [] if isinstance(r, dict) and "url" in r
            ),
        )
        for item in record.get("affected") or []:
            pkg = item.get("package") or {}
            eco = ecosystem_of(str(pkg.get("ecosystem", "")))
            if eco is None or not pkg.get("name"):
                continue
            ranges = tuple(
                Range(r["type"], tuple(Event(*next(iter(e.items()))) for e in r.get("events", []) if e))
                for r in item.get("ranges") or []
                if r.get("type") in ("ECOSYSTEM", "SEMVER")
            )
            own = item.get("severity")
            entry = AffectedEntry(
                vuln_id=vuln_id,
                versions=frozenset(canonical(eco, str(v)) for v in item.get("versions") or []),
                ranges=ranges,
                rating=rate(own) if own else None,
            )
            index.by_package.setdefault((eco, normalize_name(eco, pkg["name"])), []).append(entry)
    return index


@dataclass(frozen=True, slots=True)
class Match:
    """A version found affected by one entry, with the version that fixes the range it fell in."""

    vuln_id: str
    fixed: str | None
    via: str


def affected(entry: AffectedEntry, ecosystem: Ecosystem, version: str) -> Match | None:
    """Evaluate the OSV ``IsVulnerable`` algorithm for one affected entry; None if not affected."""
    fix: str | None = None
    hit_via = ""
    if canonical(ecosystem, version) in entry.versions:
        hit_via = "versions"
    for rng in entry.ranges:
        result = _in_range(rng, ecosystem, version)
        if result is not None:
            hit, fixed = result
            if hit:
                hit_via = hit_via or rng.type
                if fixed is not None and fix is None:
                    fix = fixed
    if hit_via:
        return Match(entry.vuln_id, fix, hit_via)
    return None


def _key_fn(rng: Range, ecosystem: Ecosystem) -> Any:
    if rng.type == "SEMVER":
        if ecosystem is Ecosystem.GO:
            return lambda v: semver_key(go_semver(v))
        return semver_key
    return lambda v: sort_key(ecosystem, v)


def _in_range(rng: Range, ecosystem: Ecosystem, version: str) -> tuple[bool, str | None] | None:
    """(affected, fixed version of the interval it is in); None when a version cannot be ordered."""
    key = _key_fn(rng, ecosystem)
    try:
        v = key(version)
        keyed = []
        limits = []
        for evt in rng.events:
            if evt.kind == "introduced" and evt.version == "0":
                keyed.append((0, None, evt))
            elif evt.kind == "limit":
                if evt.version != "*" and "*" not in evt.version:
                    limits.append(key(evt.version))
                else:
                    limits.append(None)
            elif evt.kind in ("introduced", "fixed", "last_affected"):
                keyed.append((1, key(evt.version), evt))
    except InvalidVersionError:
        return None
    if limits and not any(limit is None or v < limit for limit in limits):
        return (False, None)
    keyed.sort(key=lambda item: (item[0], item[1]) if item[1] is not None else (0, 0))
    vulnerable = False
    fixed: str | None = None
    for rank, evt_key, evt in keyed:
        if evt.kind == "introduced":
            if rank == 0 or v >= evt_key:
                vulnerable = True
                fixed = None
        elif evt.kind == "fixed":
            if v >= evt_key:
                vulnerable = False
            elif vulnerable and fixed is None:
                fixed = evt.version
        elif evt.kind == "last_affected" and v > evt_key:
            vulnerable = False
    return (vulnerable, fixed if vulnerable else None)
