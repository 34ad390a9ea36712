"""The benchmark gate's pure-Python statistics against scipy and numpy (test-only deps) on random data."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special, stats

from buildyard.gates.distributions import (
    NORMAL_DF,
    bootstrap_medians,
    mann_whitney_greater,
    normal_sf,
    quantile,
    regularized_beta,
    student_t_isf,
    student_t_sf,
)

# degrees of freedom from a Welch test of 2 rounds to a million, log-uniformly
dfs = st.floats(min_value=math.log(0.5), max_value=math.log(1e6)).map(math.exp)
ts = st.one_of(st.floats(min_value=-60, max_value=60), st.floats(min_value=-1e4, max_value=1e4))


@settings(max_examples=300, deadline=None)
@given(ts, dfs)
def test_student_t_sf_matches_scipy(t: float, df: float) -> None:
    ours, theirs = student_t_sf(t, df), float(stats.t.sf(t, df))
    assert math.isclose(ours, theirs, rel_tol=1e-8, abs_tol=1e-300), (ours, theirs)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=math.log(1e-12), max_value=math.log(0.9999)).map(math.exp), dfs)
def test_student_t_isf_matches_scipy(p: float, df: float) -> None:
    ours, theirs = student_t_isf(p, df), float(stats.t.isf(p, df))
    assert math.isclose(ours, theirs, rel_tol=1e-8, abs_tol=1e-12), (ours, theirs)
    assert math.isclose(student_t_sf(ours, df), p, rel_tol=1e-8)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0.05, max_value=500),
    st.floats(min_value=0.05, max_value=500),
)
def test_regularized_beta_matches_scipy(x: float, a: float, b: float) -> None:
    ours, theirs = regularized_beta(x, a, b), float(special.betainc(a, b, x))
    assert math.isclose(ours, theirs, rel_tol=1e-8, abs_tol=1e-14), (ours, theirs)


def test_student_t_edges() -> None:
    assert student_t_sf(0.0, 3.0) == 0.5
    assert student_t_sf(math.inf, 3.0) == 0.0 and student_t_sf(-math.inf, 3.0) == 1.0
    assert student_t_isf(0.5, 7.0) == 0.0
    assert math.isclose(student_t_isf(0.025, 1.0), math.tan(math.pi * (0.5 - 0.025)), rel_tol=1e-12)  # Cauchy
    huge = NORMAL_DF * 10
    assert math.isclose(student_t_sf(1.96, huge), normal_sf(1.96), rel_tol=1e-15)
    assert math.isclose(student_t_isf(0.025, huge), float(stats.t.isf(0.025, huge)), rel_tol=1e-7)
    with pytest.raises(ValueError, match="degrees of freedom"):
        student_t_sf(1.0, 0.0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        student_t_isf(1.0, 3.0)


small_ints = st.integers(min_value=0, max_value=6).map(float)  # many ties
reals = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.lists(small_ints, min_size=1, max_size=25), st.lists(reals, min_size=1, max_size=25)),
    st.one_of(st.lists(small_ints, min_size=1, max_size=25), st.lists(reals, min_size=1, max_size=25)),
)
def test_mann_whitney_matches_scipy(x: list[float], y: list[float]) -> None:
    assume(len(set(x + y)) > 1)  # all tied: undefined (scipy returns nan), the gate decides without it
    ours = mann_whitney_greater(x, y)
    theirs = float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)
    assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-300), (ours, theirs)


def test_mann_whitney_exact_and_asymptotic_branches() -> None:
    rng = random.Random(5)
    for n1, n2 in [(3, 40), (8, 8), (8, 200), (9, 9), (30, 2)]:  # exact when a side has <= 8 values, no ties
        x = [rng.random() + 0.1 for _ in range(n1)]
        y = [rng.random() for _ in range(n2)]
        expected = float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)
        assert math.isclose(mann_whitney_greater(x, y), expected, rel_tol=1e-9)
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_greater([], [1.0])


@given(st.lists(reals, min_size=1, max_size=50), st.floats(min_value=0, max_value=1))
def test_quantile_matches_numpy(values: list[float], q: float) -> None:
    ordered = sorted(values)
    assert math.isclose(quantile(ordered, q), float(np.quantile(ordered, q)), rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize("n", [5, 6])
def test_bootstrap_medians_have_the_exact_bootstrap_distribution(n: int) -> None:
    """Every one of the n^n equally likely resamples, enumerated, against 100k seeded draws."""
    # distinct values: each median identifies the order statistics it came from
    values = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0][:n]
    exact = Counter(statistics.median(r) for r in itertools.product(values, repeat=n))
    total = n**n
    draws = 100_000
    drawn = Counter(bootstrap_medians(random.Random(11), values, draws))
    assert set(drawn) <= set(exact)
    distance = 0.5 * sum(abs(drawn[m] / draws - exact[m] / total) for m in exact)
    assert distance < 0.01, distance  # total variation; a wrong order statistic gives > 0.1
    # the naive bootstrap (numpy resampling) lands as close to the same law
    rng = np.random.default_rng(11)
    naive = Counter(np.median(rng.choice(values, size=(draws, n)), axis=1).tolist())
    assert 0.5 * sum(abs(naive[m] - drawn[m]) / draws for m in exact) < 0.015


def test_bootstrap_medians_are_seeded() -> None:
    source = random.Random(1)
    values = sorted(source.random() for _ in range(101))
    assert bootstrap_medians(random.Random(3), values, 50) == bootstrap_medians(random.Random(3), values, 50)
    assert bootstrap_medians(random.Random(3), values, 50) != bootstrap_medians(random.Random(4), values, 50)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_medians(random.Random(3), [], 5)
