"""Inference helpers that decide whether a verdict is reachable at all and back the primary verdicts.

Pure functions of arrays and integers, numpy/scipy only; nothing here knows arms or claims
(harness/analysis/claims.py and harness/analysis/groups.py call them). What is here and why:

* reachability: `fisher_min_p`, `fisher_min_p_one_sided` (the smallest p Fisher's exact test can
  give at these sizes) and `min_attainable_p_adjusted` (the smallest Holm-adjusted p it can then
  become). A claim whose smallest attainable adjusted p is above alpha cannot be confirmed at
  this number of seeds, whatever the runs show.
* spread: `bonett_sd_ratio`, Bonett's (2006) robust interval for sigma_x / sigma_y with the p of
  H0 ratio = 1 from inverting it.
* degenerate predictors: `kappa_from_counts`, Cohen's kappa from the accuracy and the two
  marginals (a run that predicts one class has kappa 0 whatever its accuracy).
* budget x arm interaction: `paired_interaction`, a one-sample t on the per-seed differences of
  paired differences.
* group-sequential looks (issue 24): `lan_demets_obf_spending`, `group_sequential_bounds`,
  `obrien_fleming_classic_bounds`, `crossing_probabilities` and `nominal_p_bounds`, two-sided
  symmetric boundaries on the z scale from the canonical joint distribution (Brownian motion in
  the information fraction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special, stats

# ---------------------------------------------------------------- spread: Bonett (2006)


@dataclass(frozen=True)
class SdRatio:
    """sigma_x / sigma_y: ratio = s_x / s_y (sample sds, ddof 1), [ci_low, ci_high] Bonett's
    1 - alpha interval, p the two-sided p of H0 ratio = 1 (the interval inverted)."""
    ratio: float
    ci_low: float
    ci_high: float
    p: float


def _bonett_parts(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(log(s_x^2 / s_y^2), se) of Bonett (2006): se^2 = sum_i (g_p - (n_i - 3) / n_i) / (n_i - 1)
    with the pooled kurtosis g_p = (n_x + n_y) [sum (x - m_x)^4 + sum (y - m_y)^4] /
    [sum (x - xbar)^2 + sum (y - ybar)^2]^2, m_i the mean trimmed by 1 / (2 sqrt(n_i - 4)) at
    each end (the median once that reaches one half, as R's mean(trim =))."""
    def trimmed(v):
        cut = 1 / (2 * math.sqrt(len(v) - 4))
        return float(np.median(v)) if cut >= 0.5 else float(stats.trim_mean(v, cut))
    nx, ny = len(x), len(y)
    ssx, ssy = np.sum((x - x.mean()) ** 2), np.sum((y - y.mean()) ** 2)
    kurt = (nx + ny) * (np.sum((x - trimmed(x)) ** 4) + np.sum((y - trimmed(y)) ** 4)) / (ssx + ssy) ** 2
    se = math.sqrt((kurt - (nx - 3) / nx) / (nx - 1) + (kurt - (ny - 3) / ny) / (ny - 1))
    return math.log((ssx / (nx - 1)) / (ssy / (ny - 1))), se


def _log_c(z, nx: int, ny: int):
    """log of Bonett's small-sample constant c = [n_x / (n_x - z)] / [n_y / (n_y - z)]."""
    return np.log(nx / (nx - z)) - np.log(ny / (ny - z))


def bonett_sd_ratio(x, y, alpha: float = 0.05) -> SdRatio:
    """Bonett's robust interval for the ratio of standard deviations sigma_x / sigma_y.

    Inputs: x, y finite values, shapes (n_x,), (n_y,), independent groups; 0 < alpha < 1.
    Output: SdRatio(ratio = s_x / s_y, ci_low, ci_high, p).
    Interval (Bonett 2006, "Robust confidence interval for a ratio of standard deviations",
    Applied Psychological Measurement 30(5), 432-439): for the variance ratio
    exp[log(c s_x^2 / s_y^2) +- z se], z = z_{1 - alpha/2}, c and se as in `_bonett_parts` and
    `_log_c` (the pooled kurtosis of the paper, which assumes equal variances: the interval is
    meant for testing ratio = 1 and equivalence); the sd-ratio interval is its square root. It
    needs n >= 5 per group (trim 1 / (2 sqrt(n - 4))) and z < min(n_x, n_y).
    p: the interval inverted. At alpha = 1 the interval is the point s_x^2 / s_y^2; it widens as
    alpha falls, and p is the level at which it first reaches 1 (the largest alpha whose interval
    contains 1), so the interval excludes 1 exactly when p < alpha. With n_x = n_y, c = 1 and
    p = 2 (1 - Phi(|log(s_x^2 / s_y^2)| / se)); otherwise p is solved numerically. When the
    interval excludes 1 at every level at which it is defined, p = 2 (1 - Phi(min(n_x, n_y)))
    (an upper bound). ci_low, ci_high and p are NaN for n < 5 in a group, a zero sd, or (the
    interval only) z_{1 - alpha/2} >= min(n_x, n_y); ratio is NaN for n < 2.
    Swapping x and y inverts ratio and interval and keeps p.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return SdRatio(np.nan, np.nan, np.nan, np.nan)
    sx, sy = float(np.std(x, ddof=1)), float(np.std(y, ddof=1))
    ratio = sx / sy if sy > 0 else (np.inf if sx > 0 else np.nan)
    if min(nx, ny) < 5 or sx == 0 or sy == 0:
        return SdRatio(ratio, np.nan, np.nan, np.nan)
    lr, se = _bonett_parts(x, y)
    z = float(stats.norm.isf(alpha / 2))
    lo = hi = np.nan
    if z < min(nx, ny):
        centre = lr + float(_log_c(z, nx, ny))
        lo, hi = math.exp((centre - z * se) / 2), math.exp((centre + z * se) / 2)
    return SdRatio(ratio, lo, hi, _bonett_p(lr, se, nx, ny))


def _bonett_p(lr: float, se: float, nx: int, ny: int) -> float:
    """Two-sided p of sigma_x = sigma_y from Bonett's interval (see bonett_sd_ratio)."""
    if lr == 0:
        return 1.0
    if nx == ny:
        return float(2 * stats.norm.sf(abs(lr) / se))
    zmax = min(nx, ny, 40) * (1 - 1e-9)  # c is defined for z < min(n); 2 sf(40) is 0 in doubles

    def gap(z):  # > 0 while the interval at z excludes 1 on the side of the estimate
        return np.sign(lr) * (lr + _log_c(z, nx, ny)) - z * se
    grid = np.linspace(0, zmax, 513)
    inside = np.flatnonzero(gap(grid) <= 0)
    if not len(inside):
        return float(2 * stats.norm.sf(zmax))
    k = inside[0]
    return float(2 * stats.norm.sf(optimize.brentq(gap, grid[k - 1], grid[k], xtol=1e-13)))


# ---------------------------------------------------------------- degenerate predictors


def kappa_from_counts(accuracy: float, pred_counts, true_counts) -> float:
    """Cohen's kappa of predictions against labels from the accuracy and the two marginals.

    Inputs: accuracy p_o, the fraction of correct predictions in [0, 1] (not percent);
    pred_counts, true_counts shape (K,), the number of predictions / labels of each class, in the
    same class order, with equal totals N.
    Output: kappa = (p_o - p_e) / (1 - p_e), p_e = sum_k (pred_k / N) (true_k / N), the agreement
    expected by chance (Cohen 1960, "A coefficient of agreement for nominal scales", Educational
    and Psychological Measurement 20(1)). A run that predicts one class has kappa 0. NaN when
    N = 0 or p_e = 1 (labels and predictions all one same class).
    Raises ValueError when accuracy is outside [0, 1] or the totals differ.
    """
    pred, true = np.asarray(pred_counts, float), np.asarray(true_counts, float)
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    if pred.shape != true.shape or pred.sum() != true.sum():
        raise ValueError("pred_counts and true_counts must have the same classes and total")
    n = true.sum()
    if n == 0:
        return np.nan
    pe = float(np.sum(pred * true) / n ** 2)
    return np.nan if pe >= 1 else float((accuracy - pe) / (1 - pe))


# ---------------------------------------------------------------- reachability


def fisher_min_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p scipy.stats.fisher_exact can return for a 2x2 table with row
    totals n_a and n_b, over every success count k_a in 0..n_a, k_b in 0..n_b.

    Output: 2 / C(n_a + n_b, n_a) when n_a = n_b, else 1 / C(n_a + n_b, n_a); NaN when either n is
    0. Why: with margins fixed the table's probability is hypergeometric, and C(N, n_a) times it
    is C(n_a, k_a) C(n_b, t - k_a) >= 1, with equality only for "all of one row succeed, none of
    the other" (t = n_a or n_b, at an end of the support); the two-sided p (scipy's: the tables
    as or less likely) sums that table and, when n_a = n_b, its mirror image, equally likely.
    Every other table has probability >= 2 / C(N, n_a). E.g. 5 vs 5: 2/252; 3 vs 3: 0.1.
    """
    if n_a <= 0 or n_b <= 0:
        return np.nan
    return min(1.0, (2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a))


def fisher_min_p_one_sided(n_a: int, n_b: int) -> float:
    """The smallest one-sided p ("greater" or "less": the same by symmetry) scipy.stats.fisher_exact
    can return for row totals n_a, n_b: 1 / C(n_a + n_b, n_a), the probability of the most extreme
    table (see fisher_min_p); NaN when either n is 0."""
    if n_a <= 0 or n_b <= 0:
        return np.nan
    return 1 / math.comb(n_a + n_b, n_a)


def min_attainable_p_adjusted(min_raw_p: float, family_size: int, rank: int = 1) -> float:
    """The smallest Holm-adjusted p a hypothesis can reach: what a reader checks to see whether a
    verdict is reachable at all.

    Inputs: min_raw_p, the smallest raw p its test can give at this n (e.g. fisher_min_p);
    family_size m >= 1, the number of hypotheses Holm adjusts together; rank r in 1..m, its step
    in Holm's order (1 = the smallest raw p of the family).
    Output: min(1, (m - r + 1) min_raw_p). Holm (1979, "A simple sequentially rejective multiple
    test procedure", Scand J Statist 6) adjusts the r-th smallest p to
    max_{j <= r} min(1, (m - j + 1) p_(j)) >= (m - r + 1) p_(r), attained when the hypotheses
    ranked ahead have small enough p. When every test of the family has the same smallest p
    (same test, same n), no hypothesis can go below min(1, m min_raw_p): that is rank 1.
    NaN when min_raw_p is NaN. Raises ValueError on m < 1 or r outside 1..m.
    """
    if family_size < 1 or not 1 <= rank <= family_size:
        raise ValueError(f"need family_size >= 1 and 1 <= rank <= family_size, got {family_size}, {rank}")
    if np.isnan(min_raw_p):
        return np.nan
    return float(min(1.0, (family_size - rank + 1) * min_raw_p))


# ---------------------------------------------------------------- budget x arm interaction


@dataclass(frozen=True)
class Interaction:
    """mean(d1 - d2) over seeds with its 1 - alpha t interval, the two-sided p of "no
    interaction" and n, the number of seeds used."""
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    n: int


def paired_interaction(d1, d2, alpha: float = 0.05) -> Interaction:
    """The budget x arm interaction, paired by seed.

    Inputs: d1, d2 shape (n,), aligned by seed: d1[i] is seed i's paired difference (arm A minus
    arm B) at one budget, d2[i] at the other; seeds with a non-finite value in either are dropped.
    Output: Interaction of e_i = d1[i] - d2[i]: estimate mean(e), interval
    mean(e) +- t_{n-1, 1 - alpha/2} sd(e) / sqrt(n), p two-sided of the one-sample t test of
    mean(e) = 0 (Student; equal to scipy.stats.ttest_rel(d1, d2)).
    Fewer than 3 seeds: described, not tested (interval and p NaN), as harness.analysis.stats.MIN_N.
    Zero spread (every e_i equal), as harness.analysis.stats.t_test_p: p = 1 and interval [0, 0] when
    every e_i is exactly 0 (each seed shows no interaction); p NaN and interval [e, e] otherwise
    (the t statistic is infinite: no sampling distribution to read a p from).
    """
    d1, d2 = np.asarray(d1, float), np.asarray(d2, float)
    e = (d1 - d2)[np.isfinite(d1) & np.isfinite(d2)]
    n = len(e)
    if n == 0:
        return Interaction(np.nan, np.nan, np.nan, np.nan, 0)
    est = float(e.mean())
    if n < 3:
        return Interaction(est, np.nan, np.nan, np.nan, n)
    if np.ptp(e) == 0:
        return Interaction(est, est, est, 1.0 if est == 0 else np.nan, n)
    se = float(np.std(e, ddof=1) / math.sqrt(n))
    h = float(stats.t.isf(alpha / 2, n - 1) * se)
    return Interaction(est, est - h, est + h, float(2 * stats.t.sf(abs(est) / se, n - 1)), n)


# ---------------------------------------------------------------- group-sequential boundaries

_GRID = 401  # Simpson points across the continuation region at each look
_ZCAP = 12.0  # an infinite boundary is integrated to |z| <= _ZCAP (P(|Z| > 12) ~ 4e-33)


def lan_demets_obf_spending(t, alpha: float = 0.05, sides: int = 2):
    """Lan-DeMets O'Brien-Fleming-type alpha spending: the cumulative level spent by information
    fraction t in (0, 1] (0 at t = 0, alpha at t = 1). Input t scalar or array; output the same
    shape. Reference: Lan & DeMets (1983), "Discrete sequential boundaries for clinical trials",
    Biometrika 70(3), 659-663.

    sides=1: a one-sided test at level alpha, alpha*(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)).
    sides=2 (default): a two-sided symmetric test at level alpha, each side spending the one-sided
    function at alpha / 2: alpha*(t) = 2 [2 - 2 Phi(z_{1-alpha/4} / sqrt(t))]. This is the
    two-sided design of the published tables and of ldbounds / ld98 (Reboussin et al. 2000),
    gsDesign (sfLDOF) and rpact ("asOF", sided = 2): four equally spaced looks at 0.05 give
    4.333, 2.963, 2.359, 2.014. (Spending the one-sided formula 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))
    as the two-sided total instead is a valid but different design, 3.920, 2.774, 2.298, 2.043:
    it spends more early.)
    """
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")
    t = np.asarray(t, float)
    with np.errstate(divide="ignore"):
        out = sides * 2 * stats.norm.sf(stats.norm.isf(alpha / (2 * sides)) / np.sqrt(t))
    return out if out.ndim else float(out)


def _simpson(m: int, width: float) -> np.ndarray:
    """Composite Simpson weights for m (odd) equally spaced points over an interval of `width`."""
    w = np.ones(m)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return w * width / (3 * (m - 1))


class _Recursion:
    """Armitage-McPherson-Rowe recursion on the score scale S_k = Z_k sqrt(t_k), S a Brownian motion
    in the information fraction t: holds the (sub-)density of S_k on the continuation region of
    the looks so far on a grid, and gives the probability of first crossing at the next look."""

    def __init__(self):
        self.t = 0.0
        self.s = self.w = None  # grid and Simpson-weighted density after the last look

    def cross(self, b: float, t: float) -> float:
        """P(|Z| >= b at a look at t, having continued at every earlier look)."""
        if self.s is None:
            return float(2 * special.ndtr(-b))
        c, sd = b * math.sqrt(t), math.sqrt(t - self.t)
        return float(self.w @ (special.ndtr((self.s - c) / sd) + special.ndtr((-c - self.s) / sd)))

    def advance(self, b: float, t: float) -> None:
        """Condition on continuing (|Z| < b) at a look at t."""
        c = min(b, _ZCAP) * math.sqrt(t)
        s = np.linspace(-c, c, _GRID)
        if self.s is None:
            f = stats.norm.pdf(s, scale=math.sqrt(t))
        else:
            sd = math.sqrt(t - self.t)
            f = self.w @ (stats.norm.pdf((s[None, :] - self.s[:, None]) / sd) / sd)
        self.t, self.s, self.w = t, s, f * _simpson(_GRID, 2 * c)


def _fractions(info_fractions) -> np.ndarray:
    t = np.atleast_1d(np.asarray(info_fractions, float))
    if t.ndim != 1 or not len(t) or t[0] <= 0 or t[-1] > 1 or np.any(np.diff(t) <= 0):
        raise ValueError(f"information fractions must increase within (0, 1], got {info_fractions!r}")
    return t


def group_sequential_bounds(info_fractions, alpha: float = 0.05,
                            spending: Callable = lan_demets_obf_spending) -> np.ndarray:
    """Two-sided symmetric group-sequential boundaries from an alpha-spending function.

    Inputs: info_fractions t_1 < ... < t_K in (0, 1] (the information at each look over the
    maximum); alpha the overall two-sided level; spending(t, alpha), the cumulative two-sided
    alpha spent by fraction t (default the Lan-DeMets O'Brien-Fleming type, alpha / 2 a side:
    see lan_demets_obf_spending).
    Output: z boundaries b_1..b_K, shape (K,): reject at the first look k with |Z_k| >= b_k, where
    under H0 P(cross by look k) = spending(t_k, alpha) for every k (inf where a look spends
    nothing). The Z_k have the canonical joint distribution, corr(Z_i, Z_j) = sqrt(t_i / t_j);
    crossing probabilities come from the recursive numerical integration of Armitage, McPherson
    & Rowe (1969, "Repeated significance tests on accumulating data", JRSS A 132) in the form of
    Jennison & Turnbull (2000, "Group Sequential Methods", ch. 19), Simpson's rule on 401 points
    per look. One look at t = 1 gives z_{1 - alpha/2}.
    """
    t = _fractions(info_fractions)
    spent = np.concatenate([[0.0], np.asarray(spending(t, alpha), float)])
    rec, bounds = _Recursion(), []
    for k, tk in enumerate(t):
        target = spent[k + 1] - spent[k]
        if target <= 0:
            b = np.inf
        else:
            b = optimize.brentq(lambda z: rec.cross(z, tk) - target, 0.0, 40.0, xtol=1e-10)
        bounds.append(b)
        if k + 1 < len(t):
            rec.advance(b, tk)
    return np.array(bounds)


def crossing_probabilities(bounds, info_fractions) -> np.ndarray:
    """P_H0(first |Z_k| >= b_k at look k), shape (K,), for two-sided symmetric boundaries `bounds`
    at `info_fractions` (the recursion of group_sequential_bounds); their sum is the overall
    two-sided level of the design."""
    t = _fractions(info_fractions)
    rec, out = _Recursion(), []
    for b, tk in zip(np.asarray(bounds, float), t):
        out.append(rec.cross(b, tk))
        rec.advance(b, tk)
    return np.array(out)


def obrien_fleming_classic_bounds(k_looks: int, alpha: float = 0.05) -> np.ndarray:
    """Classic O'Brien-Fleming boundaries for K equally spaced looks, two-sided level alpha:
    z_k = c sqrt(K / k), k = 1..K, c solved so that the overall probability of crossing under H0
    is alpha (O'Brien & Fleming 1979, "A multiple testing procedure for clinical trials",
    Biometrics 35; c = C_B(K, alpha) of Jennison & Turnbull 2000, Table 2.3, e.g. 2.024 for
    K = 4, alpha = 0.05). Output shape (K,)."""
    if k_looks < 1:
        raise ValueError(f"need at least one look, got {k_looks}")
    t = np.arange(1, k_looks + 1) / k_looks
    shape = np.sqrt(k_looks / np.arange(1, k_looks + 1))
    lo = max(0.0, stats.norm.isf(alpha / 2) - 0.5)  # c >= z_{1-alpha/2}: the last look alone
    c = optimize.brentq(lambda c: crossing_probabilities(c * shape, t).sum() - alpha, lo, 12.0,
                        xtol=1e-10)
    return c * shape


def nominal_p_bounds(z) -> np.ndarray:
    """The nominal two-sided p at each boundary, 2 (1 - Phi(z)): a look rejects when its ordinary
    two-sided p is at or below this. Input shape (K,) (or scalar); output the same shape."""
    return 2 * stats.norm.sf(np.asarray(z, float))
