"""harness.analysis.stats against scipy, hand computations and simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from harness.analysis import stats, tables
from harness.errors import HarnessError
from harness.store import schema

A = np.array([78.1, 79.4, 77.2, 80.3, 78.8, 79.9, 77.5, 78.6])
B = np.array([76.9, 78.2, 77.0, 78.1, 76.4, 79.0, 76.2, 77.7])


def runs_from(samples: dict[str, np.ndarray], **extra) -> pd.DataFrame:
    """A normalised runs table: one row per value, seeds 0..n-1 per arm (so arms pair by seed)."""
    rows = [dict(task="t", model="m", strategy=arm.split("/")[0],
                 variant=arm.partition("/")[2], seed=i, test_accuracy=float(v), **extra)
            for arm, vals in samples.items() for i, v in enumerate(vals)]
    return schema.normalize_runs(pd.DataFrame(rows))


def one_pair(a, b, **kw) -> pd.Series:
    r = runs_from({"theseus-add": a, "finetune-3": b, "finetune-6": [90.0, 90.5, 91.0]})
    return tables.pairwise_tests(r, pairs=[("theseus-add", "finetune-3")], **kw).iloc[0]


def test_tests_match_scipy():
    row = one_pair(A, B)
    assert row["welch_p"] == pytest.approx(st.ttest_ind(A, B, equal_var=False).pvalue, rel=1e-12)
    assert row["welch_t"] == pytest.approx(st.ttest_ind(A, B, equal_var=False).statistic, rel=1e-12)
    assert row["mwu_p"] == pytest.approx(st.mannwhitneyu(A, B, alternative="two-sided").pvalue, rel=1e-12)
    assert row["paired_p"] == pytest.approx(st.ttest_rel(A, B).pvalue, rel=1e-12)
    assert row["wilcoxon_p"] == pytest.approx(st.wilcoxon(A, B).pvalue, rel=1e-12)
    assert row["bf_p"] == pytest.approx(st.levene(A, B, center="median").pvalue, rel=1e-12)
    assert row["levene_p"] == pytest.approx(st.levene(A, B, center="mean").pvalue, rel=1e-12)
    u = st.mannwhitneyu(A, B).statistic
    assert row["prob_improvement"] == pytest.approx(u / 64)
    greater = np.mean(A[:, None] > B[None, :]) + 0.5 * np.mean(A[:, None] == B[None, :])
    assert row["prob_improvement"] == pytest.approx(greater)
    assert row["diff"] == pytest.approx(A.mean() - B.mean())
    assert row["std_ratio"] == pytest.approx(A.std(ddof=1) / B.std(ddof=1))
    assert row["primary_test"] == "paired t" and row["tested"]
    # the primary test is the paired t, with its own t interval
    ci = st.ttest_rel(A, B).confidence_interval(0.95)
    assert row["primary_p"] == pytest.approx(row["paired_p"], rel=1e-12)
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert np.isnan(row["fisher_p"])  # degenerate runs unknown


def test_holm_known_examples():
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN is skipped and does not count towards m (statsmodels multipletests 'holm' on the finite ones)
    np.testing.assert_allclose(stats.holm([0.04, 0.001, np.nan, 0.03, 0.2]),
                               [0.09, 0.004, np.nan, 0.09, 0.2])
    assert stats.holm([]).shape == (0,)
    assert stats.holm([0.6, 0.7]).max() == 1.0


def test_pairwise_holds_raw_p_only_and_welch_when_seeds_do_not_pair():
    """Adjusted p-values belong to the claims (harness.analysis.claims); the all-pairs table is raw. Arms
    that share fewer than 3 seeds fall back to Welch's t and its interval."""
    r = runs_from({"theseus-add": A, "theseus-binary": B, "finetune-3": B - 1, "finetune-6": A + 5})
    t = tables.pairwise_tests(r)
    assert len(t) == 6 and not [c for c in t.columns if "holm" in c]
    assert list(t.columns) == [*tables.PAIRWISE_COLUMNS]
    r.loc[r["arm"] == "theseus-binary", "seed"] += 100
    row = tables.pairwise_tests(r, pairs=[("theseus-add", "theseus-binary")]).iloc[0]
    ref = st.ttest_ind(A, B, equal_var=False)
    assert row["primary_test"] == "Welch t" and row["primary_p"] == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_hedges_g_hand_computed():
    # means 2 and 4, both variances 1 -> d = -2; J = 1 - 3 / (4 * 6 - 9) = 0.8
    assert stats.hedges_g(np.array([1.0, 2, 3]), np.array([3.0, 4, 5])) == pytest.approx(-1.6)
    assert np.isnan(stats.hedges_g(np.array([1.0, 1, 1]), np.array([1.0, 1, 1])))


def test_variance_table_intervals_and_reproducible_resampling():
    r = runs_from({"theseus-add": A, "finetune-3": B})
    row = tables.variance_table(r).set_index("arm").loc["theseus-add"]
    ci = st.t.interval(0.95, len(A) - 1, loc=A.mean(), scale=st.sem(A))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(ci, rel=1e-12)
    s, n = A.std(ddof=1), len(A)
    chi = (s * np.sqrt((n - 1) / st.chi2.ppf(0.975, n - 1)), s * np.sqrt((n - 1) / st.chi2.ppf(0.025, n - 1)))
    assert (row["std_ci_low"], row["std_ci_high"]) == pytest.approx(chi, rel=1e-12)
    assert row["std"] == pytest.approx(A.std(ddof=1)) and row["sem"] == pytest.approx(st.sem(A))
    assert row["iqr"] == pytest.approx(np.subtract(*np.percentile(A, [75, 25])))
    p0, p1, p2 = one_pair(A, B, seed=0), one_pair(A, B, seed=0), one_pair(A, B, seed=1)
    assert p0["aso_eps_min"] == p1["aso_eps_min"] and p0["diff_ci_low"] == p2["diff_ci_low"]


def test_variance_table_gaps_failures_level_and_failed():
    r = runs_from({"finetune-6": [85.0, 86, 87], "finetune-3": [70.0, 72, 74],
                   "theseus-add": [71.0, 73, 75, 90], "theseus-binary": [57.8, 57.8, 57.8, 69.0, 73.0]},
                  degenerate=False)
    r.loc[r["test_accuracy"] == 57.8, "degenerate"] = True
    r.loc[len(r)] = {**r.iloc[0].to_dict(), "arm": "theseus-add", "strategy": "theseus-add",
                     "status": "failed", "test_accuracy": np.nan, "run_id": "x", "degenerate": pd.NA}
    v = tables.variance_table(r).set_index("arm")
    assert v.loc["theseus-add", "n"] == 4 and v.loc["theseus-add", "n_failed"] == 1
    assert v.loc["theseus-add", "gap_to_baseline"] == pytest.approx(77.25 - 72)
    assert v.loc["theseus-add", "gap_to_predecessor"] == pytest.approx(77.25 - 86)
    assert v.loc["theseus-add", "retention"] == pytest.approx(77.25 / 86)
    assert list(v["role"][v["role"] != ""].items()) == [("finetune-3", "baseline"), ("finetune-6", "predecessor")]
    b = v.loc["theseus-binary"]
    assert (b["n_degenerate"], b["n_degenerate_known"], b["n_nondegenerate"]) == (3, 5, 2)
    assert (b["degenerate_ci_low"], b["degenerate_ci_high"]) == pytest.approx(stats.clopper_pearson(3, 5))
    assert b["std_nondegenerate"] == pytest.approx(np.std([69.0, 73.0], ddof=1))
    assert np.isnan(b["std_nondegenerate_ci_low"])  # fewer than MIN_SPREAD_N working runs
    level = 72 - 2 * 2  # baseline mean - 2 sd
    assert v["fine_tuning_level"].iloc[0] == pytest.approx(level)
    assert b["n_below_level"] == 3 and v.loc["theseus-add", "n_below_level"] == 0
    assert v.loc["finetune-3", "n_below_level"] == 0  # the reference row: the baseline's own runs
    assert v.loc["finetune-3", "share_le_baseline_median"] == pytest.approx(2 / 3)
    assert v.loc["theseus-add", "share_le_baseline_median"] == pytest.approx(0.25)  # 71 <= 72
    unknown = tables.variance_table(runs_from({"finetune-3": [70.0, 72, 74]})).iloc[0]
    assert unknown["n_degenerate_known"] == 0 and np.isnan(unknown["n_degenerate"])


def test_expected_max_by_dev_dodge():
    """Dodge et al.: the best run *by dev* of n seeds, its *test* accuracy; exact against a Monte
    Carlo of drawing n runs with replacement; ties in dev share the pick."""
    rng = np.random.default_rng(1)
    dev = np.array([70.0, 71, 72, 72, 73, 74, 75, 76])
    test = np.array([69.0, 75, 70, 74, 71, 73, 68, 72])  # the best-dev run is not the best-test one
    r = runs_from({"kd": test})
    r["dev_accuracy"] = dev
    em = tables.expected_max(r).set_index("n_seeds")
    assert set(em["selected_by"]) == {"dev"} and em.loc[1, "expected_max"] == pytest.approx(test.mean())
    for n in (2, 5):
        idx = rng.integers(0, 8, (200_000, n))
        best = dev[idx].max(1, keepdims=True)
        tie = rng.random(idx.shape) * (dev[idx] == best)  # uniform among the tied best-dev draws
        pick = test[idx][np.arange(len(idx)), tie.argmax(1)]
        assert em.loc[n, "expected_max"] == pytest.approx(pick.mean(), abs=0.02)
        assert em.loc[n, "expected_max_std"] == pytest.approx(pick.std(), abs=0.02)
    assert em.loc[8, "expected_max_test"] > em.loc[8, "expected_max"]  # selecting by test is optimistic


def test_expected_max():
    """Without dev scores the curve selects by test (the optimistic form, labelled so)."""
    rng = np.random.default_rng(0)
    x = rng.normal(80, 2, 10)
    em = tables.expected_max(runs_from({"kd": x}))
    assert set(em["selected_by"]) == {"test"}
    np.testing.assert_allclose(em["expected_max"], em["expected_max_test"])
    e = em["expected_max"].to_numpy()
    assert e[0] == pytest.approx(x.mean())
    assert np.all(np.diff(e) >= 0) and e[-1] <= x.max() and e[-1] > np.quantile(x, 0.8)
    # exact formula against a Monte Carlo of the max of 3 draws with replacement
    mc = x[rng.integers(0, 10, (200_000, 3))].max(1)
    assert e[2] == pytest.approx(mc.mean(), abs=0.02)
    assert em["expected_max_std"].iloc[2] == pytest.approx(mc.std(), abs=0.02)
    big = rng.normal(80, 2, 300)
    assert tables.expected_max(runs_from({"kd": big}))["expected_max"].iloc[-1] == pytest.approx(big.max(), abs=0.5)


def test_aso_direction_and_against_deepsig():
    rng = np.random.default_rng(3)
    hi, lo = rng.normal(82, 1, 10), rng.normal(78, 1, 10)
    assert stats.aso_eps_min(hi, lo, rng=np.random.default_rng(0)) < 0.05
    assert stats.aso_eps_min(lo, hi, rng=np.random.default_rng(0)) > 0.95
    deepsig = pytest.importorskip("deepsig")
    a, b = rng.normal(80, 1, 10), rng.normal(79.5, 1, 10)
    ours = stats.aso_eps_min(a, b, n_boot=1000, rng=np.random.default_rng(0))
    theirs = deepsig.aso(a, b, num_bootstrap_iterations=1000, show_progress=False, seed=0, num_jobs=1)
    assert 0.05 < theirs < 0.95 and ours == pytest.approx(theirs, abs=0.05)


def test_null_false_positive_rate():
    """A/A data: 400 simulated pairs of n = 10; Welch and paired t reject at ~5%."""
    rng = np.random.default_rng(0)
    welch, paired = [], []
    template = runs_from({"theseus-add": np.zeros(10), "finetune-3": np.zeros(10), "finetune-6": [90.0, 90.5, 91.0]})
    for _ in range(400):
        r = template.copy()
        r["test_accuracy"] = np.r_[rng.normal(80, 1.5, 20), 90.0, 90.5, 91.0]
        row = tables.pairwise_tests(r, pairs=[("theseus-add", "finetune-3")], aso_boot=20).iloc[0]
        welch.append(row["welch_p"] < 0.05)
        paired.append(row["paired_p"] < 0.05)
    assert 0.02 <= np.mean(welch) <= 0.09
    assert 0.02 <= np.mean(paired) <= 0.09


def test_small_n_not_tested():
    r = runs_from({"theseus-add": [80.0, 81.0], "finetune-3": B, "finetune-6": A + 5})
    row = tables.pairwise_tests(r, pairs=[("theseus-add", "finetune-3")]).iloc[0]
    assert not row["tested"] and row["note"] == "n<3: not tested"
    assert np.isnan(row["welch_p"]) and np.isnan(row["primary_p"]) and np.isnan(row["aso_eps_min"])
    assert row["n_a"] == 2 and row["mean_a"] == 80.5
    v = tables.variance_table(r).set_index("arm")
    assert not v.loc["theseus-add", "tested"] and v.loc["finetune-3", "tested"]
    assert np.isnan(v.loc["theseus-add", "ci_low"]) and np.isnan(v.loc["theseus-add", "std_ci_low"])


def test_zero_variance_and_identical_samples():
    same = one_pair(np.full(5, 80.0), np.full(5, 80.0))
    assert same["welch_p"] == 1.0 and same["paired_p"] == 1.0 and same["wilcoxon_p"] == 1.0
    assert same["mwu_p"] == 1.0 and "zero variance" in same["note"]
    shifted = one_pair(np.full(5, 81.0), np.full(5, 80.0))
    assert np.isnan(shifted["welch_p"]) and np.isnan(shifted["paired_p"]) and shifted["tested"]
    assert shifted["prob_improvement"] == 1.0 and shifted["diff"] == 1.0
    one_side = one_pair(np.full(5, 80.0), B[:5])
    assert np.isfinite(one_side["welch_p"]) and np.isfinite(one_side["bf_p"])
    v = tables.variance_table(runs_from({"kd": np.full(4, 80.0)})).iloc[0]
    assert v["ci_low"] == v["ci_high"] == 80.0 and v["std"] == 0 and v["std_ci_high"] == 0


def test_seeds_for_power():
    # classic result: d = 1 at alpha 0.05, power 0.8 needs 17 per group
    assert stats.seeds_for_power(1.0, 1.0, 1.0) == 17
    assert stats.seeds_for_power(0.5, 1.0, 1.0) == 64
    assert stats.seeds_for_power(0.0, 1.0, 1.0) is None
    assert stats.seeds_for_power(2.0, 0.0, 0.0) == 2
    assert stats.seeds_for_power(6.88, 0.25, 1.09) == 3  # scipy's nct.cdf NaN tail is handled


def test_variance_components_factorial():
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 3, 6)  # predecessor effect dominates
    rows = [dict(task="t", strategy="theseus-add", seed=p, student_seed=s,
                 test_accuracy=80 + pred[p] + rng.normal(0, 0.3)) for p in range(6) for s in range(4)]
    vc = tables.variance_components(schema.normalize_runs(pd.DataFrame(rows)))
    assert vc is not None and vc.iloc[0]["design"] == "two-way crossed"
    assert vc.iloc[0]["share_predecessor"] > 0.8
    assert tables.variance_components(runs_from({"kd": A})) is None


def test_normalize_runs_minimal_and_errors():
    r = schema.normalize_runs(pd.DataFrame({
        "task": "t", "strategy": ["finetune-6", "finetune-3", "theseus-add"],
        "seed": [0, 0, 0], "test_accuracy": [0.9, 0.8, 0.85]}))
    assert list(r["successor_layers"]) == [6, 3, 3] and set(r["predecessor_layers"]) == {6}
    assert r["test_accuracy"].tolist() == pytest.approx([90, 80, 85])  # fractions -> percent
    assert list(r["arm"]) == ["finetune-6", "finetune-3", "theseus-add"] and set(r["status"]) == {"ok"}
    with pytest.raises(HarnessError, match="test_accuracy"):
        schema.normalize_runs(pd.DataFrame({"task": ["t"], "strategy": ["kd"], "seed": [0]}))


def test_pairwise_family_is_fast():
    """A family of 55 pairs (11 arms x 8 seeds) with the default resampling takes seconds."""
    import time
    rng = np.random.default_rng(0)
    r = runs_from({f"two-stage/v{i}": rng.normal(80, 1, 8) for i in range(10)} | {"finetune-3": B})
    t0 = time.perf_counter()
    t = tables.pairwise_tests(r)
    assert len(t) == 55 and time.perf_counter() - t0 < 20




# ---------------------------------------------------------------- failure counts, equivalence, spread

def test_clopper_pearson_and_fisher_match_scipy():
    for k, n in [(0, 10), (7, 10), (10, 10), (3, 17)]:
        ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert stats.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), rel=1e-12)
    for ka, na, kb, nb in [(0, 10, 7, 10), (7, 10, 7, 10), (2, 9, 8, 12), (10, 10, 0, 10)]:
        ref = st.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue
        assert stats.fisher_exact_p(ka, na, kb, nb) == pytest.approx(ref, rel=1e-12)
    assert np.isnan(stats.fisher_exact_p(0, 0, 3, 10)) and np.isnan(stats.clopper_pearson(0, 0)[0])


def test_wilson_and_newcombe_known_values():
    ci = st.binomtest(3, 10).proportion_ci(method="wilson")
    assert stats.wilson_interval(3, 10) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # Newcombe (1998), Stat Med 17:873, method 10: 56/70 - 48/80 = 0.2000, 95% CI 0.0524 to 0.3339
    lo, hi = stats.rate_difference_interval(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    lo, hi = stats.rate_difference_interval(0, 10, 10, 10)
    assert -1 <= lo < hi < 0


def test_fisher_power_exact_and_seeds():
    def brute(pa, pb, n):
        return sum(st.binom.pmf(ka, n, pa) * st.binom.pmf(kb, n, pb)
                   for ka in range(n + 1) for kb in range(n + 1)
                   if st.fisher_exact([[ka, n - ka], [kb, n - kb]]).pvalue < 0.05)
    for pa, pb, n in [(0.0, 0.7, 10), (0.1, 0.5, 12), (0.3, 0.35, 7)]:
        assert stats.fisher_power(pa, pb, n) == pytest.approx(brute(pa, pb, n), abs=1e-12)
    n = stats.seeds_for_power_fisher(0.0, 0.7)
    assert stats.fisher_power(0, 0.7, n) >= 0.8 > stats.fisher_power(0, 0.7, n - 1)
    assert stats.seeds_for_power_fisher(0.3, 0.3) is None


def test_tost_known_case_and_its_interval():
    """Paired differences with mean 0.3 and sd 0.5 over n = 10, margin 1: the upper one-sided test
    decides, t = (0.3 - 1) / (0.5 / sqrt 10) = -4.427 on 9 df, p = 8.2e-4; TOST p < alpha exactly
    when the 90% t interval lies inside (-margin, margin)."""
    d = np.array([-0.5, 0.0, 0.0, 0.3, 0.3, 0.3, 0.6, 0.6, 0.7, 0.7])
    d = 0.3 + (d - d.mean()) * 0.5 / d.std(ddof=1)
    md = stats.mean_difference(d, np.zeros(10), paired=True)
    assert md.estimate == pytest.approx(0.3) and md.sd == pytest.approx(0.5)
    assert stats.tost_p(md, 1.0) == pytest.approx(st.t.cdf(-0.7 / (0.5 / np.sqrt(10)), 9), rel=1e-12)
    assert stats.tost_p(md, 1.0) == pytest.approx(8.2e-4, abs=5e-5)
    rng = np.random.default_rng(4)
    for _ in range(200):
        x = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.2, 2), 8)
        m = stats.mean_difference(x, np.zeros(8), paired=True)
        lo, hi = stats.t_interval(m, 0.90)
        assert (stats.tost_p(m, 1.0) < 0.05) == (-1 < lo and hi < 1)


def test_hodges_lehmann_interval_inverts_the_exact_mann_whitney_test():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 7), rng.normal(1.5, 1, 5)
    est, lo, hi = stats.hodges_lehmann(a, b)
    assert est == pytest.approx(np.median(a[:, None] - b[None, :]))

    def p(shift):
        return st.mannwhitneyu(a - shift, b, method="exact").pvalue
    eps = 1e-9
    assert p(lo + eps) >= 0.05 and p(hi - eps) >= 0.05  # inside: not rejected
    assert p(lo - 1e-6) < 0.05 and p(hi + 1e-6) < 0.05  # just outside: rejected
    pmf = stats.mann_whitney_null_pmf(5, 4)
    u = st.mannwhitneyu([1.0, 2, 3, 7, 8], [4.0, 5, 6, 9], method="exact")
    cdf = np.cumsum(pmf)
    assert 2 * min(cdf[int(u.statistic)], 1 - cdf[int(u.statistic) - 1]) == pytest.approx(u.pvalue)
    assert np.isnan(stats.hodges_lehmann([1.0, 2, 3], [4.0, 5, 6])[1])  # 3 vs 3 cannot bound a shift


def test_spread_test_exact_and_finite_where_the_data_bound_it():
    """Eight identical runs out of ten no longer make the ratio's upper bound infinite: the
    permutation interval is finite on both sides, and it agrees with its own test."""
    a = np.array([74.1, 75.3, 73.9, 76.0, 74.8, 75.5, 74.2, 75.9, 73.6, 75.0])
    b = np.array([57.8] * 4 + [61.0, 66.6, 68.6, 59.9, 63.2, 70.1])
    s = stats.spread_test(a, b, n_perm=4000, rng=np.random.default_rng(0))
    assert s.ratio == pytest.approx(a.std(ddof=1) / b.std(ddof=1))
    assert np.isfinite([s.ci_low, s.ci_high]).all() and 0 < s.ci_low < s.ratio < s.ci_high < 1
    assert s.p < 0.05 and not s.exact
    # exact enumeration for 5 vs 5: 252 splits, the observed one among them
    x, y = np.array([1.0, 2.2, 2.9, 4.1, 5.0]), np.array([0.0, 4.0, 9.0, 13.0, 20.0])
    e = stats.spread_test(x, y, n_perm=1000, rng=np.random.default_rng(0))
    from itertools import combinations
    cx, cy = x - np.median(x), y - np.median(y)
    pooled = np.r_[cx, cy]
    t0 = abs(np.log(cx.std(ddof=1) / cy.std(ddof=1)))
    hits = sum(abs(np.log(pooled[list(i)].std(ddof=1) / np.delete(pooled, list(i)).std(ddof=1))) >= t0 - 1e-12
               for i in combinations(range(10), 5))
    assert e.exact and e.resamples == 252 and e.p == pytest.approx(hits / 252)


def test_normalize_runs_degenerate_and_budget_columns():
    base = {"task": "t", "strategy": ["finetune-3"] * 5, "seed": range(5), "test_accuracy": [70.0] * 5}
    r = schema.normalize_runs(pd.DataFrame({**base, "degenerate": [True, "false", "1", None, ""],
                                           "budget": [100, 100, None, 200, 200]}))
    assert r["degenerate"].dtype == "boolean"
    assert r["degenerate"].tolist()[:3] == [True, False, True] and r["degenerate"].isna().sum() == 2
    assert r["budget"].isna().sum() == 1 and r["budget"].max() == 200
    assert schema.normalize_runs(pd.DataFrame(base))["degenerate"].isna().all()
    with pytest.raises(HarnessError, match="degenerate"):
        schema.normalize_runs(pd.DataFrame({**base, "degenerate": ["maybe"] * 5}))


def test_performance_profile_and_power_helpers():
    r = runs_from({"kd": [70.0, 72, 74, 76], "finetune-3": [71.0, 71, 71, 71]})
    pr = tables.performance_profile(r, thresholds=[70, 71, 72, 75, 77])
    kd = pr[pr["arm"] == "kd"].set_index("threshold")["share"]
    assert kd.tolist() == [1.0, 0.75, 0.75, 0.25, 0.0]
    assert pr[pr["arm"] == "finetune-3"]["share"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    # paired t power: a known case, d = 0.5 sd of the differences needs 34 pairs at 80%
    assert stats.seeds_for_power_paired(0.5, 1.0) == 34
    n = stats.seeds_for_power_tost(0.0, 1.0, 1.0)
    assert n is not None and stats.seeds_for_power_tost(1.0, 1.0, 1.0) is None
    assert stats.seeds_for_power_spread(0.5) < stats.seeds_for_power_spread(0.8)
