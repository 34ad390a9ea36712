"""Dask ``--preload`` of the agents ``bench_dask.py`` starts: the agent's own timing of a job's phases.

Wraps ``buildyard.dask.agent.run_job`` (the task) and ``_materialize`` (the workspace from the blob cache)
and appends ``<phase> <start> <end> <files>`` (wall-clock seconds) to the file named by
``BUILDYARD_BENCH_TIMINGS``. With ``BUILDYARD_BENCH_PROFILE=FILE``, each ``_materialize`` runs under
cProfile and its stats replace ``FILE.<number of files>`` (read them with ``pstats``). Bench-only: the
agent's code is not changed.
"""

from __future__ import annotations

import cProfile
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from buildyard.dask import agent

_lock = threading.Lock()


def _record(phase: str, start: float, files: int) -> None:
    path = os.environ.get("BUILDYARD_BENCH_TIMINGS")
    if path:
        with _lock, open(path, "a", encoding="utf-8") as out:
            out.write(f"{phase} {start:.6f} {time.time():.6f} {files}\n")


def _timed(phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(job: Any, *args: Any) -> Any:
        start = time.time()
        profile = os.environ.get("BUILDYARD_BENCH_PROFILE") if phase == "materialize" else None
        profiler = cProfile.Profile() if profile else None
        try:
            if profiler is not None:
                return profiler.runcall(function, job, *args)
            return function(job, *args)
        finally:
            _record(phase, start, len(job.files))
            if profiler is not None and profile:
                profiler.dump_stats(f"{profile}.{len(job.files)}")

    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


if not getattr(agent, "_bench_timed", False):  # Dask may load a preload file more than once
    agent._bench_timed = True  # type: ignore[attr-defined]
    agent._materialize = _timed("materialize", agent._materialize)
    agent.run_job = _timed("run_job", agent.run_job)


def dask_setup(worker: object) -> None:
    """Dask's preload hook (nothing to do: the wrappers are installed on import)."""
