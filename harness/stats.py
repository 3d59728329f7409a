"""Statistics over a tidy runs table (one row per run), SPEC section 4.

Every function here is pure: it takes DataFrames / arrays, returns new ones, and draws its
randomness from a generator seeded by its `seed` argument. scipy does the numerics; plots.py
draws and report.py renders what these functions return, nothing else.

Units: accuracy and macro-F1 columns are percent. `normalize_runs` converts a column given as
fractions (every finite value in [0, 1]) to percent, so differences read as "points".
"""

from __future__ import annotations

import re
import warnings
import zlib
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import HarnessError

ALPHA = 0.05
MIN_N = 3  # below this a sample is described but never tested
REQUIRED = ("task", "strategy", "seed", "test_accuracy")
PERCENT_COLUMNS = ("test_accuracy", "test_macro_f1", "dev_accuracy", "dev_macro_f1")
THESEUS = ("theseus-binary", "theseus-add")
NOT_TESTED = "not tested (n < 3)"


# ---------------------------------------------------------------- input normalisation

def family(strategy: str) -> str:
    """Strategy family of an arm or strategy name: "finetune", "theseus-binary", "theseus-add",
    "two-stage", "kd" or "other"."""
    s = str(strategy).split("/")[0]
    if re.fullmatch(r"finetune-\d+", s):
        return "finetune"
    return s if s in (*THESEUS, "two-stage", "kd") else "other"


def finetune_layers(strategy: str) -> float:
    """k of a `finetune-k` strategy, NaN for any other strategy."""
    m = re.fullmatch(r"finetune-(\d+)", str(strategy).split("/")[0])
    return float(m.group(1)) if m else np.nan


def _to_percent(frame: pd.DataFrame, columns) -> pd.DataFrame:
    for c in columns:
        if c in frame and len(frame):
            v = pd.to_numeric(frame[c], errors="coerce")
            finite = v[np.isfinite(v)]
            frame[c] = v * 100 if len(finite) and finite.between(0, 1).all() else v
    return frame


def normalize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill the optional columns of a runs table (SPEC defaults) and derive `arm`.

    Input: one row per run with at least task, strategy, seed, test_accuracy.
    Output: a copy with every column of the store's runs table; successor_layers comes from a
    `finetune-k` name, else from the single finetune-k (k < predecessor) of its (task, model);
    predecessor_layers defaults to the largest k among finetune-k arms. Accuracy columns given as
    fractions become percent. Raises HarnessError on a missing required column.
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
    return _to_percent(r, PERCENT_COLUMNS)


def _ok(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> np.ndarray:
    """Finite metric values of the successful runs of one arm, shape (n,)."""
    v = runs.loc[(runs["arm"] == arm) & (runs["status"] == "ok"), metric].astype(float).to_numpy()
    return v[np.isfinite(v)]


def _per_seed(runs: pd.DataFrame, arm: str, metric: str = "test_accuracy") -> pd.Series:
    """Metric of one arm averaged over student seeds, indexed by predecessor seed."""
    r = runs[(runs["arm"] == arm) & (runs["status"] == "ok")].dropna(subset=[metric])
    return r.groupby("seed")[metric].mean().astype(float)


def arm_order(arms) -> list[str]:
    """Canonical arm order: theseus-add, theseus-binary, two-stage, kd, other, finetune-k by k.
    Pairs are formed in this order, so `a` is the candidate and `b` the reference."""
    rank = {"theseus-add": 0, "theseus-binary": 1, "two-stage": 2, "kd": 3, "other": 4, "finetune": 5}
    return sorted(set(arms), key=lambda a: (rank[family(a)], np.nan_to_num(finetune_layers(a)), a))


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """Generator seeded by `seed` and stable hashes of `keys`, so an arm or a pair gets the same
    resamples whatever else is in the table."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------- small statistics

def bootstrap_mean_ci(x: np.ndarray, *, n_boot: int = 10_000, rng: np.random.Generator,
                      ci: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap CI of the mean of x (shape (n,)); percentile when BCa is degenerate;
    [mean, mean] at zero variance; NaN for n < 2."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return np.nan, np.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((x,), np.mean, n_resamples=n_boot, method=method,
                                  confidence_level=ci, rng=rng, vectorized=True)
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi)
    return np.nan, np.nan


def _sd(x: np.ndarray) -> np.float64:
    """std(x, ddof=1): exactly 0 when every value is equal, NaN for n < 2."""
    if len(x) < 2:
        return np.float64(np.nan)
    return np.float64(0.0) if np.ptp(x) == 0 else np.float64(np.std(x, ddof=1))


def _boot_std(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of std(x, ddof=1), shape (n_boot,); exactly 0 for a constant resample
    (numpy leaves float noise of ~1e-14 there, which a ratio would turn into 1e14)."""
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    v = np.asarray(x, float)[idx]
    s = v.std(axis=1, ddof=1)
    s[v.max(axis=1) == v.min(axis=1)] = 0.0
    return s


def bootstrap_std_ci(x: np.ndarray, *, n_boot: int = 10_000, rng: np.random.Generator,
                     ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of std(x, ddof=1); NaN for n < 2."""
    if len(x) < 2:
        return np.nan, np.nan
    q = np.percentile(_boot_std(x, n_boot, rng), [50 * (1 - ci), 50 * (1 + ci)])
    return float(q[0]), float(q[1])


def std_ratio_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = 10_000,
                 rng: np.random.Generator, ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of std(a)/std(b), a and b resampled independently. Replicates with
    std(b) = 0 give inf (or NaN when both are 0, dropped); NaN for n < 2 on either side."""
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        r = _boot_std(a, n_boot, rng) / _boot_std(b, n_boot, rng)
    r = r[~np.isnan(r)]
    if not len(r):
        return np.nan, np.nan
    # linear interpolation inside an inf tail gives inf - inf = NaN: take order statistics there
    method = "inverted_cdf" if np.isinf(r).any() else "linear"
    q = np.percentile(r, [50 * (1 - ci), 50 * (1 + ci)], method=method)
    return float(q[0]), float(q[1])


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, *, paired: bool, n_boot: int = 10_000,
                      rng: np.random.Generator, ci: float = 0.95) -> tuple[float, float]:
    """CI of mean(a) - mean(b): BCa of the mean paired difference when `paired` (a, b aligned,
    shape (n,)), else percentile bootstrap with a and b resampled independently."""
    if paired:
        return bootstrap_mean_ci(np.asarray(a) - np.asarray(b), n_boot=n_boot, rng=rng, ci=ci)
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    da = np.asarray(a, float)[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    db = np.asarray(b, float)[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    q = np.percentile(da - db, [50 * (1 - ci), 50 * (1 + ci)])
    return float(q[0]), float(q[1])


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
    bootstrap of the violation ratio and clipping; no Bonferroni inside). eps_min < 0.5 means a
    is almost stochastically larger than b; near 0 a dominates, near 1 b dominates.
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


# ---------------------------------------------------------------- tables

def variance_table(runs: pd.DataFrame, *, n_boot: int = 10_000, seed: int = 0,
                   ci: float = 0.95, metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per arm of one group (normalised runs incl. the predecessor rows).

    Columns: arm, family, role, n (ok runs), n_failed, mean, std (ddof=1), sem, ci_low/ci_high
    (BCa bootstrap of the mean), std_ci_low/std_ci_high (percentile bootstrap of the std; both
    CIs NaN for n < 3),
    median, q1, q3, iqr, min, max, gap_to_predecessor, gap_to_baseline, retention (mean /
    predecessor mean), collapse_rate (share of runs <= the finetune-L_s mean), dev_accuracy
    (mean dev-max), test_macro_f1 (mean), tested (n >= 3). Failed runs count only in n_failed.
    """
    pred, base = _roles(runs)
    rows = []
    for arm in arm_order(runs["arm"]):
        x = _ok(runs, arm, metric)
        rng = _rng(seed, arm)
        lo, hi, slo, shi = (np.nan,) * 4  # n < 3: described, no interval claimed
        if len(x) >= MIN_N:
            lo, hi = bootstrap_mean_ci(x, n_boot=n_boot, rng=rng, ci=ci)
            slo, shi = bootstrap_std_ci(x, n_boot=n_boot, rng=rng, ci=ci)
        q1, med, q3 = np.percentile(x, [25, 50, 75]) if len(x) else (np.nan,) * 3
        ok = runs[(runs["arm"] == arm) & (runs["status"] == "ok")]
        rows.append(dict(
            arm=arm, family=family(arm),
            role="predecessor" if arm == pred else "baseline" if arm == base else "",
            n=len(x), n_failed=int(((runs["arm"] == arm) & (runs["status"] != "ok")).sum()),
            mean=np.mean(x) if len(x) else np.nan,
            std=_sd(x),
            sem=stats.sem(x) if len(x) > 1 else np.nan, ci_low=lo, ci_high=hi,
            std_ci_low=slo, std_ci_high=shi, median=med, q1=q1, q3=q3, iqr=q3 - q1,
            min=np.min(x) if len(x) else np.nan, max=np.max(x) if len(x) else np.nan,
            dev_accuracy=ok["dev_accuracy"].astype(float).mean(),
            test_macro_f1=ok["test_macro_f1"].astype(float).mean(), tested=len(x) >= MIN_N))
    t = pd.DataFrame(rows)
    means = t.set_index("arm")["mean"]
    pm, bm = means.get(pred, np.nan), means.get(base, np.nan)
    t.insert(t.columns.get_loc("dev_accuracy"), "gap_to_predecessor", t["mean"] - pm)
    t.insert(t.columns.get_loc("dev_accuracy"), "gap_to_baseline", t["mean"] - bm)
    t.insert(t.columns.get_loc("dev_accuracy"), "retention", t["mean"] / pm)
    t.insert(t.columns.get_loc("dev_accuracy"), "collapse_rate",
             [np.mean(_ok(runs, a, metric) <= bm) if n and np.isfinite(bm) else np.nan
              for a, n in zip(t["arm"], t["n"])])
    return t


def _roles(runs: pd.DataFrame) -> tuple[str | None, str | None]:
    """(predecessor arm, baseline arm finetune-L_s) of one group, None when absent."""
    arms = set(runs["arm"])
    lp = runs["predecessor_layers"].max()
    ls = runs.loc[runs["successor_layers"] < lp, "successor_layers"].max() if np.isfinite(lp) \
        else runs["successor_layers"].max()
    pred = f"finetune-{int(lp)}" if np.isfinite(lp) else None
    base = f"finetune-{int(ls)}" if np.isfinite(ls) else None
    return (pred if pred in arms else None), (base if base in arms else None)


def _pair_row(runs, a, b, metric, seed, aso_boot, n_boot) -> dict:
    xa, xb = _ok(runs, a, metric), _ok(runs, b, metric)
    sa, sb = _per_seed(runs, a, metric), _per_seed(runs, b, metric)
    common = sa.index.intersection(sb.index)
    pa, pb = sa[common].to_numpy(), sb[common].to_numpy()
    row = dict(a=a, b=b, n_a=len(xa), n_b=len(xb), n_paired=len(common),
               mean_a=np.mean(xa) if len(xa) else np.nan, mean_b=np.mean(xb) if len(xb) else np.nan,
               std_a=_sd(xa), std_b=_sd(xb))
    row["diff"] = row["mean_a"] - row["mean_b"]
    row["paired_diff"] = np.mean(pa - pb) if len(common) else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        row["std_ratio"] = row["std_a"] / row["std_b"]
    if min(len(xa), len(xb)) < MIN_N:
        return {**row, "tested": False, "note": "n<3: not tested"}
    rng, notes = _rng(seed, a, b), []
    zero_a, zero_b = np.ptp(xa) == 0, np.ptp(xb) == 0
    identical = zero_a and zero_b and xa[0] == xb[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if zero_a and zero_b:
            row["welch_t"], row["welch_p"] = np.nan, 1.0 if identical else np.nan
            notes.append("zero variance in both arms: Welch t undefined")
        else:
            r = stats.ttest_ind(xa, xb, equal_var=False)
            row["welch_t"], row["welch_p"] = r.statistic, r.pvalue
        r = stats.mannwhitneyu(xa, xb, alternative="two-sided")
        row["mwu_u"], row["mwu_p"] = r.statistic, r.pvalue
        row["prob_improvement"] = r.statistic / (len(xa) * len(xb))  # P(A > B) + 0.5 P(A = B)
        if len(common) >= MIN_N:
            d = pa - pb
            if np.all(d == 0):
                row.update(paired_t=np.nan, paired_p=1.0, wilcoxon_w=np.nan, wilcoxon_p=1.0)
                notes.append("all paired differences are 0")
            else:
                if np.ptp(d) == 0:
                    row["paired_t"], row["paired_p"] = np.nan, np.nan
                    notes.append("constant paired difference: paired t undefined")
                else:
                    r = stats.ttest_rel(pa, pb)
                    row["paired_t"], row["paired_p"] = r.statistic, r.pvalue
                r = stats.wilcoxon(pa, pb)
                row["wilcoxon_w"], row["wilcoxon_p"] = r.statistic, r.pvalue
        row["aso_eps_min"] = aso_eps_min(xa, xb, n_boot=aso_boot, rng=rng)
        row["aso_eps_min_ba"] = aso_eps_min(xb, xa, n_boot=aso_boot, rng=rng)
        row["hedges_g"] = hedges_g(xa, xb)
        if zero_a and zero_b:
            row["bf_p"] = row["levene_p"] = 1.0
            notes.append("zero variance in both arms: variance tests trivial")
        else:
            row["bf_p"] = stats.levene(xa, xb, center="median").pvalue
            row["levene_p"] = stats.levene(xa, xb, center="mean").pvalue
        row["std_ratio_ci_low"], row["std_ratio_ci_high"] = std_ratio_ci(xa, xb, n_boot=n_boot, rng=rng)
    paired = len(common) >= MIN_N and np.isfinite(row.get("paired_p", np.nan))
    row["primary_test"] = "paired t" if paired else "Welch t"
    row["primary_p"] = row["paired_p"] if paired else row["welch_p"]
    row["diff_ci_low"], row["diff_ci_high"] = bootstrap_diff_ci(
        pa if paired else xa, pb if paired else xb, paired=paired, n_boot=n_boot, rng=rng)
    return {**row, "tested": True, "note": "; ".join(notes)}


P_COLUMNS = ("welch_p", "mwu_p", "paired_p", "wilcoxon_p", "bf_p", "levene_p", "primary_p")
PAIRWISE_COLUMNS = (
    "a", "b", "n_a", "n_b", "n_paired", "mean_a", "mean_b", "diff", "paired_diff", "diff_ci_low",
    "diff_ci_high", "welch_t", "welch_p", "mwu_u", "mwu_p", "paired_t", "paired_p", "wilcoxon_w",
    "wilcoxon_p", "primary_test", "primary_p", "aso_eps_min", "aso_eps_min_ba", "hedges_g",
    "prob_improvement", "std_a", "std_b", "std_ratio", "std_ratio_ci_low", "std_ratio_ci_high",
    "bf_p", "levene_p", "tested", "note")


def pairwise_tests(runs: pd.DataFrame, *, pairs: list[tuple[str, str]] | None = None,
                   metric: str = "test_accuracy", seed: int = 0, n_boot: int = 10_000,
                   aso_boot: int = 1000) -> pd.DataFrame:
    """One row per pair (a, b) of arms of one group; default: all pairs in `arm_order`.

    Unpaired: Welch t, Mann-Whitney U (two-sided). Paired by predecessor seed (per-seed means
    over student seeds; only with n_paired >= 3): paired t, Wilcoxon signed-rank. primary_p is
    the paired t p-value when available, else Welch's. diff = mean_a - mean_b with a bootstrap
    CI (paired when primary is paired). aso_eps_min: ASO of a over b (aso_eps_min_ba: b over a).
    hedges_g of a over b; prob_improvement = P(A > B) + 0.5 P(A = B) = U_a / (n_a n_b).
    Variances: Brown-Forsythe (bf_p), Levene (levene_p), std_a / std_b with a percentile
    bootstrap CI. Every p column X gets X_holm, Holm-adjusted across the rows of this table.
    Pairs with n < 3 on either side keep their descriptive columns, tests NaN, tested=False.
    """
    if pairs is None:
        pairs = list(combinations(arm_order(runs["arm"]), 2))
    rows = [_pair_row(runs, a, b, metric, seed, aso_boot, n_boot) for a, b in pairs]
    t = pd.DataFrame(rows).reindex(columns=list(PAIRWISE_COLUMNS))
    t["tested"] = t["tested"].fillna(False).astype(bool)
    for c in P_COLUMNS:
        t.insert(t.columns.get_loc(c) + 1, f"{c}_holm", holm(t[c].astype(float)))
    return t


def expected_max(runs: pd.DataFrame, *, metric: str = "test_accuracy") -> pd.DataFrame:
    """Expected maximum of `metric` over n = 1..N seeds per arm (Dodge et al. 2019), exact from
    the empirical CDF: with sorted scores v_1..v_N, P(max_n <= v_i) = (i/N)^n and
    E[max_n] = sum_i v_i ((i/N)^n - ((i-1)/N)^n). Columns: arm, n_seeds, expected_max,
    expected_max_std (sd of the max of n draws), N. n = 1 gives the mean."""
    rows = []
    for arm in arm_order(runs["arm"]):
        v = np.sort(_ok(runs, arm, metric))
        N = len(v)
        for n in range(1, N + 1):
            w = (np.arange(1, N + 1) / N) ** n - (np.arange(N) / N) ** n
            e = float(w @ v)
            rows.append(dict(arm=arm, n_seeds=n, expected_max=e,
                             expected_max_std=float(np.sqrt(max(w @ (v - e) ** 2, 0))), N=N))
    return pd.DataFrame(rows, columns=["arm", "n_seeds", "expected_max", "expected_max_std", "N"])


def seeds_for_power(diff: float, std_a: float, std_b: float, *, alpha: float = 0.05,
                    power: float = 0.8, max_n: int = 10_000) -> int | None:
    """Smallest n per arm for which a two-sided Welch t-test at level alpha detects a true mean
    difference `diff` with probability >= power (noncentral t, Welch df for equal n).
    None when undefined (diff 0 or NaN) or when more than max_n seeds would be needed."""
    if not np.isfinite([diff, std_a, std_b]).all() or diff == 0:
        return None
    va, vb = std_a ** 2, std_b ** 2
    if va + vb == 0:
        return 2
    for n in range(2, max_n + 1):
        ncp = abs(diff) / np.sqrt((va + vb) / n)
        df = (n - 1) * (va + vb) ** 2 / (va ** 2 + vb ** 2)
        tc = stats.t.ppf(1 - alpha / 2, df)
        lower = np.nan_to_num(stats.nct.cdf(-tc, df, ncp))  # scipy gives NaN far in the tail
        if stats.nct.sf(tc, df, ncp) + lower >= power:
            return n
    return None


def power_table(variance: pd.DataFrame, *, gaps=(0.5, 1.0), alpha: float = ALPHA,
                power: float = 0.8) -> pd.DataFrame:
    """Seeds per arm needed for 80% power, each arm against the finetune-L_s baseline, from a
    variance_table: for the observed gap and for fixed gaps (points). NaN = undefined/too many."""
    base = variance[variance["role"] == "baseline"]
    if base.empty:
        return pd.DataFrame(columns=["arm", "baseline", "observed_gap", "std_arm", "std_baseline",
                                     "seeds_for_observed_gap", *[f"seeds_for_{g:g}pt_gap" for g in gaps]])
    b = base.iloc[0]
    rows = []
    for _, v in variance[variance["role"] != "baseline"].iterrows():
        row = dict(arm=v["arm"], baseline=b["arm"], observed_gap=v["mean"] - b["mean"],
                   std_arm=v["std"], std_baseline=b["std"])
        for name, g in [("observed_gap", row["observed_gap"]), *[(f"{g:g}pt_gap", g) for g in gaps]]:
            n = seeds_for_power(g, v["std"], b["std"], alpha=alpha, power=power)
            row[f"seeds_for_{name}"] = np.nan if n is None else n
        rows.append(row)
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------- claims (SPEC section 1)

@dataclass
class Claim:
    """One answered question of SPEC section 1 for one group.

    number: 1..4; question: the claim as a sentence; verdict: "supported" | "not supported" |
    "contradicted" | "inconclusive at n = ..." | "not tested (...)" | "mixed"; text: the answer
    with its numbers; table: one row per comparison with the numbers the verdict rests on;
    figure: name of the plot that shows it (see plots.py).
    """
    number: int
    question: str
    group: str
    verdict: str
    text: str
    table: pd.DataFrame
    figure: str


def verdict(p_adj: float, effect: float, *, direction: int, n_a: int, n_b: int,
            alpha: float = ALPHA) -> str:
    """Verdict for a directional claim (direction +1: effect > 0 claimed, -1: effect < 0).

    significant (p_adj < alpha) in the claimed direction -> "supported", against -> "contradicted";
    not significant: point estimate in the claimed direction -> "inconclusive at n = ...",
    otherwise "not supported". n < 3 on either side -> "not tested (n < 3)"."""
    if min(n_a, n_b) < MIN_N:
        return NOT_TESTED
    along = np.sign(effect) == direction
    if np.isfinite(p_adj) and p_adj < alpha:
        return "supported" if along else "contradicted"
    n = f"{n_a}" if n_a == n_b else f"{n_a} vs {n_b}"
    return f"inconclusive at n = {n}" if along or not np.isfinite(effect) else "not supported"


def _overall(verdicts: list[str]) -> str:
    v = sorted(set(verdicts))
    return v[0] if len(v) == 1 else ("not tested (no such arms)" if not v else "mixed")


def _arms(runs: pd.DataFrame, *families: str) -> list[str]:
    return [a for a in arm_order(runs["arm"]) if family(a) in families]


def _fmt(x: float, d: int = 2) -> str:
    if x is None or np.isnan(x):
        return "n/a"
    return f"{x:.{d}f}" if np.isfinite(x) else ("∞" if x > 0 else "-∞")


def _p(x: float) -> str:
    """'= 0.012', '< 0.001' or '= n/a' (to follow 'p ')."""
    return "= n/a" if not np.isfinite(x) else ("< 0.001" if x < 0.001 else f"= {x:.3f}")


def _mean_claim(number, question, runs, pairs, direction, *, label, seed, n_boot, figure) -> Claim:
    t = pairwise_tests(runs, pairs=pairs, seed=seed, n_boot=n_boot)
    if t.empty:
        return Claim(number, question, label, "not tested (no such arms)",
                     "The group has no arms for this comparison.", t, figure)
    # the estimate the CI and the primary test are about: paired diff over common seeds, or diff
    t["estimate"] = np.where(t["primary_test"] == "paired t", t["paired_diff"], t["diff"])
    t["verdict"] = [verdict(p, d, direction=direction, n_a=na, n_b=nb) for p, d, na, nb
                    in zip(t["primary_p_holm"], t["estimate"], t["n_a"], t["n_b"])]
    parts = [f"{r.a} vs {r.b}: {'paired ' if r.primary_test == 'paired t' else ''}diff "
             f"{_fmt(r.estimate)} points (95% CI {_fmt(r.diff_ci_low)} to "
             f"{_fmt(r.diff_ci_high)}, {r.primary_test}, Holm p {_p(r.primary_p_holm)}, "
             f"ASO eps_min of the first over the second = {_fmt(r.aso_eps_min)}, "
             f"n = {r.n_a}/{r.n_b}) -> {r.verdict}"
             for r in t.itertuples()]
    return Claim(number, question, label, _overall(list(t["verdict"])), "; ".join(parts) + ".",
                 t, figure)


def claim_theseus_vs_finetune(runs: pd.DataFrame, *, label: str = "", seed: int = 0,
                              n_boot: int = 10_000) -> Claim:
    """Claim 1: each theseus-* arm beats finetune-L_s (mean diff, paired-diff CI, Holm p over the
    Theseus arms of the group, ASO eps_min)."""
    _, base = _roles(runs)
    pairs = [(a, base) for a in _arms(runs, *THESEUS)] if base else []
    return _mean_claim(1, "Theseus is better than direct fine-tuning of the first L_s layers.",
                       runs, pairs, +1, label=label, seed=seed, n_boot=n_boot, figure="forest")


def claim_stability(runs: pd.DataFrame, *, label: str = "", seed: int = 0,
                    n_boot: int = 10_000) -> Claim:
    """Claim 2: theseus-add has a smaller std than theseus-binary (std ratio add/binary with a
    bootstrap CI, Brown-Forsythe p Holm-adjusted over the add x binary pairs)."""
    pairs = [(a, b) for a in _arms(runs, "theseus-add") for b in _arms(runs, "theseus-binary")]
    q = "Proportional add (theseus-add) is more stable (smaller std over seeds) than binary random choice."
    t = pairwise_tests(runs, pairs=pairs, seed=seed, n_boot=n_boot)
    if t.empty:
        return Claim(2, q, label, "not tested (no such arms)",
                     "The group lacks a theseus-add or a theseus-binary arm.", t, "std")
    t["verdict"] = [verdict(p, 1 - r, direction=+1, n_a=na, n_b=nb) for p, r, na, nb
                    in zip(t["bf_p_holm"], t["std_ratio"], t["n_a"], t["n_b"])]
    text = "; ".join(
        f"{r.a} vs {r.b}: std {_fmt(r.std_a)} vs {_fmt(r.std_b)} points, ratio {_fmt(r.std_ratio)} "
        f"(95% CI {_fmt(r.std_ratio_ci_low)} to {_fmt(r.std_ratio_ci_high)}), Brown-Forsythe Holm p "
        f"{_p(r.bf_p_holm)}, mean diff {_fmt(r.diff)}, n = {r.n_a}/{r.n_b} -> {r.verdict}"
        for r in t.itertuples())
    # a zero-variance arm is not "stable": every run landed on one value (e.g. one constant prediction)
    for arm in sorted(set(t["a"]) | set(t["b"])):
        values = _ok(runs, arm)
        if len(values) >= MIN_N and np.ptp(values) == 0:
            text += (f"; note: all {len(values)} runs of {arm} gave exactly {_fmt(values[0])}, a degenerate "
                     f"distribution (every seed ended at the same point, e.g. one constant prediction), so its "
                     f"std of 0 says nothing about stability")
    return Claim(2, q, label, _overall(list(t["verdict"])), text + ".", t, "std")


def claim_two_stage(runs: pd.DataFrame, *, label: str = "", seed: int = 0,
                    n_boot: int = 10_000) -> Claim:
    """Claim 3: two-stage arms are worse than Theseus arms and not better than finetune-L_s
    (direction -1 for every two-stage-vs-X pair, Holm over all of them)."""
    _, base = _roles(runs)
    refs = _arms(runs, *THESEUS) + ([base] if base else [])
    pairs = [(a, b) for a in _arms(runs, "two-stage") for b in refs]
    return _mean_claim(3, "Two-stage extraction is worse than Theseus (and no better than direct "
                          "fine-tuning of the first L_s layers).", runs, pairs, -1,
                       label=label, seed=seed, n_boot=n_boot, figure="forest")


def replacement_totals(replacements: pd.DataFrame | None) -> pd.DataFrame:
    """Per run: total replacements summed over epochs, averaged over modules (mean_per_module)
    and the least-replaced module (min_per_module). Columns: run_id, arm, seed, ..."""
    cols = ["run_id", "mean_per_module", "min_per_module"]
    if replacements is None or replacements.empty:
        return pd.DataFrame(columns=cols)
    per_module = replacements.groupby(["run_id", "module"])["replaced"].sum()
    g = per_module.groupby("run_id")
    return pd.DataFrame({"mean_per_module": g.mean(), "min_per_module": g.min()}).reset_index()


def claim_collapse(runs: pd.DataFrame, replacements: pd.DataFrame | None = None, *,
                   label: str = "") -> Claim:
    """Claim 4: collapse rate (share of runs <= finetune-L_s mean, Clopper-Pearson CI) of each
    Theseus arm, and whether collapsed runs had fewer replacements per module (Mann-Whitney,
    Holm over arms; tested when both groups have >= 3 runs).

    When the split cannot be tested (every run, or no run, collapsed, or fewer than 3 on a side),
    the verdict comes from the continuous form of the same claim over all the arm's runs: Spearman
    rank correlation of replacements per module with test accuracy (> 0 claimed; Holm over arms;
    undefined when either is constant). `decided_by` names the test behind each verdict."""
    q = ("Runs collapse to direct fine-tuning level because the successor modules were replaced "
         "too rarely (fewer replacements in collapsed runs).")
    _, base = _roles(runs)
    arms = _arms(runs, *THESEUS)
    if not base or not arms:
        return Claim(4, q, label, "not tested (no such arms)", "The group lacks Theseus arms or the "
                     "finetune-L_s baseline.", pd.DataFrame(), "replacements")
    bm = _ok(runs, base).mean() if len(_ok(runs, base)) else np.nan
    tot = replacement_totals(replacements)
    rows = []
    for arm in arms:
        r = runs[(runs["arm"] == arm) & (runs["status"] == "ok")].dropna(subset=["test_accuracy"])
        k, n = int((r["test_accuracy"] <= bm).sum()), len(r)
        ci = stats.binomtest(k, n).proportion_ci() if n else None
        r = r.merge(tot, on="run_id", how="inner")
        col, rest = (r.loc[r["test_accuracy"] <= bm, "mean_per_module"].to_numpy(float),
                     r.loc[r["test_accuracy"] > bm, "mean_per_module"].to_numpy(float))
        p = (stats.mannwhitneyu(col, rest).pvalue if min(len(col), len(rest)) >= MIN_N else np.nan)
        x, y = r["mean_per_module"].to_numpy(float), r["test_accuracy"].to_numpy(float)
        rho, rho_p = (stats.spearmanr(x, y) if len(r) >= MIN_N and np.ptp(x) > 0 and np.ptp(y) > 0
                      else (np.nan, np.nan))
        rows.append(dict(arm=arm, n=n, n_collapsed=k, collapse_rate=k / n if n else np.nan,
                         rate_ci_low=ci.low if ci else np.nan, rate_ci_high=ci.high if ci else np.nan,
                         baseline_mean=bm, n_with_replacements=len(r),
                         n_collapsed_counted=len(col), n_rest_counted=len(rest),
                         replacements_collapsed=col.mean() if len(col) else np.nan,
                         replacements_rest=rest.mean() if len(rest) else np.nan, mwu_p=p,
                         spearman_rho=float(rho), spearman_p=float(rho_p)))
    t = pd.DataFrame(rows)
    t["mwu_p_holm"] = holm(t["mwu_p"])
    t["spearman_p_holm"] = holm(t["spearman_p"])
    no_counts = "not tested (no replacement counts)"
    verdicts, decided = [], []
    for r in t.itertuples():
        if r.n_with_replacements == 0:
            verdicts.append(no_counts)
            decided.append("")
        elif np.isfinite(r.mwu_p):  # a testable collapsed-vs-rest split
            verdicts.append(verdict(r.mwu_p_holm, r.replacements_rest - r.replacements_collapsed, direction=+1,
                                    n_a=r.n_collapsed_counted, n_b=r.n_rest_counted))
            decided.append("Mann-Whitney, collapsed vs rest")
        elif np.isfinite(r.spearman_p):
            verdicts.append(verdict(r.spearman_p_holm, r.spearman_rho, direction=+1,
                                    n_a=r.n_with_replacements, n_b=r.n_with_replacements))
            decided.append("Spearman over runs (no testable split)")
        else:
            verdicts.append(f"not testable: all {r.n} runs collapsed" if r.n_collapsed == r.n else
                            "not testable: no run collapsed" if r.n_collapsed == 0 else
                            f"not testable: {r.n_collapsed} collapsed vs {r.n - r.n_collapsed}, and "
                            "replacements or accuracy constant")
            decided.append("")
    t["verdict"], t["decided_by"] = verdicts, decided
    text = "; ".join(
        f"{r.arm}: {r.n_collapsed}/{r.n} runs collapsed ({_fmt(100 * r.collapse_rate, 0)}%, 95% CI "
        f"{_fmt(100 * r.rate_ci_low, 0)}-{_fmt(100 * r.rate_ci_high, 0)}%) to <= {_fmt(bm)}; mean "
        f"replacements per module {_fmt(r.replacements_collapsed, 0)} (collapsed) vs "
        f"{_fmt(r.replacements_rest, 0)} (rest), Holm p {_p(r.mwu_p_holm)}; Spearman rho of replacements "
        f"with test accuracy over runs {_fmt(r.spearman_rho)}, Holm p {_p(r.spearman_p_holm)} -> {r.verdict}"
        + (f" ({r.decided_by})" if r.decided_by else "")
        for r in t.itertuples())
    counted = [v for v in t["verdict"] if v != no_counts]  # theseus-add never replaces
    return Claim(4, q, label, _overall(counted) if counted else no_counts, text + ".", t,
                 "replacements")


# ---------------------------------------------------------------- analysis entry point

@dataclass
class Group:
    """All statistics of one (task, model, successor_layers) group; `runs` holds its rows plus
    the predecessor's, with a `collapsed` column (test accuracy <= finetune-L_s mean)."""
    task: str
    model: str
    successor_layers: float  # NaN when unknown (no finetune-k arm to infer it from)
    predecessor_layers: float
    runs: pd.DataFrame
    epochs: pd.DataFrame
    replacements: pd.DataFrame
    variance: pd.DataFrame
    pairwise: pd.DataFrame
    expected_max: pd.DataFrame
    power: pd.DataFrame
    components: pd.DataFrame | None
    claims: list[Claim] = field(default_factory=list)

    @property
    def label(self) -> str:
        lp, ls = (f"{x:g}" if np.isfinite(x) else "?" for x in (self.predecessor_layers,
                                                               self.successor_layers))
        return f"{self.task} / {self.model}, {lp} -> {ls} layers"

    @property
    def key(self) -> dict:
        return dict(task=self.task, model=self.model, predecessor_layers=self.predecessor_layers,
                    successor_layers=self.successor_layers)


@dataclass
class Analysis:
    """Everything the report and the CLI need: normalised inputs, one Group per
    (task, model, successor_layers < predecessor_layers), and the provenance of the numbers."""
    runs: pd.DataFrame
    epochs: pd.DataFrame
    replacements: pd.DataFrame
    groups: list[Group]
    n_boot: int
    seed: int

    def table(self, name: str) -> pd.DataFrame:
        """Concatenate one per-group table ("variance", "pairwise", "expected_max", "power",
        "components") across groups, the group key in front."""
        parts = [getattr(g, name).assign(**g.key) for g in self.groups
                 if getattr(g, name) is not None and not getattr(g, name).empty]
        if not parts:
            return pd.DataFrame()
        t = pd.concat(parts, ignore_index=True)
        front = list(self.groups[0].key)
        return t[front + [c for c in t.columns if c not in front]]

    @property
    def claims(self) -> list[Claim]:
        return [c for g in self.groups for c in g.claims]

    def claims_table(self) -> pd.DataFrame:
        """One row per (claim, group, comparison) with the numbers and the verdict."""
        parts = [c.table.assign(claim=c.number, question=c.question, overall_verdict=c.verdict,
                                **g.key) for g in self.groups for c in g.claims if not c.table.empty]
        if not parts:
            return pd.DataFrame(columns=["claim", "question", "overall_verdict"])
        t = pd.concat(parts, ignore_index=True)
        front = ["claim", "question", *self.groups[0].key, "overall_verdict"]
        return t[front + [c for c in t.columns if c not in front]]

    @property
    def failed(self) -> pd.DataFrame:
        cols = [c for c in ("run_id", "task", "model", "arm", "seed", "student_seed",
                            "successor_layers", "error") if c in self.runs]
        return self.runs.loc[self.runs["status"] != "ok", cols]


def _frame(x: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if x is None else x.copy()


def analyze(runs: pd.DataFrame, epochs: pd.DataFrame | None = None,
            replacements: pd.DataFrame | None = None, *, n_boot: int = 10_000,
            seed: int = 0) -> Analysis:
    """Normalise the runs table and compute every table and claim per group.

    Groups: (task, model, successor_layers) for each successor_layers < predecessor_layers (all
    sizes when the predecessor size is unknown), the predecessor's rows included in each.
    """
    r = normalize_runs(runs)
    ep = _to_percent(_frame(epochs), ("dev_accuracy", "dev_macro_f1"))
    rep = _frame(replacements)
    groups = []
    for (task, model), tm in r.groupby(["task", "model"], sort=True):
        lp = tm["predecessor_layers"].max()
        sizes = sorted(tm["successor_layers"].dropna().unique())
        sizes = [s for s in sizes if not np.isfinite(lp) or s < lp] or sizes
        if tm["successor_layers"].isna().any():  # no finetune-k to infer the size from
            sizes.append(np.nan)
        for ls in sizes:
            pred = f"finetune-{int(lp)}" if np.isfinite(lp) else None
            same = tm["successor_layers"].isna() if np.isnan(ls) else tm["successor_layers"] == ls
            g = tm[same | (tm["arm"] == pred)].copy()
            var = variance_table(g, n_boot=n_boot, seed=seed)
            bm = var.loc[var["role"] == "baseline", "mean"]
            g["collapsed"] = g["test_accuracy"] <= (bm.iloc[0] if len(bm) else np.nan)
            ids = set(g["run_id"])
            gep = ep[ep["run_id"].isin(ids)] if "run_id" in ep else ep.iloc[0:0]
            grep = rep[rep["run_id"].isin(ids)] if "run_id" in rep else rep.iloc[0:0]
            grp = Group(task, model, float(ls), float(lp), g, gep, grep, var,
                        pairwise_tests(g, seed=seed, n_boot=n_boot), expected_max(g),
                        power_table(var), variance_components(g))
            label = grp.label
            grp.claims = [claim_theseus_vs_finetune(g, label=label, seed=seed, n_boot=n_boot),
                          claim_stability(g, label=label, seed=seed, n_boot=n_boot),
                          claim_two_stage(g, label=label, seed=seed, n_boot=n_boot),
                          claim_collapse(g, grep, label=label)]
            groups.append(grp)
    return Analysis(r, ep, rep, groups, n_boot, seed)
