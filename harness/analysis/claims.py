"""The seed's claims (README questions 1-4), each declared once with its primary comparison, and
the one function that evaluates them on one group of runs (docs/method.md, "Claims and verdicts").

A claim declares which pairs of arms it compares (`pairs`), the one test each pair gets (`test`,
a builder of `Context`), and its **primary** comparison with the reason for the choice (the seed's
own comparison where it made one), fixed before any run. `evaluate_claims` runs every claim on one
group (one task, model, successor size and budget):

- **Primaries** form one Holm family fixed by the declaration: every declared primary counts in
  it, run or not ("not run", "not testable" and "no information" count with p = 1), so the same
  runs of the primary arms give the same adjusted p in every report. A study with G groups (tasks x
  successor sizes x budgets) tests each group's family at alpha / G (Bonferroni over the groups,
  Holm within): p_adj = min(1, G x Holm p), and the share of studies with any false primary verdict
  stays at or below alpha (tests/analysis/test_claims.py simulates it at the committed designs).
  A sweep may declare each primary's budget instead (`primaries`): then one family per task, model
  and successor size spans its budgets, each primary read on the runs at its budget, and G counts
  those families (`evaluate_family`).
- Every other comparison is **secondary** (exploratory): estimate, interval, raw p, Holm within its
  claim's secondary family in this group.

Verdicts (alpha 0.05 on the adjusted p; docs/method.md gives the reasons):
- *supported* / *contradicted*: the test's adjusted p < alpha, the estimate on / against the claimed
  side. A "no better" claim (3b) gets a superiority test (significantly better: contradicted) and a
  non-superiority test (the difference significantly below +margin: supported).
- *equivalent within +-margin*: a mean difference whose TOST p, Bonferroni-adjusted over the whole
  family (x family size x G), is below alpha: no practical difference, a decision.
- *undecided*: none of these; the row keeps the interval and `seeds_needed`, the seeds (pairs) at
  which the test would reach 80% power at the observed effect and the adjusted alpha.
- *no information*: nothing to compare (no failure, or only failures, on both sides).
- *not testable (...)*: with the reason (n < 3, no baseline, unknown flags); *not run*: a declared
  primary whose arm is not in the group.
Beside each verdict: `min_p_adj`, the smallest adjusted p the test can reach at this n (an exact
test's smallest p times the family multiplier; 0 for a t test), so a verdict that cannot be reached
is visible before anyone reads the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as st

from harness import arms
from harness.analysis import crossed, inference, stats, tables
from harness.analysis.stats import ALPHA, MIN_N, NOT_TESTED
from harness.arms import THESEUS

QUESTIONS = {
    "1": "Is Theseus better than direct fine-tuning of the first L_s layers? By how much?",
    "2": "Is proportional add more stable than binary random choice?",
    "3": "Is two-stage extraction (fine-tune, keep the first L_s layers) worse than Theseus, and no "
         "better than direct fine-tuning?",
    "4": "How often does a Theseus run fall to fine-tuning level, and do replacement counts explain "
         "its failures?",
}
BASELINE = "finetune-L_s"  # in a declaration: the group's direct fine-tuning baseline
TASK = "task"  # the unit of inference: seeds and test examples random (docs/method.md, "The unit of inference")
TEST_SET = "test set"  # seeds random, the one test sample fixed: intervals conditional on it
TASK_TEST = "crossed t (seeds x test examples)"
NOT_RUN = "not run"
NO_INFORMATION = "no information"


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim before multiplicity adjustment.

    a, b: arms (b "" for a comparison within one arm); label: how it reads in the report; test:
    the test that decides it; kind: "difference" (two-sided t, equivalence by TOST), "no-better"
    (superiority + non-superiority), "rates" (Fisher), "spread" (Bonett), "shift" (Mann-Whitney);
    estimate with its interval (ci_level) in `unit`; p: raw two-sided p of the deciding test (for
    "no-better" the superiority test's one-sided p); p_equiv: TOST p ("difference") or the
    non-superiority p ("no-better"), NaN otherwise; direction: +1 / -1, the claimed sign of `signed`;
    margin; sd: sd of the paired differences (Welch: of a difference of two runs), for seeds_needed;
    rates: (k_a, n_a, k_b, n_b) of a rates comparison; min_p: the smallest raw p the test can give
    at this n; n_a, n_b, n_paired: runs behind it; untested: the verdict when it could not be
    tested; note: counts or caveats shown beside it.
    """
    a: str
    b: str
    label: str
    test: str
    kind: str = "difference"
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    ci_level: float = 0.95
    unit: str = "points"
    p: float = np.nan
    p_equiv: float = np.nan
    direction: int = 0
    margin: float = np.nan
    signed: float = np.nan
    sd: float = np.nan
    rates: tuple = ()
    min_p: float = 0.0
    n_a: int = 0
    n_b: int = 0
    n_paired: int = 0
    untested: str = ""
    note: str = ""
    se: float = np.nan  # a mean difference's standard error and degrees of freedom (sequential
    df: float = np.nan  # looks rebuild their repeated intervals from them)
    inference_unit: str = TEST_SET  # TASK: seeds and test examples random; TEST_SET: seeds only
    seed_only: "Comparison | None" = None  # the same test, seeds only (this test set): the sensitivity row
    crossed: crossed.CrossedDifference | None = None  # the task-level estimate's components


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table: a comparison of a claim with its adjusted p and verdict.

    claim: id ("1", "2a", ...); title: the claim as a sentence; role: "primary" or "secondary";
    family: "primary" or "<claim> secondary"; comparison: "a vs b"; estimate / ci_low / ci_high
    (ci_level, unit): the difference and its interval; p: raw, p_adj: adjusted (module docstring),
    both of the test that decided the verdict (an equivalence or "no better" verdict: TOST or
    non-superiority, its p times the family's size x G);
    verdict; min_p_adj: the smallest adjusted p attainable at this n; seeds_needed: seeds (pairs)
    for 80% power at the observed effect and the adjusted alpha (NaN: none, or over 10,000); n:
    runs behind it as text; decided_by: the test; reason: why this primary (primaries only).
    inference_unit: "task" (seeds and test examples random, the crossed estimate: docs/method.md,
    "The unit of inference") or "test set" (seeds only, conditional on the one test sample: no
    per-example predictions for both arms at every paired seed, or not a mean difference); se: the
    standard error of the estimate (mean differences) and its parts se_seed, se_test_sample,
    se_residual (points; the task unit only has the last two); the seed-only sensitivity of the
    same comparison (this test set): p_seed_only, p_adj_seed_only (its own Holm family),
    verdict_seed_only, ci_low_seed_only / ci_high_seed_only (same level), se_seed_only (for a "test
    set" row they repeat the row's own figures); test_size_needed: test examples per seed at the
    current seeds for 80% power (task unit, undecided only); needs: what a decision needs, in words.
    """
    claim: str
    title: str
    role: str
    family: str
    comparison: str
    a: str
    b: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    unit: str
    p: float
    p_adj: float
    verdict: str
    min_p_adj: float
    seeds_needed: float
    n: str
    n_a: int
    n_b: int
    n_paired: int
    decided_by: str
    direction: int
    margin: float
    note: str
    reason: str = ""
    inference_unit: str = TEST_SET
    se: float = np.nan
    se_seed: float = np.nan
    se_test_sample: float = np.nan
    se_residual: float = np.nan
    p_seed_only: float = np.nan
    p_adj_seed_only: float = np.nan
    verdict_seed_only: str = ""
    ci_low_seed_only: float = np.nan
    ci_high_seed_only: float = np.nan
    se_seed_only: float = np.nan
    test_size_needed: float = np.nan
    needs: str = ""


def _n_text(n_a: int, n_b: int, n_paired: int) -> str:
    """The runs behind a comparison: "10 pairs" (paired), "10 vs 3", or "—" (none)."""
    return f"{n_paired} pairs" if n_paired else ("—" if not n_a and not n_b else f"{n_a} vs {n_b}")


def _num(n) -> float:
    return np.nan if n is None else float(n)


@dataclass
class Context:
    """One group's runs (normalised, the predecessor's rows included) and the settings the claims
    use; the builders below run one test each and return a Comparison."""
    runs: pd.DataFrame
    replacements: pd.DataFrame = field(default_factory=pd.DataFrame)
    margin: float = 1.0
    alpha: float = ALPHA
    seed: int = 0
    n_perm: int = 10_000
    with_power: bool = True  # False: skip seeds_needed (NaN), e.g. in simulations
    predecessor: str | None = None
    baseline: str | None = None
    level: float = np.nan  # the fine-tuning level (stats.fine_tuning_level of the baseline)
    examples: tables.Examples | None = None  # per-example correctness: task-level mean differences

    @classmethod
    def of(cls, runs: pd.DataFrame, replacements: pd.DataFrame | None = None,
           examples: "pd.DataFrame | tables.Examples | None" = None, **settings) -> "Context":
        pred, base = tables.roles(runs)
        level = stats.fine_tuning_level(tables.arm_runs(runs, base).values) if base else np.nan
        return cls(runs, tables.replacement_totals(replacements), predecessor=pred, baseline=base,
                   level=level, examples=tables.Examples.of(examples), **settings)

    def __post_init__(self):
        self._families = {a: arms.family(a) for a in arms.order(self.runs["arm"])}
        self._arm_runs: dict[str, tables.ArmRuns] = {}
        self._crossed: dict[tuple[str, str], crossed.CrossedDifference | None] = {}

    def arms(self, *families: str) -> list[str]:
        """The group's arms of these strategy families, in arms.order."""
        return [a for a, f in self._families.items() if f in families]

    def has(self, arm: str) -> bool:
        return arm in self._families

    def resolve(self, arm: str) -> str | None:
        """A declared arm name in this group: BASELINE -> finetune-L_s; "strategy/variant" -> the
        bare "strategy" when the group has that arm and not the variant (a user's table that names
        its one proportional add "theseus-add"); None when it cannot be."""
        if arm == BASELINE:
            return self.baseline
        bare = arm.split("/")[0]
        return bare if not self.has(arm) and self.has(bare) else arm

    def arm(self, name: str) -> tables.ArmRuns:
        """The successful runs of one arm as arrays (read once per arm)."""
        if name not in self._arm_runs:
            self._arm_runs[name] = tables.arm_runs(self.runs, name)
        return self._arm_runs[name]

    # ------------------------------------------------------------ builders

    def _too_few(self, a: str, b: str, test: str, kind: str, label: str = "", **kw) -> Comparison | None:
        na, nb = self.arm(a).n, self.arm(b).n
        if min(na, nb) < MIN_N:
            return Comparison(a, b, label or f"{a} vs {b}", test, kind, n_a=na, n_b=nb, untested=NOT_TESTED, **kw)
        return None

    def _difference(self, a: str, b: str):
        d = tables.primary_difference_of(self.arm(a), self.arm(b))
        sd = d.sd if d.paired else float(np.hypot(stats.sample_sd(self.arm(a).values),
                                                  stats.sample_sd(self.arm(b).values)))
        return d, sd

    def task_difference(self, a: str, b: str) -> crossed.CrossedDifference | None:
        """The task-level estimate of a minus b (crossed.crossed_difference over the seeds both ran
        and the test examples both were scored on); None without per-example results for both arms
        at every paired seed (the comparison then keeps the seed-only test)."""
        if (a, b) not in self._crossed:
            cells = tables.example_differences(self.arm(a), self.arm(b), self.examples)
            cd = (None if cells is None else crossed.crossed_difference(*cells) if isinstance(cells, tuple)
                  else crossed.crossed_matrix(cells))
            self._crossed[(a, b)] = cd if cd is not None and np.isfinite(cd.se) else None
        return self._crossed[(a, b)]

    def _as_task(self, seed_only: Comparison, cd: crossed.CrossedDifference, test: str,
                 d: stats.MeanDifference) -> Comparison:
        """The task-level twin of a seed-only mean comparison: the same hypotheses, p and interval
        from the crossed estimate (its se and Satterthwaite df), the seed-only test kept beside it."""
        level = seed_only.ci_level
        lo, hi = stats.t_interval(d, level)
        if seed_only.kind == "no-better":
            p, p_equiv = stats.one_sided_t_p(d, 0.0, greater=True), stats.one_sided_t_p(d, self.margin, greater=False)
        else:
            p, p_equiv = stats.t_test_p(d), stats.tost_p(d, self.margin)
        note = (f"{cd.n_examples:,} test examples"
                + (f" ({cd.examples_per_seed:,.0f} per seed, split per seed)" if cd.split == "per-seed" else ""))
        return replace(seed_only, test=test, estimate=d.estimate, ci_low=lo, ci_high=hi, p=p, p_equiv=p_equiv,
                       signed=d.estimate, se=d.se, df=d.df, inference_unit=TASK, seed_only=seed_only, crossed=cd,
                       note="; ".join(x for x in (seed_only.note, note) if x))

    def _task_or(self, seed_only: Comparison, test: str) -> Comparison:
        if seed_only.untested or self.examples is None:
            return seed_only
        cd = self.task_difference(seed_only.a, seed_only.b)
        if cd is None:
            return seed_only
        d = stats.MeanDifference(cd.estimate, cd.se, cd.df, cd.n_seeds, cd.n_seeds, True)
        return self._as_task(seed_only, cd, test, d)

    def mean_difference(self, a: str, b: str, *, direction: int) -> Comparison:
        """Mean test accuracy of a minus b (points), at the task level when every paired seed of
        both arms has per-example results: the crossed estimate with its t interval and p
        (crossed.crossed_difference); else seed-only: paired t over the seeds both ran (Welch t when
        fewer than 3 pair). 95% t interval; TOST within +-margin for the equivalence verdict."""
        small = self._too_few(a, b, "paired t", "difference", direction=direction, margin=self.margin)
        if small:
            return small
        d, sd = self._difference(a, b)
        lo, hi = stats.t_interval(d)
        seed_only = Comparison(a, b, f"{a} vs {b}", d.test, "difference", d.estimate, lo, hi, 0.95, "points",
                               stats.t_test_p(d), stats.tost_p(d, self.margin), direction, self.margin,
                               d.estimate, sd, n_a=d.n_a, n_b=d.n_b, n_paired=d.n_a if d.paired else 0,
                               se=d.se, df=d.df)
        return self._task_or(seed_only, TASK_TEST)

    def no_better(self, a: str, b: str) -> Comparison:
        """a "no better" than b: the superiority test (one-sided paired t, a > b; significant:
        contradicted) and the non-superiority test (one-sided paired t of a - b < +margin;
        significant: supported), shown with the 90% t interval both read. The two null hypotheses
        (a - b <= 0 and a - b >= margin) are disjoint, so each may be tested at the full level of
        the comparison (the partitioning principle, Finner & Strassburger 2002)."""
        test = f"paired t, superiority and non-superiority (+{self.margin:g})"
        small = self._too_few(a, b, test, "no-better", label=f"{a} vs {b}, no better", direction=-1,
                              margin=self.margin)
        if small:
            return small
        d, sd = self._difference(a, b)
        lo, hi = stats.t_interval(d, 1 - 2 * self.alpha)
        p_better = stats.one_sided_t_p(d, 0.0, greater=True)
        p_within = stats.one_sided_t_p(d, self.margin, greater=False)
        seed_only = Comparison(a, b, f"{a} vs {b}, no better", test if d.paired else test.replace("paired", "Welch"),
                               "no-better", d.estimate, lo, hi, 1 - 2 * self.alpha, "points", p_better, p_within,
                               -1, self.margin, d.estimate, sd, n_a=d.n_a, n_b=d.n_b,
                               n_paired=d.n_a if d.paired else 0, se=d.se, df=d.df)
        return self._task_or(seed_only, test.replace("paired t", TASK_TEST))

    def _rates(self, a, b, ka, na, kb, nb, *, direction, test, what, label) -> Comparison:
        if min(na, nb) < MIN_N:
            return Comparison(a, b, label, test, "rates", n_a=na, n_b=nb, direction=direction, untested=NOT_TESTED)
        lo, hi = stats.rate_difference_interval(ka, na, kb, nb)
        diff = ka / na - kb / nb
        return Comparison(a, b, label, test, "rates", 100 * diff, 100 * lo, 100 * hi, 0.95, "percentage points",
                          stats.fisher_exact_p(ka, na, kb, nb), direction=direction, signed=diff,
                          rates=(ka, na, kb, nb), min_p=inference.fisher_min_p(na, nb), n_a=na, n_b=nb,
                          note=f"{what}: {ka}/{na} vs {kb}/{nb}")

    def failure_rates(self, a: str, b: str, *, direction: int) -> Comparison:
        """Share of failed runs (predictions collapsed: chance-corrected agreement with the labels,
        Cohen's kappa, below 0.2) of a minus b, in percentage points with Newcombe's interval;
        Fisher's exact test on the two counts."""
        test, label = "Fisher's exact, failed runs", f"{a} vs {b}: share failed"
        (ka, na), (kb, nb) = self.arm(a).degenerate_count(), self.arm(b).degenerate_count()
        if not na or not nb:
            return Comparison(a, b, label, test, "rates", direction=direction,
                              untested="not testable (failed runs unknown)")
        return self._rates(a, b, ka, na, kb, nb, direction=direction, test=test, what="failed", label=label)

    def below_level_rates(self, a: str, b: str, *, direction: int) -> Comparison:
        """Share of runs below the fine-tuning level of a minus b, in percentage points; Fisher's
        exact test. The level is the baseline's mean - 2 sd; a baseline run is judged against the
        level of the *other* baseline runs (leave one out), since no run can sit more than
        (n-1)/sqrt(n) sd below the mean of a sample it belongs to."""
        test, label = "Fisher's exact, runs below fine-tuning level", f"{a} vs {b}: share below fine-tuning level"
        base = self.arm(self.baseline).values if self.baseline else np.array([])
        if len(base) < MIN_N + 1:
            return Comparison(a, b, label, test, "rates", direction=direction,
                              untested="not testable (no fine-tuning level: baseline n < 4)")

        def below(arm: str) -> int:
            return stats.count_below_level(self.arm(arm).values, base, leave_one_out=arm == self.baseline)
        xa, xb = self.arm(a).values, self.arm(b).values
        return self._rates(a, b, below(a), len(xa), below(b), len(xb), direction=direction, test=test,
                           what=f"below {self.level:.2f} (baseline: leave one out)", label=label)

    def spread(self, a: str, b: str, *, direction: int) -> Comparison:
        """sd of a over sd of b over their working (not failed) runs: Bonett's (2006) interval of
        the sd ratio and the test that inverts it (robust to non-normal data, sensible coverage at
        n = 5). Not estimable below 5 working runs in an arm."""
        test = "Bonett sd ratio, working runs"
        label = f"{a} vs {b}: sd of working runs"
        values, notes = {}, []
        for arm in (a, b):
            if self.arm(arm).degenerate_count()[1]:
                values[arm] = self.arm(arm).nondegenerate()
            else:
                values[arm] = self.arm(arm).values
                notes.append(f"{arm}: failed runs unknown, all runs used")
        xa, xb = values[a], values[b]
        if min(len(xa), len(xb)) < stats.MIN_SPREAD_N:
            return Comparison(a, b, label, test, "spread", direction=direction, n_a=len(xa), n_b=len(xb),
                              untested=f"not testable (< {stats.MIN_SPREAD_N} working runs)",
                              note="; ".join([f"working runs: {len(xa)} vs {len(xb)}", *notes]))
        r = inference.bonett_sd_ratio(xa, xb, self.alpha)
        with np.errstate(divide="ignore"):
            signed = float(np.log(r.ratio)) if np.isfinite(r.ratio) and r.ratio > 0 else np.nan
        return Comparison(a, b, label, test, "spread", r.ratio, r.ci_low, r.ci_high, 1 - self.alpha, "sd ratio",
                          r.p, direction=direction, signed=signed, n_a=len(xa), n_b=len(xb),
                          note="; ".join([f"sd {stats.sample_sd(xa):.2f} vs {stats.sample_sd(xb):.2f}", *notes]))

    def replacement_shift(self, arm: str, *, direction: int) -> Comparison:
        """Successor replacements per module (summed over epochs, mean over modules) of the failed
        runs of `arm` minus its other runs: Hodges-Lehmann shift with its exact interval;
        Mann-Whitney U. Needs 3 runs on each side."""
        test, label = "Mann-Whitney U, replacements per module", f"{arm}: replacements, failed vs other runs"
        per_run = dict(zip(self.replacements["run_id"], self.replacements["mean_per_module"]))
        counts = np.array([per_run.get(i, np.nan) for i in self.arm(arm).run_ids], float)
        flags = self.arm(arm).degenerate
        if not np.isfinite(counts).any():
            return Comparison(arm, "", label, test, "shift", direction=direction,
                              untested="not testable (no replacement counts)")
        known = np.isfinite(counts) & np.isfinite(flags)
        if not known.any():
            return Comparison(arm, "", label, test, "shift", direction=direction,
                              untested="not testable (failed runs unknown)")
        deg, rest = counts[known & (flags == 1)], counts[known & (flags == 0)]
        note = (f"mean replacements per module {np.mean(deg) if len(deg) else np.nan:.0f} "
                f"(failed, {len(deg)}) vs {np.mean(rest) if len(rest) else np.nan:.0f} (other, {len(rest)})")
        if min(len(deg), len(rest)) < MIN_N:
            return Comparison(arm, "", label, test, "shift", direction=direction, n_a=len(deg), n_b=len(rest),
                              untested=(NO_INFORMATION if not len(deg) else
                                        f"not testable: {len(deg)} of {int(known.sum())} runs failed"), note=note)
        est, lo, hi = stats.hodges_lehmann(deg, rest)
        p = float(st.mannwhitneyu(deg, rest, alternative="two-sided").pvalue)
        min_p = 2 / math.comb(len(deg) + len(rest), len(deg))  # exact two-sided U: the most extreme split
        return Comparison(arm, "", label, test, "shift", est, lo, hi, 0.95, "replacements per module", p,
                          direction=direction, signed=est, min_p=min(1.0, min_p), n_a=len(deg), n_b=len(rest),
                          note=note)


# ---------------------------------------------------------------- the claims

def theseus_beats_finetune(c: Context) -> list[tuple[str, str]]:
    """Each Theseus arm against finetune-L_s: paired t over the seed pairs, with the 95% t
    interval of the mean paired difference; claimed: higher."""
    return [(a, c.baseline) for a in c.arms(*THESEUS)] if c.baseline else []


def add_fails_less_often(c: Context) -> list[tuple[str, str]]:
    """Each theseus-add arm against each theseus-binary arm: the share of failed runs (predictions
    collapsed: Cohen's kappa against the labels below 0.2), Fisher's exact test, Newcombe interval
    of the difference; claimed: lower."""
    return [(a, b) for a in c.arms("theseus-add") for b in c.arms("theseus-binary")]


def add_spreads_less(c: Context) -> list[tuple[str, str]]:
    """Each theseus-add arm against each theseus-binary arm: the sd of the working runs, Bonett's
    interval of the sd ratio and its test; claimed: below 1. Not estimable below 5 working runs."""
    return [(a, b) for a in c.arms("theseus-add") for b in c.arms("theseus-binary")]


def two_stage_worse_than_theseus(c: Context) -> list[tuple[str, str]]:
    """Each two-stage arm against each Theseus arm: paired t, 95% t interval; claimed: lower."""
    return [(a, b) for a in c.arms("two-stage") for b in c.arms(*THESEUS)]


def two_stage_no_better_than_finetune(c: Context) -> list[tuple[str, str]]:
    """Each two-stage arm against finetune-L_s: "no better" (the seed: none beat it): a superiority
    test (significantly better: contradicted) and a non-superiority test against +margin
    (significantly below it: supported), paired t, shown with the 90% interval."""
    return [(a, c.baseline) for a in c.arms("two-stage")] if c.baseline else []


def theseus_falls_to_finetune_level(c: Context) -> list[tuple[str, str]]:
    """Each Theseus arm against finetune-L_s: the share of runs below the fine-tuning level
    (finetune-L_s mean - 2 sd; each baseline run against the level of the other baseline runs),
    Fisher's exact test; claimed: higher."""
    return [(a, c.baseline) for a in c.arms(*THESEUS)] if c.baseline else []


def failures_had_fewer_replacements(c: Context) -> list[tuple[str, str]]:
    """Within each theseus-binary arm: successor replacements per module (summed over epochs, mean
    over modules) of the failed runs against the other runs, Mann-Whitney U with the
    Hodges-Lehmann shift and its exact interval (3 runs per side needed); claimed: fewer."""
    return [(a, "") for a in c.arms("theseus-binary")]


@dataclass(frozen=True)
class Primary:
    """A claim's primary comparison, declared before any run: arms a and b (BASELINE for the
    group's finetune-L_s) and the reason for the choice."""
    a: str
    b: str
    reason: str


@dataclass(frozen=True)
class Claim:
    """A declared claim: id, the claim as a sentence, which pairs it compares (`pairs`, whose
    docstring is the test in words the report prints), the test each pair gets (`test`), its
    primary comparison (None: exploratory only, `no_primary` says why) and its figure."""
    id: str
    title: str
    pairs: Callable[[Context], list[tuple[str, str]]]
    test: Callable[[Context, str, str], Comparison]
    primary: Primary | None = None
    no_primary: str = ""
    figure: str = "claims"

    @property
    def family(self) -> str:
        return self.id[0]

    @property
    def how(self) -> str:
        return " ".join((self.pairs.__doc__ or "").split())


CLAIMS: list[Claim] = [
    Claim("1", "Theseus beats direct fine-tuning of the first L_s layers", theseus_beats_finetune,
          lambda c, a, b: c.mean_difference(a, b, direction=+1),
          Primary("theseus-add/seed", BASELINE,
                  "the seed's own comparison: its proportional add (as its code computes it) against direct "
                  "fine-tuning of the first L_s layers (59.5 vs 57.96 at 3 layers)")),
    Claim("2a", "Proportional add fails (predictions collapse) less often than binary random choice",
          add_fails_less_often, lambda c, a, b: c.failure_rates(a, b, direction=-1),
          Primary("theseus-add/seed", "theseus-binary/seed",
                  "the seed's proposal against the method it replaced, both in the seed's own variant"),
          figure="stability"),
    Claim("2b", "Proportional add's working runs spread less than binary random choice's", add_spreads_less,
          lambda c, a, b: c.spread(a, b, direction=-1),
          no_primary="described, not decided: at 5 working runs per arm Bonett's test has about 10% power "
                     "against a 2-fold sd ratio at alpha 0.05 (less after adjustment), so no affordable design "
                     "can decide it", figure="stability"),
    Claim("3a", "Two-stage extraction is worse than Theseus", two_stage_worse_than_theseus,
          lambda c, a, b: c.mean_difference(a, b, direction=-1),
          Primary("two-stage/predecessor-1x", "theseus-add/seed",
                  "the seed's extraction (the fine-tuned predecessor's first L_s layers with its own head, one "
                  "learning rate) against the Theseus variant it concluded was needed")),
    Claim("3b", "Two-stage extraction is no better than direct fine-tuning", two_stage_no_better_than_finetune,
          lambda c, a, b: c.no_better(a, b),
          Primary("two-stage/predecessor-1x", BASELINE,
                  "the seed's extraction against the baseline it reported it never beat")),
    Claim("4a", "Theseus runs fall below fine-tuning level more often than fine-tuning runs do",
          theseus_falls_to_finetune_level, lambda c, a, b: c.below_level_rates(a, b, direction=+1),
          Primary("theseus-binary/seed", BASELINE,
                  "the seed's instability was seen in binary random choice in its own variant"),
          figure="accuracy"),
    Claim("4b", "Theseus runs that failed had fewer successor replacements", failures_had_fewer_replacements,
          lambda c, a, b: c.replacement_shift(a, direction=-1),
          no_primary="a contrast within one arm that exists only when the arm has both failed and working "
                     "runs (3 of each), which no design can declare before the runs", figure="replacements"),
]
PRIMARY_CLAIMS = [c for c in CLAIMS if c.primary is not None]


# ---------------------------------------------------------------- evaluation

def _decide(cmp: Comparison, p_adj: float, mult: float, alpha: float) -> str:
    """The verdict of one tested comparison: p_adj its adjusted p, mult the Bonferroni multiplier of
    its family (family size x groups) applied to its second test (TOST / non-superiority)."""
    if cmp.kind == "rates" and cmp.rates:
        ka, na, kb, nb = cmp.rates
        if ka + kb == 0 or ka + kb == na + nb:
            return NO_INFORMATION
    significant = np.isfinite(p_adj) and p_adj < alpha
    second = np.isfinite(cmp.p_equiv) and min(1.0, cmp.p_equiv * mult) < alpha
    if cmp.kind == "no-better":
        return "contradicted" if significant else ("supported" if second else "undecided")
    if significant:
        return "supported" if np.sign(cmp.signed) == cmp.direction else "contradicted"
    if cmp.kind == "difference" and second:
        return f"equivalent within ±{cmp.margin:g}"
    return "undecided"


def _seeds_needed(cmp: Comparison, alpha_adj: float) -> float:
    """Seeds (pairs) at which the deciding test reaches 80% power at the observed effect and the
    adjusted level alpha_adj (the smaller of the two decisions a mean difference can reach)."""
    if cmp.kind in ("difference", "no-better") and np.isfinite(cmp.sd):
        if cmp.kind == "difference":
            options = [stats.seeds_for_power_paired(cmp.estimate, cmp.sd, alpha=alpha_adj),
                       stats.seeds_for_power_tost(cmp.estimate, cmp.sd, cmp.margin, alpha=alpha_adj)]
        else:  # one-sided tests at alpha_adj ~ two-sided at 2 alpha_adj
            options = [stats.seeds_for_power_paired(cmp.estimate, cmp.sd, alpha=2 * alpha_adj) if cmp.estimate > 0
                       else None,
                       stats.seeds_for_power_paired(cmp.estimate - cmp.margin, cmp.sd, alpha=2 * alpha_adj)
                       if cmp.estimate < cmp.margin else None]
        found = [x for x in options if x is not None]
        return float(min(found)) if found else np.nan
    if cmp.kind == "rates" and cmp.rates:
        ka, na, kb, nb = cmp.rates
        return _num(stats.seeds_for_power_fisher(ka / na, kb / nb, alpha=alpha_adj))
    return np.nan


def _task_targets(cmp: Comparison, alpha_adj: float) -> float:
    """The largest Var D (points^2) at which one of the comparison's decisions reaches 80% power
    at the observed effect and the adjusted level (normal approximation): superiority (two-sided;
    one-sided for "no better") and equivalence / non-superiority (one-sided against the margin)."""
    est, margin = cmp.estimate, cmp.margin
    if cmp.kind == "difference":
        options = [crossed.target_variance(est, alpha_adj)]
        if abs(est) < margin:
            options.append(crossed.target_variance(margin - abs(est), alpha_adj, sides=1))
    else:
        options = [crossed.target_variance(est, alpha_adj, sides=1) if est > 0 else 0.0,
                   crossed.target_variance(margin - est, alpha_adj, sides=1) if est < margin else 0.0]
    return max(options)


def _task_needs(cmp: Comparison, alpha_adj: float) -> tuple[float, float, str]:
    """(seeds_needed, test_size_needed, needs) of an undecided task-level mean comparison: the seeds
    at this test size and the test examples per seed at these seeds at which its easiest decision
    reaches 80% power (crossed.seeds_needed, crossed.test_size_needed); NaN seeds when no number of
    seeds suffices (the test-sample term alone is too large), said in `needs`."""
    cd = cmp.crossed
    target = _task_targets(cmp, alpha_adj)
    if target <= 0:
        return np.nan, np.nan, "no decision in reach at the observed effect"
    seeds, size = crossed.seeds_needed(cd, target), crossed.test_size_needed(cd, target)
    at = f"{cd.examples_per_seed:,.0f} test examples"
    more = (f"about {size:,.0f} test examples per seed at {cd.n_seeds} seeds" if np.isfinite(size)
            else "more seeds and a larger test set")
    if seeds == math.inf:
        return np.nan, size, (f"no number of seeds suffices at {at} (test-sample floor: se {cd.floor:.2f} points); "
                              f"{more}")
    first = f"about {seeds:.0f} seeds at {at}" if np.isfinite(seeds) else f"over 10,000 seeds at {at}"
    return seeds, size, f"{first}, or {more}"


def _shown(cmp: Comparison, verdict: str, p_adj: float, mult: float) -> tuple[float, float, str]:
    """(p, p_adj, test) a row shows: the deciding test's (module docstring)."""
    p, test = cmp.p, cmp.test
    if verdict.startswith("equivalent") or cmp.kind == "no-better" and verdict == "supported":
        # decided by the second test (TOST / non-superiority): show its p, Bonferroni over the family
        p, p_adj = cmp.p_equiv, min(1.0, cmp.p_equiv * mult)
        test += "; decided by " + ("TOST" if cmp.kind == "difference" else "non-superiority")
    return p, p_adj, test


def _result(claim: Claim, cmp: Comparison, role: str, family: str, p_adj: float, mult: float, *,
            alpha: float, with_power: bool, reason: str = "", p_adj_seed_only: float = np.nan) -> ClaimResult:
    verdict = cmp.untested or _decide(cmp, p_adj, mult, alpha)
    tested = not cmp.untested
    seeds, size, needs = np.nan, np.nan, ""
    if with_power and tested and verdict == "undecided":
        if cmp.crossed is not None:
            seeds, size, needs = _task_needs(cmp, alpha / mult)
        else:
            seeds = _seeds_needed(cmp, alpha / mult)
    p, p_adj, test = _shown(cmp, verdict, p_adj, mult)
    so = cmp.seed_only or cmp
    if cmp.seed_only is None:
        p_adj_seed_only = p_adj
        so_verdict, so_p, so_p_adj = verdict, p, p_adj
    else:
        so_verdict = so.untested or _decide(so, p_adj_seed_only, mult, alpha)
        so_p, so_p_adj, _ = _shown(so, so_verdict, p_adj_seed_only, mult)
    cd = cmp.crossed
    mean = cmp.kind in ("difference", "no-better")
    return ClaimResult(
        claim.id, claim.title, role, family, cmp.label, cmp.a, cmp.b, cmp.estimate, cmp.ci_low, cmp.ci_high,
        cmp.ci_level, cmp.unit, p if tested else np.nan, p_adj if tested else np.nan, verdict,
        inference.min_attainable_p_adjusted(cmp.min_p, max(1, int(round(mult)))) if tested else np.nan,
        seeds, _n_text(cmp.n_a, cmp.n_b, cmp.n_paired), cmp.n_a, cmp.n_b, cmp.n_paired, test,
        cmp.direction, cmp.margin, cmp.note, reason, cmp.inference_unit,
        cmp.se if mean else np.nan, cd.se_seed if cd else (so.se if mean else np.nan),
        cd.se_test_sample if cd else np.nan, cd.se_residual if cd else np.nan,
        so_p if tested else np.nan, so_p_adj if tested else np.nan, so_verdict, so.ci_low, so.ci_high,
        so.se if mean else np.nan, size, needs)


def primary_family_size(claims: list[Claim] | None = None) -> int:
    """The number of declared primaries (the primary family's size in one group)."""
    return sum(c.primary is not None for c in (CLAIMS if claims is None else claims))


def primary_arms(ctx: Context, claim: Claim) -> tuple[str, ...] | None:
    """The group's arm names of a claim's primary comparison; None when an arm is not in the group."""
    a, b = ctx.resolve(claim.primary.a), ctx.resolve(claim.primary.b)
    if a is None or not ctx.has(a):
        return None
    if claim.primary.b == "":
        return (a,)
    return (a, b) if b is not None and ctx.has(b) else None


def primary_comparisons(ctx: Context, claims: list[Claim] | None = None) -> list[tuple[Claim, Comparison | None]]:
    """Each declared primary of `claims` with its test on the group (None: an arm did not run)."""
    out = []
    for claim in CLAIMS if claims is None else claims:
        if claim.primary is not None:
            names = primary_arms(ctx, claim)
            out.append((claim, None if names is None else claim.test(ctx, *(names + ("",))[:2])))
    return out


def evaluate_claims(group_runs: pd.DataFrame, replacements: pd.DataFrame | None = None, *,
                    claims: list[Claim] | None = None, margin: float = 1.0, alpha: float = ALPHA,
                    seed: int = 0, n_perm: int = 10_000, with_power: bool = True, groups: int = 1,
                    primaries_only: bool = False,
                    examples: "pd.DataFrame | tables.Examples | None" = None) -> list[ClaimResult]:
    """Every claim of `claims` (default CLAIMS) on one group: its primary first, then its
    secondary comparisons, in declaration order.

    group_runs: the normalised runs of one (task, model, successor_layers[, budget]) group, the
    predecessor's rows included (schema.normalize_runs output); replacements: its replacements table
    (None when there are none). groups: G, the number of groups the study's primaries are tested in
    (module docstring). primaries_only: skip the secondary comparisons (the primaries' verdicts do
    not depend on them; simulations use it). with_power=False skips seeds_needed. examples: the
    per-example results (columns run_id, example, correct; or a tables.Examples): every mean
    comparison whose two arms have them at every paired seed is tested at the task level.
    """
    claims = CLAIMS if claims is None else claims
    ctx = Context.of(group_runs, replacements, examples, margin=margin, alpha=alpha, seed=seed, n_perm=n_perm,
                     with_power=with_power)
    out = {cid: [row] for cid, row in _primary_results(primary_comparisons(ctx, claims), groups=groups, margin=margin,
                                                       alpha=alpha, with_power=with_power).items()}
    if not primaries_only:
        _secondary_results(ctx, claims, out, margin=margin, alpha=alpha, with_power=with_power)
    return [r for claim in claims for r in out.get(claim.id, [])]


def evaluate_family(runs: pd.DataFrame, budget_of: dict[str, float], replacements: pd.DataFrame | None = None, *,
                    claims: list[Claim] | None = None, margin: float = 1.0, alpha: float = ALPHA, seed: int = 0,
                    n_perm: int = 10_000, with_power: bool = True, groups: int = 1, primaries_only: bool = False,
                    examples: "pd.DataFrame | tables.Examples | None" = None) -> dict[float, list[ClaimResult]]:
    """One family of primaries declared per budget (a sweep's `primaries`; docs/method.md,
    "Multiplicity"): every declared primary of `claims` tested on the runs at its budget, the family's
    Holm over all of them whatever their budget, x G (`groups`: the study's families).

    runs: the normalised runs of one (task, model, successor_layers, predecessor_layers), every budget,
    the predecessor's rows (budget NaN) included; budget_of: claim id -> the budget (student steps) its
    primary is tested at. Returns, per budget (each one the runs hold and each declared one), its
    rows in declaration order: the primaries declared at it, then (unless primaries_only) every
    claim's secondary comparisons on its runs; a claim whose primary is declared at another budget
    has no primary here, so all of its pairs are exploratory. A declared primary whose budget or arm
    has no runs is "not run", in its budget's rows."""
    claims = CLAIMS if claims is None else claims
    student = runs["budget"].dropna().unique() if "budget" in runs else []
    budgets = sorted({float(b) for b in student} | {float(budget_of[c.id]) for c in claims
                                                    if c.primary is not None and c.id in budget_of})
    contexts = {}
    for b in budgets:
        if (runs["budget"] == b).any():
            contexts[b] = Context.of(runs[runs["budget"].isna() | (runs["budget"] == b)], replacements, examples,
                                     margin=margin, alpha=alpha, seed=seed, n_perm=n_perm, with_power=with_power)
    primaries = []
    for claim in claims:
        if claim.primary is None or claim.id not in budget_of:
            continue
        ctx = contexts.get(float(budget_of[claim.id]))
        names = primary_arms(ctx, claim) if ctx is not None else None
        primaries.append((claim, None if names is None else claim.test(ctx, *(names + ("",))[:2])))
    rows = _primary_results(primaries, groups=groups, margin=margin, alpha=alpha, with_power=with_power)
    out = {}
    for b in budgets:
        here = {c.id: [rows[c.id]] for c in claims if c.id in rows and float(budget_of[c.id]) == b}
        if not primaries_only and b in contexts:
            _secondary_results(contexts[b], claims_at(claims, budget_of, b), here, margin=margin, alpha=alpha,
                               with_power=with_power)
        out[b] = [r for claim in claims for r in here.get(claim.id, [])]
    return out


def claims_at(claims: list[Claim], budget_of: dict[str, float], budget: float) -> list[Claim]:
    """`claims` as one budget of a family declared per budget sees them: a claim whose primary is
    declared at another budget has none here (its comparisons here are exploratory)."""
    return [c if c.primary is None or c.id not in budget_of or float(budget_of[c.id]) == budget else
            replace(c, primary=None, no_primary=f"its primary is tested at {budget_of[c.id]:g} steps")
            for c in claims]


def _primary_results(primaries: list[tuple[Claim, Comparison | None]], *, groups: int, margin: float, alpha: float,
                     with_power: bool) -> dict[str, ClaimResult]:
    """The primary family's rows (module docstring): Holm over every slot of `primaries` (an
    untested or absent comparison with p = 1), x `groups`; the seed-only sensitivity its own family."""
    size = len(primaries)

    def slot(c: Comparison | None) -> float:
        return 1.0 if c is None or c.untested or not np.isfinite(c.p) else c.p
    holm = stats.holm([slot(c) for _, c in primaries]) if size else []
    # the seed-only sensitivity: the same family with every comparison's seed-only p
    holm_seed = stats.holm([slot(c and (c.seed_only or c)) for _, c in primaries]) if size else []
    out: dict[str, ClaimResult] = {}
    for (claim, cmp), h, h_seed in zip(primaries, holm, holm_seed):
        mult = size * groups
        if cmp is None:
            a, b = claim.primary.a, claim.primary.b
            out[claim.id] = ClaimResult(claim.id, claim.title, "primary", "primary", f"{a} vs {b}" if b else a, a, b,
                                        *(np.nan,) * 3, np.nan, "", np.nan, np.nan, NOT_RUN, np.nan, np.nan, "—", 0,
                                        0, 0, "", 0, margin, "", claim.primary.reason)
        else:
            out[claim.id] = _result(claim, cmp, "primary", "primary", min(1.0, groups * h), mult, alpha=alpha,
                                    with_power=with_power, reason=claim.primary.reason,
                                    p_adj_seed_only=min(1.0, groups * h_seed))
    return out


def _secondary_results(ctx: Context, claims: list[Claim], out: dict[str, list[ClaimResult]], *, margin: float,
                       alpha: float, with_power: bool) -> None:
    """Every claim's secondary comparisons on one group, appended to `out` (claim id -> rows): each
    pair but the claim's primary, Holm within the claim's secondary family, no factor G."""
    for claim in claims:
        pairs = claim.pairs(ctx)
        if claim.primary is not None:
            main = (ctx.resolve(claim.primary.a), ctx.resolve(claim.primary.b))
            pairs = [p for p in pairs if p != main]
        cmps = [claim.test(ctx, a, b) for a, b in pairs]
        tested = [c for c in cmps if not c.untested and np.isfinite(c.p)]
        adj = dict(zip(map(id, tested), stats.holm([c.p for c in tested])))
        seed = [c.seed_only or c for c in tested]
        adj_seed = dict(zip(map(id, tested), stats.holm([1.0 if not np.isfinite(c.p) else c.p for c in seed])))
        rows = [_result(claim, c, "secondary", f"{claim.id} secondary", adj.get(id(c), np.nan),
                        max(1, len(tested)), alpha=alpha, with_power=with_power,
                        p_adj_seed_only=adj_seed.get(id(c), np.nan)) for c in cmps]
        if not rows and claim.id not in out:
            rows = [ClaimResult(claim.id, claim.title, "secondary", f"{claim.id} secondary", "—", "", "",
                                *(np.nan,) * 3, np.nan, "", np.nan, np.nan, "not testable (no such arms)",
                                np.nan, np.nan, "", 0, 0, 0, "", 0, margin, "", claim.no_primary)]
        out.setdefault(claim.id, []).extend(rows)


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """The ClaimResults as a DataFrame, one row each, columns in ClaimResult's field order."""
    from dataclasses import asdict, fields

    return pd.DataFrame([asdict(r) for r in results], columns=[f.name for f in fields(ClaimResult)])


DECOMPOSITION_COLUMNS = [
    "claim", "comparison", "a", "b", "inference_unit", "split", "n_seeds", "test_examples", "estimate", "se",
    "se_seed", "se_test_sample", "se_residual", "share_seed", "share_test_sample", "share_residual",
    "se_floor", "seeds_needed", "test_size_needed", "needs", "seed_component"]


def variance_decomposition(group_runs: pd.DataFrame, examples: "pd.DataFrame | tables.Examples | None" = None, *,
                           claims: list[Claim] | None = None, margin: float = 1.0, alpha: float = ALPHA,
                           groups: int = 1, family_size: int | None = None) -> pd.DataFrame:
    """Where the uncertainty of each primary mean comparison (claims 1, 3a, 3b) of one group comes
    from: one row per comparison (DECOMPOSITION_COLUMNS), in points.

    se = sqrt(se_seed^2 + se_test_sample^2 + se_residual^2) (crossed.crossed_difference); share_*:
    each term's share of se^2; se_floor: the se no number of seeds goes below at this test size;
    seeds_needed / test_size_needed / needs: what the comparison's easiest decision needs for 80%
    power at its observed effect and the primaries' Bonferroni level alpha / (m G) (NaN seeds when
    no number suffices). seed_component: what the seed term holds ("init and data order", plus "and
    the training sample" when each seed draws its own split, which one run per split cannot
    separate). A comparison without per-example results has inference_unit "test set", its se the
    seed-only one in se_seed and the rest NaN: its test-sample term is unknown. family_size: m when
    the family spans more than this group (primaries declared per budget: claims_at's claims here)."""
    ctx = Context.of(group_runs, None, examples, margin=margin, alpha=alpha, with_power=True)
    rows = []
    m = family_size or primary_family_size(claims)
    for claim, cmp in primary_comparisons(ctx, claims):
        if cmp is None or cmp.untested or cmp.kind not in ("difference", "no-better"):
            continue
        cd = cmp.crossed
        row = dict(claim=claim.id, comparison=cmp.label, a=cmp.a, b=cmp.b, inference_unit=cmp.inference_unit,
                   estimate=cmp.estimate, se=cmp.se, n_seeds=cmp.n_paired or np.nan)
        if cd is None:
            row.update(se_seed=cmp.se, seed_component="init and data order (test sample fixed)")
        else:
            total = cd.se ** 2
            seeds, size, needs = _task_needs(cmp, alpha / (m * groups))
            row.update(split=cd.split, n_seeds=cd.n_seeds, test_examples=cd.examples_per_seed, se_seed=cd.se_seed,
                       se_test_sample=cd.se_test_sample, se_residual=cd.se_residual,
                       share_seed=cd.se_seed ** 2 / total if total else np.nan,
                       share_test_sample=cd.se_test_sample ** 2 / total if total else np.nan,
                       share_residual=cd.se_residual ** 2 / total if total else np.nan,
                       se_floor=cd.floor, seeds_needed=seeds, test_size_needed=size, needs=needs,
                       seed_component="init and data order" + (" and the training sample" if cd.split == "per-seed"
                                                               else ""))
        rows.append(row)
    return pd.DataFrame(rows, columns=DECOMPOSITION_COLUMNS)
