"""``compare --until-confident``: stop a comparison as soon as the difference is settled, with valid error rates.

Looking at Fisher's p-value after every boot and stopping when it dips below 0.05 is not a test: with enough
looks it "finds" a difference between identical arms far more often than 5% of the time. This module uses tests
that stay valid however often they are looked at (anytime-valid), built on test martingales and Ville's
inequality (a nonnegative martingale that starts at 1 exceeds 1/a with probability at most a, ever):

- **"B differs from A"**: the safe test for two proportions of Turner, Ly & Grünwald ("Generic E-variables for
  exact sequential k-sample tests that allow for optional stopping", Statistics & Probability Letters 2024;
  the R package ``safestats``). Boots are taken in blocks of one A boot and one B boot with the same index (the
  runner interleaves A, B, A, B). For a block with outcomes (x_a, x_b) and predicted pass rates (q_a, q_b),
  learnt from earlier blocks only, the factor

      E = q_a^x_a (1-q_a)^(1-x_a) q_b^x_b (1-q_b)^(1-x_b) / ( m^(x_a+x_b) (1-m)^(2-x_a-x_b) ),  m = (q_a+q_b)/2

  has expectation at most 1 under *every* common pass rate p_a = p_b (even one that drifts from block to
  block: host drift that hits both arms alike cannot fake a difference), and with q_b >= q_a also under every
  p_b <= p_a. The product over blocks is then a test supermartingale. Two one-sided products run side by side
  ("B passes more often", betting only in blocks where q_b > q_a, and "A passes more often"); a side is
  declared when its product reaches 2/alpha. So P(declaring a direction that is false) <= alpha/2 each, and
  P(declaring any difference between equal arms) <= alpha.
- **"no difference of margin or more"**: an anytime-valid confidence sequence for each arm's rate (Robbins'
  Beta(1/2, 1/2) mixture martingale: every p whose mixture likelihood ratio stays below 2/beta), and their
  difference. When the whole difference interval lies inside (-margin, +margin) the comparison stops as
  "within the margin"; P(that claim while the true difference is margin or more) <= beta.

Boots still running at the decision are stopped, not counted (as for a trial's SPRT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootlab.lab.stats import boots_per_arm
from bootlab.lab.summary import Stopper, judge

if TYPE_CHECKING:
    from bootlab.lab.runner import Arm

#: Default error rates and margin of ``compare --until-confident``.
PAIR_ALPHA = 0.05
PAIR_BETA = 0.05
PAIR_MARGIN = 0.10


def blocks(arm_a: Arm, arm_b: Arm, strict: bool = False) -> list[tuple[int, int]]:
    """(pass_a, pass_b) for every index at which both arms have a counted boot, in index order."""

    def passes(arm: Arm) -> dict[int, int]:
        judged = {r.idx: judge(r.verdict, strict) for r in arm.records}
        return {idx: int(passed) for idx, passed in judged.items() if passed is not None}

    pa, pb = passes(arm_a), passes(arm_b)
    return [(pa[i], pb[i]) for i in sorted(set(pa) & set(pb))]


def e_values(pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """The two one-sided e-processes after these blocks: (evidence that B passes more, that A passes more)."""
    path = e_path(pairs)
    return path[-1] if path else (1.0, 1.0)


def e_path(pairs: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Both e-processes after each block (what a comparison that looked after every block would have seen)."""
    out: list[tuple[float, float]] = []
    log_b = log_a = 0.0
    na = nb = 0.0  # passes so far
    for i, (xa, xb) in enumerate(pairs):
        # Krichevsky-Trofimov predictions from the blocks before this one only: the bet is predictable
        qa, qb = (na + 0.5) / (i + 1), (nb + 0.5) / (i + 1)
        m = (qa + qb) / 2

        def lik(x: int, q: float) -> float:
            return q if x else 1 - q

        step = math.log(lik(xa, qa) * lik(xb, qb)) - math.log(lik(xa, m) * lik(xb, m))
        if qb > qa:
            log_b += step
        elif qa > qb:
            log_a += step
        na += xa
        nb += xb
        out.append((math.exp(min(log_b, 700.0)), math.exp(min(log_a, 700.0))))
    return out


def confidence_sequence(k: int, n: int, level: float) -> tuple[float, float]:
    """An anytime-valid interval for a pass rate after k passes in n boots: the rates p whose Beta(1/2, 1/2)
    mixture likelihood ratio stays below 1/level (Robbins' mixture martingale; valid at every n at once)."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.special import betaln

    bound = math.log(1 / level)
    mix = betaln(0.5 + k, 0.5 + n - k) - betaln(0.5, 0.5)

    def log_m(p: float) -> float:
        return float(mix - (k * math.log(p) if k else 0.0) - ((n - k) * math.log1p(-p) if n - k else 0.0))

    mle = min(max(k / n, 1e-12), 1 - 1e-12)

    def edge(lo: float, hi: float, inside_hi: bool) -> float:
        for _ in range(60):
            mid = (lo + hi) / 2
            if (log_m(mid) < bound) == inside_hi:
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2

    low = 0.0 if log_m(1e-12) < bound else edge(1e-12, mle, True)
    high = 1.0 if log_m(1 - 1e-12) < bound else edge(mle, 1 - 1e-12, False)
    return (low, high)


@dataclass
class PairStopper(Stopper):
    """Stops both arms of a comparison at once (one instance is shared by the two arms)."""

    alpha: float = PAIR_ALPHA
    beta: float = PAIR_BETA
    margin: float = PAIR_MARGIN
    strict: bool = False
    arms: tuple[Arm, Arm] | None = field(default=None, repr=False)
    evidence: tuple[float, float] = (1.0, 1.0)
    diff_interval: tuple[float, float] = (-1.0, 1.0)

    def watch(self, arm_a: Arm, arm_b: Arm) -> None:
        self.arms = (arm_a, arm_b)

    def check(self, passes: int, fails: int) -> bool:
        """Called after any boot of either arm; the counts given are that arm's and are not needed."""
        if self.decision is not None:
            return True
        if self.arms is None:
            return False
        arm_a, arm_b = self.arms
        pairs = blocks(arm_a, arm_b, self.strict)
        self.evidence = e_values(pairs)
        a, b = arm_a.tally(), arm_b.tally()
        lo_a, hi_a = confidence_sequence(a.passed, a.boots, self.beta / 2)
        lo_b, hi_b = confidence_sequence(b.passed, b.boots, self.beta / 2)
        self.diff_interval = (lo_b - hi_a, hi_b - lo_a)
        threshold = 2 / self.alpha
        if self.evidence[0] >= threshold:
            self.decision = "b-better"
        elif self.evidence[1] >= threshold:
            self.decision = "a-better"
        elif -self.margin < self.diff_interval[0] and self.diff_interval[1] < self.margin:
            self.decision = "within-margin"
        if self.decision is not None:
            self.decided_at = len(pairs)
            return True
        return False

    def report(self, used: int, cap: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision or "undecided",
            "boots_used": used,
            "cap": cap,
            "method": "e-process",
            "alpha": self.alpha,
            "beta": self.beta,
            "margin": self.margin,
            "e_b_better": round(self.evidence[0], 4),
            "e_a_better": round(self.evidence[1], 4),
            "threshold": 2 / self.alpha,
            "difference_cs": [round(x, 4) for x in self.diff_interval],
            "describe": self.describe(),
            "fixed_n": None,
            "saved": None,
        }
        if self.arms is not None and self.decision in ("b-better", "a-better"):
            rate_a, rate_b = self.arms[0].tally().rate, self.arms[1].tally().rate
            if rate_a is not None and rate_b is not None:
                fixed = boots_per_arm(rate_a, rate_b, alpha=self.alpha, power=1 - self.beta)
                if fixed is not None:
                    out.update(fixed_n=fixed, saved=max(0, fixed - used))
        return out

    def describe(self) -> str:
        return (
            f"anytime-valid paired e-test (safe test for two proportions): a difference is declared at "
            f"e >= {2 / self.alpha:g} (alpha={self.alpha:g}); 'within ±{self.margin:.0%}' when the "
            f"{1 - self.beta:.0%} confidence sequence of B - A lies inside it (beta={self.beta:g})"
        )


def sequential_sentence(c: dict[str, Any]) -> str | None:
    """The comparison's sentence when ``--until-confident`` decided (Fisher's p of a sequentially stopped
    comparison is not a valid p-value, so the sentence rests on the sequential test instead)."""
    seq = c.get("sequential") or {}
    a, b = c["a"]["label"], c["b"]["label"]
    decision = seq.get("decision")
    if decision == "b-better":
        return f"{b} passes more often than {a} (anytime-valid e = {seq['e_b_better']:.3g} >= {seq['threshold']:g})"
    if decision == "a-better":
        return f"{a} passes more often than {b} (anytime-valid e = {seq['e_a_better']:.3g} >= {seq['threshold']:g})"
    if decision == "within-margin":
        lo, hi = seq["difference_cs"]
        return f"no difference of {seq['margin']:.0%} or more between {a} and {b} (B - A within [{lo:+.0%}, {hi:+.0%}])"
    return None
