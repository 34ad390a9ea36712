"""The few statistics the benchmark gate needs, in pure Python (no numpy/scipy in the base install).

Each function states the reference it reproduces; ``tests/gates/test_gates_distributions.py`` checks
them against scipy/numpy on random data (hypothesis), which stay test-only dependencies.

- :func:`student_t_sf` / :func:`student_t_isf`: Student's t tail and its inverse, for any real
  ``df > 0``, through the regularized incomplete beta function evaluated by its continued fraction
  (modified Lentz, as in Numerical Recipes 3rd ed. section 6.4): ``P(T > t) = I_x(df/2, 1/2) / 2``
  with ``x = df / (df + t^2)``; the inverse by Newton steps kept inside a bisection bracket.
  Relative error ~1e-9 up to ``df = 1e6``; above :data:`NORMAL_DF` the normal law is used (it differs
  from t by less than 1e-7 there).
- :func:`mann_whitney_greater`: the one-sided p-value of ``scipy.stats.mannwhitneyu(x, y,
  alternative="greater")`` with its defaults: the exact null distribution (Gaussian binomial
  coefficients, exact integers) when a side has at most 8 values and nothing is tied, else the normal
  approximation with tie correction and continuity correction.
- :func:`bootstrap_medians`: medians of bootstrap resamples, drawn from their exact distribution
  instead of by building each resample: the k-th smallest of n indices drawn uniformly from
  ``0..n-1`` is ``floor(n * U_(k))`` where ``U_(k) ~ Beta(k, n - k + 1)`` is the k-th smallest of n
  uniforms, so one resample's median costs one or two Beta draws, not a sort of n values.
- :func:`quantile`: numpy's default ("linear", Hyndman-Fan type 7) quantile of sorted values.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist

#: Above this many degrees of freedom Student's t is computed as the normal law.
NORMAL_DF = 1e7
#: Sides at most this long, without ties, get Mann-Whitney's exact p-value (scipy's ``method="auto"``).
EXACT_MWU_MAX = 8
_EPS = 1e-16
_TINY = 1e-300
_MAX_TERMS = 20_000
_STANDARD_NORMAL = NormalDist()


def normal_sf(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z`` (``scipy.stats.norm.sf``)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz); converges fast for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS + 1):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (x={x!r}, a={a!r}, b={b!r})")


def regularized_beta(x: float, a: float, b: float, *, complement: float | None = None) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function (``scipy.special.betainc``).

    ``complement`` may give ``1 - x`` computed without cancellation (it matters near ``x = 1``).
    """
    y = 1.0 - x if complement is None else complement
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(x, a, b) / a
    return 1.0 - front * _beta_continued_fraction(y, b, a) / b


def student_t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df > 0`` degrees of freedom (``scipy.stats.t.sf``)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, not {df!r}")
    if math.isnan(t):
        return math.nan
    if df > NORMAL_DF:
        return normal_sf(t)
    t2 = t * t
    if math.isinf(t2):
        upper = 0.0
    else:
        upper = 0.5 * regularized_beta(df / (df + t2), df / 2.0, 0.5, complement=t2 / (df + t2))
    return upper if t > 0 else 1.0 - upper


def _student_t_pdf(t: float, df: float) -> float:
    log_norm = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def student_t_isf(p: float, df: float) -> float:
    """The ``t`` with ``P(T > t) = p`` (``scipy.stats.t.isf``; ``t.ppf(q)`` is ``isf(1 - q)``)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a tail probability must lie strictly between 0 and 1, not {p!r}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, not {df!r}")
    if p == 0.5:
        return 0.0
    if p > 0.5:
        return -student_t_isf(1.0 - p, df)
    guess = -_STANDARD_NORMAL.inv_cdf(p)  # t's tail is heavier: the root lies at or above it
    if df > NORMAL_DF:
        return guess
    lo, hi = 0.0, max(guess, 1.0)
    while student_t_sf(hi, df) > p:
        lo, hi = hi, hi * 2.0
    t = 0.5 * (lo + hi)
    for _ in range(200):
        excess = student_t_sf(t, df) - p  # decreasing in t: > 0 means the root is above t
        if excess > 0:
            lo = t
        else:
            hi = t
        density = _student_t_pdf(t, df)
        step = excess / density if density > 0 else math.inf
        candidate = t + step
        if not lo < candidate < hi:  # Newton left the bracket: bisect instead
            candidate = 0.5 * (lo + hi)
        if abs(candidate - t) <= 1e-14 * abs(candidate) or hi - lo <= 1e-15 * hi:
            return candidate
        t = candidate
    return t


def _average_ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """1-based ranks with ties given their average rank, and the size of every tie group."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    groups = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j + 2) / 2.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        groups.append(j - i + 1)
        i = j + 1
    return ranks, groups


def _u_counts(m: int, n: int) -> list[int]:
    """How many of the C(m+n, m) orderings give U = 0, 1, ..., m*n (exact integers).

    They are the coefficients of the Gaussian binomial ``prod_{i=1..k} (1 - q^(m+n-k+i)) / (1 - q^i)``
    with ``k = min(m, n)``: multiply by each numerator factor, then divide by ``1 - q^i`` (a running
    sum with stride i, exact because the product is a polynomial).
    """
    k, total = min(m, n), m + n
    poly = [1]
    for i in range(1, k + 1):
        shift = total - k + i
        grown = [*poly, *([0] * shift)]
        for j, c in enumerate(poly):
            grown[j + shift] -= c
        for j in range(i, len(grown)):
            grown[j] += grown[j - i]
        poly = grown
    return poly[: m * n + 1]


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``x`` tends to be larger than ``y``.

    Same as ``scipy.stats.mannwhitneyu(x, y, alternative="greater").pvalue`` (``method="auto"``,
    ``use_continuity=True``).
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    ranks, groups = _average_ranks([*x, *y])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    tied = any(g > 1 for g in groups)
    if min(n1, n2) <= EXACT_MWU_MAX and not tied:
        counts = _u_counts(n1, n2)
        at_least = sum(counts[round(u1) :])
        return min(1.0, at_least / math.comb(n1 + n2, n1))
    n = n1 + n2
    tie_term = sum(g**3 - g for g in groups)
    spread = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    numerator = u1 - n1 * n2 / 2.0 - 0.5
    if spread == 0:
        return 1.0 if numerator <= 0 else 0.0
    return min(1.0, max(0.0, normal_sf(numerator / spread)))


def bootstrap_medians(rng: random.Random, ordered: Sequence[float], resamples: int) -> list[float]:
    """Medians of ``resamples`` bootstrap resamples of ``ordered`` (sorted ascending, not empty).

    Each median has exactly the distribution of ``median(choices(ordered, k=len(ordered)))``.
    """
    n = len(ordered)
    if n == 0:
        raise ValueError("cannot resample no values")
    last = n - 1
    out = []
    if n % 2:
        k = (n + 1) // 2
        for _ in range(resamples):
            out.append(ordered[min(int(n * rng.betavariate(k, n - k + 1)), last)])
        return out
    k = n // 2
    for _ in range(resamples):
        low = rng.betavariate(k, n - k + 1)
        # the next order statistic: the smallest of the n - k uniforms above `low`
        high = low + (1.0 - low) * rng.betavariate(1, n - k)
        out.append((ordered[min(int(n * low), last)] + ordered[min(int(n * high), last)]) / 2.0)
    return out


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values by linear interpolation (``numpy.quantile``'s default)."""
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction
