"""Statistics over a tidy runs table (one row per run), SPEC section 4.

Every function here is pure: it takes DataFrames / arrays, returns new ones, and draws its
randomness from a generator it is given (or one seeded by its `seed` argument). scipy does the
numerics. Nothing here knows the seed's claims: they are declared in harness/analysis/claims.py, which
calls these functions; harness/analysis/groups.py groups runs and assembles the tables; plots.py draws
and report.py renders what they return.

Units: accuracy and macro-F1 columns are percent. `normalize_runs` converts a column given as
fractions (every finite value in [0, 1]) to percent, so differences read as "points".

Primary and sensitivity statistics: a comparison of two arms' means has one primary test, the
paired t test over the seeds both arms ran (runs are paired by seed, SPEC 3.6), or Welch's t when
fewer than MIN_N seeds pair, each with its own t interval. Welch, Mann-Whitney U, Wilcoxon, ASO,
Hedges' g, P(A > B), Brown-Forsythe and Levene are sensitivity checks (SENSITIVITY_COLUMNS).
"""

from __future__ import annotations

import functools
import math
import warnings
import zlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import special, stats

from harness.arms import family, finetune_layers
from harness.arms import order as arm_order
from harness.errors import HarnessError

ALPHA = 0.05
MIN_N = 3  # below this a sample is described but never tested
MIN_SPREAD_N = 5  # fewer non-degenerate runs in an arm: its spread is not estimable
ASO_THRESHOLD = 0.2  # eps_min below this: A almost stochastically dominates B (deepsig's advice)
LEVEL_SDS = 2.0  # "fine-tuning level": below the baseline's mean - LEVEL_SDS sd
REQUIRED = ("task", "strategy", "seed", "test_accuracy")
PERCENT_COLUMNS = ("test_accuracy", "test_macro_f1", "dev_accuracy", "dev_macro_f1")
NOT_TESTED = "not testable (n < 3)"


# ---------------------------------------------------------------- input normalisation

def _to_percent(frame: pd.DataFrame, columns) -> pd.DataFrame:
    for c in columns:
        if c in frame and len(frame):
            v = pd.to_numeric(frame[c], errors="coerce")
            finite = v[np.isfinite(v)]
            frame[c] = v * 100 if len(finite) and finite.between(0, 1).all() else v
    return frame


_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no"}
_MISSING = {"", "na", "nan", "null", "none", "n/a", "<na>"}


def as_boolean(values: pd.Series, column: str = "degenerate") -> pd.Series:
    """A column of booleans as pandas' nullable "boolean" dtype: True/False (also 1/0, "true"/
    "false", "yes"/"no"), <NA> where missing (unknown). Raises HarnessError on any other value."""
    def one(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        if s in _MISSING:
            return pd.NA
        raise HarnessError(f"{column} must be true/false (or empty for unknown), got {v!r}")
    return pd.Series([one(v) for v in values], index=values.index, dtype="boolean")


def normalize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill the optional columns of a runs table (SPEC defaults) and derive `arm`.

    Input: one row per run with at least task, strategy, seed, test_accuracy.
    Output: a copy with every column of the store's runs table; successor_layers comes from a
    `finetune-k` name, else from the single finetune-k (k < predecessor) of its (task, model);
    predecessor_layers defaults to the largest k among finetune-k arms. Accuracy columns given as
    fractions become percent. `degenerate` (the run predicts one class on test) becomes a nullable
    boolean, <NA> where unknown (a missing column: unknown for every run; failed runs: <NA>).
    `budget` (student optimizer steps) is numeric, NaN where the run had none. Raises
    HarnessError on a missing required column or a degenerate value that is not a boolean.
    """
    missing = [c for c in REQUIRED if c not in runs.columns]
    if missing:
        raise HarnessError(f"runs table lacks required column(s) {', '.join(missing)}; "
                           f"need at least {', '.join(REQUIRED)}")
    r = runs.copy().reset_index(drop=True)
    defaults = {"model": "?", "variant": "", "status": "ok", "error": "", "sweep": "",
                "run_id": [f"run-{i}" for i in range(len(r))]}
    for col, val in defaults.items():
        if col not in r:
            r[col] = val
    for col in ("model", "variant", "error", "sweep", "status", "task", "strategy"):
        r[col] = r[col].fillna(defaults.get(col, "")).astype(str)
    r["status"] = r["status"].replace("", "ok")
    r["seed"] = pd.to_numeric(r["seed"], errors="coerce").astype("Int64")
    if "student_seed" not in r:
        r["student_seed"] = r["seed"]
    r["student_seed"] = pd.to_numeric(r["student_seed"], errors="coerce").fillna(r["seed"]).astype("Int64")
    derived = pd.Series([s if v == "" else f"{s}/{v}" for s, v in zip(r["strategy"], r["variant"])])
    r["arm"] = r["arm"].fillna(derived).astype(str) if "arm" in r else derived
    for col in ("successor_layers", "predecessor_layers"):
        r[col] = pd.to_numeric(r[col], errors="coerce") if col in r else np.nan
    k = r["strategy"].map(finetune_layers)
    for (task, model), idx in r.groupby(["task", "model"]).groups.items():
        lp = r.loc[idx, "predecessor_layers"].max()
        if not np.isfinite(lp):
            lp = k[idx].max()
        r.loc[idx, "predecessor_layers"] = r.loc[idx, "predecessor_layers"].fillna(lp)
        ls = r.loc[idx, "successor_layers"].fillna(k[idx])
        small = sorted({x for x in k[idx].dropna() if not np.isfinite(lp) or x < lp})
        if ls.isna().any() and len(small) == 1:
            ls = ls.fillna(small[0])
        elif ls.isna().any() and len(small) > 1:
            raise HarnessError(f"cannot infer successor_layers for {task}/{model} (finetune sizes "
                               f"{small or 'none'}); add a successor_layers column")
        r.loc[idx, "successor_layers"] = ls
    for col in ("test_macro_f1", "dev_accuracy", "dev_macro_f1", "best_epoch", "wall_seconds"):
        if col not in r:
            r[col] = np.nan
    r["budget"] = pd.to_numeric(r["budget"], errors="coerce").astype(float) if "budget" in r else np.nan
    r["degenerate"] = (as_boolean(r["degenerate"]) if "degenerate" in r
                       else pd.Series(pd.NA, index=r.index, dtype="boolean"))
    r.loc[r["status"] != "ok", "degenerate"] = pd.NA
    return _to_percent(r, PERCENT_COLUMNS)


def _mask(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> np.ndarray:
    """Boolean mask, shape (len(runs),): successful runs of `arm` with a finite metric."""
    x = runs[metric].to_numpy(dtype=float, na_value=np.nan)
    return (runs["arm"].to_numpy() == arm) & (runs["status"].to_numpy() == "ok") & np.isfinite(x)


@dataclass(frozen=True)
class ArmRuns:
    """The successful runs of one arm with a finite metric, as aligned arrays of shape (n,):
    values (the metric), seeds (predecessor seed, float), degenerate (1, 0, NaN = unknown),
    run_ids. (numpy, not pandas indexing: the claims' A/A simulation reads arms thousands of
    times.)"""
    arm: str
    values: np.ndarray
    seeds: np.ndarray
    degenerate: np.ndarray
    run_ids: np.ndarray

    @property
    def n(self) -> int:
        return len(self.values)

    def per_seed(self) -> pd.Series:
        """Values averaged over student seeds, indexed by predecessor seed (sorted)."""
        keep = np.isfinite(self.seeds)
        u, inv = np.unique(self.seeds[keep], return_inverse=True)
        return pd.Series(np.bincount(inv, self.values[keep], minlength=len(u)) / np.bincount(inv, minlength=len(u)),
                         index=u.astype(int), dtype=float)

    def degenerate_count(self) -> tuple[int, int]:
        """(k, n_known): runs predicting one class on test, of those whose flag is known."""
        known = self.degenerate[np.isfinite(self.degenerate)]
        return int(known.sum()), int(len(known))

    def nondegenerate(self) -> np.ndarray:
        """Values of the runs known not to be degenerate, shape (m,)."""
        return self.values[self.degenerate == 0]


def arm_runs(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> ArmRuns:
    """ArmRuns of `arm` in a normalised runs table."""
    m = _mask(runs, arm, metric)
    deg = (runs["degenerate"].to_numpy(dtype=float, na_value=np.nan)[m] if "degenerate" in runs
           else np.full(int(m.sum()), np.nan))
    return ArmRuns(arm, runs[metric].to_numpy(dtype=float, na_value=np.nan)[m],
                   runs["seed"].to_numpy(dtype=float, na_value=np.nan)[m], deg, runs["run_id"].to_numpy()[m])


def _ok_rows(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> pd.DataFrame:
    """The successful runs of one arm with a finite metric."""
    return runs.iloc[np.flatnonzero(_mask(runs, arm, metric))]


def _ok(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> np.ndarray:
    """Finite metric values of the successful runs of one arm, shape (n,)."""
    return runs[metric].to_numpy(dtype=float, na_value=np.nan)[_mask(runs, arm, metric)]


def _per_seed(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> pd.Series:
    """Metric of one arm averaged over student seeds, indexed by predecessor seed (sorted)."""
    return arm_runs(runs, arm, metric).per_seed()


def degenerate_count(runs: pd.DataFrame, arm: str) -> tuple[int, int]:
    """(k, n_known): successful runs of `arm` that predict one class on test, out of those whose
    `degenerate` flag is known. (0, 0) when unknown for every run."""
    return arm_runs(runs, arm).degenerate_count()


def nondegenerate_values(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> np.ndarray:
    """Metric of the runs of `arm` known not to be degenerate, shape (m,)."""
    return arm_runs(runs, arm, metric).nondegenerate()


def roles(runs: pd.DataFrame) -> tuple[str | None, str | None]:
    """(predecessor arm finetune-L_p, baseline arm finetune-L_s) of one group, None when absent."""
    arms = set(runs["arm"])
    lp = runs["predecessor_layers"].max()
    ls = runs.loc[runs["successor_layers"] < lp, "successor_layers"].max() if np.isfinite(lp) \
        else runs["successor_layers"].max()
    pred = f"finetune-{int(lp)}" if np.isfinite(lp) else None
    base = f"finetune-{int(ls)}" if np.isfinite(ls) else None
    return (pred if pred in arms else None), (base if base in arms else None)


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """Generator seeded by `seed` and stable hashes of `keys`, so an arm or a pair gets the same
    resamples whatever else is in the table."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------- means: the primary test

@dataclass(frozen=True)
class MeanDifference:
    """mean(a) - mean(b) as a t statistic sees it.

    paired: the mean of the n_a = n_b paired differences, se = sd(d) / sqrt(n), df = n - 1.
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
        sd = _sd(d)
        return MeanDifference(float(d.mean()) if n else np.nan, float(sd / np.sqrt(n)) if n > 1 else np.nan,
                              n - 1.0, n, n, True, float(sd))
    na, nb = len(a), len(b)
    est = float(a.mean() - b.mean()) if na and nb else np.nan
    if na < 2 or nb < 2:
        return MeanDifference(est, np.nan, np.nan, na, nb, False)
    va, vb = _sd(a) ** 2 / na, _sd(b) ** 2 / nb
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


def primary_difference_of(a: ArmRuns, b: ArmRuns) -> MeanDifference:
    """The primary comparison of two arms of one group: paired over the predecessor seeds both
    ran (per-seed means over student seeds) when at least MIN_N pair, else Welch over all runs."""
    sa, sb = a.per_seed(), b.per_seed()
    common = sa.index.intersection(sb.index)
    if len(common) >= MIN_N:
        return mean_difference(sa[common].to_numpy(), sb[common].to_numpy(), paired=True)
    return mean_difference(a.values, b.values, paired=False)


def primary_difference(runs: pd.DataFrame, a: str, b: str, metric: str = "test_accuracy") -> MeanDifference:
    """primary_difference_of arms a and b of a normalised runs table."""
    return primary_difference_of(arm_runs(runs, a, metric), arm_runs(runs, b, metric))


# ---------------------------------------------------------------- one sample

def sample_sd(x) -> float:
    """std(x, ddof=1) of shape (n,): exactly 0 when every value is equal, NaN for n < 2."""
    return float(_sd(np.asarray(x, float)))


def _sd(x: np.ndarray) -> np.float64:
    """std(x, ddof=1): exactly 0 when every value is equal, NaN for n < 2."""
    if len(x) < 2:
        return np.float64(np.nan)
    return np.float64(0.0) if np.ptp(x) == 0 else np.float64(np.std(x, ddof=1))


def mean_interval(x, level: float = 0.95) -> tuple[float, float]:
    """t interval of the mean of x (shape (n,)); [x0, x0] at zero variance; NaN for n < 2."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return np.nan, np.nan
    return t_interval(MeanDifference(float(x.mean()), float(_sd(x) / np.sqrt(len(x))), len(x) - 1.0,
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
    s, q = float(_sd(x)), stats.chi2.ppf([(1 + level) / 2, (1 - level) / 2], n - 1)
    return float(s * np.sqrt((n - 1) / q[0])), float(s * np.sqrt((n - 1) / q[1]))


def fine_tuning_level(baseline) -> float:
    """"Fine-tuning level" of a group: mean - LEVEL_SDS * sd (ddof 1) of the finetune-L_s runs
    (shape (n,)), about the baseline's lower 2.5% under normality. A run below it fell below what
    direct fine-tuning gives. NaN for n < MIN_N. (An empirical 5% quantile of 10 runs would be
    their minimum.)"""
    x = np.asarray(baseline, float)
    return float(x.mean() - LEVEL_SDS * _sd(x)) if len(x) >= MIN_N else np.nan


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
    """sd(a) / sd(b) (ddof 1) with a permutation p and the interval that inverts the same test.

    p: two-sided permutation test of equal spread on |log sd ratio| of median-centred samples
    (exact over every split when there are at most n_perm of them; otherwise n_perm random splits,
    p = (hits + 1) / (n_perm + 1)); ci_low / ci_high: the ratios rho the same test does not reject
    at 1 - level when a is divided by rho, found by bisection within e^-8..e^8 of the estimate (NaN
    where even e^8 away is not rejected: too few runs to bound that side). Both bounds are finite
    and > 0 whenever both samples have spread and enough runs, however many runs repeat one value.
    resamples: splits used. Under equal spread its size stays below alpha in simulation (normal,
    t3 and skewed data, 5 to 10 runs per arm; tests/test_claims.py checks it through claim 2b)."""
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
    ratio = float(_sd(a) / _sd(b)) if _sd(b) > 0 else (np.nan if _sd(a) == 0 else np.inf)
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
            t0 = abs(np.log(_sd(pooled[:na])) - np.log(_sd(pooled[na:])))
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

def variance_table(runs: pd.DataFrame, *, ci: float = 0.95, metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per arm of one group (normalised runs incl. the predecessor rows).

    Columns: arm, family, role, n (ok runs), n_failed, mean, std (ddof=1), sem, ci_low/ci_high (t
    interval of the mean), std_ci_low/std_ci_high (chi-square interval of the std; both NaN for
    n < 3), median, q1, q3, iqr, min, max, gap_to_predecessor, gap_to_baseline, retention (mean /
    predecessor mean);
    failure: n_degenerate of n_degenerate_known runs (predicting one class on test; NaN when
    unknown), degenerate_rate with its Clopper-Pearson interval, n_nondegenerate and
    std_nondegenerate (the spread without them) with its chi-square interval (NaN below
    MIN_SPREAD_N such runs);
    fine-tuning level (fine_tuning_level of the baseline, the same in every row): n_below_level,
    below_level_rate with its Clopper-Pearson interval, the baseline's own rate as the reference
    row (each baseline run against the level of the other baseline runs: count_below_level); share_le_baseline_median (runs at or below the baseline median, SPEC's descriptive
    "fine-tuning level" share, about 50% for the baseline itself);
    dev_accuracy (mean dev-max), test_macro_f1 (mean), tested (n >= 3). Failed runs count only in
    n_failed.
    """
    pred, base = roles(runs)
    base_values = _ok(runs, base, metric) if base else np.array([])
    level = fine_tuning_level(base_values)
    base_median = float(np.median(base_values)) if len(base_values) else np.nan
    rows = []
    for arm in arm_order(runs["arm"]):
        x = _ok(runs, arm, metric)
        n = len(x)
        lo, hi, slo, shi = (np.nan,) * 4  # n < 3: described, no interval claimed
        if n >= MIN_N:
            (lo, hi), (slo, shi) = mean_interval(x, ci), sd_interval(x, ci)
        q1, med, q3 = np.percentile(x, [25, 50, 75]) if n else (np.nan,) * 3
        ok = _ok_rows(runs, arm, metric)
        k_deg, n_known = degenerate_count(runs, arm)
        nondeg = nondegenerate_values(runs, arm, metric)
        k_below = count_below_level(x, base_values, leave_one_out=arm == base) if np.isfinite(level) else 0
        rows.append(dict(
            arm=arm, family=family(arm),
            role="predecessor" if arm == pred else "baseline" if arm == base else "",
            n=n, n_failed=int(((runs["arm"] == arm) & (runs["status"] != "ok")).sum()),
            mean=np.mean(x) if n else np.nan, std=_sd(x),
            sem=stats.sem(x) if n > 1 else np.nan, ci_low=lo, ci_high=hi,
            std_ci_low=slo, std_ci_high=shi, median=med, q1=q1, q3=q3, iqr=q3 - q1,
            min=np.min(x) if n else np.nan, max=np.max(x) if n else np.nan,
            n_degenerate=k_deg if n_known else np.nan, n_degenerate_known=n_known,
            degenerate_rate=k_deg / n_known if n_known else np.nan,
            **dict(zip(("degenerate_ci_low", "degenerate_ci_high"), clopper_pearson(k_deg, n_known, ci))),
            n_nondegenerate=len(nondeg) if n_known else np.nan,
            std_nondegenerate=_sd(nondeg) if n_known else np.nan,
            **dict(zip(("std_nondegenerate_ci_low", "std_nondegenerate_ci_high"),
                       sd_interval(nondeg, ci) if len(nondeg) >= MIN_SPREAD_N else (np.nan, np.nan))),
            fine_tuning_level=level,
            n_below_level=k_below if np.isfinite(level) and n else np.nan,
            below_level_rate=k_below / n if np.isfinite(level) and n else np.nan,
            **dict(zip(("below_level_ci_low", "below_level_ci_high"),
                       clopper_pearson(k_below, n if np.isfinite(level) else 0, ci))),
            share_le_baseline_median=float(np.mean(x <= base_median)) if n and np.isfinite(base_median) else np.nan,
            dev_accuracy=ok["dev_accuracy"].astype(float).mean(),
            test_macro_f1=ok["test_macro_f1"].astype(float).mean(), tested=n >= MIN_N))
    t = pd.DataFrame(rows)
    means = t.set_index("arm")["mean"]
    pm, bm = means.get(pred, np.nan), means.get(base, np.nan)
    at = t.columns.get_loc("n_degenerate")
    t.insert(at, "retention", t["mean"] / pm)
    t.insert(at, "gap_to_baseline", t["mean"] - bm)
    t.insert(at, "gap_to_predecessor", t["mean"] - pm)
    return t


P_COLUMNS = ("primary_p", "welch_p", "mwu_p", "paired_p", "wilcoxon_p", "bf_p", "levene_p", "fisher_p")
PRIMARY_COLUMNS = (
    "a", "b", "n_a", "n_b", "n_paired", "mean_a", "mean_b", "diff", "paired_diff", "primary_test",
    "estimate", "diff_ci_low", "diff_ci_high", "primary_p")
SENSITIVITY_COLUMNS = (
    "welch_t", "welch_p", "mwu_u", "mwu_p", "paired_t", "paired_p", "wilcoxon_w", "wilcoxon_p",
    "aso_eps_min", "aso_eps_min_ba", "aso_a_better", "hedges_g", "prob_improvement", "std_a", "std_b",
    "std_ratio", "bf_p", "levene_p", "n_degenerate_a", "n_degenerate_b", "fisher_p")
PAIRWISE_COLUMNS = (*PRIMARY_COLUMNS, *SENSITIVITY_COLUMNS, "tested", "note")


def _pair_row(runs, a, b, metric, seed, aso_boot) -> dict:
    ra, rb = arm_runs(runs, a, metric), arm_runs(runs, b, metric)
    xa, xb = ra.values, rb.values
    sa, sb = ra.per_seed(), rb.per_seed()
    common = sa.index.intersection(sb.index)
    pa, pb = sa[common].to_numpy(), sb[common].to_numpy()
    (ka, na_known), (kb, nb_known) = ra.degenerate_count(), rb.degenerate_count()
    row = dict(a=a, b=b, n_a=len(xa), n_b=len(xb), n_paired=len(common),
               mean_a=np.mean(xa) if len(xa) else np.nan, mean_b=np.mean(xb) if len(xb) else np.nan,
               std_a=_sd(xa), std_b=_sd(xb),
               n_degenerate_a=ka if na_known else np.nan, n_degenerate_b=kb if nb_known else np.nan)
    row["diff"] = row["mean_a"] - row["mean_b"]
    row["paired_diff"] = np.mean(pa - pb) if len(common) else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        row["std_ratio"] = row["std_a"] / row["std_b"]
    if min(len(xa), len(xb)) < MIN_N:
        return {**row, "tested": False, "note": "n<3: not tested"}
    rng, notes = rng_for(seed, a, b), []
    d = primary_difference_of(ra, rb)
    row.update(primary_test=d.test, estimate=d.estimate, primary_p=t_test_p(d))
    row["diff_ci_low"], row["diff_ci_high"] = t_interval(d)
    zero_a, zero_b = np.ptp(xa) == 0, np.ptp(xb) == 0
    identical = zero_a and zero_b and xa[0] == xb[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        welch = mean_difference(xa, xb, paired=False)
        row["welch_t"] = welch.estimate / welch.se if welch.se > 0 else np.nan
        row["welch_p"] = 1.0 if identical else t_test_p(welch)
        if zero_a and zero_b:
            notes.append("zero variance in both arms: Welch t undefined")
        r = stats.mannwhitneyu(xa, xb, alternative="two-sided")
        row["mwu_u"], row["mwu_p"] = r.statistic, r.pvalue
        row["prob_improvement"] = r.statistic / (len(xa) * len(xb))  # P(A > B) + 0.5 P(A = B)
        if len(common) >= MIN_N:
            dd = pa - pb
            if np.all(dd == 0):
                row.update(paired_t=np.nan, paired_p=1.0, wilcoxon_w=np.nan, wilcoxon_p=1.0)
                notes.append("all paired differences are 0")
            else:
                if np.ptp(dd) == 0:
                    row["paired_t"], row["paired_p"] = np.nan, np.nan
                    notes.append("constant paired difference: paired t undefined")
                else:
                    r = stats.ttest_rel(pa, pb)
                    row["paired_t"], row["paired_p"] = r.statistic, r.pvalue
                # exact without ties or zeros; otherwise the normal approximation with tie correction
                # (scipy would run a permutation test there, seconds per pair for a sensitivity check)
                plain = len(dd) <= 50 and np.all(dd != 0) and len(np.unique(np.abs(dd))) == len(dd)
                r = stats.wilcoxon(pa, pb, method="exact" if plain else "approx")
                row["wilcoxon_w"], row["wilcoxon_p"] = r.statistic, r.pvalue
        row["aso_eps_min"] = aso_eps_min(xa, xb, n_boot=aso_boot, rng=rng)
        row["aso_eps_min_ba"] = aso_eps_min(xb, xa, n_boot=aso_boot, rng=rng)
        row["aso_a_better"] = bool(row["aso_eps_min"] < ASO_THRESHOLD)
        row["hedges_g"] = hedges_g(xa, xb)
        if zero_a and zero_b:
            row["bf_p"] = row["levene_p"] = 1.0
            notes.append("zero variance in both arms: variance tests trivial")
        else:
            row["bf_p"] = stats.levene(xa, xb, center="median").pvalue
            row["levene_p"] = stats.levene(xa, xb, center="mean").pvalue
    if na_known and nb_known:
        row["fisher_p"] = fisher_exact_p(ka, na_known, kb, nb_known)
    return {**row, "tested": True, "note": "; ".join(notes)}


def pairwise_tests(runs: pd.DataFrame, *, pairs: list[tuple[str, str]] | None = None,
                   metric: str = "test_accuracy", seed: int = 0, aso_boot: int = 1000) -> pd.DataFrame:
    """One row per pair (a, b) of arms of one group; default: all pairs in `arm_order`.

    Primary (PRIMARY_COLUMNS): primary_difference, i.e. paired t over the predecessor seeds both
    ran (per-seed means over student seeds; with n_paired >= 3), else Welch t; `estimate` is its
    difference (paired_diff or diff), diff_ci_low/high its 95% t interval, primary_p its raw
    two-sided p. Sensitivity checks (SENSITIVITY_COLUMNS): Welch t, Mann-Whitney U (two-sided),
    paired t and Wilcoxon signed-rank (paired only), ASO eps_min of a over b and of b over a
    (aso_a_better: eps_min < ASO_THRESHOLD), Hedges' g of a over b, prob_improvement =
    P(A > B) + 0.5 P(A = B) = U_a / (n_a n_b), std_a / std_b with Brown-Forsythe (bf_p) and
    Levene (levene_p), degenerate counts with Fisher's exact p. Every p here is raw: a pair that
    is one of a claim's comparisons gets its adjusted p from harness.analysis.claims, nowhere else.
    Pairs with n < 3 on either side keep their descriptive columns, tests NaN, tested=False.
    """
    if pairs is None:
        pairs = list(combinations(arm_order(runs["arm"]), 2))
    rows = [_pair_row(runs, a, b, metric, seed, aso_boot) for a, b in pairs]
    t = pd.DataFrame(rows).reindex(columns=list(PAIRWISE_COLUMNS))
    t["tested"] = t["tested"].fillna(False).astype(bool)
    return t


def expected_max(runs: pd.DataFrame, *, metric: str = "test_accuracy",
                 select_by: str = "dev_accuracy") -> pd.DataFrame:
    """Expected test score of the run a practitioner keeps out of n = 1..N seeds (Dodge et al.
    2019): the best run *by dev* (`select_by`), its *test* score reported. Exact from the
    empirical distribution of the N runs (n draws with replacement): with runs sorted by dev,
    tie groups g with cumulative counts c_g, P(the kept run is in g) = (c_g/N)^n - (c_{g-1}/N)^n
    and within a group every run is equally likely.

    Columns: arm, n_seeds, expected_max (Dodge's form), expected_max_std (its sd), selected_by
    ("dev", or "test" where an arm lacks dev scores, then it is the optimistic max of test),
    expected_max_test (E[max of n test scores]: selecting by test, optimistic, kept for
    comparison), N. n = 1 gives the mean.
    """
    rows = []
    for arm in arm_order(runs["arm"]):
        r = _ok_rows(runs, arm, metric)
        test = r[metric].astype(float).to_numpy()
        sel = r[select_by].astype(float).to_numpy() if select_by in r else np.full(len(r), np.nan)
        by = "dev" if len(r) and np.isfinite(sel).all() else "test"
        key = sel if by == "dev" else test
        N = len(test)
        groups = pd.DataFrame({"key": key, "t": test, "t2": test ** 2}).groupby("key").agg(
            c=("t", "size"), t=("t", "mean"), t2=("t2", "mean")).sort_index()
        cum = groups["c"].cumsum().to_numpy()
        sorted_test = np.sort(test)
        for n in range(1, N + 1):
            w = (cum / N) ** n - (np.r_[0, cum[:-1]] / N) ** n
            e = float(w @ groups["t"].to_numpy())
            var = max(float(w @ groups["t2"].to_numpy()) - e ** 2, 0.0)
            wt = (np.arange(1, N + 1) / N) ** n - (np.arange(N) / N) ** n
            rows.append(dict(arm=arm, n_seeds=n, expected_max=e, expected_max_std=np.sqrt(var),
                             selected_by=by, expected_max_test=float(wt @ sorted_test), N=N))
    return pd.DataFrame(rows, columns=["arm", "n_seeds", "expected_max", "expected_max_std", "selected_by",
                                       "expected_max_test", "N"])


def performance_profile(runs: pd.DataFrame, *, metric: str = "test_accuracy",
                        thresholds=None, points: int = 201) -> pd.DataFrame:
    """Share of each arm's runs scoring at or above each threshold tau (rliable's performance
    profile over runs): one row per (arm, tau) with share = mean(x >= tau) and n. Default taus:
    `points` evenly spaced from the lowest to the highest score of the group."""
    ok = runs[runs["status"] == "ok"]
    allx = ok[metric].astype(float).to_numpy()
    allx = allx[np.isfinite(allx)]
    if thresholds is None:
        thresholds = np.linspace(allx.min(), allx.max(), points) if len(allx) else np.array([])
    thresholds = np.asarray(thresholds, float)
    parts = []
    for arm in arm_order(ok["arm"]):
        x = _ok(runs, arm, metric)
        if len(x):
            parts.append(pd.DataFrame({"arm": arm, "threshold": thresholds,
                                       "share": (x[None, :] >= thresholds[:, None]).mean(1), "n": len(x)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["arm", "threshold", "share", "n"])


def power_table(runs: pd.DataFrame, *, gaps=(0.5, 1.0), alpha: float = ALPHA, power: float = 0.8,
                metric: str = "test_accuracy") -> pd.DataFrame:
    """Seeds per arm needed for 80% power under the primary test, each arm against the
    finetune-L_s baseline: paired t with the observed sd of the paired differences (Welch with the
    two stds when fewer than MIN_N seeds pair), for the observed gap and for fixed gaps (points).
    NaN = undefined or more than 10,000."""
    _, base = roles(runs)
    cols = ["arm", "baseline", "test", "n_paired", "observed_gap", "sd", *[
        f"seeds_for_{g}" for g in ("observed_gap", *[f"{x:g}pt_gap" for x in gaps])]]
    if base is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for arm in arm_order(runs["arm"]):
        if arm == base or min(len(_ok(runs, arm, metric)), len(_ok(runs, base, metric))) < 2:
            continue
        d = primary_difference(runs, arm, base, metric)
        sa, sb = _sd(_ok(runs, arm, metric)), _sd(_ok(runs, base, metric))
        row = dict(arm=arm, baseline=base, test=d.test, n_paired=d.n_a if d.paired else 0,
                   observed_gap=d.estimate, sd=d.sd if d.paired else np.nan)
        for name, g in [("observed_gap", d.estimate), *[(f"{x:g}pt_gap", x) for x in gaps]]:
            n = (seeds_for_power_paired(g, d.sd, alpha=alpha, power=power) if d.paired
                 else seeds_for_power(g, sa, sb, alpha=alpha, power=power))
            row[f"seeds_for_{name}"] = np.nan if n is None else n
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def variance_components(runs: pd.DataFrame, *, metric: str = "test_accuracy") -> pd.DataFrame | None:
    """Split the variance of each arm into predecessor-seed and student-seed parts.

    Only for a factorial design (some arm has several student_seed per seed); None otherwise.
    Fully crossed with one run per cell: two-way random-effects ANOVA without replication,
    var_predecessor = (MS_pred - MS_res) / n_student, var_student = (MS_student - MS_res) / n_pred,
    var_residual = MS_res. Otherwise one-way on predecessor seed: var_predecessor =
    (MSB - MSW) / n0 with n0 = (N - sum n_i^2 / N) / (k - 1), var_student = MSW (student +
    residual). Negative estimates are truncated to 0.
    """
    ok = runs[(runs["status"] == "ok")].dropna(subset=[metric])
    per = ok.groupby(["arm", "seed"])["student_seed"].nunique()
    if per.empty or per.max() < 2:
        return None
    rows = []
    for arm in arm_order(ok["arm"]):
        r = ok[ok["arm"] == arm]
        if r["seed"].nunique() < 2 or r.groupby("seed")["student_seed"].nunique().max() < 2:
            continue
        cells = r.pivot_table(index="seed", columns="student_seed", values=metric, aggfunc="count")
        if cells.notna().all().all() and (cells == 1).all().all():
            y = r.pivot_table(index="seed", columns="student_seed", values=metric).to_numpy(float)
            p, s = y.shape
            g = y.mean()
            ms_p = s * ((y.mean(1) - g) ** 2).sum() / (p - 1)
            ms_s = p * ((y.mean(0) - g) ** 2).sum() / (s - 1)
            res = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + g
            ms_r = (res ** 2).sum() / ((p - 1) * (s - 1))
            vp, vs, vr = max((ms_p - ms_r) / s, 0), max((ms_s - ms_r) / p, 0), ms_r
            design = "two-way crossed"
        else:
            grp = [v.to_numpy(float) for _, v in r.groupby("seed")[metric]]
            k, N = len(grp), sum(map(len, grp))
            g = np.concatenate(grp).mean()
            msb = sum(len(x) * (x.mean() - g) ** 2 for x in grp) / (k - 1)
            msw = sum(((x - x.mean()) ** 2).sum() for x in grp) / max(N - k, 1)
            n0 = (N - sum(len(x) ** 2 for x in grp) / N) / (k - 1)
            vp, vs, vr = max((msb - msw) / n0, 0), msw, np.nan
            design = "one-way nested"
        total = vp + vs + np.nan_to_num(vr)
        rows.append(dict(arm=arm, design=design, n_predecessor_seeds=r["seed"].nunique(),
                         n_student_seeds=r["student_seed"].nunique(), n=len(r),
                         var_predecessor=vp, var_student=vs, var_residual=vr,
                         share_predecessor=vp / total if total > 0 else np.nan))
    return pd.DataFrame(rows) if rows else None




def replacement_totals(replacements: pd.DataFrame | None) -> pd.DataFrame:
    """Per run, from a replacements table (run_id, module, replaced per epoch): total successor
    replacements summed over epochs, averaged over modules (mean_per_module) and of the
    least-replaced module (min_per_module). Columns: run_id, mean_per_module, min_per_module."""
    cols = ["run_id", "mean_per_module", "min_per_module"]
    if replacements is None or replacements.empty or "run_id" not in replacements:
        return pd.DataFrame(columns=cols)
    run_codes, run_ids = pd.factorize(replacements["run_id"])
    module_codes, modules = pd.factorize(replacements["module"])
    per_cell = np.zeros((len(run_ids), len(modules)))  # summed over epochs
    seen = np.zeros_like(per_cell, bool)
    np.add.at(per_cell, (run_codes, module_codes), replacements["replaced"].to_numpy(float))
    seen[run_codes, module_codes] = True
    with np.errstate(invalid="ignore"):
        mean = np.where(seen, per_cell, 0).sum(1) / seen.sum(1)
    return pd.DataFrame({"run_id": run_ids, "mean_per_module": mean,
                         "min_per_module": np.where(seen, per_cell, np.inf).min(1)})
