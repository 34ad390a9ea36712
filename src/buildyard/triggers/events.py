"""``TriggerEvent``: one event that may start a pipeline, whatever sent it (webhook, poll, CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from buildyard.model import Event


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """An event in one shape: a GitHub/GitLab/generic delivery, a poll, or ``buildyard run --event``.

    ``changed_paths`` is ``None`` when unknown (then path filters do not hold the run back);
    ``base_branch`` is a pull request's target branch; ``delivery_id`` deduplicates deliveries.
    """

    event: Event
    branch: str = ""
    tag: str = ""
    sha: str = ""
    base_branch: str = ""
    changed_paths: tuple[str, ...] | None = None
    repository_url: str = ""
    repository: str = ""  # full name: owner/name (GitHub), group/project (GitLab)
    message: str = ""  # head commit message
    delivery_id: str = ""
    action: str = ""  # pull request action (opened, synchronize, reopened)
    source: str = "cli"  # github | gitlab | generic | poll | cli

    @property
    def ref(self) -> str:
        """The git ref: ``refs/tags/T``, ``refs/heads/B`` or empty."""
        if self.tag:
            return f"refs/tags/{self.tag}"
        return f"refs/heads/{self.branch}" if self.branch else ""
