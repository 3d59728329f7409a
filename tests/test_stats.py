"""harness.stats against scipy, hand computations and simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from harness import stats
from harness.errors import HarnessError

A = np.array([78.1, 79.4, 77.2, 80.3, 78.8, 79.9, 77.5, 78.6])
B = np.array([76.9, 78.2, 77.0, 78.1, 76.4, 79.0, 76.2, 77.7])


def runs_from(samples: dict[str, np.ndarray], **extra) -> pd.DataFrame:
    """A normalised runs table: one row per value, seeds 0..n-1 per arm (so arms pair by seed)."""
    rows = [dict(task="t", model="m", strategy=arm.split("/")[0],
                 variant=arm.partition("/")[2], seed=i, test_accuracy=float(v), **extra)
            for arm, vals in samples.items() for i, v in enumerate(vals)]
    return stats.normalize_runs(pd.DataFrame(rows))


def one_pair(a, b, **kw) -> pd.Series:
    r = runs_from({"theseus-add": a, "finetune-3": b, "finetune-6": [90.0, 90.5, 91.0]})
    return stats.pairwise_tests(r, pairs=[("theseus-add", "finetune-3")], **kw).iloc[0]


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
    assert row["std_ratio_ci_low"] < row["std_ratio"] < row["std_ratio_ci_high"]
    assert row["primary_test"] == "paired t" and row["tested"]


def test_holm_known_examples():
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN is skipped and does not count towards m (statsmodels multipletests 'holm' on the finite ones)
    np.testing.assert_allclose(stats.holm([0.04, 0.001, np.nan, 0.03, 0.2]),
                               [0.09, 0.004, np.nan, 0.09, 0.2])
    assert stats.holm([]).shape == (0,)
    assert stats.holm([0.6, 0.7]).max() == 1.0


def test_holm_columns_in_pairwise():
    r = runs_from({"theseus-add": A, "theseus-binary": B, "finetune-3": B - 1, "finetune-6": A + 5})
    t = stats.pairwise_tests(r, n_boot=500)
    assert len(t) == 6
    for c in stats.P_COLUMNS:
        np.testing.assert_allclose(t[f"{c}_holm"], stats.holm(t[c]))


def test_hedges_g_hand_computed():
    # means 2 and 4, both variances 1 -> d = -2; J = 1 - 3 / (4 * 6 - 9) = 0.8
    assert stats.hedges_g(np.array([1.0, 2, 3]), np.array([3.0, 4, 5])) == pytest.approx(-1.6)
    assert np.isnan(stats.hedges_g(np.array([1.0, 1, 1]), np.array([1.0, 1, 1])))


def test_bootstrap_seeded_and_reproducible():
    r = runs_from({"theseus-add": A, "finetune-3": B})
    v0 = stats.variance_table(r, n_boot=2000, seed=0)
    v0b = stats.variance_table(r, n_boot=2000, seed=0)
    v1 = stats.variance_table(r, n_boot=2000, seed=1)
    pd.testing.assert_frame_equal(v0, v0b)
    assert not np.allclose(v0["ci_low"], v1["ci_low"])
    row = v0.set_index("arm").loc["theseus-add"]
    assert row["ci_low"] < A.mean() < row["ci_high"]
    assert row["std"] == pytest.approx(A.std(ddof=1)) and row["sem"] == pytest.approx(st.sem(A))
    assert row["iqr"] == pytest.approx(np.subtract(*np.percentile(A, [75, 25])))
    p0, p1 = one_pair(A, B, seed=0), one_pair(A, B, seed=0)
    assert p0["diff_ci_low"] == p1["diff_ci_low"] and p0["aso_eps_min"] == p1["aso_eps_min"]


def test_variance_table_gaps_collapse_and_failed():
    r = runs_from({"finetune-6": [85.0, 86, 87], "finetune-3": [70.0, 72, 74],
                   "theseus-add": [71.0, 73, 75, 90]})
    r.loc[len(r)] = {**r.iloc[0].to_dict(), "arm": "theseus-add", "strategy": "theseus-add",
                     "status": "failed", "test_accuracy": np.nan, "run_id": "x"}
    v = stats.variance_table(r, n_boot=500).set_index("arm")
    assert v.loc["theseus-add", "n"] == 4 and v.loc["theseus-add", "n_failed"] == 1
    assert v.loc["theseus-add", "gap_to_baseline"] == pytest.approx(77.25 - 72)
    assert v.loc["theseus-add", "gap_to_predecessor"] == pytest.approx(77.25 - 86)
    assert v.loc["theseus-add", "retention"] == pytest.approx(77.25 / 86)
    assert v.loc["theseus-add", "collapse_rate"] == pytest.approx(0.25)  # 71 <= 72
    assert list(v["role"][v["role"] != ""].items()) == [("finetune-3", "baseline"), ("finetune-6", "predecessor")]


def test_expected_max():
    rng = np.random.default_rng(0)
    x = rng.normal(80, 2, 10)
    em = stats.expected_max(runs_from({"kd": x}))
    e = em["expected_max"].to_numpy()
    assert e[0] == pytest.approx(x.mean())
    assert np.all(np.diff(e) >= 0) and e[-1] <= x.max() and e[-1] > np.quantile(x, 0.8)
    # exact formula against a Monte Carlo of the max of 3 draws with replacement
    mc = x[rng.integers(0, 10, (200_000, 3))].max(1)
    assert e[2] == pytest.approx(mc.mean(), abs=0.02)
    assert em["expected_max_std"].iloc[2] == pytest.approx(mc.std(), abs=0.02)
    big = rng.normal(80, 2, 300)
    assert stats.expected_max(runs_from({"kd": big}))["expected_max"].iloc[-1] == pytest.approx(big.max(), abs=0.5)


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
    for _ in range(400):
        a, b = rng.normal(80, 1.5, 10), rng.normal(80, 1.5, 10)
        row = one_pair(a, b, n_boot=50, aso_boot=20)
        welch.append(row["welch_p"] < 0.05)
        paired.append(row["paired_p"] < 0.05)
    assert 0.02 <= np.mean(welch) <= 0.09
    assert 0.02 <= np.mean(paired) <= 0.09


def test_small_n_not_tested():
    r = runs_from({"theseus-add": [80.0, 81.0], "finetune-3": B, "finetune-6": A + 5})
    row = stats.pairwise_tests(r, pairs=[("theseus-add", "finetune-3")]).iloc[0]
    assert not row["tested"] and row["note"] == "n<3: not tested"
    assert np.isnan(row["welch_p"]) and np.isnan(row["welch_p_holm"]) and np.isnan(row["aso_eps_min"])
    assert row["n_a"] == 2 and row["mean_a"] == 80.5
    v = stats.variance_table(r, n_boot=500).set_index("arm")
    assert not v.loc["theseus-add", "tested"] and v.loc["finetune-3", "tested"]
    c = stats.claim_theseus_vs_finetune(r, n_boot=500)
    assert c.verdict == stats.NOT_TESTED


def test_zero_variance_and_identical_samples():
    same = one_pair(np.full(5, 80.0), np.full(5, 80.0), n_boot=500)
    assert same["welch_p"] == 1.0 and same["paired_p"] == 1.0 and same["wilcoxon_p"] == 1.0
    assert same["mwu_p"] == 1.0 and "zero variance" in same["note"]
    shifted = one_pair(np.full(5, 81.0), np.full(5, 80.0), n_boot=500)
    assert np.isnan(shifted["welch_p"]) and np.isnan(shifted["paired_p"]) and shifted["tested"]
    assert shifted["prob_improvement"] == 1.0 and shifted["diff"] == 1.0
    one_side = one_pair(np.full(5, 80.0), B[:5], n_boot=500)
    assert np.isfinite(one_side["welch_p"]) and np.isfinite(one_side["bf_p"])
    v = stats.variance_table(runs_from({"kd": np.full(4, 80.0)}), n_boot=500).iloc[0]
    assert v["ci_low"] == v["ci_high"] == 80.0 and v["std"] == 0


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
    vc = stats.variance_components(stats.normalize_runs(pd.DataFrame(rows)))
    assert vc is not None and vc.iloc[0]["design"] == "two-way crossed"
    assert vc.iloc[0]["share_predecessor"] > 0.8
    assert stats.variance_components(runs_from({"kd": A})) is None


def test_normalize_runs_minimal_and_errors():
    r = stats.normalize_runs(pd.DataFrame({
        "task": "t", "strategy": ["finetune-6", "finetune-3", "theseus-add"],
        "seed": [0, 0, 0], "test_accuracy": [0.9, 0.8, 0.85]}))
    assert list(r["successor_layers"]) == [6, 3, 3] and set(r["predecessor_layers"]) == {6}
    assert r["test_accuracy"].tolist() == pytest.approx([90, 80, 85])  # fractions -> percent
    assert list(r["arm"]) == ["finetune-6", "finetune-3", "theseus-add"] and set(r["status"]) == {"ok"}
    with pytest.raises(HarnessError, match="test_accuracy"):
        stats.normalize_runs(pd.DataFrame({"task": ["t"], "strategy": ["kd"], "seed": [0]}))


def test_verdicts():
    v = stats.verdict
    assert v(0.01, 1.2, direction=1, n_a=5, n_b=5) == "supported"
    assert v(0.01, -1.2, direction=1, n_a=5, n_b=5) == "contradicted"
    assert v(0.3, 0.5, direction=1, n_a=5, n_b=4) == "inconclusive at n = 5 vs 4"
    assert v(0.3, -0.5, direction=1, n_a=5, n_b=5) == "not supported"
    assert v(0.01, 1.2, direction=1, n_a=2, n_b=5) == stats.NOT_TESTED


def test_pairwise_family_is_fast():
    """A family of 55 pairs (11 arms x 8 seeds) with the default resampling takes seconds."""
    import time
    rng = np.random.default_rng(0)
    r = runs_from({f"two-stage/v{i}": rng.normal(80, 1, 8) for i in range(10)} | {"finetune-3": B})
    t0 = time.perf_counter()
    t = stats.pairwise_tests(r)
    assert len(t) == 55 and time.perf_counter() - t0 < 20


def test_degenerate_arms_are_named_not_called_stable():
    from harness.stats import claim_collapse, claim_stability, normalize_runs

    rows = [{"task": "t", "strategy": s, "variant": v, "seed": i, "test_accuracy": acc}
            for s, v, accs in (("finetune-6", "", [80, 81, 79, 80.5, 79.5]), ("finetune-3", "", [74, 75, 73, 74.5, 73.5]),
                               ("theseus-binary", "seed", [57.8] * 5), ("theseus-add", "seed", [75, 74, 76, 75.5, 74.5]))
            for i, acc in enumerate(accs)]
    runs = normalize_runs(pd.DataFrame(rows))
    stability = claim_stability(runs, n_boot=200)
    assert "all 5 runs of theseus-binary/seed gave exactly 57.80" in stability.text
    replacements = pd.DataFrame([{"run_id": r, "arm": "theseus-binary/seed", "seed": 0, "successor_layers": 3,
                                  "epoch": 1, "module": 1, "replaced": 30, "steps": 60}
                                 for r in runs.loc[runs["arm"] == "theseus-binary/seed", "run_id"]])
    collapse = claim_collapse(runs, replacements)
    row = collapse.table.set_index("arm").loc["theseus-binary/seed"]
    assert row["verdict"] == "not testable: all 5 runs collapsed" and row["n_collapsed"] == 5


def test_std_ratio_ci_is_unbounded_when_resamples_of_b_have_no_spread():
    """Eight identical runs out of ten (a collapsed arm): about 0.8^10 = 11% of resamples of b are
    constant, their std is exactly 0 and the upper bound unbounded, not float noise turned into a
    ratio of 1e14."""
    a = np.array([74.1, 75.3, 73.9, 76.0, 74.8, 75.5, 74.2, 75.9, 73.6, 75.0])
    b = np.array([57.8] * 8 + [66.6, 68.6])
    lo, hi = stats.std_ratio_ci(a, b, n_boot=2000, rng=np.random.default_rng(0))
    assert np.isfinite(lo) and 0 < lo < a.std(ddof=1) / b.std(ddof=1)
    assert hi == np.inf
    # replicate stds of a constant resample are exactly zero
    assert (stats._boot_std(np.full(5, 57.8), 100, np.random.default_rng(0)) == 0).all()


def test_collapse_claim_falls_back_to_rank_correlation_when_every_run_collapsed():
    """All runs below the finetune-3 mean, but accuracy rises with the replacement count: the split
    is untestable, the continuous form of the claim (Spearman > 0) is supported."""
    from harness.stats import claim_collapse, normalize_runs

    binary = [58.0, 59.0, 60.5, 61.0, 63.0, 64.0, 66.0, 68.0]
    rows = [{"task": "t", "strategy": s, "variant": v, "seed": i, "test_accuracy": acc}
            for s, v, accs in (("finetune-6", "", [80, 81, 79, 80.5, 79.5, 80, 81, 79]),
                               ("finetune-3", "", [74, 75, 73, 74.5, 73.5, 74, 75, 73]),
                               ("theseus-binary", "seed", binary))
            for i, acc in enumerate(accs)]
    runs = normalize_runs(pd.DataFrame(rows))
    ids = runs.loc[runs["arm"] == "theseus-binary/seed"].sort_values("seed")["run_id"]
    replacements = pd.DataFrame([{"run_id": r, "arm": "theseus-binary/seed", "seed": i, "successor_layers": 3,
                                  "epoch": 1, "module": m, "replaced": 50 + 3 * i + m, "steps": 120}
                                 for i, r in enumerate(ids) for m in (1, 2, 3)])
    row = claim_collapse(runs, replacements).table.set_index("arm").loc["theseus-binary/seed"]
    assert row["n_collapsed"] == 8
    assert row["spearman_rho"] == pytest.approx(1.0)
    assert row["spearman_p"] == pytest.approx(st.spearmanr(range(8), binary).pvalue)
    assert row["verdict"] == "supported" and row["decided_by"].startswith("Spearman")
    # reversed: more replacements, lower accuracy -> contradicted
    flipped = replacements.assign(replaced=lambda d: 200 - d["replaced"])
    row = claim_collapse(runs, flipped).table.set_index("arm").loc["theseus-binary/seed"]
    assert row["spearman_rho"] == pytest.approx(-1.0) and row["verdict"] == "contradicted"
