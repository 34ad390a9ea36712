"""The outbox worker: sends due messages on its own threads, so a slow or dead receiver never delays
a run (runs only insert rows). Stop it with ``stop()``; killed, it leaves leases that expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from buildyard.notify.outbox import Outbox, OutboxEntry, OutboxStatus
from buildyard.notify.send import DEFAULT_TIMEOUT, Secrets, SendError, send

Sender = Callable[[OutboxEntry, Secrets], None]


class OutboxWorker:
    """Claims due messages and sends up to ``concurrency`` at a time."""

    def __init__(
        self,
        outbox: Outbox,
        secrets: Secrets,
        *,
        sender: Sender | None = None,
        concurrency: int = 8,
        batch: int = 50,
        poll: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.secrets = secrets
        #: One HTTP client for every message (connection reuse, one TLS context); closed by ``stop``.
        self._client = httpx.Client(follow_redirects=False, timeout=DEFAULT_TIMEOUT)
        self.sender: Sender = sender or (lambda entry, secrets: send(entry, secrets, client=self._client))
        self.batch = batch
        self.poll = poll
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="notify")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _one(self, entry: OutboxEntry) -> tuple[int, str | None]:
        try:
            self.sender(entry, self.secrets)
        except SendError as exc:
            return entry.id, str(exc)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not kill the worker: dead-letter it
            return entry.id, f"{type(exc).__name__}: {exc}"
        return entry.id, None

    def run_once(self) -> list[OutboxStatus]:
        """Send every message due now (one batch, concurrently); their new statuses, in claim order."""
        entries = self.outbox.claim(self.batch)
        return self.outbox.finish(list(self._pool.map(self._one, entries)))

    def drain(self, deadline: float) -> bool:
        """Send until nothing is pending or ``deadline`` (monotonic) passes; whether all went out."""
        while time.monotonic() < deadline:
            self.run_once()
            due = self.outbox.next_due()
            if due is None:
                return True
            wait = min(max(0.0, due - self.outbox.clock()), deadline - time.monotonic(), self.poll)
            if wait > 0:
                self._stop.wait(wait)
        return self.outbox.next_due() is None

    def start(self) -> None:
        """Run in a background thread until ``stop()``."""
        self._thread = threading.Thread(target=self._loop, name="notify-outbox", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_once():
                self._stop.wait(self.poll)

    def stop(self) -> None:
        """Stop the loop and the senders (in-flight sends finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()
