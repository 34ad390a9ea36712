"""Expression evaluator speed: a typical ``if:`` per second, and planning a 1,000-job matrix pipeline.

1. ``evaluate`` of a typical condition (cached parse, fresh context each call): expressions/s.
2. The same with the parse cache cleared before each call (first sight of a text): expressions/s.
3. ``interpolate`` of a script line with two ``${{ }}``: strings/s.
4. ``plan.build`` of a pipeline of 4 matrix jobs × 250 instances, each instance with an ``if:``,
   two interpolated script lines and an interpolated env value: milliseconds (median).

Compare two versions by running this file with each on ``PYTHONPATH`` in the same session, e.g.
``PYTHONPATH=OTHER/src python bench/bench_expr.py`` then ``PYTHONPATH=src python bench/bench_expr.py``
(the file only uses ``expr.evaluate``/``interpolate`` and ``plan.build``, present in both).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from buildyard.plan.build import TriggerContext, build
from buildyard.spec import expr
from buildyard.spec.load import loads

CONDITION = "event == 'push' && branch == 'main' && matrix.python != '3.9'"
LINE = "pytest --python ${{ matrix.python }} -k ${{ matrix.shard }}"


def _pipeline() -> str:
    jobs = []
    for j in range(4):
        pythons = ", ".join(f"'3.{i}'" for i in range(25))
        shards = ", ".join(f"'s{i}'" for i in range(10))
        jobs.append(
            f"  test{j}:\n"
            f"    matrix: {{python: [{pythons}], shard: [{shards}]}}\n"
            f'    if: "{CONDITION}"\n'
            f"    env: {{PY: '${{{{ matrix.python }}}}'}}\n"
            f"    script: ['{LINE}', 'echo ${{{{ matrix.shard }}}} ${{{{ vars.MODE }}}}']\n"
        )
    return "jobs:\n" + "".join(jobs)


def _rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        n += 200
    return n / elapsed


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    ctx = {"event": "push", "branch": "main", "vars": {"MODE": "fast"}, "env": {}}

    def cached() -> object:
        return expr.evaluate(CONDITION, {**ctx, "matrix": {"python": "3.12", "shard": "s1"}})

    def uncached() -> object:
        for name in ("_parse", "_syntax_cached", "_compiled_cached"):
            clear = getattr(getattr(expr, name, None), "cache_clear", None)
            if clear is not None:
                clear()
        return cached()

    def interpolate() -> object:
        return expr.interpolate(LINE, {**ctx, "matrix": {"python": "3.12", "shard": "s1"}})

    pipeline = loads(_pipeline())
    trigger = TriggerContext(branch="main", variables={"MODE": "fast"})
    plan = build(pipeline, trigger)
    assert len(plan.instances) == 1000, len(plan.instances)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        build(pipeline, trigger)
        times.append((time.perf_counter() - start) * 1000)
    print(f"{'measure':<48} {'value':>12}")
    print(f"{'evaluate a typical if: (parse cached) /s':<48} {_rate(cached):>12,.0f}")
    print(f"{'evaluate, first sight of the text /s':<48} {_rate(uncached):>12,.0f}")
    print(f"{'interpolate a line with two ${{ }} /s':<48} {_rate(interpolate):>12,.0f}")
    print(f"{'plan.build, 1,000-job matrix, median ms':<48} {statistics.median(times):>12.1f}")


if __name__ == "__main__":
    main()
