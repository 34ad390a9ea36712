"""A controllable clock for asyncio code: an event loop whose time is virtual.

``run_virtual(main())`` runs a coroutine on a loop whose ``time()`` starts at ``START`` and jumps straight to
the next timer whenever nothing is ready to run: ``asyncio.sleep(30)`` returns at once with
``loop.time()`` 30 s later, in the same order real time would give. Scheduler timing (retry backoff,
dependencies finishing at given times, timeouts) is then asserted exactly and never flakes on a
loaded machine. Real I/O still works (the selector is polled without waiting), so code under test may
use ``call_soon_threadsafe``; a loop with nothing scheduled at all waits for I/O as usual.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for I/O; where the loop would wait ``timeout`` seconds, advances its clock instead."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer at all: only I/O (another thread) can wake the loop
            return super().select(None)
        self._clock.now += timeout
        return events


#: Where virtual time starts: never 0 (code may read a zero time as "not set"), and small enough that
#: floats are finer than the loop's clock resolution (1 ns; at epoch-sized values they are not, and
#: a timer due "now" would never fire).
START = 1_000_000.0


class VirtualClock:
    """The time of a ``VirtualTimeLoop`` (seconds; moved by the loop, readable anywhere)."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        """The current virtual time (usable as a ``clock`` callable)."""
        return self.now


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is ``clock`` (see the module docstring)."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        super().__init__(selector=_JumpingSelector(self.clock))

    def time(self) -> float:
        """Virtual seconds (timers are scheduled and fired on this clock)."""
        return self.clock.now


def run_virtual(main: Coroutine[Any, Any, T], clock: VirtualClock | None = None) -> T:
    """``asyncio.run(main)`` on a ``VirtualTimeLoop`` (on ``clock``, when given)."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        return runner.run(main)
