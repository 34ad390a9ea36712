"""Benchmark comparison: distributions, not single numbers.

With at least :data:`MIN_SAMPLES` raw samples on both sides, the change of the median
(``current / baseline - 1``) gets a percentile-bootstrap confidence interval (numpy, seeded, so the
same inputs always give the same verdict) and a one-sided Mann-Whitney U test (scipy) checks that
the current times are stochastically larger. Tools that only report summary statistics get a Welch
interval on the change of the mean instead.

Verdicts, with ``t`` = ``max_regression``:

- ``regression``: the whole interval lies above ``+t`` and the test agrees (p < 1 - confidence);
- ``ok`` / ``improved``: the whole interval lies at or below ``+t`` (``improved``: below 0);
- ``inconclusive``: the interval straddles ``+t`` -- too noisy to decide, never a failure;
- ``new`` / ``missing``: the benchmark exists on only one side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from buildyard.gates.reports.model import Benchmark

if TYPE_CHECKING:
    import numpy as np

#: Fewest raw samples per side for the bootstrap; below, the Welch interval on summary stats is used.
MIN_SAMPLES = 5
#: Bootstrap resamples; 2000 keeps the percentile interval's Monte Carlo error well under 1%.
RESAMPLES = 2000
#: Larger sample sets are subsampled (seeded, without replacement) to this size before the
#: bootstrap: it keeps a gate over thousands of pytest-benchmark rounds fast, and only widens the
#: interval (a conservative direction: fewer regressions claimed, never more).
MAX_BOOTSTRAP_SAMPLES = 2000
_CHUNK_CELLS = 2_000_000  # bound memory: resamples x samples per chunk


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


def _medians(rng: np.random.Generator, values: np.ndarray, resamples: int) -> np.ndarray:
    import numpy as np  # noqa: PLC0415 - numpy/scipy load only when benchmarks are compared

    n = len(values)
    per_chunk = max(1, _CHUNK_CELLS // n)
    out = np.empty(resamples)
    for start in range(0, resamples, per_chunk):
        size = min(per_chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        out[start : start + size] = np.median(values[idx], axis=1)
    return out


def _cap(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """At most ``MAX_BOOTSTRAP_SAMPLES`` of ``values`` (seeded subsample)."""
    if len(values) <= MAX_BOOTSTRAP_SAMPLES:
        return values
    return rng.choice(values, size=MAX_BOOTSTRAP_SAMPLES, replace=False)


def _bootstrap(
    name: str, *, baseline: Benchmark, current: Benchmark, threshold: float, confidence: float, seed: int
) -> BenchmarkComparison:
    import numpy as np  # noqa: PLC0415 - see _medians
    from scipy import stats as sps  # noqa: PLC0415

    b = np.asarray(baseline.samples, dtype=float)
    c = np.asarray(current.samples, dtype=float)
    b_med, c_med = float(np.median(b)), float(np.median(c))
    if b_med <= 0:
        return BenchmarkComparison(
            name, Verdict.INCONCLUSIVE, b_med, c_med, method="bootstrap", note="baseline median is zero"
        )
    rng = np.random.default_rng(seed)
    b_boot = _medians(rng, _cap(rng, b), RESAMPLES)
    c_boot = _medians(rng, _cap(rng, c), RESAMPLES)
    valid = b_boot > 0
    ratios = 100.0 * (c_boot[valid] / b_boot[valid] - 1.0)
    alpha = 1.0 - confidence
    low, high = (float(x) for x in np.quantile(ratios, [alpha / 2, 1 - alpha / 2]))
    if np.all(b == b[0]) and np.all(c == c[0]):
        p_value = 0.0 if c[0] > b[0] else 1.0  # mannwhitneyu is undefined on all-tied data
    else:
        p_value = float(sps.mannwhitneyu(c, b, alternative="greater").pvalue)
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
    from scipy import stats as sps  # noqa: PLC0415 - see _medians

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
        t = float(sps.t.ppf(1 - alpha / 2, df))
        low, high = 100.0 * (diff - t * se) / mb, 100.0 * (diff + t * se) / mb
        p_value = float(sps.t.sf(diff / se, df))
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
