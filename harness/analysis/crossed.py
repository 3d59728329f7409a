"""Task-level inference for a paired accuracy difference: seeds and test examples both random
(docs/method.md, "The unit of inference").

Pure functions of arrays (numpy/scipy only; nothing here knows arms, runs or claims). The input is
one value per observed (seed, test example) cell, d(s, i) = c_A(s, i) - c_B(s, i), the two arms'
correctness on example i at seed s (each already averaged over student seeds, so in [-1, 1]). The
model is two-way crossed random effects,

    d(s, i) = mu + a_s + b_i + e_si,   Var a = sigma_seed^2, Var b = sigma_example^2, Var e = sigma_residual^2,

seeds and examples drawn independently from their populations, paired by seed and by example. The
estimate is D = mean over seeds of the seed's mean over its test examples (the seed-averaged
accuracy difference). With weights w_si = 1 / (n N_s) (n seeds, N_s examples at seed s),

    Var D = sigma_seed^2 sum_s (sum_i w_si)^2 + sigma_example^2 sum_i (sum_s w_si)^2 + sigma_residual^2 sum w_si^2,

which is sigma_seed^2 / n + sigma_example^2 / N + sigma_residual^2 / (n N) when every seed has the
same N test examples (a fixed split) and shrinks the example term only as far as the seeds' test
sets differ (a split per seed: an example in m_i of the test sets counts m_i times).

The components are Owen's (2007) U-statistics ("The pigeonhole bootstrap", Ann. Appl. Stat. 1(1)):
half the mean squared difference over pairs of cells with the same example and different seeds
(sigma_seed^2 + sigma_residual^2), the same seed and different examples (sigma_example^2 +
sigma_residual^2), and neither (all three). With every cell observed they equal the two-way ANOVA
estimators, sigma_seed^2 = (MS_seed - MS_resid) / N, sigma_example^2 = (MS_example - MS_resid) / n,
sigma_residual^2 = MS_resid, so Var D = (MS_seed + MS_example - MS_resid) / (n N). A component
estimated below zero is set to zero (the usual truncation). Degrees of freedom: Satterthwaite's, on
the three mean-square terms Var D = A + B - C with A = sigma_seed^2 / n + r (df n - 1), B = the
example term + r (df: distinct examples - 1), C = r (df (n - 1)(N - 1)), r the residual term;
the terms of a truncated component are dropped. The t interval and p use that df.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_SEEDS = 2  # a seed component needs two seeds
MIN_TESTED_SEEDS = 3  # as harness.analysis.stats.MIN_N: fewer seeds are described, never tested


@dataclass(frozen=True)
class CrossedDifference:
    """The task-level mean difference (points, i.e. 100 x the correctness difference).

    estimate: D; se, df: its standard error (points) and Satterthwaite df; se_seed, se_test_sample,
    se_residual: the square roots of the three terms of Var D (points; se^2 is their sum);
    var_seed, var_example, var_residual: the estimated components per cell (points^2, truncated
    at 0); n_seeds; n_examples: distinct examples; examples_per_seed: mean N_s; overlap: the mean
    share of a seed's test examples found in another seed's test set (1 for a fixed split; the
    projections in `variance_at` use it); split: "fixed" or "per-seed"."""
    estimate: float
    se: float
    df: float
    se_seed: float
    se_test_sample: float
    se_residual: float
    var_seed: float
    var_example: float
    var_residual: float
    n_seeds: int
    n_examples: int
    examples_per_seed: float
    overlap: float
    split: str

    def variance_at(self, n_seeds: float, test_size: float) -> float:
        """Var D (points^2) projected to n_seeds seeds of test_size examples each, with the seeds'
        test sets overlapping as observed: the example term is sigma_example^2 (q / N + (1 - q) /
        (n N)), q = overlap (1 / N for a fixed split, 1 / (n N) for disjoint test sets)."""
        n, big_n, q = float(n_seeds), float(test_size), self.overlap
        return (self.var_seed / n + self.var_example * (q / big_n + (1 - q) / (n * big_n))
                + self.var_residual / (n * big_n))

    @property
    def floor(self) -> float:
        """The standard error no number of seeds goes below at this test size (points)."""
        return math.sqrt(self.var_example * self.overlap / self.examples_per_seed)


def _pair_means(values: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(sum over groups of the within-group sum over ordered pairs of (x - x')^2, number of such
    ordered pairs): within group g of size k, sum (x - x')^2 = 2 k SS_g."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, values)
    squares = np.bincount(inv, values * values)
    ss = squares - sums * sums / counts
    return float(np.sum(2 * counts * ss)), float(np.sum(counts * (counts - 1)))


def crossed_difference(d, seed, example) -> CrossedDifference:
    """The task-level estimate of a paired accuracy difference (module docstring).

    Inputs, aligned, shape (M,) each: d, the difference of correctness A - B in [-1, 1] of one
    (seed, test example) cell; seed, the cell's seed; example, the example's id (the same id for
    the same example at every seed). Each (seed, example) at most once.
    Output: CrossedDifference in points. se and df are NaN with fewer than 2 seeds or 2 examples.
    """
    d = np.asarray(d, float)
    seed, example = np.asarray(seed), np.asarray(example)
    if not (d.shape == seed.shape == example.shape) or d.ndim != 1:
        raise ValueError("d, seed and example must be aligned 1-d arrays")
    seeds, s_idx, n_s = np.unique(seed, return_inverse=True, return_counts=True)
    exs, e_idx, m_i = np.unique(example, return_inverse=True, return_counts=True)
    n, n_ex, cells = len(seeds), len(exs), len(d)
    if cells and len(np.unique(s_idx.astype(np.int64) * n_ex + e_idx)) != cells:
        raise ValueError("a (seed, example) cell appears more than once")
    per_seed = np.bincount(s_idx, d, minlength=n) / np.maximum(n_s, 1)
    estimate = 100 * float(per_seed.mean()) if n else np.nan
    big_n = float(n_s.mean()) if n else np.nan
    split = "fixed" if n and np.all(n_s == n_ex) else "per-seed"
    # q: the mean share of a seed's test examples that another seed's test set holds
    overlap = 1.0 if split == "fixed" or n < 2 else min(1.0, float(np.sum(m_i * (m_i - 1.0))) / (n * (n - 1.0) * big_n))
    nan = CrossedDifference(estimate, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, n, n_ex,
                            big_n, overlap, split)
    if n < MIN_SEEDS or n_ex < 2:
        return nan
    # Owen's U-statistics: half the mean squared difference over pairs of cells
    same_seed, k_seed = _pair_means(d, s_idx)
    same_ex, k_ex = _pair_means(d, e_idx)
    total = 2 * cells * float(np.sum((d - d.mean()) ** 2))
    k_all = cells * (cells - 1.0) - k_seed - k_ex
    if k_seed == 0 or k_ex == 0 or k_all <= 0:
        return nan
    u_seed, u_ex, u_all = same_seed / (2 * k_seed), same_ex / (2 * k_ex), (total - same_seed - same_ex) / (2 * k_all)
    var_seed = max(u_all - u_seed, 0.0)  # pairs in one seed differ by example + residual
    var_ex = max(u_all - u_ex, 0.0)  # pairs on one example differ by seed + residual
    var_res = max(u_seed + u_ex - u_all, 0.0)
    # the weights of D: w_si = 1 / (n N_s)
    w_seed = 1.0 / (n * n_s)
    k_example = float(np.sum(np.bincount(e_idx, w_seed[s_idx], minlength=n_ex) ** 2))
    k_resid = float(np.sum(w_seed ** 2 * n_s))
    return _from_components(estimate, var_seed, var_ex, var_res, n, n_ex, big_n, overlap, split, k_example,
                            k_resid, cells)


def crossed_matrix(y) -> CrossedDifference:
    """crossed_difference of a complete design given as a matrix y, shape (n seeds, N examples):
    every seed scored on the same N examples (a fixed split), by the two-way ANOVA mean squares
    (equal to the pair statistics there; faster: no sorting)."""
    y = np.asarray(y, float)
    n, big_n = y.shape
    g = float(y.mean()) if y.size else np.nan
    if n < MIN_SEEDS or big_n < 2:
        return CrossedDifference(100 * g, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, n, big_n,
                                 float(big_n), 1.0, "fixed")
    rows, cols = y.mean(1), y.mean(0)
    ms_seed = big_n * float(np.sum((rows - g) ** 2)) / (n - 1)
    ms_ex = n * float(np.sum((cols - g) ** 2)) / (big_n - 1)
    ss_total = float(np.sum((y - g) ** 2))
    ms_res = max(ss_total - (n - 1) * ms_seed - (big_n - 1) * ms_ex, 0.0) / ((n - 1) * (big_n - 1))
    return _from_components(100 * g, max((ms_seed - ms_res) / big_n, 0.0), max((ms_ex - ms_res) / n, 0.0), ms_res,
                            n, big_n, float(big_n), 1.0, "fixed", 1.0 / big_n, 1.0 / (n * big_n), n * big_n)


def _from_components(estimate, var_seed, var_ex, var_res, n, n_ex, big_n, overlap, split, k_example, k_resid,
                     cells) -> CrossedDifference:
    """The CrossedDifference of estimated components (per cell, fractions^2) and the weights of D:
    k_example = sum_i (sum_s w_si)^2, k_resid = sum w_si^2; Satterthwaite df (module docstring)."""
    t_seed, t_ex, t_res = var_seed / n, var_ex * k_example, var_res * k_resid
    var = t_seed + t_ex + t_res
    terms = []
    if var_seed > 0:
        terms.append((t_seed + t_res, n - 1.0))
    if var_ex > 0:
        terms.append((t_ex + t_res, n_ex - 1.0))
    if var_seed > 0 and var_ex > 0 or not terms:
        terms.append((t_res, (n - 1.0) * (big_n - 1.0)))
    denom = sum(t * t / df for t, df in terms)
    df = float(var * var / denom) if denom > 0 else float(cells - 1)
    df = min(max(df, 1.0), float(cells - 1))
    return CrossedDifference(estimate, 100 * math.sqrt(var), df, 100 * math.sqrt(t_seed), 100 * math.sqrt(t_ex),
                             100 * math.sqrt(t_res), 1e4 * var_seed, 1e4 * var_ex, 1e4 * var_res, n, n_ex, big_n,
                             overlap, split)


# ---------------------------------------------------------------- what a decision needs

def target_variance(effect: float, alpha: float, power: float = 0.8, sides: int = 2) -> float:
    """The largest Var D (points^2) at which a z test at level alpha (two- or one-sided) detects a
    true difference `effect` with probability `power` (normal approximation): (effect /
    (z_{1 - alpha/sides} + z_power))^2; 0 when effect is 0 or not finite."""
    if not np.isfinite(effect) or effect == 0:
        return 0.0
    return (abs(effect) / (stats.norm.isf(alpha / sides) + stats.norm.ppf(power))) ** 2


def seeds_needed(cd: CrossedDifference, target: float, *, max_n: int = 10_000) -> float:
    """Seeds at which Var D falls to `target` at this test size (cd.examples_per_seed); inf when
    the test-sample term alone exceeds it (no number of seeds suffices), NaN above max_n or when
    undefined."""
    if not (np.isfinite(cd.se) and target > 0):
        return np.nan
    big_n, q = cd.examples_per_seed, cd.overlap
    room = target - cd.var_example * q / big_n
    if room <= 0:
        return math.inf
    need = (cd.var_seed + (cd.var_example * (1 - q) + cd.var_residual) / big_n) / room
    n = max(MIN_TESTED_SEEDS, math.ceil(need - 1e-9))
    return float(n) if n <= max_n else np.nan


def test_size_needed(cd: CrossedDifference, target: float, n_seeds: float | None = None, *,
                     max_size: int = 10_000_000) -> float:
    """Test examples per seed at which Var D falls to `target` with n_seeds seeds (default: those
    observed), overlap held as observed; inf when the seed term alone exceeds it (more seeds are
    needed), NaN when undefined."""
    if not (np.isfinite(cd.se) and target > 0):
        return np.nan
    n, q = float(n_seeds or cd.n_seeds), cd.overlap
    room = target - cd.var_seed / n
    if room <= 0:
        return math.inf
    need = (cd.var_example * (q + (1 - q) / n) + cd.var_residual / n) / room
    size = max(2, math.ceil(need - 1e-9))
    return float(size) if size <= max_size else np.nan
