"""Repository configuration: the ordered channels, their promotion policy and retention.

Read from ``<root>/config.json`` when present (else the defaults: ``dev → staging → production``,
each channel requiring the one before it, no retention limits)::

    {"channels": [
        {"name": "dev", "keep_last": 20},
        {"name": "staging", "requires": "dev", "keep_last": 10, "max_age_days": 30},
        {"name": "production", "requires": "staging", "requires_gates": true}],
     "unpromoted": {"keep_last": 50, "max_age_days": 14}}
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from buildyard.artifacts.errors import ArtifactError
from buildyard.artifacts.names import check_name


class Retention(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Keep the last ``keep_last`` versions and/or versions newer than ``max_age_days`` (either keeps)."""

    keep_last: int | None = None
    max_age_days: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when nothing is ever deleted."""
        return self.keep_last is None and self.max_age_days is None


class Channel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One channel: ``requires`` names the channel a version must have been in before promotion here;
    ``requires_gates`` asks the caller's gate check (the source run's gates) to pass."""

    name: str
    requires: str | None = None
    requires_gates: bool = False
    keep_last: int | None = None
    max_age_days: float | None = None

    @property
    def retention(self) -> Retention:
        """This channel's retention rule."""
        return Retention(self.keep_last, self.max_age_days)


class RepoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Channels in promotion order and the retention of versions never promoted."""

    channels: tuple[Channel, ...] = (
        Channel("dev"),
        Channel("staging", requires="dev"),
        Channel("production", requires="staging"),
    )
    unpromoted: Retention = Retention()

    def channel(self, name: str) -> Channel:
        """The channel ``name``; a clear error naming the configured ones otherwise."""
        for c in self.channels:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.channels)
        raise ArtifactError(f"unknown channel {name!r} (channels: {known})")

    @property
    def names(self) -> list[str]:
        """Channel names in order."""
        return [c.name for c in self.channels]


def load_config(path: Path) -> RepoConfig:
    """Parse ``config.json`` (defaults if absent); one-line error naming the file otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return RepoConfig()
    try:
        config = msgspec.json.decode(raw, type=RepoConfig)
    except msgspec.DecodeError as exc:
        raise ArtifactError(f"{path}: invalid repository config: {exc}") from None
    seen: set[str] = set()
    for c in config.channels:
        check_name(c.name)
        if c.name in seen:
            raise ArtifactError(f"{path}: channel {c.name!r} is listed twice")
        if c.requires is not None and c.requires not in seen:
            raise ArtifactError(
                f"{path}: channel {c.name!r} requires {c.requires!r}, which is not listed before it"
            )
        seen.add(c.name)
    if not config.channels:
        raise ArtifactError(f"{path}: at least one channel is required")
    return config
