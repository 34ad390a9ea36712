"""Channel pointers derived from the audit log (pure): which version each channel points to, which it
pointed to before, and every channel a version has ever been in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from buildyard.artifacts.audit import Action, AuditEvent


@dataclass(slots=True)
class ChannelState:
    """Promotion history per ``(artifact, channel)``, oldest first."""

    history: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    def current(self, artifact: str, channel: str) -> str | None:
        """The version ``channel`` points to."""
        versions = self.history.get((artifact, channel))
        return versions[-1] if versions else None

    def previous(self, artifact: str, channel: str) -> str | None:
        """The version ``channel`` pointed to before the current one (the rollback target)."""
        versions = self.history.get((artifact, channel), [])
        current = versions[-1] if versions else None
        return next((v for v in reversed(versions) if v != current), None)

    def was_in(self, artifact: str, version: str, channel: str) -> bool:
        """True if ``version`` was ever promoted to ``channel``."""
        return version in self.history.get((artifact, channel), [])

    def channels_of(self, artifact: str, version: str) -> list[str]:
        """Channels currently pointing at ``version``."""
        return sorted(
            ch for (a, ch), vs in self.history.items() if a == artifact and vs and vs[-1] == version
        )

    def protected(self) -> set[tuple[str, str]]:
        """``(artifact, version)`` pairs that retention must keep: every channel's current and previous."""
        keep: set[tuple[str, str]] = set()
        for artifact, channel in self.history:
            for v in (self.current(artifact, channel), self.previous(artifact, channel)):
                if v is not None:
                    keep.add((artifact, v))
        return keep


def derive(events: Iterable[AuditEvent]) -> ChannelState:
    """Replay promotions in log order."""
    state = ChannelState()
    for e in events:
        if e.action is Action.PROMOTE and e.channel:
            state.history[(e.artifact, e.channel)].append(e.version)
    return state
