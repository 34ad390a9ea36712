"""Match an inventory against the OSV index: one finding per (package, vulnerability), aliases merged.

Findings below the severity threshold or covered by a live ignore stay in the result (marked) so
every output can show them; ``ScanResult.failing`` is what decides the exit code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

from buildyard.deps.errors import IgnoreFileError, LockfileError
from buildyard.deps.model import Ecosystem, Inventory, Package, normalize_name
from buildyard.deps.osv import Match, OsvIndex, Vulnerability, affected
from buildyard.deps.parsers._util import load_yaml
from buildyard.deps.severity import Rating
from buildyard.deps.versions import InvalidVersionError, sort_key
from buildyard.model import Severity


@dataclass(frozen=True, slots=True)
class Ignore:
    """An accepted finding: a vulnerability id (or alias), optionally one package, a reason and an expiry."""

    id: str
    reason: str
    expires: dt.date
    package: str | None = None
    line: int = 0

    def covers(self, finding: Finding) -> bool:
        """True if this rule names the finding (by id or alias, and package when given)."""
        if (
            self.package is not None
            and normalize_name(finding.package.ecosystem, self.package) != finding.package.normalized_name
        ):
            return False
        return self.id == finding.id or self.id in finding.aliases


@dataclass(frozen=True, slots=True)
class Finding:
    """A vulnerable package: the merged vulnerability ids, severity and the version to upgrade to."""

    package: Package
    id: str
    aliases: tuple[str, ...]
    summary: str
    rating: Rating
    fixed: str | None
    references: tuple[str, ...] = ()
    ignored_by: Ignore | None = None
    below_threshold: bool = False

    @property
    def severity(self) -> Severity:
        """The finding's severity band."""
        return self.rating.severity


@dataclass(slots=True)
class ScanResult:
    """Everything a report needs: the inventory, findings, warnings and what the database held."""

    inventory: Inventory
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    threshold: Severity = Severity.NONE

    @property
    def failing(self) -> list[Finding]:
        """Findings at or above the threshold that no live ignore covers."""
        return [f for f in self.findings if f.ignored_by is None and not f.below_threshold]


def match_package(index: OsvIndex, pkg: Package) -> list[Finding]:
    """Findings for one package: every matching record, records linked by aliases merged into one."""
    entries = index.by_package.get((pkg.ecosystem, pkg.normalized_name))
    if not entries or not pkg.version:
        return []
    matches: list[tuple[Match, Rating | None]] = []
    for entry in entries:
        hit = affected(entry, pkg.ecosystem, pkg.version)
        if hit is not None:
            matches.append((hit, entry.rating))
    if not matches:
        return []
    groups = _alias_groups([index.vulns[m.vuln_id] for m, _ in matches if m.vuln_id in index.vulns])
    findings = []
    for members in groups:
        ids = {v.id for v in members}
        group_matches = [(m, r) for m, r in matches if m.vuln_id in ids]
        all_ids = sorted(ids | {a for v in members for a in v.aliases})
        primary = sorted(ids, key=_id_preference)[0]
        ratings = [r for _, r in group_matches if r is not None] + [v.rating for v in members]
        rating = max(
            ratings, key=lambda r: (r.severity is not Severity.UNKNOWN, r.severity.rank, r.score or 0)
        )
        fixes = [m.fixed for m, _ in group_matches if m.fixed]
        findings.append(
            Finding(
                package=pkg,
                id=primary,
                aliases=tuple(a for a in all_ids if a != primary),
                summary=next((v.summary for v in members if v.id == primary), ""),
                rating=rating,
                fixed=_highest(pkg.ecosystem, fixes),
                references=next((v.references for v in members if v.id == primary), ()),
            )
        )
    return findings


def _id_preference(vuln_id: str) -> tuple[int, str]:
    """Primary id of a merged group: the ecosystem database's own id first, then GHSA, then CVE."""
    order = ("PYSEC-", "GO-", "RUSTSEC-", "GHSA-", "CVE-")
    rank = next((i for i, p in enumerate(order) if vuln_id.startswith(p)), len(order))
    return (rank, vuln_id)


def _alias_groups(vulns: list[Vulnerability]) -> list[list[Vulnerability]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    unique = {v.id: v for v in vulns}
    for vuln in unique.values():
        for alias in vuln.aliases:
            parent[find(alias)] = find(vuln.id)
    groups: dict[str, list[Vulnerability]] = {}
    for vuln in unique.values():
        groups.setdefault(find(vuln.id), []).append(vuln)
    return sorted(groups.values(), key=lambda g: min(v.id for v in g))


def _highest(ecosystem: Ecosystem, versions: list[str]) -> str | None:
    """The version that fixes every merged record: the highest of their fixes."""
    if not versions:
        return None
    try:
        best = max(set(versions), key=lambda v: sort_key(ecosystem, v))
    except (InvalidVersionError, TypeError):
        best = sorted(versions)[-1]
    if ecosystem is Ecosystem.GO and not best.startswith("v"):
        best = "v" + best  # OSV drops Go's "v"; go.mod and `go get` spell it
    return best


def scan_inventory(
    inventory: Inventory,
    index: OsvIndex,
    *,
    threshold: Severity = Severity.NONE,
    ignores: list[Ignore] | None = None,
    today: dt.date | None = None,
) -> ScanResult:
    """Match every package of ``inventory``; apply the threshold and the ignores that have not expired."""
    today = today or dt.datetime.now(dt.UTC).date()
    result = ScanResult(inventory, threshold=threshold)
    live = []
    for rule in ignores or []:
        if rule.expires < today:
            result.warnings.append(
                f"ignore of {rule.id} expired on {rule.expires.isoformat()} (line {rule.line}); "
                "it no longer applies"
            )
        else:
            live.append(rule)
    seen: set[tuple[Ecosystem, str, str]] = set()
    for pkg in inventory.packages:
        for finding in match_package(index, pkg):
            key = (pkg.ecosystem, f"{pkg.source}:{pkg.normalized_name}@{pkg.version}", finding.id)
            if key in seen:
                continue
            seen.add(key)
            covering = next((r for r in live if r.covers(finding)), None)
            result.findings.append(
                replace(
                    finding, ignored_by=covering, below_threshold=not finding.severity.at_least(threshold)
                )
            )
    return result


def load_ignores(path: Path) -> list[Ignore]:
    """Read an ignore file: ``ignore: [{id, reason, expires: YYYY-MM-DD, package?}]`` (YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IgnoreFileError(f"{path}: cannot read the ignore file: {exc.strerror}") from exc
    import yaml  # noqa: PLC0415

    try:
        data = load_yaml(text, str(path), hint="fix the ignore file")
    except LockfileError as exc:
        raise IgnoreFileError(str(exc)) from exc
    nodes = yaml.compose(text, Loader=yaml.SafeLoader)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("ignore"), list):
        raise IgnoreFileError(f"{path}:1: expected a mapping with an 'ignore' list")
    lines = _item_lines(nodes)
    rules = []
    for i, item in enumerate(data["ignore"]):
        line = lines[i] if i < len(lines) else 0
        where = f"{path}:{line}"
        if not isinstance(item, dict):
            raise IgnoreFileError(f"{where}: each ignore must be a mapping with id, reason and expires")
        unknown = set(item) - {"id", "reason", "expires", "package"}
        if unknown:
            raise IgnoreFileError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                "(allowed: id, reason, expires, package)"
            )
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise IgnoreFileError(f"{where}: 'id' is required (a vulnerability id or alias)")
        if not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise IgnoreFileError(f"{where}: ignore of {item['id']} needs a 'reason'")
        expires = item.get("expires")
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                expires = None
        if not isinstance(expires, dt.date):
            raise IgnoreFileError(f"{where}: ignore of {item['id']} needs 'expires: YYYY-MM-DD'")
        package = item.get("package")
        rules.append(
            Ignore(item["id"], item["reason"].strip(), expires, str(package) if package else None, line)
        )
    return rules


def _item_lines(node: object) -> list[int]:
    import yaml  # noqa: PLC0415

    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "ignore" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
