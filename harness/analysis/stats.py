"""Pure statistics over arrays (docs/method.md, "Statistics"): tests, intervals, multiplicity and
power. Every function takes numbers or numpy arrays and returns numbers; randomness comes from a
generator it is given (or `rng_for`, seeded by a seed and names). Nothing here knows a runs table,
an arm's name or a claim: harness/analysis/tables.py builds the per-arm and pairwise tables from
these functions, harness/analysis/claims.py the verdicts. scipy does the numerics.

A comparison of two arms' means has one primary test, the paired t test over the seeds both arms
ran (runs are paired by seed), or Welch's t when fewer than MIN_N seeds pair, each with its own t
interval (`mean_difference`, `t_test_p`, `t_interval`); Welch, Mann-Whitney U, Wilcoxon, ASO,
Hedges' g, P(A > B), Brown-Forsythe and Levene are the tables' sensitivity checks.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import special, stats

ALPHA = 0.05
MIN_N = 3  # below this a sample is described but never tested
MIN_SPREAD_N = 5  # fewer non-degenerate runs in an arm: its spread is not estimable
ASO_THRESHOLD = 0.2  # eps_min below this: A almost stochastically dominates B (deepsig's advice)
LEVEL_SDS = 2.0  # "fine-tuning level": below the baseline's mean - LEVEL_SDS sd
NOT_TESTED = "not testable (n < 3)"


# ---------------------------------------------------------------- input normalisation


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """Generator seeded by `seed` and stable hashes of `keys`, so an arm or a pair gets the same
    resamples whatever else is in the table."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------- means: the primary test

@dataclass(frozen=True)
class MeanDifference:
    """mean(a) - mean(b) as a t statistic sees it.

    paired: the mean of the n_a = n_b paired differences, se = sd_ddof1(d) / sqrt(n), df = n - 1.
    Welch: se = sqrt(var_a / n_a + var_b / n_b), Welch-Satterthwaite df. sd is the sd of the
    paired differences (NaN for Welch). se = 0 when every difference (or every value) is equal.
    """
    estimate: float
    se: float
    df: float
    n_a: int
    n_b: int
    paired: bool
    sd: float = np.nan

    @property
    def test(self) -> str:
        return "paired t" if self.paired else "Welch t"


def mean_difference(a, b, *, paired: bool) -> MeanDifference:
    """MeanDifference of a over b: paired (a, b aligned, shape (n,) each) or Welch (shapes (n_a,),
    (n_b,)). Needs n >= 2 per side; fewer gives NaN se and df."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if paired:
        d = a - b
        n = len(d)
        sd = sd_ddof1(d)
        return MeanDifference(float(d.mean()) if n else np.nan, float(sd / np.sqrt(n)) if n > 1 else np.nan,
                              n - 1.0, n, n, True, float(sd))
    na, nb = len(a), len(b)
    est = float(a.mean() - b.mean()) if na and nb else np.nan
    if na < 2 or nb < 2:
        return MeanDifference(est, np.nan, np.nan, na, nb, False)
    va, vb = sd_ddof1(a) ** 2 / na, sd_ddof1(b) ** 2 / nb
    se = float(np.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))) if se > 0 else na + nb - 2.0
    return MeanDifference(est, se, df, na, nb, False)


def t_test_p(d: MeanDifference, null: float = 0.0) -> float:
    """Two-sided p of H0: true difference = null. 1 when every difference equals the null
    exactly; NaN when se = 0 otherwise (the t statistic is undefined) or n too small."""
    if not np.isfinite(d.se):
        return np.nan
    if d.se == 0:
        return 1.0 if d.estimate == null else np.nan
    return float(2 * stats.t.sf(abs(d.estimate - null) / d.se, d.df))


def one_sided_t_p(d: MeanDifference, null: float, *, greater: bool) -> float:
    """One-sided p of H0: true difference <= null (greater=True) or >= null (greater=False).
    With se = 0: 1 when the estimate is on H0's side (or equal), NaN otherwise (undefined)."""
    if not np.isfinite(d.se):
        return np.nan
    t = d.estimate - null
    if d.se == 0:
        return 1.0 if (t <= 0 if greater else t >= 0) else np.nan
    t /= d.se
    return float(stats.t.sf(t, d.df) if greater else stats.t.cdf(t, d.df))


def t_interval(d: MeanDifference, level: float = 0.95) -> tuple[float, float]:
    """The t interval estimate +- t_{df, (1+level)/2} se; [estimate, estimate] when se = 0."""
    if not np.isfinite(d.se):
        return np.nan, np.nan
    h = 0.0 if d.se == 0 else float(stats.t.ppf((1 + level) / 2, d.df) * d.se)
    return d.estimate - h, d.estimate + h


def tost_p(d: MeanDifference, margin: float) -> float:
    """Two one-sided tests (Schuirmann) of equivalence within +-margin: the larger p of
    H0: diff <= -margin and H0: diff >= +margin. Below alpha: equivalent, the 1 - 2 alpha t
    interval lies inside (-margin, margin). se = 0: 0 inside the margin, 1 outside."""
    if not np.isfinite(d.se):
        return np.nan
    if d.se == 0:
        return 0.0 if abs(d.estimate) < margin else 1.0
    lower = stats.t.sf((d.estimate + margin) / d.se, d.df)
    upper = stats.t.cdf((d.estimate - margin) / d.se, d.df)
    return float(max(lower, upper))


# ---------------------------------------------------------------- one sample

def sample_sd(x) -> float:
    """std(x, ddof=1) of shape (n,): exactly 0 when every value is equal, NaN for n < 2."""
    return float(sd_ddof1(np.asarray(x, float)))


def sd_ddof1(x: np.ndarray) -> np.float64:
    """std(x, ddof=1): exactly 0 when every value is equal, NaN for n < 2."""
    if len(x) < 2:
        return np.float64(np.nan)
    return np.float64(0.0) if np.ptp(x) == 0 else np.float64(np.std(x, ddof=1))


def mean_interval(x, level: float = 0.95) -> tuple[float, float]:
    """t interval of the mean of x (shape (n,)); [x0, x0] at zero variance; NaN for n < 2."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return np.nan, np.nan
    return t_interval(MeanDifference(float(x.mean()), float(sd_ddof1(x) / np.sqrt(len(x))), len(x) - 1.0,
                                     len(x), 0, False), level)


def sd_interval(x, level: float = 0.95) -> tuple[float, float]:
    """Normal-theory (chi-square) interval of the sd of x (shape (n,)):
    sd * sqrt((n - 1) / chi2_{(1 +- level)/2, n-1}). Finite and > 0 whenever sd > 0, [0, 0] at
    sd = 0, NaN for n < 2. (A bootstrap of the sd gives 0 or, in a ratio, infinity when a
    resample repeats one value, a bound the sample itself rules out.)"""
    x = np.asarray(x, float)
    n = len(x)
    if n < 2:
        return np.nan, np.nan
    s, q = float(sd_ddof1(x)), stats.chi2.ppf([(1 + level) / 2, (1 - level) / 2], n - 1)
    return float(s * np.sqrt((n - 1) / q[0])), float(s * np.sqrt((n - 1) / q[1]))


def fine_tuning_level(baseline) -> float:
    """"Fine-tuning level" of a group: mean - LEVEL_SDS * sd (ddof 1) of the finetune-L_s runs
    (shape (n,)), about the baseline's lower 2.5% under normality. A run below it fell below what
    direct fine-tuning gives. NaN for n < MIN_N. (An empirical 5% quantile of 10 runs would be
    their minimum.)"""
    x = np.asarray(baseline, float)
    return float(x.mean() - LEVEL_SDS * sd_ddof1(x)) if len(x) >= MIN_N else np.nan


def count_below_level(x, baseline, *, leave_one_out: bool) -> int:
    """Runs of x (shape (n,)) below the fine-tuning level of `baseline` (shape (m,)). For the
    baseline's own runs (leave_one_out=True, x is baseline) each run is judged against the level of
    the *other* baseline runs: no run can sit more than (m-1)/sqrt(m) sd below the mean of a sample
    it belongs to (1.79 sd at m = 5), so against its own level the baseline's share is 0 by
    construction, while a new run from the same distribution falls below it about 7% of the time."""
    return int(below_level(x, baseline, leave_one_out=leave_one_out).sum())


def below_level(x, baseline, *, leave_one_out: bool) -> np.ndarray:
    """Boolean (n,): which runs of x fall below the fine-tuning level (count_below_level's rule)."""
    x, b = np.asarray(x, float), np.asarray(baseline, float)
    if leave_one_out:
        return np.array([x[i] < fine_tuning_level(np.delete(b, i)) for i in range(len(x))], dtype=bool)
    return x < fine_tuning_level(b)


# ---------------------------------------------------------------- counts: failure rates

def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k / n; NaN for n = 0."""
    if n == 0:
        return np.nan, np.nan
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k / n (without continuity correction); NaN for n = 0."""
    if n == 0:
        return np.nan, np.nan
    z = stats.norm.ppf((1 + level) / 2)
    p = k / n
    centre, half = (p + z * z / (2 * n)), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - half) / (1 + z * z / n)), float((centre + half) / (1 + z * z / n))


def rate_difference_interval(k_a: int, n_a: int, k_b: int, n_b: int,
                             level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of k_a/n_a - k_b/n_b, from the two Wilson
    intervals; always inside [-1, 1]. NaN when either n is 0."""
    if n_a == 0 or n_b == 0:
        return np.nan, np.nan
    pa, pb = k_a / n_a, k_b / n_b
    (la, ua), (lb, ub) = wilson_interval(k_a, n_a, level), wilson_interval(k_b, n_b, level)
    d = pa - pb
    lo = d - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    hi = d + np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return float(lo), float(hi)


def fisher_exact_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p for k_a of n_a vs k_b of n_b (scipy's definition: the tables as
    or less likely than the observed one, margins fixed). NaN when either n is 0."""
    if n_a == 0 or n_b == 0:
        return np.nan
    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


@functools.lru_cache(maxsize=256)
def _fisher_rejects(n: int, alpha: float) -> np.ndarray:
    """Boolean (n + 1, n + 1) array, [k_a, k_b]: does the two-sided Fisher test of k_a of n vs
    k_b of n reject at level alpha? (Read-only; cached, it depends on n and alpha alone.)"""
    x = np.arange(n + 1)
    lc = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)  # log C(n, x)
    reject = np.zeros((n + 1, n + 1), bool)
    for t in range(2 * n + 1):  # tables with k_a + k_b = t: hypergeometric in k_a
        ka = np.arange(max(0, t - n), min(n, t) + 1)
        logp = lc[ka] + lc[t - ka]
        pmf = np.exp(logp - special.logsumexp(logp))
        pval = (pmf[None, :] * (pmf[None, :] <= pmf[:, None] * (1 + 1e-7))).sum(1)
        reject[ka, t - ka] = pval < alpha
    reject.flags.writeable = False
    return reject


def fisher_power(p_a: float, p_b: float, n: int, *, alpha: float = ALPHA) -> float:
    """Exact power of the two-sided Fisher test at level alpha with n runs per arm when the true
    rates are p_a and p_b: the binomial probability of every table whose p-value is < alpha."""
    x = np.arange(n + 1)
    return float(stats.binom.pmf(x, n, p_a) @ _fisher_rejects(n, alpha) @ stats.binom.pmf(x, n, p_b))


def seeds_for_power_fisher(p_a: float, p_b: float, *, alpha: float = ALPHA, power: float = 0.8,
                           max_n: int = 100) -> int | None:
    """Smallest n per arm for which the two-sided Fisher test reaches `power` at rates p_a, p_b
    (exact, fisher_power); None when p_a = p_b or more than max_n runs would be needed."""
    if not np.isfinite([p_a, p_b]).all() or p_a == p_b:
        return None
    for n in range(2, max_n + 1):
        if fisher_power(p_a, p_b, n, alpha=alpha) >= power:
            return n
    return None


# ---------------------------------------------------------------- spread

@dataclass(frozen=True)
class SpreadTest:
    """sd_ddof1(a) / sd_ddof1(b) (ddof 1) with a permutation p and the interval that inverts the same test.

    p: two-sided permutation test of equal spread on |log sd ratio| of median-centred samples
    (exact over every split when there are at most n_perm of them; otherwise n_perm random splits,
    p = (hits + 1) / (n_perm + 1)); ci_low / ci_high: the ratios rho the same test does not reject
    at 1 - level when a is divided by rho, found by bisection within e^-8..e^8 of the estimate (NaN
    where even e^8 away is not rejected: too few runs to bound that side). Both bounds are finite
    and > 0 whenever both samples have spread and enough runs, however many runs repeat one value.
    resamples: splits used. Under equal spread its size stays below alpha in simulation (normal,
    t3 and skewed data, 5 to 10 runs per arm; tests/analysis/test_claims.py checks it through claim 2b)."""
    ratio: float
    p: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int
    resamples: int
    exact: bool


def spread_test(a, b, *, n_perm: int = 2000, rng: np.random.Generator,
                level: float = 0.95) -> SpreadTest:
    """SpreadTest of a against b (shapes (n_a,), (n_b,), n >= 2 each); rng draws the random
    splits when they are not enumerated."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    ratio = float(sd_ddof1(a) / sd_ddof1(b)) if sd_ddof1(b) > 0 else (np.nan if sd_ddof1(a) == 0 else np.inf)
    ca, cb = a - np.median(a), b - np.median(b)
    n = na + nb
    total = math.comb(n, na)
    exact = total <= n_perm
    if exact:
        members = np.array(list(combinations(range(n), na)))
        mask = np.zeros((total, n), bool)
        mask[np.arange(total)[:, None], members] = True
    else:
        perm = np.argsort(rng.random((n_perm, n)), axis=1)
        mask = np.zeros((n_perm, n), bool)
        np.put_along_axis(mask, perm[:, :na], True, axis=1)
    idx_a = np.nonzero(mask)[1].reshape(len(mask), na)
    idx_b = np.nonzero(~mask)[1].reshape(len(mask), nb)

    def pvalue(log_rho: float) -> float:
        pooled = np.concatenate([ca / np.exp(log_rho), cb])
        with np.errstate(divide="ignore", invalid="ignore"):
            t0 = abs(np.log(sd_ddof1(pooled[:na])) - np.log(sd_ddof1(pooled[na:])))
            t = np.abs(np.log(pooled[idx_a].std(axis=1, ddof=1)) - np.log(pooled[idx_b].std(axis=1, ddof=1)))
        hits = int(np.sum(t >= t0 - 1e-12)) if np.isfinite(t0) else int(np.sum(~np.isfinite(t)))
        return hits / total if exact else (hits + 1) / (n_perm + 1)

    if not (np.isfinite(ratio) and ratio > 0):  # zero spread on a side: the ratio is 0 or inf
        p = 1.0 if np.isnan(ratio) else pvalue(0.0)
        return SpreadTest(ratio, p, np.nan, np.nan, na, nb, len(mask), exact)
    alpha, centre = 1 - level, float(np.log(ratio))

    def bound(direction: int) -> float:
        """The accepted log ratio farthest from the estimate on one side (bisection)."""
        far = centre + direction * 8.0  # e^8 ~ 3,000 times the estimate
        if pvalue(far) > alpha:  # not rejected even there: the data do not bound this side
            return np.nan
        inside, outside = centre, far
        for _ in range(16):  # to 8 / 2^16: the ratio to 4 significant digits
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if pvalue(mid) > alpha else (inside, mid)
        return float(np.exp(inside))

    return SpreadTest(ratio, pvalue(0.0), bound(-1), bound(+1), na, nb, len(mask), exact)


def seeds_for_power_spread(ratio: float, *, alpha: float = ALPHA, power: float = 0.8,
                           max_n: int = 1000) -> int | None:
    """Smallest n per arm for which a two-sided F test of equal variances detects a true sd ratio
    `ratio` with probability >= power (normal theory; a guide for the permutation test). None
    when ratio is 1, 0, infinite or NaN, or more than max_n would be needed."""
    if not np.isfinite(ratio) or ratio <= 0 or ratio == 1:
        return None
    r2 = ratio ** 2

    def power_at(n: int) -> float:
        lo, hi = stats.f.ppf([alpha / 2, 1 - alpha / 2], n - 1, n - 1)
        return stats.f.sf(hi / r2, n - 1, n - 1) + stats.f.cdf(lo / r2, n - 1, n - 1)
    return _smallest_n(power_at, power, max_n)


# ---------------------------------------------------------------- location shift (ranks)

def mann_whitney_null_pmf(n_a: int, n_b: int) -> np.ndarray:
    """Exact null distribution of the Mann-Whitney U statistic (pairs with a > b, no ties) for
    sample sizes n_a, n_b: shape (n_a n_b + 1,), entry u = P(U = u)."""
    prev = [np.ones(1) for _ in range(n_b + 1)]  # counts for i = 0 draws from a
    for i in range(1, n_a + 1):
        cur = [np.ones(1)]
        for j in range(1, n_b + 1):
            out = np.zeros(i * j + 1)
            out[j:j + len(prev[j])] += prev[j]  # the largest value is an a: it beats all j b's
            out[:len(cur[j - 1])] += cur[j - 1]  # the largest value is a b
            cur.append(out)
        prev = cur
    return prev[n_b] / prev[n_b].sum()


def hodges_lehmann(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of a over b (median of the n_a n_b differences a_i - b_j) with the
    distribution-free interval that inverts the exact Mann-Whitney test: [D_(c), D_(N+1-c)] with c
    the largest count whose lower tail P(U < c) <= (1 - level) / 2. A bound is NaN when no shift
    can be rejected at these sizes (e.g. 3 vs 3). NaN estimate when either side is empty."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b):
        return np.nan, np.nan, np.nan
    diffs = np.sort((a[:, None] - b[None, :]).ravel())
    cdf = np.cumsum(mann_whitney_null_pmf(len(a), len(b)))  # cdf[u] = P(U <= u)
    c = int(np.sum(cdf <= (1 - level) / 2))  # P(U <= c - 1) <= alpha / 2
    if c == 0:
        return float(np.median(diffs)), np.nan, np.nan
    return float(np.median(diffs)), float(diffs[c - 1]), float(diffs[len(diffs) - c])


# ---------------------------------------------------------------- sensitivity statistics

def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g of a over b: (mean_a - mean_b) / pooled sd (ddof=1), times the small-sample
    correction J = 1 - 3 / (4 (n_a + n_b) - 9). NaN when the pooled sd is 0 or n < 2."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    sp = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    if sp == 0:
        return np.nan
    return float((np.mean(a) - np.mean(b)) / sp * (1 - 3 / (4 * (na + nb) - 9)))


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, shape (m,) -> (m,), in input order.

    NaN entries are left NaN and do not count towards the family size m.
    adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the sorted finite p-values.
    """
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj) if m else adj
    return out


def aso_eps_min(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, rng: np.random.Generator,
                confidence: float = 0.95, dt: float = 0.005) -> float:
    """Almost Stochastic Order (Dror et al. 2019): eps_min of a (higher = better) over b.

    A vectorised re-implementation of deepsig.aso (same quantile functions, integration grid,
    bootstrap of the violation ratio and clipping; no Bonferroni inside). Near 0 a dominates b,
    near 1 b dominates a; eps_min < ASO_THRESHOLD (0.2, deepsig's advice; 0.5 passes about one
    A/A pair in five at n = 10) reads "a is almost stochastically larger than b".
    """
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    t = np.arange(dt, 1, dt)

    def violation(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
        # qa, qb: sorted samples (..., n); quantile F^-1(t) = x_(ceil(n t)) as in deepsig
        f = qa[..., np.clip(np.ceil(qa.shape[-1] * t).astype(int) - 1, 0, None)]
        g = qb[..., np.clip(np.ceil(qb.shape[-1] * t).astype(int) - 1, 0, None)]
        d2 = (g - f) ** 2
        w2 = d2.sum(-1) * dt
        viol = np.where(f < g, d2, 0.0)[..., 1:].sum(-1) * dt
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(w2 == 0, 0.5, viol / np.where(w2 == 0, 1, w2))

    vr = violation(a, b)
    sa = np.sort(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)
    sb = np.sort(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    const = np.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = np.std(const * (violation(sa, sb) - vr))
    return float(np.clip(vr - sigma / const * stats.norm.ppf(1 - confidence), 0, 1))


# ---------------------------------------------------------------- seeds needed for 80% power

def _smallest_n(power_at, target: float, max_n: int, lo: int = 2) -> int | None:
    """Smallest n in [lo, max_n] with power_at(n) >= target, for a power that grows with n
    (t and F tests); binary search. None when even max_n falls short."""
    if power_at(max_n) < target:
        return None
    hi = max_n
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid) >= target else (mid + 1, hi)
    return lo


def seeds_for_power(diff: float, std_a: float, std_b: float, *, alpha: float = ALPHA,
                    power: float = 0.8, max_n: int = 10_000) -> int | None:
    """Smallest n per arm for which a two-sided Welch t-test at level alpha detects a true mean
    difference `diff` with probability >= power (noncentral t, Welch df for equal n).
    None when undefined (diff 0 or NaN) or when more than max_n seeds would be needed."""
    if not np.isfinite([diff, std_a, std_b]).all() or diff == 0:
        return None
    va, vb = std_a ** 2, std_b ** 2
    if va + vb == 0:
        return 2

    def power_at(n: int) -> float:
        ncp = abs(diff) / np.sqrt((va + vb) / n)
        df = (n - 1) * (va + vb) ** 2 / (va ** 2 + vb ** 2)
        tc = stats.t.ppf(1 - alpha / 2, df)
        lower = np.nan_to_num(stats.nct.cdf(-tc, df, ncp))  # scipy gives NaN far in the tail
        return stats.nct.sf(tc, df, ncp) + lower
    return _smallest_n(power_at, power, max_n)


def seeds_for_power_paired(diff: float, sd_diff: float, *, alpha: float = ALPHA, power: float = 0.8,
                           max_n: int = 10_000) -> int | None:
    """Smallest number of seed pairs for which a two-sided paired t test at level alpha detects
    a true mean paired difference `diff` given the sd of the paired differences (noncentral t,
    df n - 1). None when diff is 0 or NaN or more than max_n pairs would be needed."""
    if not np.isfinite([diff, sd_diff]).all() or diff == 0:
        return None
    if sd_diff == 0:
        return 2

    def power_at(n: int) -> float:
        df, ncp = n - 1, abs(diff) / (sd_diff / np.sqrt(n))
        tc = stats.t.ppf(1 - alpha / 2, df)
        return stats.nct.sf(tc, df, ncp) + np.nan_to_num(stats.nct.cdf(-tc, df, ncp))
    return _smallest_n(power_at, power, max_n)


def seeds_for_power_tost(diff: float, sd_diff: float, margin: float, *, alpha: float = ALPHA,
                         power: float = 0.8, max_n: int = 10_000) -> int | None:
    """Smallest number of seed pairs for which the paired TOST at level alpha shows equivalence
    within +-margin when the true difference is `diff`, from the lower bound
    P(both one-sided tests reject) >= P(lower rejects) + P(upper rejects) - 1 (noncentral t; a
    slight overestimate). None when |diff| >= margin (equivalence is then false) or NaN."""
    if not np.isfinite([diff, sd_diff, margin]).all() or abs(diff) >= margin:
        return None
    if sd_diff == 0:
        return 2

    def power_at(n: int) -> float:
        df, se = n - 1, sd_diff / np.sqrt(n)
        tc = stats.t.ppf(1 - alpha, df)
        p_lower = stats.nct.sf(tc, df, (diff + margin) / se)
        p_upper = np.nan_to_num(stats.nct.cdf(-tc, df, (diff - margin) / se))
        return p_lower + p_upper - 1
    return _smallest_n(power_at, power, max_n)


# ---------------------------------------------------------------- tables


