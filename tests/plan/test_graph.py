"""Property-based tests of the pure graph algorithms."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from buildyard.graph import closure, critical_path_lengths, find_cycle, topological_order


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random DAGs: node i may only depend on nodes < i (then shuffled, so order is not a hint)."""
    n = draw(st.integers(min_value=1, max_value=40))
    deps = {}
    for i in range(n):
        candidates = list(range(i))
        chosen = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=4)) if candidates else []
        deps[f"n{i}"] = [f"n{j}" for j in chosen]
    items = list(deps.items())
    random.Random(draw(st.integers(0, 1000))).shuffle(items)
    return dict(items)


@given(dags())
def test_topological_order_respects_every_edge(deps: dict[str, list[str]]) -> None:
    order = topological_order(deps)
    assert sorted(order) == sorted(deps)
    index = {n: i for i, n in enumerate(order)}
    assert all(index[d] < index[n] for n, ds in deps.items() for d in ds)
    assert find_cycle(deps) is None


@given(dags(), st.data())
def test_added_back_edge_is_found_as_a_real_cycle(deps: dict[str, list[str]], data: st.DataObject) -> None:
    edges = [(n, d) for n, ds in deps.items() for d in ds]
    if not edges:
        return
    node, dep = data.draw(st.sampled_from(edges))
    deps = {k: list(v) for k, v in deps.items()}
    deps[dep].append(node)  # dep → node closes node → dep
    cycle = find_cycle(deps)
    assert cycle is not None and cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert b in deps[a], f"{a} -> {b} is not an edge"


@given(dags(), st.data())
def test_closure_is_transitive(deps: dict[str, list[str]], data: st.DataObject) -> None:
    roots = data.draw(st.lists(st.sampled_from(sorted(deps)), max_size=3))
    closed = closure(deps, roots)
    assert set(roots) <= closed
    assert all(d in closed for n in closed for d in deps[n])


@settings(max_examples=60)
@given(dags(), st.data())
def test_critical_path_is_longest_weighted_chain(deps: dict[str, list[str]], data: st.DataObject) -> None:
    weights = {n: data.draw(st.floats(min_value=0.1, max_value=10)) for n in deps}
    lengths = critical_path_lengths(deps, weights)
    dependents: dict[str, list[str]] = {n: [] for n in deps}
    for n, ds in deps.items():
        for d in ds:
            dependents[d].append(n)

    def brute(node: str) -> float:
        return weights[node] + max((brute(c) for c in dependents[node]), default=0.0)

    for n in deps:
        assert abs(lengths[n] - brute(n)) < 1e-9
        assert all(lengths[n] > lengths[c] for c in dependents[n])
