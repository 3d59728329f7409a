"""harness.claims: each claim on crafted data (against scipy where a number comes from it), the
family-wise Holm adjustment, the A/A false-positive rate of every verdict, and the per-budget use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from harness import stats
from harness.analysis import analyze
from harness.claims import CLAIMS, Claim, Comparison, evaluate_claims

BINARY_FLOOR = 57.8  # a single-class predictor's accuracy (the test set's majority share)


def group(arms: dict[str, np.ndarray], degenerate: dict[str, np.ndarray] | None = None, *,
          with_flags: bool = True) -> pd.DataFrame:
    """Normalised runs of one 6 -> 3 group: seeds 0..n-1 per arm (paired by seed); `degenerate`
    per arm (default: a run at BINARY_FLOOR is degenerate); with_flags=False drops the column."""
    rows = []
    for arm, values in arms.items():
        strategy, _, variant = arm.partition("/")
        flags = (degenerate or {}).get(arm, np.asarray(values) == BINARY_FLOOR)
        for i, (v, d) in enumerate(zip(values, flags)):
            row = dict(task="t", model="m", strategy=strategy, variant=variant, seed=i,
                       test_accuracy=float(v), run_id=f"{arm}-{i}")
            if with_flags:
                row["degenerate"] = bool(d)
            rows.append(row)
    return stats.normalize_runs(pd.DataFrame(rows))


def replacements_for(runs: pd.DataFrame, arm: str, counts) -> pd.DataFrame:
    """One module, one epoch: `counts[i]` replacements for seed i of `arm`."""
    ids = runs.loc[runs["arm"] == arm].sort_values("seed")["run_id"]
    return pd.DataFrame([dict(run_id=r, module=1, epoch=1, replaced=int(c)) for r, c in zip(ids, counts)])


def by_claim(results, claim_id: str) -> dict[str, object]:
    return {r.comparison: r for r in results if r.claim == claim_id}


RNG = np.random.default_rng(11)
SEED_EFFECT = RNG.normal(0, 0.8, 10)
FT3 = 74 + SEED_EFFECT + RNG.normal(0, 0.5, 10)
FT6 = 80 + SEED_EFFECT + RNG.normal(0, 0.5, 10)
BIMODAL = np.array([BINARY_FLOOR] * 6 + [70.5, 68.2, 71.9, 66.0])  # six single-class runs, four working


def test_claim1_paired_t_matches_scipy_and_decides():
    better = FT3 + 2.0 + RNG.normal(0, 0.4, 10)
    worse = FT3 - 1.5 + RNG.normal(0, 0.4, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": better, "theseus-binary/seed": worse})
    c1 = by_claim(evaluate_claims(runs, n_perm=500), "1")
    up, down = c1["theseus-add/seed vs finetune-3"], c1["theseus-binary/seed vs finetune-3"]
    ref = st.ttest_rel(better, FT3)
    assert up.p == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (up.ci_low, up.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert up.estimate == pytest.approx(np.mean(better - FT3)) and up.n == "10 pairs"
    np.testing.assert_allclose([up.p_adj, down.p_adj], stats.holm([up.p, down.p]))
    assert up.verdict == "supported" and down.verdict == "contradicted"
    assert up.decided_by == "paired t" and np.isfinite(up.seeds_for_power)


def test_claim2_failures_fisher_and_spread_of_a_bimodal_arm():
    """A bimodal binary arm (six single-class runs): 2a counts them with Fisher's exact test;
    2b has only four working runs left, so its spread is not estimable, never a wrong p."""
    add = FT3 + RNG.normal(1, 0.8, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": BIMODAL})
    res = evaluate_claims(runs, n_perm=500)
    fail = by_claim(res, "2a")["theseus-add/seed vs theseus-binary/seed: share degenerate"]
    assert fail.p == pytest.approx(st.fisher_exact([[0, 10], [6, 4]]).pvalue, rel=1e-12)
    assert fail.estimate == pytest.approx(-60) and fail.note == "degenerate: 0/10 vs 6/10"
    assert fail.verdict == "supported" and fail.unit == "percentage points"
    lo, hi = stats.rate_difference_interval(0, 10, 6, 10)
    assert (fail.ci_low, fail.ci_high) == pytest.approx((100 * lo, 100 * hi))
    spread = by_claim(res, "2b")["theseus-add/seed vs theseus-binary/seed: sd of non-degenerate runs"]
    assert spread.verdict.startswith("not estimable") and np.isnan(spread.p) and np.isnan(spread.p_adj)
    assert fail.p_adj == pytest.approx(fail.p)  # the untested 2b comparison does not count in the family


def test_claim2b_spread_of_working_runs_with_a_finite_interval():
    """Two degenerate runs in the binary arm are left out; the eight working ones spread far more
    than add's: supported, with an interval bounded on both sides."""
    binary = np.r_[[BINARY_FLOOR] * 2, 70 + RNG.normal(0, 4, 8)]
    add = 75 + RNG.normal(0, 0.6, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": binary})
    res = evaluate_claims(runs, n_perm=2000)
    spread = by_claim(res, "2b")["theseus-add/seed vs theseus-binary/seed: sd of non-degenerate runs"]
    assert spread.estimate == pytest.approx(np.std(add, ddof=1) / np.std(binary[2:], ddof=1))
    assert spread.n == "10 vs 8" and spread.unit == "sd ratio"
    assert 0 < spread.ci_low < spread.estimate < spread.ci_high < 1
    assert spread.verdict == "supported"


def test_all_degenerate_arm():
    """Every binary run predicts one class: failures 10/10, spread not estimable, the replacement
    split not testable (no run on the other side), and every run below fine-tuning level."""
    add = FT3 + RNG.normal(0.5, 0.5, 10)
    binary = np.full(10, BINARY_FLOOR)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": binary})
    reps = replacements_for(runs, "theseus-binary/seed", np.arange(40, 50))
    res = evaluate_claims(runs, reps, n_perm=500)
    assert by_claim(res, "2a")["theseus-add/seed vs theseus-binary/seed: share degenerate"].verdict == "supported"
    spread = by_claim(res, "2b")["theseus-add/seed vs theseus-binary/seed: sd of non-degenerate runs"]
    assert spread.verdict.startswith("not estimable")
    rep = by_claim(res, "4b")["theseus-binary/seed: replacements, degenerate vs other runs"]
    assert rep.verdict == "not testable: 10 of 10 runs degenerate"
    level = by_claim(res, "4a")["theseus-binary/seed vs finetune-3: share below fine-tuning level"]
    assert level.note.endswith("10/10 vs 0/10") and level.verdict == "supported"
    assert level.p == pytest.approx(st.fisher_exact([[10, 0], [0, 10]]).pvalue)
    assert by_claim(res, "1")["theseus-binary/seed vs finetune-3"].verdict == "contradicted"


def test_claim4b_replacements_of_degenerate_runs():
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-binary/seed": BIMODAL})
    counts = np.array([30, 35, 28, 40, 33, 31, 60, 66, 58, 71])  # degenerate runs first: fewer
    res = evaluate_claims(runs, replacements_for(runs, "theseus-binary/seed", counts), n_perm=500)
    rep = by_claim(res, "4b")["theseus-binary/seed: replacements, degenerate vs other runs"]
    deg, rest = counts[:6], counts[6:]
    assert rep.p == pytest.approx(st.mannwhitneyu(deg, rest, alternative="two-sided").pvalue)
    assert rep.estimate == pytest.approx(np.median(deg[:, None] - rest[None, :]))
    assert rep.ci_low <= rep.estimate <= rep.ci_high < 0
    assert rep.n == "6 vs 4" and rep.verdict == "supported"
    # reversed: the failed runs had more replacements -> contradicted (same test, other side)
    more = np.array([60, 66, 58, 71, 62, 64, 30, 35, 28, 40])
    res = evaluate_claims(runs, replacements_for(runs, "theseus-binary/seed", more), n_perm=500)
    assert by_claim(res, "4b")["theseus-binary/seed: replacements, degenerate vs other runs"].verdict == "contradicted"


def test_claim3_tost_equivalence_and_direction():
    same = FT3 + RNG.normal(0.05, 0.15, 10)
    better = FT3 + 2.5 + RNG.normal(0, 0.3, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": better, "two-stage/random-1x": same})
    res = evaluate_claims(runs, n_perm=500, margin=1.0)
    eq = by_claim(res, "3b")["two-stage/random-1x vs finetune-3, within ±1"]
    d = same - FT3
    se = np.std(d, ddof=1) / np.sqrt(10)
    expected = max(st.t.sf((d.mean() + 1) / se, 9), st.t.cdf((d.mean() - 1) / se, 9))
    assert eq.p == pytest.approx(expected, rel=1e-10) and eq.verdict == "supported"
    assert eq.ci_level == pytest.approx(0.90) and -1 < eq.ci_low < eq.ci_high < 1
    worse = by_claim(res, "3a")["two-stage/random-1x vs theseus-add/seed"]
    assert worse.verdict == "supported" and worse.estimate < 0
    np.testing.assert_allclose([worse.p_adj, eq.p_adj], stats.holm([worse.p, eq.p]))  # one family


def test_untestable_cases_say_why():
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": FT3 + 1,
                  "theseus-binary/seed": BIMODAL}, with_flags=False)
    res = evaluate_claims(runs, n_perm=500)
    assert by_claim(res, "2a")["theseus-add/seed vs theseus-binary/seed: share degenerate"].verdict == \
        "not tested (degenerate runs unknown)"
    spread = by_claim(res, "2b")["theseus-add/seed vs theseus-binary/seed: sd of non-degenerate runs"]
    assert "all runs used" in spread.note and np.isfinite(spread.p)
    assert by_claim(res, "4b")["theseus-binary/seed: replacements, degenerate vs other runs"].verdict == \
        "not tested (no replacement counts)"
    assert [r.verdict for r in res if r.claim in ("3a", "3b")] == ["not tested (no such arms)"] * 2
    tiny = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": [75.0, 76.0]})
    assert by_claim(evaluate_claims(tiny), "1")["theseus-add/seed vs finetune-3"].verdict == stats.NOT_TESTED


def test_a_claim_is_one_function_and_one_line():
    def kd_beats_finetune(c):
        """kd against finetune-L_s, paired t."""
        return [c.mean_difference(a, c.baseline, direction=+1) for a in c.arms("kd")]

    runs = group({"finetune-6": FT6, "finetune-3": FT3, "kd": FT3 + 3 + RNG.normal(0, 0.3, 10)})
    res = evaluate_claims(runs, claims=[*CLAIMS, Claim("5", "KD beats fine-tuning", "5", kd_beats_finetune)])
    (row,) = [r for r in res if r.claim == "5"]
    assert row.verdict == "supported" and row.p_adj == row.p  # its own family of one
    assert isinstance(Comparison("a", "b", "a vs b", "t"), Comparison)


def test_the_same_comparison_has_one_adjusted_p_everywhere():
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": FT3 + RNG.normal(0.8, 1, 10),
                  "two-stage/random-1x": FT3 + RNG.normal(0.6, 1, 10), "kd": FT3})
    a = analyze(runs, n_boot=500)
    (g,) = a.groups
    pw = g.pairwise.set_index(["a", "b"])
    for r in g.claims:
        if r.decided_by == "paired t":
            key = (r.a, r.b) if (r.a, r.b) in pw.index else (r.b, r.a)
            assert pw.loc[key, "claim_p_adj"] == r.p_adj and r.claim in pw.loc[key, "claim"]
            assert pw.loc[key, "primary_p"] == pytest.approx(r.p)
    assert not any(c.endswith("_holm") for c in g.pairwise.columns)  # no second adjusted p


def test_claims_per_budget_side_by_side():
    """Two budgets: one group each (the predecessor in both), the same claims evaluated on each,
    and the verdict of claim 1 flips from contradicted to supported."""
    rows = []
    for budget, shift in ((100, -3.0), (400, +3.0)):
        arms = {"finetune-3": FT3, "theseus-add/seed": FT3 + shift + RNG.normal(0, 0.3, 10)}
        for arm, values in arms.items():
            strategy, _, variant = arm.partition("/")
            rows += [dict(task="t", strategy=strategy, variant=variant, seed=i, budget=budget,
                          test_accuracy=v) for i, v in enumerate(values)]
    # a third budget where only the baseline ran (a stopped budget sweep): its claims are not tested
    rows += [dict(task="t", strategy="finetune-3", variant="", seed=i, budget=1600, test_accuracy=v)
             for i, v in enumerate(FT3)]
    rows += [dict(task="t", strategy="finetune-6", variant="", seed=i, budget=None, test_accuracy=v)
             for i, v in enumerate(FT6)]
    a = analyze(pd.DataFrame(rows), n_boot=200)
    assert [g.budget for g in a.groups] == [100, 400, 1600]
    assert all((g.runs["arm"] == "finetune-6").sum() == 10 for g in a.groups)
    assert a.groups[1].label.endswith("budget 400 steps")
    wide = a.verdicts_by_budget().set_index(["claim", "comparison"])
    row = wide.loc[("1", "theseus-add/seed vs finetune-3")]
    assert (row["budget 100"], row["budget 400"], row["flips"]) == ("contradicted", "supported", True)
    assert pd.isna(row["budget 1600"])
    # no placeholder row ("—": no such arms at 1600) beside claim 1's real comparison
    assert "—" not in wide.loc["1"].index
    assert a.groups[2].claims_table()["comparison"].eq("—").all()
    # evaluate_claims is a pure function of one budget's rows: the same numbers from the rows alone
    alone = evaluate_claims(a.groups[0].runs)
    assert [(r.comparison, r.p_adj) for r in alone] == [(r.comparison, r.p_adj) for r in a.groups[0].claims]


# ---------------------------------------------------------------- A/A: false-positive rates

AA_ARMS = ("finetune-6", "finetune-3", "theseus-add/seed", "theseus-binary/seed", "two-stage/random-1x")


def _aa_template(n: int) -> pd.DataFrame:
    rows = [dict(task="t", model="m", strategy=a.partition("/")[0], variant=a.partition("/")[2], seed=i,
                 test_accuracy=70.0, degenerate=False, run_id=f"{a}-{i}") for a in AA_ARMS for i in range(n)]
    return stats.normalize_runs(pd.DataFrame(rows))


def _aa_draw(template: pd.DataFrame, rng, n: int, *, degenerate_rate: float, shift: dict | None = None):
    """One null data set: every student arm the same distribution (a shared seed effect, so arms
    pair by seed; each run degenerate with the same probability, its accuracy then the floor);
    replacement counts of the binary arm independent of everything."""
    seed_effect = rng.normal(0, 0.8, n)
    acc, deg = [], []
    for arm in AA_ARMS:
        x = (80.0 if arm == "finetune-6" else 74.0) + seed_effect + rng.normal(0, 1.0, n) + (shift or {}).get(arm, 0)
        d = (rng.random(n) < degenerate_rate) & (arm != "finetune-6")
        acc.append(np.where(d, BINARY_FLOOR, x))
        deg.append(d)
    runs = template.copy()
    runs["test_accuracy"] = np.concatenate(acc)
    runs["degenerate"] = pd.array(np.concatenate(deg), dtype="boolean")
    reps = pd.DataFrame({"run_id": [f"theseus-binary/seed-{i}" for i in range(n)], "module": 1, "epoch": 1,
                         "replaced": rng.integers(40, 80, n)})
    return runs, reps


def test_aa_false_positive_rate_of_every_verdict():
    """Null data through every claim: the share of simulations in which a claim declares anything
    (supported or contradicted for any of its comparisons) stays at most 5% plus 2.5 Monte Carlo
    standard errors. Equivalence (3b) is checked where it is false: a true difference equal to
    the margin."""
    n, sims, rng = 10, 160, np.random.default_rng(2024)
    template = _aa_template(n)
    bound = 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / sims)
    declared = {c.id: 0 for c in CLAIMS}
    tested = dict.fromkeys(declared, 0)
    for _ in range(sims):
        runs, reps = _aa_draw(template, rng, n, degenerate_rate=0.25)
        results = evaluate_claims(runs, reps, n_perm=200, with_power=False)
        for cid in declared:
            mine = [r for r in results if r.claim == cid]
            tested[cid] += any(np.isfinite(r.p_adj) for r in mine)
            declared[cid] += any(r.verdict in ("supported", "contradicted") for r in mine)
    rates = {cid: k / sims for cid, k in declared.items() if cid != "3b"}
    assert min(tested.values()) > sims / 4, tested  # every claim was actually tested, most of the time
    assert max(rates.values()) <= bound, rates
    # TOST at the margin: two-stage truly 1 point above finetune-3
    eq = [c for c in CLAIMS if c.id == "3b"]
    hits = 0
    for _ in range(sims):
        runs, _ = _aa_draw(template, rng, n, degenerate_rate=0.0, shift={"two-stage/random-1x": 1.0})
        hits += evaluate_claims(runs, claims=eq, with_power=False)[0].verdict == "supported"
    assert hits / sims <= bound, hits / sims
