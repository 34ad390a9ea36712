"""A run's job graph and timeline as data: layers, edges, the critical path, Gantt segments.

The history records each job's status and timings but not its ``needs``; the edges are rebuilt from
the run's pipeline file with the run's trigger (cached per file version), kept only between jobs the
run recorded. When the file is gone or no longer builds, jobs are laid out by stage without edges.
The critical path is the longest chain by recorded duration (``plan.graph.critical_path_lengths``).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from buildyard.plan.graph import critical_path_lengths, find_cycle, topological_order
from buildyard.store.history import JobRecord, RunRecord

_CACHE_SIZE = 64
_cache: OrderedDict[tuple[Any, ...], dict[str, tuple[str, ...]]] = OrderedDict()
_cache_lock = threading.Lock()


def _plan_needs(run: RunRecord) -> dict[str, tuple[str, ...]]:
    """``job id -> needs`` from the run's pipeline file, or {} when it cannot be rebuilt."""
    if not run.pipeline_file:
        return {}
    path = Path(run.pipeline_file)
    try:
        st = path.stat()
    except OSError:
        return {}
    key: tuple[Any, ...] = (str(path), st.st_mtime_ns, st.st_size, run.event, run.branch, run.tag, run.sha)
    key += (run.ref, *sorted(run.variables.items()))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    needs: dict[str, tuple[str, ...]] = {}
    with contextlib.suppress(Exception):  # a file that no longer builds only loses the edges
        from buildyard.model import Event  # noqa: PLC0415
        from buildyard.plan.build import TriggerContext, build  # noqa: PLC0415
        from buildyard.spec.load import load  # noqa: PLC0415

        trigger = TriggerContext(
            event=Event(run.event) if run.event in Event.__members__.values() else Event.PUSH,
            branch=run.branch,
            tag=run.tag,
            sha=run.sha,
            ref=run.ref,
            variables=dict(run.variables),
        )
        plan = build(load(path), trigger)
        needs = {iid: tuple(inst.needs) for iid, inst in plan.instances.items()}
    with _cache_lock:
        _cache[key] = needs
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return needs


def critical_path(deps: Mapping[str, Sequence[str]], weight: Mapping[str, float]) -> list[str]:
    """The heaviest chain of ``deps`` (node → its dependencies) by ``weight``, first job first."""
    if not deps or find_cycle(deps) is not None:
        return []
    length = critical_path_lengths(deps, weight)
    dependents: dict[str, list[str]] = {n: [] for n in deps}
    for name, ds in deps.items():
        for d in ds:
            if d in dependents:
                dependents[d].append(name)
    roots = [n for n in deps if not any(d in deps for d in deps[n])]
    if not roots:
        return []
    node: str | None = max(roots, key=lambda n: (length[n], n))
    path: list[str] = []
    while node is not None:
        path.append(node)
        nxt = dependents[node]
        node = max(nxt, key=lambda n: (length[n], n)) if nxt else None
    return path


def dag_of(run: RunRecord, jobs: Sequence[JobRecord]) -> dict[str, Any]:
    """Nodes (status, layer, row, critical) and edges (critical) of a run's jobs."""
    ids = [j.id for j in jobs]
    known = set(ids)
    planned = _plan_needs(run)
    deps = {i: [d for d in planned.get(i, ()) if d in known] for i in ids}
    if find_cycle(deps) is not None:  # never from a valid plan; drawn without edges rather than failing
        deps = {i: [] for i in ids}
    has_edges = any(deps.values())
    layer: dict[str, int] = {}
    if has_edges:
        for node in topological_order(deps):
            layer[node] = max((layer[d] + 1 for d in deps[node]), default=0)
    else:  # by stage, in the order the stages first appear
        stages: list[str | None] = []
        for j in jobs:
            if j.stage not in stages:
                stages.append(j.stage)
        layer = {j.id: stages.index(j.stage) for j in jobs}
    weight = {j.id: float(j.duration_s or 0.0) for j in jobs}
    crit = critical_path(deps, weight) if has_edges else []
    on_path = set(crit)
    crit_edges = set(itertools.pairwise(crit))
    rows: dict[int, int] = {}
    nodes = []
    for j in jobs:
        lay = layer.get(j.id, 0)
        nodes.append(
            {
                "id": j.id,
                "status": j.status,
                "layer": lay,
                "row": rows.get(lay, 0),
                "critical": j.id in on_path,
            }
        )
        rows[lay] = rows.get(lay, 0) + 1
    edges = [{"from": d, "to": n, "critical": (d, n) in crit_edges} for n in ids for d in deps.get(n, [])]
    return {"nodes": nodes, "edges": edges, "critical_path": crit, "edges_known": has_edges}


def gantt_of(run: RunRecord, jobs: Sequence[JobRecord]) -> dict[str, Any]:
    """Per job: queue (ready → started), then run or cache restore (started → finished), in seconds
    from the run's start."""
    starts = [t for j in jobs for t in (j.ready_at, j.started_at) if t is not None]
    origin = min([run.started_at or run.created_at, *starts])
    rows = []
    end_all = 0.0
    for j in jobs:
        segments = []
        if j.started_at is None:
            continue
        if j.ready_at is not None and j.started_at > j.ready_at:
            segments.append(
                {"kind": "queue", "start_s": j.ready_at - origin, "duration_s": j.started_at - j.ready_at}
            )
        finished = j.finished_at if j.finished_at is not None else j.started_at + float(j.duration_s or 0.0)
        kind = "restore" if j.status == "cached" else "run"
        segments.append(
            {"kind": kind, "start_s": j.started_at - origin, "duration_s": max(finished - j.started_at, 0.0)}
        )
        end = finished - origin
        end_all = max(end_all, end)
        rows.append(
            {
                "id": j.id,
                "status": j.status,
                "segments": segments,
                "end_s": end,
                "total_s": finished - (j.ready_at if j.ready_at is not None else j.started_at),
            }
        )
    return {"origin": origin, "span_s": end_all, "rows": rows}
