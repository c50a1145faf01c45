"""The statistics against known values (scipy's, and textbook examples)."""

from __future__ import annotations

import math

import pytest

from bootlab.lab.stats import boots_per_arm, diff_interval, fisher_p, percentile, rank_test, width_fixed_n, wilson


def test_wilson_6_of_10() -> None:
    lo, hi = wilson(6, 10)
    assert lo == pytest.approx(0.3127, abs=1e-4)
    assert hi == pytest.approx(0.8318, abs=1e-4)


def test_wilson_10_of_10_is_not_a_point() -> None:
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4)
    assert hi == 1.0


def test_wilson_of_one_boot() -> None:
    """1/1 is not 100% [100%, 100%]: one boot says little (Wilson: [20.7%, 100%]); 0/1 mirrors it."""
    lo, hi = wilson(1, 1)
    assert lo == pytest.approx(0.2065, abs=1e-4) and hi == 1.0
    lo, hi = wilson(0, 1)
    assert lo == 0.0 and hi == pytest.approx(0.7935, abs=1e-4)


def test_wilson_nothing_known() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def test_fisher_6_of_10_vs_10_of_10() -> None:
    assert fisher_p(6, 10, 10, 10) == pytest.approx(0.0867, abs=1e-4)


def test_fisher_symmetry_and_identity() -> None:
    assert fisher_p(10, 10, 6, 10) == pytest.approx(fisher_p(6, 10, 10, 10))
    assert fisher_p(5, 10, 5, 10) == pytest.approx(1.0)
    assert fisher_p(0, 0, 3, 4) == 1.0


def test_fisher_clear_difference() -> None:
    assert fisher_p(2, 20, 20, 20) < 1e-6


def test_newcombe_interval_contains_estimate() -> None:
    lo, hi = diff_interval(6, 10, 10, 10)
    assert lo < 0.4 < hi
    assert lo == pytest.approx(0.0384, abs=1e-3)  # Newcombe method 10
    assert hi == pytest.approx(0.6873, abs=1e-3)
    lo, hi = diff_interval(5, 10, 5, 10)
    assert lo < 0 < hi


def test_boots_per_arm() -> None:
    assert boots_per_arm(0.5, 0.5) is None
    n = boots_per_arm(0.6, 1.0)
    assert n is not None and 15 <= n <= 25
    small = boots_per_arm(0.5, 0.6)
    assert small is not None and small > 300  # a small difference needs hundreds of boots


def test_width_fixed_n_monotone() -> None:
    assert width_fixed_n(0.2) > width_fixed_n(0.3) > width_fixed_n(0.5)
    lo, hi = wilson(width_fixed_n(0.2) // 2, width_fixed_n(0.2))
    assert hi - lo < 0.2


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 90) == 5
    assert math.isnan(percentile([], 50))


def test_rank_test_direction_and_degenerate_samples() -> None:
    slow = rank_test([1.0, 2, 3, 4, 5, 6], [7.0, 8, 9, 10, 11])
    assert slow is not None and slow[0] == pytest.approx(0.004329, abs=1e-6) and slow[1] == 1  # B later
    fast = rank_test([7.0, 8, 9, 10, 11], [1.0, 2, 3, 4, 5, 6])
    assert fast is not None and fast[1] == -1
    assert rank_test([2.4] * 5, [2.4] * 5) == (1.0, 0)  # all tied: nothing to tell apart
    assert rank_test([2.4], [2.5, 2.6]) is None  # one boot says nothing about a distribution
