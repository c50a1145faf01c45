"""The Bayesian change point behind `bootlab bisect`: its closed forms against brute force, and its behaviour."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from bootlab.lab.changepoint import ChangePoint, Priors


def brute_posterior(cp: ChangePoint, grid: int = 400) -> np.ndarray:
    """P(K = k | data) by integrating the two rates numerically on a grid (no Beta-function algebra)."""
    from scipy.stats import beta

    ps = (np.arange(grid) + 0.5) / grid
    dens_old = beta.pdf(ps, *cp.priors.old) / grid
    dens_new = beta.pdf(ps, *cp.priors.new) / grid
    post = np.zeros(cp.n)
    for k in range(1, cp.n):
        fo, so = sum(cp.fails[:k]), sum(cp.passes[:k])
        fn, sn = sum(cp.fails[k:]), sum(cp.passes[k:])
        lo = float((dens_old * ps**fo * (1 - ps) ** so).sum())
        ln = float((dens_new * ps**fn * (1 - ps) ** sn).sum())
        post[k] = lo * ln
    return post / post.sum()


def test_prior_is_uniform_over_the_commits_after_the_old_end() -> None:
    cp = ChangePoint(9)
    post = cp.posterior()
    assert post[0] == 0
    assert np.allclose(post[1:], 1 / 8)


def test_closed_form_matches_numerical_integration() -> None:
    cp = ChangePoint(7, Priors(old=(1.0, 3.0), new=(1.0, 1.0)))
    for i, (f, s) in enumerate([(0, 5), (1, 4), (0, 3), (2, 1), (3, 2), (1, 0), (4, 1)]):
        cp.record(i, f, s)
    assert np.allclose(cp.posterior(), brute_posterior(cp), atol=2e-3)


def test_information_is_the_mutual_information_by_enumeration() -> None:
    """I(K; failures among J boots of commit i), enumerating every outcome and updating the posterior exactly."""
    from scipy.special import betaln, comb

    cp = ChangePoint(6)
    for i, (f, s) in enumerate([(0, 2), (0, 1), (1, 1), (0, 0), (2, 0), (1, 1)]):
        cp.record(i, f, s)
    batch = 3
    post = cp.posterior()

    def predictive(k: int, i: int, x: int) -> float:
        side = range(k) if i < k else range(k, cp.n)
        a, b = cp.priors.old if i < k else cp.priors.new
        f = sum(cp.fails[j] for j in side)
        s = sum(cp.passes[j] for j in side)
        return float(comb(batch, x) * math.exp(betaln(a + f + x, b + s + batch - x) - betaln(a + f, b + s)))

    def entropy(p: list[float]) -> float:
        return -sum(q * math.log2(q) for q in p if q > 0)

    expected = []
    for i in range(cp.n):
        gain = entropy(list(post))
        for x in range(batch + 1):
            joint = [post[k] * predictive(k, i, x) if k else 0.0 for k in range(cp.n)]
            px = sum(joint)
            gain -= px * entropy([j / px for j in joint])
        expected.append(gain)
    assert np.allclose(cp.information(batch), expected, atol=1e-9)


def test_the_ends_tell_little_and_the_middle_most_at_the_start() -> None:
    cp = ChangePoint(17)
    gain = cp.information(1)
    assert gain[0] < gain[8] and gain[16] < gain[8]
    assert 5 <= int(gain.argmax()) <= 11


def test_a_clear_regression_is_found_in_about_log2_steps() -> None:
    cp = ChangePoint(65)
    culprit = 41
    for _ in range(200):
        _, p = cp.best()
        if p >= 0.95:
            break
        i = cp.next_commit(1)
        assert i is not None
        fails = int(i >= culprit)
        cp.record(i, fails, 1 - fails)
    assert cp.best()[0] == culprit and cp.best()[1] >= 0.95
    assert cp.boots <= 20  # deterministic failures: little more than the 6 steps of git bisect


def run_search(
    rng: random.Random, n: int, culprit: int, p_old: float, p_new: float, priors: Priors
) -> tuple[int, float, int]:
    cp = ChangePoint(n + 1, priors)
    while cp.boots < 600:
        k, p = cp.best()
        if p >= 0.95:
            break
        i = cp.next_commit(1)
        assert i is not None
        fail = rng.random() < (p_new if i >= culprit else p_old)
        cp.record(i, int(fail), int(not fail))
    k, p = cp.best()
    return k, p, cp.boots


def test_a_flaky_baseline_does_not_fool_it() -> None:
    """95% -> 60% pass over 32 commits, 40 seeded runs: right at least as often as it claims (>= 95%)."""
    rng = random.Random(11)
    right = sum(run_search(rng, 32, c, 0.05, 0.40, Priors())[0] == c for c in (rng.randint(1, 32) for _ in range(40)))
    assert right >= 38


def test_fixed_swaps_the_priors_and_finds_the_fix() -> None:
    rng = random.Random(5)
    k, p, _ = run_search(rng, 32, 20, 0.40, 0.0, Priors().swapped())
    assert k == 20 and p >= 0.95
    assert Priors().swapped().old == Priors().new


def test_skipped_commits_stay_candidates_but_are_never_booted() -> None:
    cp = ChangePoint(5)
    cp.record(0, 0, 20)
    cp.record(1, 0, 20)
    cp.record(3, 15, 5)
    cp.record(4, 15, 5)
    cp.skip(2)
    gain = cp.information(1)
    assert gain[2] == -np.inf
    post = cp.posterior()
    assert post[2] > 0.3 and post[3] > 0.3  # the change is at 2 or 3: only booting 2 could tell
    assert cp.next_commit(1) in (None, 0, 1, 3, 4)
    # with every commit known to death, nothing bootable tells more: the search ends instead of looping
    for i in (0, 1):
        cp.record(i, 0, 500)
    for i in (3, 4):
        cp.record(i, 400, 100)
    assert cp.next_commit(1) is None


def test_rates_are_estimated_on_both_sides() -> None:
    cp = ChangePoint(3)
    cp.record(0, 1, 19)
    cp.record(1, 8, 12)
    cp.record(2, 9, 11)
    p_old, p_new = cp.rates()
    assert p_old == pytest.approx(0.06, abs=0.03) and p_new == pytest.approx(0.42, abs=0.05)


@pytest.mark.parametrize(("n", "weights"), [(1, None), (3, [1.0, 2.0])])
def test_bad_shapes_are_refused(n: int, weights: list[float] | None) -> None:
    with pytest.raises(ValueError):
        ChangePoint(n, weights=weights)


def test_every_posterior_sums_to_one() -> None:
    cp = ChangePoint(4)
    for i, f, s in itertools.product(range(4), range(3), range(3)):
        cp.record(i, f, s)
        assert cp.posterior().sum() == pytest.approx(1.0)


def test_bench_counts_an_answer_below_the_confidence_as_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/bisect.py scores what `bootlab bisect` answers: a best guess still below --confidence when the budget
    runs out names no culprit (decision "budget"), so it is not right even when it happens to be the culprit."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bisect.py"
    spec = importlib.util.spec_from_file_location("bench_bisect", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_bisect", bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    sc = bench.Scenario("100-60", 1.0, 0.6)
    short = [bench.run_bootlab(random.Random(c), sc, 4, c, 0.95, 3) for c in range(1, 5)]
    assert all(o.boots == 3 and o.stated < 0.95 and not o.right for o in short)
    ample = [bench.run_bootlab(random.Random(c), sc, 4, c, 0.95, 200) for c in range(1, 5)]
    assert all(o.right and o.stated >= 0.95 for o in ample)
