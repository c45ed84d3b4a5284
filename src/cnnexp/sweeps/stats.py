"""Is a difference between settings real? Replicates (runs that differ only in their seed) as
mean, sd and a 95 % Student-t interval; two settings compared by Welch's t-test (unequal
variances), with the seeds each would need to tell the observed difference apart.

Pure Python, no scipy: it is not a dependency of cnnexp, and the t distribution needs only the
regularised incomplete beta function (a continued fraction), plus one integral for power. The
tests check every number here against scipy.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

LEVEL = 0.95  # the intervals' coverage
ALPHA = 0.05  # two-sided test
POWER = 0.80  # for the seeds needed


# ------------------------------------------------------------------ the t distribution
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by Lentz's method (Numerical Recipes, 6.4)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # where the fraction converges fast; else by symmetry
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with df degrees of freedom (df may be fractional: Welch's)."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """The t value below which a fraction p lies: bisection on t_cdf (monotone, 200 halvings)."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2.0


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def nct_cdf(t: float, df: float, nc: float, steps: int = 2000) -> float:
    """P(T ≤ t) for the noncentral t: T = (Z + nc) / S with S = sqrt(χ²_df / df), so
    P = ∫ Φ(t·s − nc) f_S(s) ds, integrated by Simpson's rule over S's density."""
    spread = 12.0 / math.sqrt(df)  # f_S is below e^-70 outside 1 ± this
    start, width = max(0.0, 1.0 - spread), (1.0 + spread - max(0.0, 1.0 - spread)) / steps
    log_norm = math.log(2.0) + (df / 2.0) * math.log(df / 2.0) - math.lgamma(df / 2.0)
    total = 0.0
    for i in range(steps + 1):
        s = start + i * width
        if s <= 0.0:
            continue  # f_S(0) = 0 for df > 1
        density = math.exp(log_norm + (df - 1.0) * math.log(s) - df * s * s / 2.0)
        weight = 1 if i in (0, steps) else 4 if i % 2 else 2
        total += weight * _normal_cdf(t * s - nc) * density
    return total * width / 3.0


# ------------------------------------------------------------------ what the summary reports
@dataclass
class Interval:
    """n replicates: mean, sd and the 95 % interval of the mean (low, high: None when n = 1)."""
    n: int
    mean: float
    sd: Optional[float]
    low: Optional[float]
    high: Optional[float]

    def text(self, digits: int = 4) -> str:
        if self.n == 1:
            return f"{self.mean:.{digits}f} (1 run — no interval)"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def interval(values: Sequence[float]) -> Optional[Interval]:
    """mean ± t·sd/√n over the replicates; None for no values."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(1, mean, None, None, None)
    sd = statistics.stdev(values)
    half = t_ppf(1 - (1 - LEVEL) / 2, n - 1) * sd / math.sqrt(n)
    return Interval(n, mean, sd, mean - half, mean + half)


@dataclass
class Contrast:
    """a − b by Welch's t-test: the difference, its 95 % interval, the p-value, and the seeds
    each setting would need to tell a difference this large apart (None: no difference, or
    no spread to judge it by)."""
    difference: float
    low: float
    high: float
    p: float
    df: float
    seeds_needed: Optional[int]

    def text(self, digits: int = 4) -> str:
        need = f"{self.seeds_needed} seeds per setting to tell it apart at {POWER:.0%} power"
        if self.seeds_needed is None:
            need = "no spread to judge by" if self.low == self.high else "more seeds than anyone runs to tell it apart"
        return (f"{self.difference:+.{digits}f} (95 % interval {self.low:+.{digits}f} to {self.high:+.{digits}f}), "
                f"Welch p = {self.p:.3g}; {need}")


def welch(a: Sequence[float], b: Sequence[float]) -> Optional[Contrast]:
    """Welch's two-sample t-test of mean(a) − mean(b); None unless each has n ≥ 2."""
    if len(a) < 2 or len(b) < 2:
        return None
    ia, ib = interval(a), interval(b)
    va, vb = ia.sd ** 2 / ia.n, ib.sd ** 2 / ib.n
    difference, se = ia.mean - ib.mean, math.sqrt(va + vb)
    if se == 0:  # identical replicates on both sides: any difference is exact
        return Contrast(difference, difference, difference, 1.0 if difference == 0 else 0.0,
                        float(ia.n + ib.n - 2), None)
    df = (va + vb) ** 2 / (va ** 2 / (ia.n - 1) + vb ** 2 / (ib.n - 1))  # Welch–Satterthwaite
    p = 2.0 * (1.0 - t_cdf(abs(difference) / se, df))
    half = t_ppf(1 - ALPHA / 2, df) * se
    return Contrast(difference, difference - half, difference + half, min(1.0, p), df,
                    seeds_needed(difference, math.sqrt((ia.sd ** 2 + ib.sd ** 2) / 2)))


def power(difference: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample t-test with n per setting, for a true `difference`
    and a common standard deviation `sd` (the noncentral t, exactly)."""
    df = 2 * n - 2
    nc = abs(difference) / (sd * math.sqrt(2.0 / n))
    critical = t_ppf(1 - alpha / 2, df)
    return 1.0 - nct_cdf(critical, df, nc) + nct_cdf(-critical, df, nc)


def seeds_needed(difference: float, sd: float, target: float = POWER, limit: int = 1_000_000) -> Optional[int]:
    """The fewest replicates per setting (≥ 2) at which the test reaches `target` power; None
    when there is no difference or no spread, or more than `limit` would be needed."""
    if difference == 0 or not sd > 0:
        return None
    low, high = 1, 2  # power grows with n: double, then bisect (low fails, high passes)
    while power(difference, sd, high) < target:
        if high == limit:
            return None
        low, high = high, min(high * 2, limit)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if power(difference, sd, middle) < target else (low, middle)
    return high
