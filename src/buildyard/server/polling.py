"""Repository polling (``poll: 1m`` on a project in ``server.yml``), for repositories that cannot send
webhooks: every interval, ``git ls-remote --heads --tags`` of the project's repository; a new or moved
head becomes a push event, a new tag a tag event, queued like a webhook's (the commit's own ``on:``
decides in the runner).

Each (ref, sha) is queued once, also across restarts and server processes sharing one database:
its row in ``server_polled_refs`` is inserted in the transaction that queues the run, and a second
insert of the same key fails (nothing queued). The first poll of a project only records what the
repository holds (starting to poll a repository with 500 tags queues nothing); deleted refs are
ignored. A project whose repository cannot be listed prints one line per distinct problem.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from buildyard.model import Event
from buildyard.server.state import GitError, git
from buildyard.store.serverstate import polled_refs
from buildyard.triggers.events import TriggerEvent

if TYPE_CHECKING:
    from buildyard.server.state import ServerState

#: Most refs read from one listing (a larger repository is cut there, with a warning).
MAX_REFS = 20_000
MAX_REF = 500


def parse_ls_remote(text: str) -> dict[str, str]:
    """``git ls-remote`` output → ``{ref: commit sha}`` of heads and tags (annotated tags peeled)."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in text.splitlines()[: MAX_REFS * 2]:
        sha, _, ref = line.partition("\t")
        sha, ref = sha.strip(), ref.strip()
        if (
            len(sha) not in (40, 64)
            or len(ref) > MAX_REF
            or not ref.startswith(("refs/heads/", "refs/tags/"))
        ):
            continue
        if ref.endswith("^{}"):
            peeled[ref[:-3]] = sha
        else:
            refs[ref] = sha
    return {ref: peeled.get(ref, sha) for ref, sha in refs.items()}


def event_of(ref: str, sha: str) -> TriggerEvent:
    """The push (branch) or tag event of a ref seen at ``sha``."""
    if ref.startswith("refs/tags/"):
        return TriggerEvent(Event.TAG, tag=ref.removeprefix("refs/tags/"), sha=sha, source="poll")
    return TriggerEvent(Event.PUSH, branch=ref.removeprefix("refs/heads/"), sha=sha, source="poll")


class RepoPoller:
    """Polls the projects that set ``poll`` (see the module docstring)."""

    def __init__(
        self,
        state: ServerState,
        *,
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.on_queued = on_queued
        self.clock = clock
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: dict[str, str] = {}

    @property
    def projects(self) -> list[str]:
        """The projects polled."""
        return [p.name for p in self.state.config.projects if p.poll is not None]

    def start(self) -> None:
        """Poll in a background thread until ``stop()`` (nothing to do without a polled project)."""
        if not self.projects:
            return
        self._thread = threading.Thread(target=self._loop, name="repo-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (waits for a listing in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            for name in self.projects:
                if self._due.get(name, 0.0) <= now:
                    config = self.state.project(name)
                    self._due[name] = now + float(config.poll or 60.0)
                    if self.poll(name) and self.on_queued is not None:
                        self.on_queued()
            wait = min(self._due.values(), default=now + 1.0) - self.clock()
            self._stop.wait(max(0.05, min(wait, 1.0)))

    def poll(self, project: str) -> list[str]:
        """List ``project``'s repository once and queue what is new; the queue entries made."""
        config = self.state.project(project)
        try:
            listed = parse_ls_remote(git("ls-remote", "--heads", "--tags", "--", config.repo))
        except GitError as exc:
            text = str(exc)
            if self._last_error.get(project) != text:  # once per distinct problem
                print(f"buildyard serve: polling {project}: {text[:300]}", file=sys.stderr, flush=True)
            self._last_error[project] = text
            return []
        self._last_error.pop(project, None)
        return self.record(project, listed)

    def record(self, project: str, listed: dict[str, str]) -> list[str]:
        """Queue the refs of ``listed`` not seen before (only record them on a project's first poll)."""
        engine = self.state.engine
        with engine.connect() as conn:
            seen = {
                (r.ref, r.sha)
                for r in conn.execute(
                    sa.select(polled_refs.c.ref, polled_refs.c.sha).where(polled_refs.c.project == project)
                )
            }
        first = not seen
        made: list[str] = []
        for ref, sha in sorted(listed.items()):
            if (ref, sha) in seen:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(
                        sa.insert(polled_refs).values(project=project, ref=ref, sha=sha, seen_at=time.time())
                    )
                    if first:
                        continue
                    entry = self.state.enqueue_event(conn, project, event_of(ref, sha), requested_by="poll")
                    conn.execute(
                        sa.update(polled_refs)
                        .where(
                            polled_refs.c.project == project,
                            polled_refs.c.ref == ref,
                            polled_refs.c.sha == sha,
                        )
                        .values(entry_id=entry)
                    )
                made.append(entry)
            except IntegrityError:
                continue  # another server process queued it first
        return made
