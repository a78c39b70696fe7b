"""The paired statistics on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from experiments.stats import paired_difference, t_quantile, two_way_interval

T2 = 4.302652729911275  # t(0.975, 2 degrees of freedom)


def test_the_t_quantile_is_students():
    assert t_quantile(2) == pytest.approx(T2)


def test_an_interval_that_covers_0_says_not_shown():
    # differences -0.05, +0.05, +0.10: mean 0.0333, sd 0.0764
    record = paired_difference([[0.50], [0.60], [0.70]], [[0.55], [0.55], [0.60]])
    half = T2 * 0.076376261582597 / math.sqrt(3)
    assert record["mean"] == pytest.approx(1 / 30)
    assert record["interval"] == pytest.approx([1 / 30 - half, 1 / 30 + half])
    assert record["interval"][0] < 0 < record["interval"][1]
    assert record["verdict"] == "not shown" and record["interval_method"] == "t over seeds"


def test_an_interval_that_excludes_0_says_higher_or_lower():
    # differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01
    record = paired_difference([[0.60], [0.61], [0.62]], [[0.50], [0.50], [0.50]])
    half = T2 * 0.01 / math.sqrt(3)
    assert record["interval"] == pytest.approx([0.11 - half, 0.11 + half])
    assert record["verdict"] == "higher"
    assert paired_difference([[0.50], [0.50], [0.50]], [[0.60], [0.61], [0.62]])["verdict"] == "lower"


def test_seeds_and_draws_are_crossed_clusters():
    # d[s][j] = s + j: seed means 1, 2, 3 and draw means 1, 2, 3 (variance 1 each), cells variance 1.5,
    # so V = 1/3 + 1/3 - 1.5/9 = 0.5 with min(3, 3) - 1 = 2 degrees of freedom
    cells = [[float(s + j) for j in range(3)] for s in range(3)]
    mean, low, high = two_way_interval(cells)
    assert mean == 2.0 and high - mean == pytest.approx(T2 * math.sqrt(0.5))
    record = paired_difference(cells, [[0.0] * 3] * 3)
    assert record["interval_method"] == "two-way clustered over seeds and draws"
    assert record["seeds_interval"] == pytest.approx([2 - T2 / math.sqrt(3), 2 + T2 / math.sqrt(3)])
    assert record["per_seed"] == [1.0, 2.0, 3.0]


def test_unpaired_numbers_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([[0.5], [0.6]], [[0.5]])
