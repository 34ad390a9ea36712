"""Per-day rollups of a project's runs and jobs for the metrics view, kept in memory.

The metrics view aggregates every job of its range: 10,000 runs × 50 jobs over 30 days are 500,000
job rows, 1–2 s of SQLite. Most of them never change again, so the range is cut into UTC days made
of hours: a day's rollup (its runs' chart points and its per-job sums from ``queries.job_daily``) is
summed from its hours' and reused while the fingerprints of its hours (``queries.fingerprints``: the
runs' count, creation and finish times, durations, statuses, queue times) are unchanged. A run that
finishes changes its own hour only, so the next view reads one hour of rows again and sums one day.
A period with unfinished runs is reused at most ``MAX_AGE_S`` (the jobs of a running run change
without changing its run row).
Figures stay exact: days are summed and the percentiles taken over every run's point, nothing sampled.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildyard.server.web import queries

if TYPE_CHECKING:
    from buildyard.store.history import History

DAY = 86_400.0
HOUR = 3_600.0
#: Seconds a day with unfinished runs (and a whole range's result) is reused.
MAX_AGE_S = 15.0
#: Days kept (a 30-day view of one branch filter holds 30).
MAX_DAYS = 4_000
#: Hours kept: ten days of one filter (~75 kB an hour of 50 jobs). Only a day that changes needs its
#: hours (today, mostly); an older one whose hours were dropped is read whole again when it changes.
MAX_HOURS = 240


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; None for no values."""
    return percentile_of_sorted(sorted(values), q)


def percentiles(values: Sequence[float], *qs: float) -> list[float | None]:
    """``percentile`` of ``values`` at each of ``qs``, sorting them once."""
    ordered = sorted(values)
    return [percentile_of_sorted(ordered, q) for q in qs]


def percentile_of_sorted(ordered: Sequence[float], q: float) -> float | None:
    """``percentile`` of values already in ascending order."""
    if not ordered:
        return None
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def success_rate(runs: Sequence[Any]) -> float | None:
    """Successful runs / finished ones (``success`` or ``failed``) of ``runs`` (with a ``status``)."""
    done = [r for r in runs if r.status in ("success", "failed")]
    return sum(r.status == "success" for r in done) / len(done) if done else None


@dataclass(frozen=True)
class DayRollup:
    """One UTC day of a project's runs (of one branch, or all): what the metrics view sums."""

    start: float
    fingerprint: tuple[Any, ...]
    open: bool  # some runs of the day are unfinished
    points: tuple[queries.RunPoint, ...]
    jobs: tuple[dict[str, Any], ...]  # ``queries.job_daily`` rows of the day (``day`` is 0)
    at: float  # time.monotonic() of the computation
    durations: tuple[
        float, ...
    ]  # of the runs that have one, ascending (a range sorts their concatenation fast)
    queue: tuple[float, ...]  # ascending
    succeeded_durations: tuple[float, ...]  # of the successful runs, in creation order
    finished: int  # runs that succeeded or failed
    succeeded: int
    summary: dict[str, Any]  # the day's point of the daily chart (runs, p50/p95, success rate, queue p50)


def day_summary(start: float, points: Sequence[queries.RunPoint]) -> dict[str, Any]:
    """The daily chart's point of the day starting at ``start`` with runs ``points``."""
    durations = [r.duration_s for r in points if r.duration_s is not None]
    queue = [r.queue_s for r in points if r.queue_s is not None]
    return {
        "day": start,
        "runs": len(points),
        "p50_s": percentile(durations, 0.5),
        "p95_s": percentile(durations, 0.95),
        "success_rate": success_rate(points),
        "queue_p50_s": percentile(queue, 0.5),
    }


#: A day's fingerprint: (hour index from the range's start, the hour's fingerprint) of its hours with runs.
_DayPrint = tuple[tuple[int, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class _Hour:
    fingerprint: tuple[Any, ...]
    points: tuple[queries.RunPoint, ...]
    jobs: tuple[dict[str, Any], ...]
    at: float


_SUMS = ("count", "dur_sum", "dur_n", "cpu_sum", "cpu_n", "hits", "misses", "saved_s", "queue_sum", "queue_n")
_MAXES = ("dur_max", "peak_rss")


def merge_jobs(parts: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``queries.job_daily`` rows of several periods of one day summed per job (``day`` 0)."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            into = merged.get(row["id"])
            if into is None:
                merged[row["id"]] = {**row, "day": 0}
                continue
            for key in _SUMS:
                if row[key] is not None:
                    into[key] = row[key] if into[key] is None else into[key] + row[key]
            for key in _MAXES:
                if row[key] is not None and (into[key] is None or row[key] > into[key]):
                    into[key] = row[key]
    return list(merged.values())


def _fresh(kept: tuple[Any, ...], at: float, fp: tuple[Any, ...], now: float) -> bool:
    """Whether a rollup made at ``at`` with fingerprint ``kept`` still holds for ``fp`` (a period with
    unfinished runs, whose jobs change under an unchanged fingerprint, for ``MAX_AGE_S`` at most)."""
    return kept == fp and not (_is_open(fp) and now - at >= MAX_AGE_S)


def _is_open(fp: tuple[Any, ...]) -> bool:
    """Whether an hour's fingerprint, or any hour of a day's, has unfinished runs."""
    if fp and isinstance(fp[0], tuple):
        return any(hour_fp[-1] for _, hour_fp in fp)
    return bool(fp and fp[-1])


class Rollups:
    """The day rollups of every history the dashboard reads, bounded (least recently used go first).

    A day is made of its hours: when a day changed, only its hours whose runs changed are read again
    (a run finishing costs one hour of rows, not a day's) and the day is summed from them."""

    def __init__(self, max_days: int = MAX_DAYS, max_hours: int = MAX_HOURS) -> None:
        self.max_days = max_days
        self.max_hours = max_hours
        self._days: OrderedDict[tuple[int, str, float], DayRollup] = OrderedDict()
        self._hours: OrderedDict[tuple[int, str, float], _Hour] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts
        self._compute = threading.Lock()  # one computation at a time: concurrent views wait, then reuse
        self.computed = 0  # days computed so far (tests and benchmarks read it)
        self.hours_read = 0  # hours read from the database so far

    def clear(self) -> None:
        """Forget every day (the next view recomputes its range)."""
        with self._lock:
            self._days.clear()
            self._hours.clear()

    def days(
        self, history: History, since: float, days: int, *, branch: str = ""
    ) -> tuple[tuple[Any, ...], list[DayRollup]]:
        """The range's fingerprint and the rollups of its days that have runs, oldest first."""
        hours = queries.fingerprints(history, since, size=HOUR, branch=branch)
        per_day: dict[int, dict[int, tuple[Any, ...]]] = {}
        for h, fp in hours.items():
            if h < days * 24:
                per_day.setdefault(h // 24, {})[h] = fp
        wanted = [(d, tuple(sorted(per_day[d].items()))) for d in sorted(per_day)]
        found = self._reuse(history, since, branch, wanted)
        if any(r is None for r in found):
            with self._compute:
                found = self._reuse(history, since, branch, wanted)
                for i, (d, fp) in enumerate(wanted):
                    if found[i] is None:
                        found[i] = self._compute_day(history, since, d, fp, branch)
        return tuple(wanted), [r for r in found if r is not None]

    def _reuse(
        self, history: History, since: float, branch: str, wanted: list[tuple[int, tuple[Any, ...]]]
    ) -> list[DayRollup | None]:
        now = time.monotonic()
        out: list[DayRollup | None] = []
        with self._lock:
            for d, fp in wanted:
                key = (id(history), branch, since + d * DAY)
                hit = self._days.get(key)
                if hit is not None and _fresh(hit.fingerprint, hit.at, fp, now):
                    self._days.move_to_end(key)
                    out.append(hit)
                else:
                    out.append(None)
        return out

    def _hours_of(self, history: History, since: float, fp: _DayPrint, branch: str) -> list[_Hour]:
        """The hours of one day: the cached ones that still hold, the others read in one query (from
        the first to the last of them, grouped by hour)."""
        now = time.monotonic()
        found: dict[int, _Hour] = {}
        with self._lock:
            for h, hour_fp in fp:
                hit = self._hours.get((id(history), branch, since + h * HOUR))
                if hit is not None and _fresh(hit.fingerprint, hit.at, hour_fp, now):
                    found[h] = hit
        missing = [h for h, _ in fp if h not in found]
        if missing:
            start, end = since + missing[0] * HOUR, since + (missing[-1] + 1) * HOUR
            points: dict[int, list[queries.RunPoint]] = {}
            for point in queries.run_points(history, start, until=end, branch=branch):
                points.setdefault(int((point.created_at - start) // HOUR), []).append(point)
            rows: dict[int, list[dict[str, Any]]] = {}
            for row in queries.job_daily(history, start, until=end, branch=branch, size=HOUR):
                rows.setdefault(int(row["day"]), []).append({**row, "day": 0})
            prints = dict(fp)
            with self._lock:
                for h in range(missing[0], missing[-1] + 1):
                    if h not in prints:
                        continue
                    i = h - missing[0]
                    found[h] = hour = _Hour(prints[h], tuple(points.get(i, ())), tuple(rows.get(i, ())), now)
                    key = (id(history), branch, since + h * HOUR)
                    self._hours[key] = hour
                    self._hours.move_to_end(key)
                    self.hours_read += 1
                while len(self._hours) > self.max_hours:
                    self._hours.popitem(last=False)
        return [found[h] for h, _ in fp]

    def _compute_day(self, history: History, since: float, day: int, fp: _DayPrint, branch: str) -> DayRollup:
        start = since + day * DAY
        hours = self._hours_of(history, since, fp, branch)
        points = tuple(p for hour in hours for p in hour.points)
        rollup = DayRollup(
            start=start,
            fingerprint=fp,
            open=_is_open(fp),
            points=points,
            jobs=tuple(merge_jobs([hour.jobs for hour in hours])),
            at=time.monotonic(),
            durations=tuple(sorted(r.duration_s for r in points if r.duration_s is not None)),
            queue=tuple(sorted(r.queue_s for r in points if r.queue_s is not None)),
            succeeded_durations=tuple(
                r.duration_s for r in points if r.duration_s is not None and r.status == "success"
            ),
            finished=sum(r.status in ("success", "failed") for r in points),
            succeeded=sum(r.status == "success" for r in points),
            summary=day_summary(start, points),
        )
        with self._lock:
            self.computed += 1
            self._days[(id(history), branch, start)] = rollup
            while len(self._days) > self.max_days:
                self._days.popitem(last=False)
        return rollup


#: The rollups of this process (the server's dashboard, or a standalone one).
ROLLUPS = Rollups()
