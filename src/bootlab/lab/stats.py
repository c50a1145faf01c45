"""The statistics behind trials and comparisons: Wilson intervals, Fisher's exact test, Wald's SPRT, sample sizes.

The user's notes say "10/10 = 100% (up from 60%)". Ten boots cannot tell 60% from 100% with much confidence
(Fisher p = 0.0867), and every number bootlab prints should say how much it knows. The primitives come from
scipy.stats (``binomtest(...).proportion_ci(method="wilson")``, ``fisher_exact``, ``binom``, ``norm``); what is
written here is the thin layer on top: Newcombe's interval for a difference (built from two Wilson intervals),
the SPRT bookkeeping and the sample-size formulas used to say "about K more boots each would settle it".

scipy is imported inside the functions: ``bootlab history`` should not pay ~0.3 s of scipy import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Decision = Literal["reached", "refuted", "undecided"]

#: Default error rates of the sequential test: alpha = P(declare "reached" | the rate is at the low edge),
#: beta = P(declare "refuted" | the rate is exactly the target).
SPRT_ALPHA = 0.05
SPRT_BETA = 0.05
#: Default indifference region width: the SPRT tests p >= target against p <= target - SPRT_DELTA. Rates in
#: between are "close enough" either way; the closer the true rate is to the middle, the longer the test runs.
SPRT_DELTA = 0.10
#: p is clipped to [P_EPS, 1 - P_EPS] so that a target of 100% keeps finite log-likelihood ratios: one failure
#: then refutes "100%" (its ratio is log(0.001/0.1) = -4.6, below the lower threshold of -2.94).
P_EPS = 0.001


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials; (0, 1) when nothing is known yet."""
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def fisher_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value for k_a/n_a against k_b/n_b (1.0 when either side is empty)."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    from scipy.stats import fisher_exact

    res = fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]], alternative="two-sided")
    return min(1.0, float(res.pvalue))


def diff_interval(k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p_b - p_a, from the two Wilson intervals.

    It behaves at 0% and 100% (where the textbook Wald interval collapses to a point), which is exactly where
    boot rates live: "10/10" has a Wilson interval of [72%, 100%], not [100%, 100%].
    """
    p_a = k_a / n_a if n_a else 0.0
    p_b = k_b / n_b if n_b else 0.0
    lo_a, hi_a = wilson(k_a, n_a, confidence)
    lo_b, hi_b = wilson(k_b, n_b, confidence)
    d = p_b - p_a
    lo = d - math.sqrt((p_b - lo_b) ** 2 + (hi_a - p_a) ** 2)
    hi = d + math.sqrt((hi_b - p_b) ** 2 + (p_a - lo_a) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def boots_per_arm(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.80) -> int | None:
    """Boots per arm for a two-sided test at ``alpha`` to detect p_a vs p_b with ``power`` (Fleiss, with
    continuity correction, which tracks Fisher's exact test closely). None when the rates are equal: no number of
    boots settles a difference of zero."""
    from scipy.stats import norm

    d = abs(p_b - p_a)
    if d < 1e-9:
        return None
    z_a = float(norm.ppf(1 - alpha / 2))
    z_b = float(norm.ppf(power))
    pbar = (p_a + p_b) / 2
    n0 = (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))) ** 2 / d**2
    n = n0 / 4 * (1 + math.sqrt(1 + 4 / (n0 * d))) ** 2 if n0 > 0 else 0.0
    return max(2, math.ceil(n))


@dataclass(frozen=True)
class Sprt:
    """Wald's sequential probability ratio test of "pass rate >= target" for a stream of pass/fail boots.

    H1 (reached): p = p1 = target.  H0 (refuted): p = p0 = target - delta.  After each boot the log-likelihood
    ratio moves by log(p1/p0) on a pass and log((1-p1)/(1-p0)) on a failure; it stops at
    A = log((1-beta)/alpha) ("reached") or B = log(beta/(1-alpha)) ("refuted"). Error rates: P(reached | p0) <=
    alpha and P(refuted | p1) <= beta, approximately (Wald's bounds are slightly conservative).
    """

    target: float
    alpha: float = SPRT_ALPHA
    beta: float = SPRT_BETA
    delta: float = SPRT_DELTA

    @property
    def p1(self) -> float:
        return min(max(self.target, P_EPS * 2), 1 - P_EPS)

    @property
    def p0(self) -> float:
        return min(max(self.target - self.delta, P_EPS), self.p1 - P_EPS)

    @property
    def upper(self) -> float:
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta / (1 - self.alpha))

    def llr(self, passes: int, fails: int) -> float:
        return passes * math.log(self.p1 / self.p0) + fails * math.log((1 - self.p1) / (1 - self.p0))

    def decide(self, passes: int, fails: int) -> Decision:
        value = self.llr(passes, fails)
        if value >= self.upper:
            return "reached"
        if value <= self.lower:
            return "refuted"
        return "undecided"

    def fixed_n(self) -> int:
        """The smallest fixed number of boots whose one-sided exact binomial test has the same error rates.

        Find the least n with a cut-off c such that P(X >= c | p0) <= alpha and P(X >= c | p1) >= 1 - beta. This is
        what the SPRT is compared against when bootlab says how many boots it saved.
        """
        from scipy.stats import binom

        for n in range(1, 100_000):
            # the smallest c with P(X >= c | p0) <= alpha
            c = int(binom.ppf(1 - self.alpha, n, self.p0)) + 1
            while c <= n and float(binom.sf(c - 1, n, self.p0)) > self.alpha:
                c += 1
            if c <= n and float(binom.sf(c - 1, n, self.p1)) >= 1 - self.beta:
                return n
        raise ValueError("no fixed-n test found")  # pragma: no cover

    def describe(self) -> str:
        return (
            f"SPRT: pass rate >= {self.target:.0%} (reached) vs <= {self.p0:.0%} (refuted), "
            f"alpha={self.alpha:g}, beta={self.beta:g}"
        )


def width_fixed_n(width: float, p: float = 0.5, confidence: float = 0.95) -> int:
    """The boots a fixed-N trial would plan for a Wilson interval narrower than ``width`` at rate ``p``
    (0.5, the worst case, when planning without knowing the rate)."""
    n = 1
    while n < 100_000:
        lo, hi = wilson(round(p * n), n, confidence)
        if hi - lo < width:
            return n
        n = n + 1 if n < 50 else int(n * 1.02) + 1
    return n


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default; no numpy import needed."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def p_text(p: float | None) -> str:
    """A p-value as every output prints it (sentences, terminal, reports, figures): three significant digits,
    "0.0867" or "6.18e-07", so that the same test reads the same wherever it is shown; "-" when there is none."""
    return "-" if p is None else f"{p:.3g}"


def rank_test(a: list[float], b: list[float]) -> tuple[float, int] | None:
    """Mann–Whitney U test of two samples of times: (two-sided p, direction), or None with fewer than 2 each.

    direction is +1 when b tends to be larger than a (B is slower), -1 when smaller, 0 when neither, read from U
    itself (not from the medians, which can be equal while one sample is shifted). A rank test, because boot
    times are skewed (a slow disk, a retried probe) and a t-test on them would be led by the stragglers."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(b, a, alternative="two-sided")
    p = float(res.pvalue)
    if math.isnan(p):  # every value identical: nothing to tell apart
        p = 1.0
    half = len(a) * len(b) / 2
    direction = 0 if float(res.statistic) == half else (1 if float(res.statistic) > half else -1)
    return min(1.0, p), direction


def compare_times(times_a: dict[str, list[float]], times_b: dict[str, list[float]]) -> list[dict[str, object]]:
    """Per stage both arms reached: the medians of A and B, the boots measured, and the rank test's p-value.

    One test per stage, uncorrected: read them as a map of where the time goes; the verdict on "B boots slower"
    is the test of the last stage both reach (time to ready), one test."""
    rows: list[dict[str, object]] = []
    for name, a in times_a.items():
        b = times_b.get(name)
        if not a or not b:
            continue
        test = rank_test(a, b)
        rows.append(
            {
                "stage": name,
                "a_p50": round(percentile(a, 50), 3),
                "b_p50": round(percentile(b, 50), 3),
                "n_a": len(a),
                "n_b": len(b),
                "p_value": test[0] if test else None,
                "direction": test[1] if test else 0,
            }
        )
    return rows
