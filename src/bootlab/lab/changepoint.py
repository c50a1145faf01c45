"""The search behind ``bootlab bisect``: a Bayesian change point over a line of commits, robust to flaky boots.

The commits are c_0 (the known-old end: ``--good``, or ``--bad`` with ``--fixed``) ... c_N (the known-new end).
The unknown is K, the first commit on the new side (1 <= K <= N). Every boot at commit i shows the symptom (a
failure, or with ``--title`` a failure with that title) with probability ``p_old`` if i < K and ``p_new`` if
i >= K. Neither rate is known, and neither needs to be 0 or 1: a 5% baseline flake on old commits and a
regression that fails "only" 10% of the time are both normal. Each rate has a Beta prior and is integrated out
in closed form: with F failures and S passes pooled on one side,

    P(data on that side) = B(a + F, b + S) / B(a, b)            (B: the Beta function, via scipy's betaln)

so the posterior of K is the prior times the product of the two sides' marginal likelihoods, for every K, in
O(N) with prefix sums. Nothing is "decided" per commit, so one unlucky boot cannot send the search down the wrong
half for good (what makes ``git bisect`` with one boot per commit, or a 0-of-10 / 2-of-10 rule, go wrong).

The next commit to boot is the one whose next batch of J boots is expected to tell the most about K: the mutual
information between K and the number of failures among the J boots (each side's rate predicted by its
Beta-binomial posterior predictive). The search stops when one commit's posterior reaches the wanted confidence,
when the boot budget is spent, or when no commit that can still be booted would tell anything.

References (approach only; no code was taken from them):

- hauntsaninja/git_bayesect: Bayesian git bisection with Beta-Bernoulli conjugacy for unknown rates and
  greedy expected-entropy selection (one observation at a time; here a batch of J, with the exact predictive).
- Karp & Kleinberg, "Noisy binary search and its applications" (SODA 2007) and adamcrume/robust-binary-search:
  multiplicative weights over positions, which is what this posterior update is when the rates are known.
- Henderson et al., "Flake Aware Culprit Finding" (ICST 2023): culprit finding as Bayesian inference over a
  change point with flaky tests, stopping at a posterior threshold.
- ChromeOS bisect-kit's noisy binary search (``--noisy old=1/10,new=2/5``): the same posterior with rates given
  by the user; here they are learnt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray


@dataclass(frozen=True)
class Priors:
    """Beta(a, b) priors on the rate of the symptom on each side of the change.

    The defaults say what the user said by naming the ends, and what flaky regressions look like: the old side
    rarely shows the symptom (Beta(1/2, 4), mean 1/9: a baseline flake is allowed, a high rate is not expected);
    the new side shows it at a rate anywhere in (0, 1], more often low than high (Beta(1, 3), mean 1/4). The
    second matters for honest confidence: with a uniform prior, a few failures in a row on the new side make the
    search believe the new rate is high, and then read a few lucky passes of a new commit as proof that it is
    old (``bench/bisect.py`` measured it: right 95.5% at a stated 95.6% on a 100% -> 90% regression with
    Beta(1, 2), 98.3% with Beta(1, 3), at about the same number of boots). ``--fixed`` swaps them.
    """

    old: tuple[float, float] = (0.5, 4.0)
    new: tuple[float, float] = (1.0, 3.0)

    def swapped(self) -> Priors:
        return Priors(old=self.new, new=self.old)


@dataclass
class ChangePoint:
    """Posterior over "commit K is the first new one" for commits 0..n-1 (0 and n-1 are the known ends).

    ``record(i, failures, passes)`` adds boots of commit i; ``skip(i)`` marks it untestable (a build error:
    it stays a candidate, since a commit that cannot be built can still be the culprit, but is never chosen to
    boot); ``posterior()`` is P(K = k) for k = 0..n-1 (index 0 is always 0: the old end is old by definition).
    """

    n: int
    priors: Priors = field(default_factory=Priors)
    weights: list[float] | None = None  # prior weight of each K (default: uniform over 1..n-1)
    fails: list[int] = field(init=False)
    passes: list[int] = field(init=False)
    skipped: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("a change point needs at least the two ends")
        self.fails = [0] * self.n
        self.passes = [0] * self.n
        if self.weights is not None and len(self.weights) != self.n:
            raise ValueError("one prior weight per commit")
        self._cache: Array | None = None

    # -- evidence ---------------------------------------------------------------------------------------------------

    def record(self, i: int, failures: int, passes: int) -> None:
        self.fails[i] += failures
        self.passes[i] += passes
        self._cache = None

    def skip(self, i: int) -> None:
        self.skipped.add(i)

    @property
    def boots(self) -> int:
        return sum(self.fails) + sum(self.passes)

    # -- posterior --------------------------------------------------------------------------------------------------

    def _sides(self) -> tuple[Array, Array, Array, Array]:
        """For every K (index 0..n-1): failures and passes pooled on the old side (commits < K) and new side."""
        import numpy as np

        f = np.asarray(self.fails, dtype=float)
        s = np.asarray(self.passes, dtype=float)
        f_old = np.concatenate(([0.0], np.cumsum(f)[:-1]))
        s_old = np.concatenate(([0.0], np.cumsum(s)[:-1]))
        return f_old, s_old, f.sum() - f_old, s.sum() - s_old

    def log_posterior(self) -> Array:
        import numpy as np
        from scipy.special import betaln, logsumexp

        f_old, s_old, f_new, s_new = self._sides()
        (ao, bo), (an, bn) = self.priors.old, self.priors.new
        loglik = (betaln(ao + f_old, bo + s_old) - betaln(ao, bo)) + (betaln(an + f_new, bn + s_new) - betaln(an, bn))
        prior = np.ones(self.n) if self.weights is None else np.asarray(self.weights, dtype=float)
        prior[0] = 0.0
        with np.errstate(divide="ignore"):
            logp = np.log(prior) + loglik
        return np.asarray(logp - logsumexp(logp))

    def posterior(self) -> Array:
        import numpy as np

        if self._cache is None:
            self._cache = np.exp(self.log_posterior())
        return self._cache

    def best(self) -> tuple[int, float]:
        """The most probable first-new commit and its posterior probability."""
        post = self.posterior()
        k = int(post.argmax())
        return k, float(post[k])

    def ranked(self, count: int = 5) -> list[tuple[int, float]]:
        post = self.posterior()
        order = sorted(range(self.n), key=lambda k: -post[k])
        return [(k, float(post[k])) for k in order[:count] if post[k] > 0]

    def rates(self) -> tuple[float, float]:
        """Posterior means of the symptom's rate on the old and new side (averaged over K)."""
        f_old, s_old, f_new, s_new = self._sides()
        (ao, bo), (an, bn) = self.priors.old, self.priors.new
        post = self.posterior()
        p_old = float((post * (ao + f_old) / (ao + bo + f_old + s_old)).sum())
        p_new = float((post * (an + f_new) / (an + bn + f_new + s_new)).sum())
        return p_old, p_new

    # -- what to boot next ------------------------------------------------------------------------------------------

    def information(self, batch: int = 1) -> Array:
        """Expected information (bits) about K from ``batch`` more boots of each commit i (-inf when skipped).

        For each K, commit i lies on the old side (i < K) or the new side, whose rate has a Beta posterior; the
        number of failures among the batch then has a Beta-binomial predictive. The information is the mutual
        information I(K; failures) = H(mixture of predictives) - E_K[H(predictive given K)], computed for every
        i at once with prefix sums over K.
        """
        import numpy as np
        from scipy.special import betaln, gammaln

        post = self.posterior()
        f_old, s_old, f_new, s_new = self._sides()
        (ao, bo), (an, bn) = self.priors.old, self.priors.new
        x = np.arange(batch + 1, dtype=float)
        log_choose = gammaln(batch + 1) - gammaln(x + 1) - gammaln(batch - x + 1)

        def predictive(a: Array, b: Array) -> Array:  # [K, x]: P(x failures of `batch` | that side's posterior)
            a, b = a[:, None], b[:, None]
            return np.exp(log_choose + betaln(a + x, b + batch - x) - betaln(a, b))

        pred_old = predictive(ao + f_old, bo + s_old)
        pred_new = predictive(an + f_new, bn + s_new)

        def entropy(p: Array) -> Array:
            with np.errstate(divide="ignore", invalid="ignore"):
                return -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=-1)

        h_old, h_new = entropy(pred_old), entropy(pred_new)
        w_old, w_new = post[:, None] * pred_old, post[:, None] * pred_new
        # commit i is old for K > i and new for K <= i
        mix = (w_old[::-1].cumsum(axis=0)[::-1] - w_old) + w_new.cumsum(axis=0)  # row i: P(x) when booting i
        cond = ((post * h_old)[::-1].cumsum()[::-1] - post * h_old) + (post * h_new).cumsum()
        gain = np.nan_to_num(entropy(mix) - cond, nan=0.0)
        gain = np.maximum(gain, 0.0)
        for i in self.skipped:
            gain[i] = -np.inf
        return np.asarray(gain)

    def next_commit(self, batch: int = 1, *, min_bits: float = 1e-9) -> int | None:
        """The commit to boot next, or None when no bootable commit would tell anything more about K (what is left
        to learn lies between commits that cannot be built). ``min_bits`` is tiny on purpose: early on, when
        only passes were seen, every commit tells little, and stopping then would be wrong (a rare failure of the
        new side has simply not shown yet); the boot budget is what bounds a search that learns slowly."""
        gain = self.information(batch)
        i = int(gain.argmax())
        return i if gain[i] >= min_bits else None
