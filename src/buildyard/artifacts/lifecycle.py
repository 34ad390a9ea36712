"""Lifecycle of versions: promotion through channels (with its policy), retention and prune, fsck, diff.

Promotion appends to the audit log, which is the only record of channel pointers, so a promotion is
exactly one fsynced append under the repository lock. Retention never deletes a version a channel
points to, nor the one it pointed to before (the rollback target).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from buildyard.artifacts.audit import Action
from buildyard.artifacts.config import Retention
from buildyard.artifacts.errors import PolicyError, VerificationError
from buildyard.artifacts.model import Manifest, Record
from buildyard.artifacts.repo import NAMESPACE, Repository
from buildyard.artifacts.semver import Version
from buildyard.artifacts.transfer import check_blob

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """Answer of a gate check: did the run that built the artifact pass its gates?"""

    passed: bool
    detail: str = ""


#: Called with the manifest (its ``build.run_id`` names the source run) when a channel requires gates.
GateCheck = Callable[[Manifest], GateVerdict]


@dataclass(frozen=True, slots=True)
class Promotion:
    """Result of a promotion: where the channel pointed before, and whether anything changed."""

    artifact: str
    version: str
    channel: str
    previous: str | None
    changed: bool


def promote(
    repo: Repository,
    ref: str,
    channel: str,
    *,
    actor: str,
    reason: str | None = None,
    gates_check: GateCheck | None = None,
) -> Promotion:
    """Point ``channel`` at ``ref`` after checking the signature and the channel's policy.

    Refused (:class:`PolicyError`) if the channel requires an earlier channel the version was never in,
    or requires the source run's gates and ``gates_check`` is absent or says they failed.
    """
    target = repo.config.channel(channel)
    record = repo.resolve(ref)
    verified = repo.verify_signature(record)
    name, version = record.artifact, record.version
    with repo.lock():
        state = repo.channel_state()
        if target.requires and not state.was_in(name, version, target.requires):
            raise PolicyError(
                f"{name}@{version} has never been in {target.requires!r}; promote it there before {channel!r}"
            )
        if target.requires_gates:
            if gates_check is None:
                raise PolicyError(
                    f"channel {channel!r} requires the source run's gates to have passed and no gate "
                    f"check is available (run {verified.manifest.build.run_id or 'unknown'})"
                )
            verdict = gates_check(verified.manifest)
            if not verdict.passed:
                detail = f": {verdict.detail}" if verdict.detail else ""
                raise PolicyError(
                    f"{name}@{version} cannot go to {channel!r}: the source run's gates failed{detail}"
                )
        current = state.current(name, channel)
        if current == version:
            return Promotion(name, version, channel, state.previous(name, channel), changed=False)
        repo.audit.append(Action.PROMOTE, name, version, actor=actor, channel=channel, reason=reason)
    return Promotion(name, version, channel, current, changed=True)


@dataclass(frozen=True, slots=True)
class PruneItem:
    """A version retention would delete, and why."""

    record: Record
    group: str
    reason: str


@dataclass(slots=True)
class PruneResult:
    """What prune deleted (or would delete, with ``dry_run``) and the space garbage collection freed."""

    items: list[PruneItem] = field(default_factory=list)
    dry_run: bool = False
    blobs_removed: int = 0
    bytes_freed: int = 0


def _retention_group(repo: Repository, record: Record, ever_in: dict[tuple[str, str], set[str]]) -> str:
    group = "unpromoted"
    for ch in repo.config.names:  # highest channel reached wins
        if record.version in ever_in.get((record.artifact, ch), set()):
            group = ch
    return group


def plan_prune(repo: Repository, *, now: float | None = None) -> list[PruneItem]:
    """Versions the retention rules would delete (never a channel's current or previous version)."""
    now = time.time() if now is None else now
    state = repo.channel_state()
    protected = state.protected()
    ever_in = {key: set(versions) for key, versions in state.history.items()}
    rules: dict[str, Retention] = {c.name: c.retention for c in repo.config.channels}
    rules["unpromoted"] = repo.config.unpromoted
    groups: dict[tuple[str, str], list[Record]] = {}
    for rec in repo.records():
        groups.setdefault((rec.artifact, _retention_group(repo, rec, ever_in)), []).append(rec)
    items: list[PruneItem] = []
    for (artifact, group), records in sorted(groups.items()):
        rule = rules[group]
        if rule.unlimited:
            continue
        newest_first = sorted(records, key=lambda r: Version.parse(r.version).sort_key(), reverse=True)
        for index, rec in enumerate(newest_first):
            in_last = rule.keep_last is not None and index < rule.keep_last
            young = rule.max_age_days is not None and rec.pushed_at >= now - rule.max_age_days * _DAY
            if in_last or young or (artifact, rec.version) in protected:
                continue
            why = []
            if rule.keep_last is not None:
                why.append(f"not among the last {rule.keep_last}")
            if rule.max_age_days is not None:
                why.append(f"older than {rule.max_age_days:g} days")
            items.append(PruneItem(rec, group, f"{group}: {' and '.join(why)}"))
    return items


def prune(
    repo: Repository, *, dry_run: bool = False, actor: str, now: float | None = None, grace_s: float = 600.0
) -> PruneResult:
    """Delete what :func:`plan_prune` selects (re-planned under the lock), then collect garbage blobs."""
    result = PruneResult(dry_run=dry_run)
    if dry_run:
        result.items = plan_prune(repo, now=now)
        return result
    with repo.lock():
        result.items = plan_prune(repo, now=now)
        for item in result.items:
            repo.delete(item.record, actor=actor, reason=f"retention ({item.reason})")
    result.blobs_removed, result.bytes_freed = repo.gc(grace_s=grace_s)
    return result


@dataclass(slots=True)
class FsckReport:
    """Everything ``fsck`` checked and every problem found."""

    versions: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def fsck(repo: Repository) -> FsckReport:
    """Check every version's signature, manifest, SBOM and file blobs, and the audit log's chain."""
    report = FsckReport()
    records, unreadable = repo.scan()
    for rec in records:
        report.versions += 1
        try:
            verified = repo.verify_signature(rec)
        except VerificationError as exc:
            report.problems.append(str(exc))
            continue
        for entry in verified.manifest.files:
            report.files += 1
            problem = check_blob(repo.cas, entry)
            if problem:
                report.problems.append(f"{rec.name}: {problem}")
    for path in unreadable:
        report.problems.append(
            f"{path}: unreadable version record (kept; restore it from a backup, or delete it by hand "
            "to drop the version)"
        )
    report.problems.extend(_missing_records(repo, {r.name for r in records}, set(unreadable)))
    report.problems.extend(repo.audit.check())
    return report


def _missing_records(repo: Repository, present: set[str], unreadable: set[Path]) -> list[str]:
    """Versions the audit log says were pushed and not deleted whose record file is gone."""
    live: dict[str, bool] = {}
    for event in repo.audit.events():
        if event.action in (Action.PUSH, Action.DELETE):
            live[f"{event.artifact}@{event.version}"] = event.action == Action.PUSH
    return [
        f"{ref}: pushed (audit log) but its version record is missing"
        for ref, alive in sorted(live.items())
        if alive and ref not in present and repo.store.refs.path(NAMESPACE, ref) not in unreadable
    ]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two versions: ``kind`` is added/removed/changed."""

    kind: str
    key: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class ArtifactDiff:
    """Files, dependencies and build metadata that differ between two versions."""

    old: str
    new: str
    files: list[Change]
    dependencies: list[Change]
    metadata: list[Change]


def _changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        kind = "added" if a is None else "removed" if b is None else "changed"
        out.append(Change(kind, key, a, b))
    return out


def diff(repo: Repository, ref_a: str, ref_b: str) -> ArtifactDiff:
    """What changed from ``ref_a`` to ``ref_b`` (files by SHA-256, dependencies by version)."""
    a, b = repo.resolve(ref_a), repo.resolve(ref_b)
    ma, mb = repo.manifest(a), repo.manifest(b)

    def deps(m: Manifest) -> dict[str, str]:
        return {f"{d.ecosystem}:{d.name}": d.version for d in m.dependencies}

    def meta(m: Manifest) -> dict[str, str]:
        fields = {
            "type": m.type.value,
            "commit": m.build.commit,
            "branch": m.build.branch,
            "tag": m.build.tag,
        }
        return {k: v for k, v in fields.items() if v}

    return ArtifactDiff(
        a.name,
        b.name,
        _changes({f.path: f.sha256 for f in ma.files}, {f.path: f.sha256 for f in mb.files}),
        _changes(deps(ma), deps(mb)),
        _changes(meta(ma), meta(mb)),
    )
