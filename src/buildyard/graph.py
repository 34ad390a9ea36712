"""Pure graph algorithms over ``{node: dependencies}`` mappings: cycles, order, closure, critical path (core).

No I/O and no knowledge of pipelines, so they can be property-tested in isolation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one cycle as a path ``[a, b, …, a]``, or ``None`` if the graph is acyclic.

    Edges to nodes absent from ``deps`` are ignored. Iterative DFS: no recursion limit on big graphs.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for root in deps:
        if color[root] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(root, [d for d in deps[root] if d in color])]
        color[root] = grey
        path = [root]
        while stack:
            node, todo = stack[-1]
            if not todo:
                color[node] = black
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if color[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append((nxt, [d for d in deps[nxt] if d in color]))
    return None


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Nodes ordered so that every node comes after its dependencies (stable: input order breaks ties).

    Raises ``ValueError`` on a cycle.
    """
    remaining = {n: {d for d in ds if d in deps} for n, ds in deps.items()}
    dependents: dict[str, list[str]] = {n: [] for n in deps}
    for node, ds in remaining.items():
        for d in ds:
            dependents[d].append(node)
    ready = deque(n for n in deps if not remaining[n])
    order: list[str] = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for child in dependents[node]:
            remaining[child].discard(node)
            if not remaining[child]:
                ready.append(child)
    if len(order) != len(deps):
        cycle = find_cycle(deps)
        raise ValueError(f"cycle: {' -> '.join(cycle or [])}")
    return order


def closure(deps: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` plus everything they transitively depend on."""
    seen: set[str] = set()
    stack = [r for r in roots if r in deps]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(d for d in deps[node] if d in deps and d not in seen)
    return seen


def critical_path_lengths(deps: Mapping[str, Iterable[str]], weight: Mapping[str, float]) -> dict[str, float]:
    """For each node: its weight plus the longest weighted chain of nodes that depend on it.

    This is the classic list-scheduling priority (HLFET): running the node with the longest
    remaining path first minimises the makespan in practice.
    """
    order = topological_order(deps)
    dependents: dict[str, list[str]] = {n: [] for n in deps}
    for node, ds in deps.items():
        for d in ds:
            if d in dependents:
                dependents[d].append(node)
    length: dict[str, float] = {}
    for node in reversed(order):
        tail = max((length[c] for c in dependents[node]), default=0.0)
        length[node] = weight.get(node, 1.0) + tail
    return length
