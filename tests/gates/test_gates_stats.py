"""Benchmark comparison statistics: bootstrap + Mann-Whitney on samples, Welch on summary stats."""

from __future__ import annotations

import math
import random
import statistics
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from buildyard.gates.reports import Benchmark
from buildyard.gates.stats import Verdict, compare


def bench(samples: list[float], name: str = "b") -> Benchmark:
    values = tuple(float(x) for x in samples)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    return Benchmark(name, values, statistics.median(values), statistics.fmean(values), stdev, len(values))


def summary(mean: float, stddev: float, rounds: int) -> Benchmark:
    return Benchmark("b", (), mean, mean, stddev, rounds)


RNG = random.Random(7)


def normal(mu: float, sigma: float, n: int) -> list[float]:
    return [RNG.gauss(mu, sigma) for _ in range(n)]


BASE = bench(normal(1.0, 0.01, 40))


def test_clear_regression_fails() -> None:
    result = compare(BASE, bench(normal(1.10, 0.01, 40)), max_regression=5)
    assert result.verdict is Verdict.REGRESSION
    assert result.ci_low is not None and result.ci_low > 5
    assert result.p_value is not None and result.p_value < 0.05
    assert 8 < (result.change or 0) < 12


def test_small_slowdown_within_threshold_is_ok() -> None:
    result = compare(BASE, bench(normal(1.02, 0.01, 40)), max_regression=5)
    assert result.verdict is Verdict.OK
    assert result.ci_high is not None and result.ci_high <= 5


def test_speedup_is_improved() -> None:
    assert compare(BASE, bench(normal(0.8, 0.01, 40)), max_regression=5).verdict is Verdict.IMPROVED


def test_noisy_data_is_inconclusive_even_with_large_median_change() -> None:
    noisy = bench([RNG.lognormvariate(math.log(1.1), 0.5) for _ in range(8)])
    result = compare(BASE, noisy, max_regression=5)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.note == "inconclusive (too noisy)"
    assert result.ci_low is not None and result.ci_high is not None and result.ci_low < 5 < result.ci_high


def test_seeded_bootstrap_is_reproducible() -> None:
    current = bench(normal(1.05, 0.05, 30))
    first = compare(BASE, current, max_regression=5, seed=3)
    assert compare(BASE, current, max_regression=5, seed=3) == first


def test_welch_on_summary_statistics() -> None:
    base = summary(1.0, 0.01, 50)
    assert compare(base, summary(1.2, 0.01, 50), max_regression=5).verdict is Verdict.REGRESSION
    assert compare(base, summary(1.01, 0.01, 50), max_regression=5).verdict is Verdict.OK
    wide = compare(base, summary(1.08, 0.5, 5), max_regression=5)
    assert wide.verdict is Verdict.INCONCLUSIVE and wide.method.startswith("welch")


def test_too_few_samples_never_fails() -> None:
    result = compare(bench([1.0]), bench([3.0]), max_regression=5)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.change == 200.0 and "too few samples" in result.note


def test_constant_samples() -> None:
    assert compare(bench([1.0] * 6), bench([1.2] * 6), max_regression=5).verdict is Verdict.REGRESSION
    assert compare(bench([1.0] * 6), bench([1.0] * 6), max_regression=5).verdict is Verdict.OK


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=10.0), min_size=1, max_size=30))
def test_identical_distributions_never_regress(samples: list[float]) -> None:
    result = compare(bench(samples), bench(samples), max_regression=0.0)
    assert result.verdict is not Verdict.REGRESSION


def test_large_sample_sets_decide_quickly() -> None:
    base = bench(normal(1.0, 0.02, 20_000))
    started = time.perf_counter()
    assert compare(base, bench(normal(1.1, 0.02, 20_000)), max_regression=5).verdict is Verdict.REGRESSION
    assert compare(base, bench(normal(1.0, 0.02, 20_000)), max_regression=5).verdict is Verdict.OK
    # the bootstrap draws each resample's median from its exact distribution: no resample is built
    assert time.perf_counter() - started < 5


def test_baseline_with_zero_median_is_inconclusive() -> None:
    result = compare(bench([0.0, 0.0, 0.0, 1.0, 2.0]), bench([1.0] * 6), max_regression=5)
    assert result.verdict is Verdict.INCONCLUSIVE and result.note == "baseline median is zero"


def test_small_samples_use_the_exact_mann_whitney_test() -> None:
    # 5 vs 5 without ties: all current times above all baseline ones has p = 1 / C(10, 5)
    result = compare(
        bench([1.0, 1.01, 1.02, 1.03, 1.04]), bench([2.0, 2.01, 2.02, 2.03, 2.04]), max_regression=5
    )
    assert result.verdict is Verdict.REGRESSION
    assert result.p_value is not None and math.isclose(result.p_value, 1 / 252)


def test_comparing_benchmarks_needs_neither_numpy_nor_scipy() -> None:
    """The base install has neither: a comparison runs with both imports failing, as if uninstalled."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numpy'] = sys.modules['scipy'] = None\n"
        "from buildyard.gates.reports import Benchmark\n"
        "from buildyard.gates.stats import compare\n"
        "b = Benchmark('b', (1.0, 1.01, 0.99, 1.0, 1.02, 0.98), 1.0, 1.0, 0.01, 6)\n"
        "c = Benchmark('b', (1.3, 1.31, 1.29, 1.3, 1.32, 1.28), 1.3, 1.3, 0.01, 6)\n"
        "s = Benchmark('b', (), 1.3, 1.3, 0.01, 50)\n"
        "print(compare(b, c, max_regression=5).verdict, compare(b, s, max_regression=5).verdict)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.split() == ["regression", "regression"], proc.stderr
