"""The runner pool looks at the queue once per batch of wakes, and soon after a lone one."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from buildyard.server.runners import TICK_INTERVAL, RunnerPool


def test_a_burst_of_wakes_makes_few_looks_and_a_lone_wake_is_seen_soon(tmp_path: Path) -> None:
    config = SimpleNamespace(runners=1, data_dir=tmp_path, projects=[], poll=30.0)
    pool = RunnerPool(SimpleNamespace(config=config), runners=1)  # type: ignore[arg-type]
    ticks: list[float] = []
    pool._tick = lambda: ticks.append(time.monotonic())  # type: ignore[method-assign]
    thread = threading.Thread(target=pool._loop, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not ticks and time.monotonic() < deadline:
            time.sleep(0.005)
        # 500 wakes in 0.5 s (deliveries at 1,000/s): one look per TICK_INTERVAL at most, not one per wake
        start = time.monotonic()
        while time.monotonic() - start < 0.5:
            pool.wake()
            time.sleep(0.001)
        time.sleep(2 * TICK_INTERVAL)
        burst = [t for t in ticks if t >= start]
        assert 2 <= len(burst) <= 0.5 / TICK_INTERVAL + 3, burst
        assert all(b - a >= TICK_INTERVAL * 0.9 for a, b in itertools.pairwise(burst))
        # a lone wake after a quiet moment (the poll is 30 s) is looked at within the interval, not the poll
        time.sleep(0.3)
        before = len(ticks)
        woken = time.monotonic()
        pool.wake()
        while len(ticks) == before and time.monotonic() - woken < 5:
            time.sleep(0.002)
        assert len(ticks) == before + 1 and ticks[-1] - woken < TICK_INTERVAL + 0.5
    finally:
        pool._stop.set()
        pool._wake.set()
        thread.join(5)
    assert not thread.is_alive()
