"""Job-level ``concurrency:``: at most one job of a group executes at a time across the runs that
share one buildyard home (a server's runs of a project, and local runs of one checkout).

Files under ``<home>/concurrency/`` (named by a digest of the group), no daemon:

- ``G.lock``: an ``flock`` the executing job holds for its whole attempt (the kernel drops it when
  the process dies, so a killed run never blocks the group);
- ``G.holder``: who holds it (a random token, run number, job) — read by a newcomer that cancels it;
- ``G.cancel.TOKEN``: a newer job with ``cancel_in_progress`` asks the holder ``TOKEN`` to stop; the
  holder polls for it, cancels its job (the job's process tree is ended as on Ctrl-C) and ends
  ``cancelled`` with the reason in the file ("superseded by job X of run N");
- ``G.pending``: the newest waiting job's token. GitHub keeps one pending member per group: a waiting
  job that finds another token there ends ``cancelled`` ("superseded by a newer waiting job").

Small files are written atomically (temp file + rename); everything here is polled every
``POLL`` seconds on the event loop with non-blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from buildyard.engine.request import Executor, JobOutcome, JobRequest, OutputSink, outcome_without_steps
from buildyard.model import JobStatus

if TYPE_CHECKING:
    from buildyard.plan.build import JobInstance

#: Seconds between two looks at the lock, the pending and the cancel files.
POLL = 0.2


def _write(path: Path, text: str) -> None:
    """``text`` into ``path`` atomically (a reader sees the old or the new content, never a part)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    tmp.replace(path)


def _read(path: Path, limit: int = 4096) -> str:
    try:
        with path.open("rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


class JobGroups:
    """The group files of one buildyard home (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self, group: str) -> tuple[Path, Path, Path]:
        """The lock, holder and pending files of ``group``."""
        name = hashlib.sha256(group.encode()).hexdigest()[:32]
        return self.root / f"{name}.lock", self.root / f"{name}.holder", self.root / f"{name}.pending"

    def cancel_file(self, group: str, token: str) -> Path:
        """Where a newer job asks holder ``token`` to stop."""
        return self.paths(group)[0].with_suffix(f".cancel.{token}")


class ConcurrencyExecutor:
    """Holds a job's concurrency group around the layers below (requests of other jobs pass through)."""

    def __init__(self, inner: Executor, *, home: Path, groups: Mapping[str, tuple[str, bool]]) -> None:
        """``groups``: job id → (group, cancel_in_progress) of the jobs that have one."""
        self.inner = inner
        self.files = JobGroups(home / "concurrency")
        self.groups = dict(groups)

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Wait for (or cancel) the group's job in progress, run this one holding the group."""
        found = self.groups.get(request.job_id)
        if found is None or request.side:
            return await self.inner.execute(request, sink)
        group, cancel = found
        started_at = time.time()
        env = dict(request.env)
        me = f"job {request.job_id} of run {env.get('BUILDYARD_RUN_NUMBER', '?')}"
        token = secrets.token_hex(8)
        self.files.root.mkdir(parents=True, exist_ok=True)
        lock, holder, _pending = self.files.paths(group)
        with lock.open("a") as handle:
            refused = await self._acquire(handle, group, token, me, cancel, request, sink)
            if refused:
                return outcome_without_steps(request, JobStatus.CANCELLED, started_at, refused)
            try:
                for stale in self.files.root.glob(f"{lock.stem}.cancel.*"):
                    stale.unlink(missing_ok=True)  # addressed to earlier holders
                _write(holder, json.dumps({"token": token, "who": me, "pid": os.getpid()}))
                return await self._run(request, sink, group, token, started_at)
            finally:
                with contextlib.suppress(OSError):
                    if json.loads(_read(holder) or "{}").get("token") == token:
                        holder.unlink()
                self.files.cancel_file(group, token).unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def _acquire(
        self,
        handle: IO[str],
        group: str,
        token: str,
        me: str,
        cancel: bool,
        request: JobRequest,
        sink: OutputSink | None,
    ) -> str:
        """Take the group's lock; "" when taken, else why this job gives up (a newer one waits)."""
        _lock, holder, pending = self.files.paths(group)
        asked: str | None = None
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                if waiting and _read(pending).split("\n", 1)[0] == token:
                    pending.unlink(missing_ok=True)
                return ""
            if not waiting:
                waiting = True
                _write(pending, f"{token}\n{me}")
                if sink is not None:
                    how = "cancelling" if cancel else "waiting for"
                    sink(
                        request.job_id, f"buildyard: {how} the job in progress in group '{group}'\n".encode()
                    )
            else:
                newest, _, who = _read(pending).partition("\n")
                if newest and newest != token:
                    return (
                        f"superseded by {who[:200] or 'a newer job'} waiting in concurrency group '{group}'"
                    )
            if cancel:
                current = json.loads(_read(holder) or "{}").get("token")
                if isinstance(current, str) and current != asked and current.isalnum():
                    asked = current
                    _write(self.files.cancel_file(group, current), f"superseded by {me}")
            await asyncio.sleep(POLL)

    async def _run(
        self, request: JobRequest, sink: OutputSink | None, group: str, token: str, started_at: float
    ) -> JobOutcome:
        """Run the job; cancel it when a newer member of the group asks."""
        task = asyncio.ensure_future(self.inner.execute(request, sink))
        asked = self.files.cancel_file(group, token)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=POLL)
                if done:
                    return task.result()
                if asked.exists():
                    reason = _read(asked, 500).strip() or "superseded"
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    note = f"buildyard: cancelled: {reason}\n".encode()
                    with contextlib.suppress(OSError), open(request.log_path, "ab") as log:  # noqa: PTH123
                        log.write(note)
                    if sink is not None:
                        sink(request.job_id, note)
                    return outcome_without_steps(request, JobStatus.CANCELLED, started_at, reason)
        finally:
            if not task.done():  # this run is cancelled itself: stop the job, then go on cancelling
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def job_groups(instances: Mapping[str, JobInstance]) -> dict[str, tuple[str, bool]]:
    """Job id → (group, cancel_in_progress) of the plan's instances that have a group."""
    return {
        iid: (inst.concurrency_group, inst.cancel_in_progress)
        for iid, inst in instances.items()
        if inst.concurrency_group
    }
