"""harness.analysis.claims: each claim on crafted data (against scipy where a number comes from it), the
primaries' fixed Holm family, the verdict vocabulary, the A/A error rate of the whole procedure at
the committed designs, and the per-budget use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from harness.analysis import inference, stats
from harness.analysis.claims import CLAIMS, PRIMARY_CLAIMS, Claim, evaluate_claims
from harness.analysis.groups import analyze
from harness.store import schema

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
    return schema.normalize_runs(pd.DataFrame(rows))


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


def primaries(results) -> dict[str, object]:
    return {r.claim: r for r in results if r.role == "primary"}


def test_claim1_primary_paired_t_matches_scipy_and_the_family_is_fixed_by_declaration():
    better = FT3 + 2.0 + RNG.normal(0, 0.4, 10)
    worse = FT3 - 1.5 + RNG.normal(0, 0.4, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": better, "theseus-binary/seed": worse})
    res = evaluate_claims(runs, n_perm=500)
    up = primaries(res)["1"]
    ref = st.ttest_rel(better, FT3)
    assert up.p == pytest.approx(ref.pvalue, rel=1e-10) and up.role == "primary"
    ci = ref.confidence_interval(0.95)
    assert (up.ci_low, up.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert up.n == "10 pairs" and up.verdict == "supported" and up.min_p_adj == 0.0
    # the family: every declared primary, run or not (3a and 3b: no two-stage arm -> p = 1)
    prim = primaries(res)
    assert prim["3a"].verdict == "not run" and prim["3b"].verdict == "not run"
    slots = [prim[c.id].p if np.isfinite(prim[c.id].p) else 1.0 for c in PRIMARY_CLAIMS]
    assert up.p_adj == pytest.approx(stats.holm(slots)[0])
    down = by_claim(res, "1")["theseus-binary/seed vs finetune-3"]
    assert down.role == "secondary" and down.verdict == "contradicted" and down.p_adj == pytest.approx(down.p)
    # more arms change no primary's adjusted p; G groups multiply it by G
    more = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": better, "theseus-binary/seed": worse,
                  "theseus-add/convex": FT3 + 0.3, "kd": FT3 - 0.2})
    assert primaries(evaluate_claims(more, n_perm=500))["1"].p_adj == up.p_adj
    assert primaries(evaluate_claims(runs, n_perm=500, groups=3))["1"].p_adj == pytest.approx(min(1, 3 * up.p_adj))


def test_claim2a_failures_fisher_with_the_smallest_attainable_p():
    add = FT3 + RNG.normal(1, 0.8, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": BIMODAL})
    fail = primaries(evaluate_claims(runs, n_perm=500))["2a"]
    assert fail.p == pytest.approx(st.fisher_exact([[0, 10], [6, 4]]).pvalue, rel=1e-12)
    assert fail.estimate == pytest.approx(-60) and fail.note == "failed: 0/10 vs 6/10"
    assert fail.verdict == "supported" and fail.unit == "percentage points"
    assert fail.min_p_adj == pytest.approx(len(PRIMARY_CLAIMS) * inference.fisher_min_p(10, 10))
    lo, hi = stats.rate_difference_interval(0, 10, 6, 10)
    assert (fail.ci_low, fail.ci_high) == pytest.approx((100 * lo, 100 * hi))
    # at 3 vs 3 no outcome can decide it: the smallest attainable adjusted p says so
    small = group({"finetune-6": FT6[:3], "finetune-3": FT3[:3], "theseus-add/seed": add[:3],
                   "theseus-binary/seed": np.full(3, BINARY_FLOOR)})
    assert primaries(evaluate_claims(small, n_perm=500))["2a"].min_p_adj >= 0.05


def test_no_failures_anywhere_is_no_information():
    """0 of n failed runs on both sides says nothing about failure rates: no failure comparison
    reads supported, contradicted or "not supported"."""
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": FT3 + 1, "theseus-add/convex": FT3 + 2,
                  "theseus-binary/seed": FT3 + 0.5, "theseus-binary/official": FT3 - 0.5})
    res = evaluate_claims(runs, n_perm=500)
    rates = [r for r in res if r.claim == "2a"]
    assert len(rates) == 4 and all(r.verdict == "no information" for r in rates), [r.verdict for r in rates]
    assert not any(r.verdict == "not supported" for r in res)


def test_claim2b_bonett_spread_is_exploratory():
    binary = np.r_[[BINARY_FLOOR] * 2, 70 + RNG.normal(0, 4, 8)]
    add = 75 + RNG.normal(0, 0.6, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": binary})
    spread = by_claim(evaluate_claims(runs, n_perm=500), "2b")["theseus-add/seed vs theseus-binary/seed: sd of working runs"]
    ref = inference.bonett_sd_ratio(add, binary[2:])
    assert spread.estimate == pytest.approx(np.std(add, ddof=1) / np.std(binary[2:], ddof=1))
    assert (spread.ci_low, spread.ci_high, spread.p) == pytest.approx((ref.ci_low, ref.ci_high, ref.p))
    assert spread.role == "secondary" and spread.n == "10 vs 8" and spread.verdict == "supported"
    assert not [r for r in CLAIMS if r.id == "2b"][0].primary


def test_all_failed_arm():
    add = FT3 + RNG.normal(0.5, 0.5, 10)
    binary = np.full(10, BINARY_FLOOR)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": add, "theseus-binary/seed": binary})
    reps = replacements_for(runs, "theseus-binary/seed", np.arange(40, 50))
    res = evaluate_claims(runs, reps, n_perm=500)
    prim = primaries(res)
    assert prim["2a"].verdict == "supported"
    assert by_claim(res, "2b")["theseus-add/seed vs theseus-binary/seed: sd of working runs"].verdict.startswith(
        "not testable")
    assert by_claim(res, "4b")["theseus-binary/seed: replacements, failed vs other runs"].verdict == \
        "not testable: 10 of 10 runs failed"
    level = prim["4a"]
    k = int(level.note.rsplit(" vs ", 1)[1].split("/")[0])  # baseline runs below the others' level
    assert level.note.split(": ")[-1] == f"10/10 vs {k}/10" and k <= 1 and level.verdict == "supported"
    assert level.p == pytest.approx(st.fisher_exact([[10, 0], [k, 10 - k]]).pvalue)


def test_claim4a_level_does_not_judge_the_baseline_by_itself():
    """A baseline run is judged against the level of the other baseline runs: with one low
    baseline run, it counts (it never could against a level made with itself)."""
    base = np.r_[FT3[:9], stats.fine_tuning_level(FT3[:9]) - 0.3]
    runs = group({"finetune-6": FT6, "finetune-3": base, "theseus-binary/seed": base + 0.1})
    level = primaries(evaluate_claims(runs, n_perm=500))["4a"]
    assert level.note.endswith("vs 1/10"), level.note
    assert base[-1] < stats.fine_tuning_level(base[:-1]) and base[-1] > stats.fine_tuning_level(base)


def test_claim4b_replacements_of_failed_runs():
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-binary/seed": BIMODAL})
    counts = np.array([30, 35, 28, 40, 33, 31, 60, 66, 58, 71])  # failed runs first: fewer
    res = evaluate_claims(runs, replacements_for(runs, "theseus-binary/seed", counts), n_perm=500)
    rep = by_claim(res, "4b")["theseus-binary/seed: replacements, failed vs other runs"]
    deg, rest = counts[:6], counts[6:]
    assert rep.p == pytest.approx(st.mannwhitneyu(deg, rest, alternative="two-sided").pvalue)
    assert rep.ci_low <= rep.estimate <= rep.ci_high < 0
    assert rep.n == "6 vs 4" and rep.verdict == "supported" and rep.role == "secondary"


def test_claim3b_reads_contradicted_when_two_stage_is_clearly_better_and_supported_when_no_better():
    clearly = FT3 + 1.1 + RNG.normal(0, 0.3, 10)
    same = FT3 + RNG.normal(0.0, 0.15, 10)
    theseus = FT3 + 2.5 + RNG.normal(0, 0.3, 10)
    for two_stage, want in ((clearly, "contradicted"), (same, "supported")):
        runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": theseus,
                      "two-stage/predecessor-1x": two_stage})
        prim = primaries(evaluate_claims(runs, n_perm=500, margin=1.0))
        assert prim["3b"].verdict == want, prim["3b"]
        assert prim["3a"].verdict == "supported" and prim["3a"].estimate < 0
    d = same - FT3
    se = np.std(d, ddof=1) / np.sqrt(10)
    # decided by the non-superiority test (one-sided, H0: difference >= +1): its p is the one shown
    assert prim["3b"].p == pytest.approx(st.t.cdf((d.mean() - 1) / se, 9), rel=1e-10)
    assert prim["3b"].decided_by.endswith("decided by non-superiority")
    assert prim["3b"].ci_level == pytest.approx(0.90)


def test_equivalent_within_the_margin_is_a_verdict():
    same = FT3 + RNG.normal(0.0, 0.1, 10)
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": same})
    assert primaries(evaluate_claims(runs, n_perm=500))["1"].verdict == "equivalent within ±1"
    noisy = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": FT3 + RNG.normal(0.3, 2.0, 10)})
    row = primaries(evaluate_claims(noisy, n_perm=500))["1"]
    assert row.verdict == "undecided" and row.seeds_needed > 10


def test_a_group_without_a_baseline_lists_its_primaries_as_not_run():
    runs = group({"finetune-6": FT6, "theseus-add/seed": FT3 + 1, "theseus-binary/seed": FT3})
    prim = primaries(evaluate_claims(runs, n_perm=500))
    assert prim["1"].verdict == "not run" and prim["4a"].verdict == "not run"
    assert prim["2a"].verdict == "no information"  # the one primary that needs no baseline


def test_untestable_cases_say_why():
    runs = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": FT3 + 1,
                  "theseus-binary/seed": BIMODAL}, with_flags=False)
    res = evaluate_claims(runs, n_perm=500)
    assert primaries(res)["2a"].verdict == "not testable (failed runs unknown)"
    assert by_claim(res, "4b")["theseus-binary/seed: replacements, failed vs other runs"].verdict == \
        "not testable (no replacement counts)"
    tiny = group({"finetune-6": FT6, "finetune-3": FT3, "theseus-add/seed": [75.0, 76.0]})
    assert primaries(evaluate_claims(tiny))["1"].verdict == stats.NOT_TESTED


def test_a_claim_is_one_declaration():
    def kd_pairs(c):
        """kd against finetune-L_s, paired t."""
        return [(a, c.baseline) for a in c.arms("kd")]

    runs = group({"finetune-6": FT6, "finetune-3": FT3, "kd": FT3 + 3 + RNG.normal(0, 0.3, 10)})
    extra = Claim("5", "KD beats fine-tuning", kd_pairs, lambda c, a, b: c.mean_difference(a, b, direction=+1))
    res = evaluate_claims(runs, claims=[*CLAIMS, extra])
    (row,) = [r for r in res if r.claim == "5"]
    assert row.verdict == "supported" and row.p_adj == row.p and row.role == "secondary"  # a family of one


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


def test_claims_per_budget_side_by_side():
    """Two budgets: one group each (the predecessor in both), the same claims evaluated on each
    with the primaries at alpha / 3 (three groups), and claim 1's verdict flips."""
    rows = []
    for budget, shift in ((100, -3.0), (400, +3.0)):
        arms = {"finetune-3": FT3, "theseus-add/seed": FT3 + shift + RNG.normal(0, 0.3, 10)}
        for arm, values in arms.items():
            strategy, _, variant = arm.partition("/")
            rows += [dict(task="t", strategy=strategy, variant=variant, seed=i, budget=budget,
                          test_accuracy=v) for i, v in enumerate(values)]
    rows += [dict(task="t", strategy="finetune-3", variant="", seed=i, budget=1600, test_accuracy=v)
             for i, v in enumerate(FT3)]
    rows += [dict(task="t", strategy="finetune-6", variant="", seed=i, budget=None, test_accuracy=v)
             for i, v in enumerate(FT6)]
    a = analyze(pd.DataFrame(rows), n_boot=200)
    assert [g.budget for g in a.groups] == [100, 400, 1600]
    assert all((g.runs["arm"] == "finetune-6").sum() == 10 for g in a.groups)
    wide = a.verdicts_by_budget().set_index(["claim", "comparison"])
    row = wide.loc[("1", "theseus-add/seed vs finetune-3")]
    assert (row["budget 100"], row["budget 400"], row["flips"]) == ("contradicted", "supported", True)
    assert pd.isna(row["budget 1600"])  # the declared primary there reads "not run" under its declared name
    alone = evaluate_claims(a.groups[0].runs, groups=3)
    assert [(r.comparison, r.p_adj) for r in alone] == [(r.comparison, r.p_adj) for r in a.groups[0].claims]
    from harness.analysis.budget import interactions
    inter = interactions(a.runs, a.claims_table())
    (hit,) = inter[inter["claim"] == "1"].itertuples()
    assert hit.budgets == "100 -> 400" and hit.estimate < -5 and hit.p_adj < 0.05


# ---------------------------------------------------------------- A/A of the whole procedure

DEFAULT_ARMS = ["finetune-6", "finetune-3", "theseus-add/seed", "theseus-add/convex", "theseus-binary/seed",
                "theseus-binary/official", "two-stage/random-1x", "two-stage/random-5x",
                "two-stage/predecessor-1x", "two-stage/predecessor-5x", "kd"]
BUDGET_ARMS = [a for a in DEFAULT_ARMS if a not in ("two-stage/random-1x", "two-stage/random-5x",
                                                   "two-stage/predecessor-5x")]


@pytest.mark.parametrize("design,groups,rates", [
    # the default: 5 seeds, its 11 arms, one group, no failed run observed
    ("default", [(DEFAULT_ARMS, "finetune-6")], [0.0]),
    # the budget study: 5 seeds, 2 tasks x 3 budgets, failures at the observed pooled rate of each
    # group's student arms (rt-polarity 189 steps: 11 of 35; trec-6 189: 1 of 35; none elsewhere)
    ("budget", [(BUDGET_ARMS, "finetune-6")] * 6, [11 / 35, 0.0, 0.0, 1 / 35, 0.0, 0.0]),
])
def test_aa_of_the_whole_procedure_at_the_committed_designs(design, groups, rates):
    """The share of simulated studies in which any primary verdict is false when no arm differs
    (supported or contradicted; for 3b, "two-stage is no better", only contradicted: with no
    difference "no better" is true, and its error rate is checked where it is false, below): at
    most 5% (+ 2.5 Monte Carlo standard errors), over 1,000 simulated studies (harness.analysis.design)."""
    from harness.analysis.design import simulate

    sims = 1000
    rate = simulate(groups, 5, sims, failure_rate=rates, seed=7)
    assert rate <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / sims), rate


def test_no_better_is_rarely_supported_where_it_is_false():
    """Claim 3b at a true difference equal to the margin (two-stage 1 point better): "supported"
    (significantly below +margin) is then a false verdict; at most 5% (+ 2.5 s.e.), per group
    and without the family's adjustment, the worst case."""
    from harness.analysis.design import group_template, simulate_group

    rng, sims, hits = np.random.default_rng(3), 600, 0
    claim = [c for c in CLAIMS if c.id == "3b"]
    template = group_template(["finetune-6", "finetune-3", "two-stage/predecessor-1x"], 5)
    for _ in range(sims):
        g = simulate_group(rng, template, "finetune-6", shift={"two-stage/predecessor-1x": 1.0})
        hits += evaluate_claims(g, claims=claim, with_power=False, primaries_only=True)[0].verdict == "supported"
    assert hits / sims <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / sims), hits / sims
