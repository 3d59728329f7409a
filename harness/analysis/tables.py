"""Per-arm and per-pair tables of one group's runs (a normalised runs table: harness/store/schema.py),
built from the pure statistics of harness/analysis/stats.py: an arm's runs as arrays (ArmRuns), the
per-arm table, the pairwise tests, expected best-of-n, performance profiles, power and variance
components (docs/method.md, "Statistics")."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.stats import (ALPHA, ASO_THRESHOLD, MIN_N, MIN_SPREAD_N, MeanDifference, aso_eps_min,
                                    clopper_pearson, count_below_level, fine_tuning_level, fisher_exact_p, hedges_g,
                                    mean_difference, mean_interval, rng_for, sd_ddof1, sd_interval, seeds_for_power,
                                    seeds_for_power_paired, t_interval, t_test_p)
from harness.arms import family
from harness.arms import order as arm_order


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
    row (each baseline run against the level of the other baseline runs: count_below_level); share_le_baseline_median (runs at or below the baseline median, a descriptive
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
            mean=np.mean(x) if n else np.nan, std=sd_ddof1(x),
            sem=stats.sem(x) if n > 1 else np.nan, ci_low=lo, ci_high=hi,
            std_ci_low=slo, std_ci_high=shi, median=med, q1=q1, q3=q3, iqr=q3 - q1,
            min=np.min(x) if n else np.nan, max=np.max(x) if n else np.nan,
            n_degenerate=k_deg if n_known else np.nan, n_degenerate_known=n_known,
            degenerate_rate=k_deg / n_known if n_known else np.nan,
            **dict(zip(("degenerate_ci_low", "degenerate_ci_high"), clopper_pearson(k_deg, n_known, ci))),
            n_nondegenerate=len(nondeg) if n_known else np.nan,
            std_nondegenerate=sd_ddof1(nondeg) if n_known else np.nan,
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
               std_a=sd_ddof1(xa), std_b=sd_ddof1(xb),
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
        sa, sb = sd_ddof1(_ok(runs, arm, metric)), sd_ddof1(_ok(runs, base, metric))
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


# ---------------------------------------------------------------- per-example results

@dataclass(frozen=True)
class Examples:
    """Per-example test correctness of runs, indexed by run (read once per report: a sequential
    replay and the claims of every group look runs up in it).

    run_ids (R,) sorted; the rows of run run_ids[r] are start[r]:start[r + 1] of example (M,)
    (the example's id, the same for the same example in every run) and correct (M,) (0/1)."""
    run_ids: np.ndarray
    start: np.ndarray
    example: np.ndarray
    correct: np.ndarray

    @classmethod
    def of(cls, examples: "pd.DataFrame | Examples | None") -> "Examples | None":
        """From a table with columns run_id, example, correct (one row per run and test example;
        harness.store.examples.examples_table); None for None or an empty table."""
        if examples is None or isinstance(examples, Examples):
            return examples
        if examples.empty:
            return None
        missing = [c for c in ("run_id", "example", "correct") if c not in examples]
        if missing:
            raise ValueError(f"examples table lacks column(s) {', '.join(missing)}")
        run = examples["run_id"].astype(str).to_numpy()
        order = np.argsort(run, kind="stable")
        run = run[order]
        ids, first = np.unique(run, return_index=True)
        return cls(ids, np.append(first, len(run)), examples["example"].to_numpy(np.int64)[order],
                   examples["correct"].to_numpy(float)[order])

    def rows(self, run_id) -> tuple[np.ndarray, np.ndarray] | None:
        """(example, correct) of one run; None when the run has no per-example results."""
        r = int(np.searchsorted(self.run_ids, str(run_id)))
        if r >= len(self.run_ids) or self.run_ids[r] != str(run_id):
            return None
        return self.example[self.start[r]:self.start[r + 1]], self.correct[self.start[r]:self.start[r + 1]]


_KEY = 1 << 40  # (seed, example) as one int64: seed * _KEY + example (example ids below 2^40)


def arm_examples(arm: ArmRuns, examples: Examples | None, seeds=None):
    """One arm's correctness per (seed, example), averaged over its runs at a seed (student seeds),
    over the predecessor seeds in `seeds` (sorted; default all of the arm's).

    Output: a matrix (len(seeds), N) when every run was scored on the same N examples in the same
    order (a fixed split), with the example ids (N,): (matrix, ids); otherwise long arrays sorted by
    (seed, example): (correct (M,), seed (M,), example (M,)). None when a run of the arm at those
    seeds has no per-example results."""
    if examples is None:
        return None
    wanted = np.unique(arm.seeds[np.isfinite(arm.seeds)]) if seeds is None else np.asarray(sorted(seeds), float)
    keep = np.isin(arm.seeds, wanted)
    got = [examples.rows(r) for r in arm.run_ids[keep]]
    if not got or any(g is None or not len(g[0]) for g in got):
        return None
    run_seeds = arm.seeds[keep]
    ids = got[0][0]
    if all(len(g[0]) == len(ids) and np.array_equal(g[0], ids) for g in got):
        pos = np.searchsorted(wanted, run_seeds)
        total = np.zeros((len(wanted), len(ids)))
        np.add.at(total, pos, np.stack([g[1] for g in got]))
        return total / np.bincount(pos, minlength=len(wanted))[:, None], ids
    seed = np.concatenate([np.full(len(g[0]), s, np.int64) for g, s in zip(got, run_seeds)])
    example = np.concatenate([g[0] for g in got])
    key, inv = np.unique(seed * _KEY + example, return_inverse=True)
    mean = np.bincount(inv, np.concatenate([g[1] for g in got])) / np.bincount(inv)
    return mean, key // _KEY, key % _KEY


def example_differences(a: ArmRuns, b: ArmRuns, examples: Examples | None):
    """The task-level paired cells of arms a and b over the predecessor seeds both ran (MIN_N or
    more) and the test examples both were scored on at each seed, d = correct_a - correct_b (each
    averaged over student seeds): a matrix (seeds, examples) when both arms' runs share one test
    set in one order (a fixed split), else aligned arrays (d, seed, example). None when fewer than
    MIN_N seeds pair, a run at a paired seed has no per-example results, or a paired seed has no
    common example (the comparison then falls back to the seed-only test)."""
    if examples is None:
        return None
    common = a.per_seed().index.intersection(b.per_seed().index)
    if len(common) < MIN_N:
        return None
    ca, cb = arm_examples(a, examples, common), arm_examples(b, examples, common)
    if ca is None or cb is None:
        return None
    if len(ca) == 2 and len(cb) == 2 and np.array_equal(ca[1], cb[1]):
        return ca[0] - cb[0]
    ca, cb = (_long(x, common) for x in (ca, cb))
    key_a, key_b = (x[1] * _KEY + x[2] for x in (ca, cb))
    _, ia, ib = np.intersect1d(key_a, key_b, assume_unique=True, return_indices=True)
    if len(np.unique(ca[1][ia])) < len(common):
        return None
    return ca[0][ia] - cb[0][ib], ca[1][ia], ca[2][ia]


def _long(x, seeds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """arm_examples' output as long arrays (correct, seed, example)."""
    if len(x) == 3:
        return x
    matrix, ids = x
    n, big_n = matrix.shape
    return matrix.ravel(), np.repeat(np.asarray(sorted(seeds), np.int64), big_n), np.tile(ids, n)
