"""Paired differences between two conditions of the experiment, with 95% intervals.

Two encoders of the same seed are compared on the same probe draws (the evaluator seeds its labelled
draws by the probe seed and the draw index alone), so every number of a condition has a partner in
the reference condition, and the question "does A beat B?" is a question about their differences.

The method, for a metric measured per seed s and per probe draw j (one "draw" for kNN and the
full-label probe):

- d[s][j] = A[s][j] - B[s][j], the paired difference of one cell; the estimate is their mean.
- Over seeds: per seed, the mean over draws m[s]; a Student t interval over the S seed means,
  mean ± t(0.975, S - 1) * sd(m) / sqrt(S). It treats the seed as the unit of replication and holds
  whatever the draws do within a seed.
- Over seeds and draws (the low-label probe, S, D >= 2): the same seeds use the same draws, so seeds
  and draws are crossed, and a draw that happens to favour A favours it in every seed. The
  variance of the mean is the two-way cluster-robust one (Cameron, Gelbach and Miller 2011):
  V = var(m)/S + var(n)/D - var(d)/(S D), with n[j] the mean over seeds of draw j, taken no smaller
  than either one-way term; the interval is mean ± t(0.975, min(S, D) - 1) * sqrt(V).

A difference is "shown" only where its interval excludes 0; everything else reads "not shown".
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from scipy.stats import t as student_t

LEVEL = 0.95


def t_quantile(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    return float(student_t.ppf(0.5 + LEVEL / 2, df))


def cell_differences(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> list[list[float]]:
    """d[s][j] = a[s][j] - b[s][j]; both are [seeds][draws] and must have the same shape."""
    if len(a) != len(b) or any(len(row_a) != len(row_b) for row_a, row_b in zip(a, b)):
        raise ValueError("paired conditions need the same seeds and the same draws")
    return [[x - y for x, y in zip(row_a, row_b)] for row_a, row_b in zip(a, b)]


def seed_interval(cells: list[list[float]]) -> tuple[float, float, float] | None:
    """(mean, low, high): a t interval over the seeds' mean differences; None with one seed."""
    means = [statistics.fmean(row) for row in cells]
    if len(means) < 2:
        return None
    mean = statistics.fmean(means)
    half = t_quantile(len(means) - 1) * statistics.stdev(means) / math.sqrt(len(means))
    return mean, mean - half, mean + half


def two_way_interval(cells: list[list[float]]) -> tuple[float, float, float] | None:
    """(mean, low, high) with seeds and draws as crossed clusters; None with one seed or one draw."""
    seeds, draws = len(cells), len(cells[0])
    if seeds < 2 or draws < 2:
        return None
    flat = [value for row in cells for value in row]
    mean = statistics.fmean(flat)
    by_seed = statistics.variance([statistics.fmean(row) for row in cells]) / seeds
    by_draw = statistics.variance([statistics.fmean(column) for column in zip(*cells)]) / draws
    by_cell = statistics.variance(flat) / (seeds * draws)
    variance = max(by_seed + by_draw - by_cell, by_seed, by_draw)
    half = t_quantile(min(seeds, draws) - 1) * math.sqrt(variance)
    return mean, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    """'higher' or 'lower' where the interval excludes 0, else 'not shown'."""
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "not shown"


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict[str, Any]:
    """A - B, paired by seed and draw: the estimate, its 95% interval and the verdict.

    The reported interval is the two-way one where there are several draws, else the one over seeds;
    both are kept. ``a`` and ``b`` are [seeds][draws] (one draw for metrics without draws)."""
    cells = cell_differences(a, b)
    over_seeds = seed_interval(cells)
    crossed = two_way_interval(cells)
    chosen = crossed or over_seeds
    record: dict[str, Any] = {
        "mean": statistics.fmean(value for row in cells for value in row),
        "per_seed": [statistics.fmean(row) for row in cells],
        "seeds_interval": list(over_seeds[1:]) if over_seeds else None,
        "seeds_and_draws_interval": list(crossed[1:]) if crossed else None,
        "interval": list(chosen[1:]) if chosen else None,
        "interval_method": ("two-way clustered over seeds and draws" if crossed else
                            "t over seeds" if over_seeds else "none (one seed)"),
    }
    record["verdict"] = verdict(*record["interval"]) if chosen else "not shown"
    return record
