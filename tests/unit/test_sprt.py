"""Wald's SPRT: decisions on simulated sequences, error rates held, and fewer boots than the fixed-N test."""

from __future__ import annotations

import math
import random

import pytest

from bootlab.lab.stats import Sprt


def run(sprt: Sprt, rate: float, rng: random.Random, cap: int = 5000) -> tuple[str, int]:
    passes = fails = 0
    for n in range(1, cap + 1):
        if rng.random() < rate:
            passes += 1
        else:
            fails += 1
        d = sprt.decide(passes, fails)
        if d != "undecided":
            return d, n
    return "undecided", cap


def test_thresholds() -> None:
    s = Sprt(0.9)
    assert s.p1 == 0.9 and s.p0 == pytest.approx(0.8)
    assert s.upper == pytest.approx(2.944, abs=1e-3)
    assert s.lower == pytest.approx(-2.944, abs=1e-3)
    assert s.decide(0, 0) == "undecided"


def test_thresholds_with_unequal_error_rates() -> None:
    """Wald's bounds: reach at log((1-beta)/alpha), refute at log(beta/(1-alpha)). With alpha != beta a swap
    shows: a strict alpha (rarely claim a rate that is not there) needs more evidence to reach than to refute."""
    s = Sprt(0.9, alpha=0.01, beta=0.2)
    assert s.upper == pytest.approx(math.log(0.8 / 0.01))  # 4.382
    assert s.lower == pytest.approx(math.log(0.2 / 0.99))  # -1.599
    assert s.upper > -s.lower
    swapped = Sprt(0.9, alpha=0.2, beta=0.01)
    assert swapped.upper == pytest.approx(math.log(0.99 / 0.2)) and swapped.lower == pytest.approx(math.log(0.01 / 0.8))
    # 25 passes in a row reach 0.9 at alpha = beta = 0.05; at alpha = 0.01 it takes 38
    assert Sprt(0.9).decide(28, 0) == "reached" and s.decide(28, 0) == "undecided"


def test_one_failure_refutes_a_target_of_100_percent() -> None:
    s = Sprt(1.0)
    assert s.decide(3, 1) == "refuted"
    assert s.decide(29, 0) == "reached"
    assert s.decide(28, 0) == "undecided"


def test_all_failures_refute_quickly() -> None:
    s = Sprt(0.9)
    assert s.decide(0, 4) == "undecided"
    assert s.decide(0, 5) == "refuted"


@pytest.mark.parametrize("target", [0.6, 0.9, 0.95])
def test_error_rates_and_savings_on_simulated_boots(target: float) -> None:
    s = Sprt(target)
    rng = random.Random(1234)
    runs = 400
    wrong_at_p1 = wrong_at_p0 = 0
    used = 0
    for _ in range(runs):
        d, n = run(s, s.p1, rng)
        wrong_at_p1 += d == "refuted"
        used += n
        d, n = run(s, s.p0, rng)
        wrong_at_p0 += d == "reached"
        used += n
    # Wald's bounds: both error rates at most about alpha = beta = 0.05 (binomial noise on 400 runs)
    assert wrong_at_p1 / runs <= 0.08
    assert wrong_at_p0 / runs <= 0.08
    # and on average well under the fixed-N test with the same error rates
    assert used / (2 * runs) <= 0.75 * s.fixed_n()


def test_fixed_n_known_value() -> None:
    # one-sided exact binomial test, p0 = 0.8 vs p1 = 0.9, alpha = beta = 0.05
    assert 120 <= Sprt(0.9).fixed_n() <= 150
    assert Sprt(1.0).fixed_n() == 29
