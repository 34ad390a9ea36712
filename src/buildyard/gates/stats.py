"""Benchmark comparison: distributions, not single numbers.

With at least :data:`MIN_SAMPLES` raw samples on both sides, the change of the median
(``current / baseline - 1``) gets a percentile-bootstrap confidence interval (seeded, so the same
inputs always give the same verdict) and a one-sided Mann-Whitney U test checks that the current
times are stochastically larger. Tools that only report summary statistics get a Welch interval on
the change of the mean instead. The statistics are pure Python (:mod:`buildyard.gates.distributions`,
checked against scipy by the tests).

Verdicts, with ``t`` = ``max_regression``:

- ``regression``: the whole interval lies above ``+t`` and the test agrees (p < 1 - confidence);
- ``ok`` / ``improved``: the whole interval lies at or below ``+t`` (``improved``: below 0);
- ``inconclusive``: the interval straddles ``+t`` -- too noisy to decide, never a failure;
- ``new`` / ``missing``: the benchmark exists on only one side.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from enum import StrEnum

from buildyard.gates.distributions import (
    bootstrap_medians,
    mann_whitney_greater,
    quantile,
    student_t_isf,
    student_t_sf,
)
from buildyard.gates.reports.model import Benchmark

#: Fewest raw samples per side for the bootstrap; below, the Welch interval on summary stats is used.
MIN_SAMPLES = 5
#: Bootstrap resamples; 2000 keeps the percentile interval's Monte Carlo error well under 1%.
RESAMPLES = 2000


class Verdict(StrEnum):
    """Outcome of comparing one benchmark against its baseline."""

    REGRESSION = "regression"
    OK = "ok"
    IMPROVED = "improved"
    INCONCLUSIVE = "inconclusive"
    NEW = "new"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class BenchmarkComparison:
    """One row of the benchmark table. Times in seconds, changes in percent."""

    name: str
    verdict: Verdict
    baseline: float | None = None
    current: float | None = None
    change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    method: str = ""
    note: str = ""

    def describe(self) -> str:
        """``name +12.3% [+8.1%, +15.2%]`` for reasons and logs."""
        if self.change is None:
            return f"{self.name} ({self.note or self.verdict.value})"
        ci = ""
        if self.ci_low is not None and self.ci_high is not None:
            ci = f" [{self.ci_low:+.1f}%, {self.ci_high:+.1f}%]"
        return f"{self.name} {self.change:+.1f}%{ci}"


def compare(
    baseline: Benchmark,
    current: Benchmark,
    *,
    max_regression: float,
    confidence: float = 0.95,
    seed: int = 0,
) -> BenchmarkComparison:
    """Compare two measurements of one benchmark (``max_regression`` in percent)."""
    name = current.name
    if len(baseline.samples) >= MIN_SAMPLES and len(current.samples) >= MIN_SAMPLES:
        return _bootstrap(
            name,
            baseline=baseline,
            current=current,
            threshold=max_regression,
            confidence=confidence,
            seed=seed,
        )
    if baseline.rounds >= 2 and current.rounds >= 2:
        return _welch(name, baseline, current, max_regression, confidence)
    return BenchmarkComparison(
        name=name,
        verdict=Verdict.INCONCLUSIVE,
        baseline=baseline.median,
        current=current.median,
        change=_pct(current.median, baseline.median),
        method="none",
        note=f"too few samples ({baseline.rounds} baseline, {current.rounds} current; need {MIN_SAMPLES}+)",
    )


def _pct(current: float, baseline: float) -> float | None:
    return 100.0 * (current / baseline - 1.0) if baseline > 0 else None


def _bootstrap(
    name: str, *, baseline: Benchmark, current: Benchmark, threshold: float, confidence: float, seed: int
) -> BenchmarkComparison:
    b = sorted(float(x) for x in baseline.samples)
    c = sorted(float(x) for x in current.samples)
    b_med, c_med = statistics.median(b), statistics.median(c)
    if b_med <= 0:
        return BenchmarkComparison(
            name, Verdict.INCONCLUSIVE, b_med, c_med, method="bootstrap", note="baseline median is zero"
        )
    rng = random.Random(seed)  # noqa: S311 - a seeded, reproducible resampler, not a secret
    b_boot = bootstrap_medians(rng, b, RESAMPLES)
    c_boot = bootstrap_medians(rng, c, RESAMPLES)
    ratios = sorted(100.0 * (cm / bm - 1.0) for bm, cm in zip(b_boot, c_boot, strict=True) if bm > 0)
    if not ratios:  # every resampled baseline median is zero or negative
        return BenchmarkComparison(
            name, Verdict.INCONCLUSIVE, b_med, c_med, method="bootstrap", note="baseline median is zero"
        )
    alpha = 1.0 - confidence
    low, high = quantile(ratios, alpha / 2), quantile(ratios, 1 - alpha / 2)
    all_tied = b[0] == b[-1] and c[0] == c[-1]  # Mann-Whitney is undefined on all-tied data
    p_value = (0.0 if c[0] > b[0] else 1.0) if all_tied else mann_whitney_greater(c, b)
    change = 100.0 * (c_med / b_med - 1.0)
    verdict = _verdict(low, high, threshold, p_value, alpha)
    return BenchmarkComparison(
        name=name,
        verdict=verdict,
        baseline=b_med,
        current=c_med,
        change=change,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        method="bootstrap median + Mann-Whitney U",
        note=_note(verdict, threshold),
    )


def _welch(
    name: str, baseline: Benchmark, current: Benchmark, threshold: float, confidence: float
) -> BenchmarkComparison:
    mb, sb, nb = baseline.mean, baseline.stddev, baseline.rounds
    mc, sc, nc = current.mean, current.stddev, current.rounds
    if mb <= 0:
        return BenchmarkComparison(
            name, Verdict.INCONCLUSIVE, mb, mc, method="welch", note="baseline mean is zero"
        )
    diff = mc - mb
    vb, vc = sb * sb / nb, sc * sc / nc
    se = math.sqrt(vb + vc)
    alpha = 1.0 - confidence
    if se == 0:
        low = high = 100.0 * diff / mb
        p_value = 0.0 if diff > 0 else 1.0
    else:
        df = (vb + vc) ** 2 / (vb * vb / (nb - 1) + vc * vc / (nc - 1)) if vb + vc > 0 else float(nb + nc - 2)
        t = student_t_isf(alpha / 2, df)
        low, high = 100.0 * (diff - t * se) / mb, 100.0 * (diff + t * se) / mb
        p_value = student_t_sf(diff / se, df)
    verdict = _verdict(low, high, threshold, p_value, alpha)
    return BenchmarkComparison(
        name=name,
        verdict=verdict,
        baseline=mb,
        current=mc,
        change=100.0 * diff / mb,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        method="welch on mean (summary statistics only)",
        note=_note(verdict, threshold),
    )


def _verdict(low: float, high: float, threshold: float, p_value: float, alpha: float) -> Verdict:
    if low > threshold and p_value < alpha:
        return Verdict.REGRESSION
    if high <= threshold:
        return Verdict.IMPROVED if high < 0 else Verdict.OK
    return Verdict.INCONCLUSIVE


def _note(verdict: Verdict, threshold: float) -> str:
    if verdict is Verdict.REGRESSION:
        return f"slower by more than {threshold:g}%"
    if verdict is Verdict.INCONCLUSIVE:
        return "inconclusive (too noisy)"
    if verdict is Verdict.IMPROVED:
        return "faster"
    return f"within {threshold:g}%"
