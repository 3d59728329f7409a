"""The seed's claims (README questions 1-4), each declared once, and the one function that
evaluates them on one group of runs.

A claim is a short function of a `Context` (one group's tidy runs: one task, model, successor
size and budget) returning its comparisons, each with its one primary test already run, plus one
line in CLAIMS naming its id, title and Holm family. `evaluate_claims` runs every claim on one
group, Holm-adjusts the raw p-values within each family (NaN = not tested, not counted) and
applies each comparison's verdict rule. It is a pure function of the group's table, so a sweep
with several training budgets calls it once per budget and lays the verdicts side by side.

Adding a claim: write `def my_claim(c: Context) -> list[Comparison]` from the builders below
(mean_difference, equivalence, failure_rates, below_level_rates, spread, replacement_shift) and
add `Claim("5", "title", "5", my_claim)` to CLAIMS.

Verdict rules (alpha 0.05 on the Holm-adjusted p of the comparison's family):
- directional (the claim says a > b or a < b): adjusted p < alpha with the estimate on the
  claimed side -> "supported", on the other side -> "contradicted"; otherwise "inconclusive at
  n = ..." when the estimate is on the claimed side, "not supported" when it is not.
- equivalence (the claim says "no better", read as "within +-margin"): TOST adjusted p < alpha ->
  "supported"; otherwise "inconclusive at n = ..." when the estimate lies inside the margin, "not
  supported" when it lies outside.
- not testable: n < 3 on a side ("not tested (n < 3)"), fewer than 5 non-degenerate runs for a
  spread ("not estimable ..."), unknown degenerate flags or replacement counts ("not tested ...").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as st

from harness import stats
from harness.stats import ALPHA, MIN_N, MIN_SPREAD_N, NOT_TESTED, THESEUS

QUESTIONS = {
    "1": "Is Theseus better than direct fine-tuning of the first L_s layers? By how much?",
    "2": "Is proportional add more stable than binary random choice?",
    "3": "Is two-stage extraction (fine-tune, keep the first L_s layers) worse than Theseus, and no "
         "better than direct fine-tuning?",
    "4": "How often does a Theseus run fall to fine-tuning level, and do replacement counts explain "
         "its failures?",
}


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim before multiplicity adjustment.

    a, b: arms (b "" for a comparison within one arm); label: how it reads in the report; test:
    the primary test that decides it; estimate with its interval (ci_level) in `unit`; p: raw
    two-sided p (NaN when not tested, then `untested` is the verdict); direction: +1 / -1, the
    claimed sign of `signed` (the estimate, or its log for a ratio), 0 for an equivalence claim
    with `margin`; n_a, n_b, n_paired: runs behind it; seeds_for_power: runs per arm (seed pairs
    for a paired test) the primary test needs for 80% power at the observed effect (NaN: n/a);
    note: the counts or caveats shown beside it.
    """
    a: str
    b: str
    label: str
    test: str
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    ci_level: float = 0.95
    unit: str = "points"
    p: float = np.nan
    direction: int = 0
    margin: float = np.nan
    signed: float = np.nan
    n_a: int = 0
    n_b: int = 0
    n_paired: int = 0
    seeds_for_power: float = np.nan
    untested: str = ""
    note: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table: a comparison of a claim with its adjusted p and verdict.

    claim: id ("1", "2a", ...); title: the claim as a sentence; family: its Holm family;
    comparison: "a vs b"; estimate / ci_low / ci_high (ci_level, unit): the difference and its
    interval; p: raw, p_adj: Holm within the family; verdict (see the module docstring); n: runs
    behind it as text ("10 pairs", "10 vs 10"); seeds_for_power (NaN: n/a); decided_by: the test.
    """
    claim: str
    title: str
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
    n: str
    n_a: int
    n_b: int
    n_paired: int
    seeds_for_power: float
    decided_by: str
    direction: int
    margin: float
    note: str


def _n_text(n_a: int, n_b: int, n_paired: int) -> str:
    """The runs behind a comparison: "10 pairs" (paired), "10 vs 3", or "—" (none)."""
    return f"{n_paired} pairs" if n_paired else ("—" if not n_a and not n_b else f"{n_a} vs {n_b}")


def _n_verdict(n_a: int, n_b: int, n_paired: int) -> str:
    return f"{n_paired}" if n_paired else (f"{n_a}" if n_a == n_b else f"{n_a} vs {n_b}")


def _num(n) -> float:
    return np.nan if n is None else float(n)


@dataclass
class Context:
    """One group's runs (normalised, the predecessor's rows included) and the settings the claims
    use; the builders below run one primary test each and return a Comparison."""
    runs: pd.DataFrame
    replacements: pd.DataFrame = field(default_factory=pd.DataFrame)
    margin: float = 1.0
    alpha: float = ALPHA
    seed: int = 0
    n_perm: int = 10_000
    with_power: bool = True  # False: skip seeds_for_power (NaN), e.g. in simulations
    predecessor: str | None = None
    baseline: str | None = None
    level: float = np.nan  # the fine-tuning level (stats.fine_tuning_level of the baseline)

    @classmethod
    def of(cls, runs: pd.DataFrame, replacements: pd.DataFrame | None = None, **settings) -> "Context":
        pred, base = stats.roles(runs)
        level = stats.fine_tuning_level(stats._ok(runs, base)) if base else np.nan
        return cls(runs, stats.replacement_totals(replacements), predecessor=pred, baseline=base,
                   level=level, **settings)

    def __post_init__(self):
        self._families = {a: stats.family(a) for a in stats.arm_order(self.runs["arm"])}
        self._arm_runs: dict[str, stats.ArmRuns] = {}

    def arms(self, *families: str) -> list[str]:
        """The group's arms of these strategy families, in stats.arm_order."""
        return [a for a, f in self._families.items() if f in families]

    def arm(self, name: str) -> stats.ArmRuns:
        """The successful runs of one arm as arrays (read once per arm)."""
        if name not in self._arm_runs:
            self._arm_runs[name] = stats.arm_runs(self.runs, name)
        return self._arm_runs[name]

    # ------------------------------------------------------------ builders

    def _too_few(self, a: str, b: str, test: str, label: str = "", **kw) -> Comparison | None:
        na, nb = self.arm(a).n, self.arm(b).n
        if min(na, nb) < MIN_N:
            return Comparison(a, b, label or f"{a} vs {b}", test, n_a=na, n_b=nb, untested=NOT_TESTED, **kw)
        return None

    def mean_difference(self, a: str, b: str, *, direction: int) -> Comparison:
        """Mean test accuracy of a minus b (points): paired t over the seeds both ran, Welch t when
        fewer than 3 pair; its 95% t interval; power from the observed difference and spread."""
        small = self._too_few(a, b, "paired t", direction=direction)
        if small:
            return small
        d = stats.primary_difference_of(self.arm(a), self.arm(b))
        lo, hi = stats.t_interval(d)
        if not self.with_power:
            power = None
        elif d.paired:
            power = stats.seeds_for_power_paired(d.estimate, d.sd, alpha=self.alpha)
        else:
            power = stats.seeds_for_power(d.estimate, stats._sd(self.arm(a).values), stats._sd(self.arm(b).values),
                                          alpha=self.alpha)
        return Comparison(a, b, f"{a} vs {b}", d.test, d.estimate, lo, hi, 0.95, "points",
                          stats.t_test_p(d), direction, signed=d.estimate, n_a=d.n_a, n_b=d.n_b,
                          n_paired=d.n_a if d.paired else 0, seeds_for_power=_num(power))

    def equivalence(self, a: str, b: str) -> Comparison:
        """a and b within +-margin points: TOST on the primary difference (paired, else Welch),
        shown with its 1 - 2 alpha (90%) t interval, the interval TOST checks against the margin."""
        test = f"TOST ±{self.margin:g}, paired t"
        small = self._too_few(a, b, test, margin=self.margin, label=f"{a} vs {b}, within ±{self.margin:g}")
        if small:
            return small
        d = stats.primary_difference_of(self.arm(a), self.arm(b))
        level = 1 - 2 * self.alpha
        lo, hi = stats.t_interval(d, level)
        sd = d.sd if d.paired else float(np.hypot(stats._sd(self.arm(a).values), stats._sd(self.arm(b).values)))
        power = stats.seeds_for_power_tost(d.estimate, sd, self.margin, alpha=self.alpha) if self.with_power else None
        return Comparison(a, b, f"{a} vs {b}, within ±{self.margin:g}",
                          test if d.paired else f"TOST ±{self.margin:g}, Welch t",
                          d.estimate, lo, hi, level, "points", stats.tost_p(d, self.margin), 0, self.margin,
                          d.estimate, d.n_a, d.n_b, d.n_a if d.paired else 0, _num(power))

    def _rates(self, a, b, ka, na, kb, nb, *, direction, test, what, label) -> Comparison:
        if min(na, nb) < MIN_N:
            return Comparison(a, b, label, test, n_a=na, n_b=nb, direction=direction, untested=NOT_TESTED)
        lo, hi = stats.rate_difference_interval(ka, na, kb, nb)
        diff = ka / na - kb / nb
        power = stats.seeds_for_power_fisher(ka / na, kb / nb, alpha=self.alpha) if self.with_power else None
        return Comparison(a, b, label, test, 100 * diff, 100 * lo, 100 * hi, 0.95, "percentage points",
                          stats.fisher_exact_p(ka, na, kb, nb), direction,
                          signed=diff, n_a=na, n_b=nb, seeds_for_power=_num(power),
                          note=f"{what}: {ka}/{na} vs {kb}/{nb}")

    def failure_rates(self, a: str, b: str, *, direction: int) -> Comparison:
        """Share of degenerate runs (predicting one class on test) of a minus b, in percentage
        points with Newcombe's interval; Fisher's exact test on the two counts."""
        test, label = "Fisher's exact, degenerate runs", f"{a} vs {b}: share degenerate"
        (ka, na), (kb, nb) = self.arm(a).degenerate_count(), self.arm(b).degenerate_count()
        if not na or not nb:
            return Comparison(a, b, label, test, direction=direction,
                              untested="not tested (degenerate runs unknown)")
        return self._rates(a, b, ka, na, kb, nb, direction=direction, test=test, what="degenerate", label=label)

    def below_level_rates(self, a: str, b: str, *, direction: int) -> Comparison:
        """Share of runs below the fine-tuning level (baseline mean - 2 sd) of a minus b, in
        percentage points; Fisher's exact test on the two counts."""
        test, label = "Fisher's exact, runs below fine-tuning level", f"{a} vs {b}: share below fine-tuning level"
        if not np.isfinite(self.level):
            return Comparison(a, b, label, test, direction=direction,
                              untested="not tested (no fine-tuning level: baseline n < 3)")
        xa, xb = self.arm(a).values, self.arm(b).values
        return self._rates(a, b, int(np.sum(xa < self.level)), len(xa), int(np.sum(xb < self.level)),
                           len(xb), direction=direction, test=test, what=f"below {self.level:.2f}", label=label)

    def spread(self, a: str, b: str, *, direction: int) -> Comparison:
        """sd of a over sd of b over their non-degenerate runs (all runs where the flag is
        unknown): permutation test of the log sd ratio, the interval inverting it."""
        test = "permutation test of log sd ratio, non-degenerate runs"
        label = f"{a} vs {b}: sd of non-degenerate runs"
        values, notes = {}, []
        for arm in (a, b):
            if self.arm(arm).degenerate_count()[1]:
                values[arm] = self.arm(arm).nondegenerate()
            else:
                values[arm] = self.arm(arm).values
                notes.append(f"{arm}: degenerate runs unknown, all runs used")
        xa, xb = values[a], values[b]
        if min(len(xa), len(xb)) < MIN_SPREAD_N:
            return Comparison(a, b, label, test, direction=direction, n_a=len(xa), n_b=len(xb),
                              untested=f"not estimable (< {MIN_SPREAD_N} non-degenerate runs)",
                              note="; ".join([f"non-degenerate runs: {len(xa)} vs {len(xb)}", *notes]))
        s = stats.spread_test(xa, xb, n_perm=self.n_perm, rng=stats.rng_for(self.seed, "spread", a, b))
        with np.errstate(divide="ignore"):
            signed = float(np.log(s.ratio)) if np.isfinite(s.ratio) else np.nan
        return Comparison(a, b, label, test, s.ratio, s.ci_low, s.ci_high, 0.95, "sd ratio", s.p,
                          direction, signed=signed, n_a=len(xa), n_b=len(xb),
                          seeds_for_power=_num(stats.seeds_for_power_spread(s.ratio, alpha=self.alpha)
                                               if self.with_power else None),
                          note="; ".join([f"sd {stats._sd(xa):.2f} vs {stats._sd(xb):.2f}", *notes]))

    def replacement_shift(self, arm: str, *, direction: int) -> Comparison:
        """Successor replacements per module (summed over epochs, mean over modules) of the
        degenerate runs of `arm` minus its other runs: Hodges-Lehmann shift with its exact
        interval; Mann-Whitney U. Needs 3 runs on each side."""
        test, label = "Mann-Whitney U, replacements per module", f"{arm}: replacements, degenerate vs other runs"
        per_run = dict(zip(self.replacements["run_id"], self.replacements["mean_per_module"]))
        counts = np.array([per_run.get(i, np.nan) for i in self.arm(arm).run_ids], float)
        flags = self.arm(arm).degenerate
        if not np.isfinite(counts).any():
            return Comparison(arm, "", label, test, direction=direction,
                              untested="not tested (no replacement counts)")
        known = np.isfinite(counts) & np.isfinite(flags)
        if not known.any():
            return Comparison(arm, "", label, test, direction=direction,
                              untested="not tested (degenerate runs unknown)")
        deg, rest = counts[known & (flags == 1)], counts[known & (flags == 0)]
        note = (f"mean replacements per module {np.mean(deg) if len(deg) else np.nan:.0f} "
                f"(degenerate, {len(deg)}) vs {np.mean(rest) if len(rest) else np.nan:.0f} (other, {len(rest)})")
        if min(len(deg), len(rest)) < MIN_N:
            return Comparison(arm, "", label, test, direction=direction, n_a=len(deg), n_b=len(rest),
                              untested=f"not testable: {len(deg)} of {int(known.sum())} runs degenerate",
                              note=note)
        est, lo, hi = stats.hodges_lehmann(deg, rest)
        p = float(st.mannwhitneyu(deg, rest, alternative="two-sided").pvalue)
        return Comparison(arm, "", label, test, est, lo, hi, 0.95, "replacements per module", p, direction,
                          signed=est, n_a=len(deg), n_b=len(rest), note=note)


# ---------------------------------------------------------------- the claims

def theseus_beats_finetune(c: Context) -> list[Comparison]:
    """Each Theseus arm against finetune-L_s: paired t over the seed pairs, with the 95% t
    interval of the mean paired difference; claimed: higher."""
    return [c.mean_difference(a, c.baseline, direction=+1) for a in c.arms(*THESEUS)] if c.baseline else []


def add_fails_less_often(c: Context) -> list[Comparison]:
    """Each theseus-add arm against each theseus-binary arm: the share of degenerate runs (a run
    that predicts one class on test), Fisher's exact test, Newcombe interval of the difference;
    claimed: lower."""
    return [c.failure_rates(a, b, direction=-1) for a in c.arms("theseus-add") for b in c.arms("theseus-binary")]


def add_spreads_less(c: Context) -> list[Comparison]:
    """Each theseus-add arm against each theseus-binary arm: the sd of the non-degenerate runs,
    permutation test of the log sd ratio (median-centred samples), the interval inverting it;
    claimed: below 1. Not estimable below 5 such runs in an arm."""
    return [c.spread(a, b, direction=-1) for a in c.arms("theseus-add") for b in c.arms("theseus-binary")]


def two_stage_worse_than_theseus(c: Context) -> list[Comparison]:
    """Each two-stage arm against each Theseus arm: paired t, 95% t interval; claimed: lower."""
    return [c.mean_difference(a, b, direction=-1) for a in c.arms("two-stage") for b in c.arms(*THESEUS)]


def two_stage_no_better_than_finetune(c: Context) -> list[Comparison]:
    """Each two-stage arm against finetune-L_s: "no better" (the seed: none beat it) read as
    equivalence within the margin, TOST on the paired difference, shown with its 90% interval."""
    return [c.equivalence(a, c.baseline) for a in c.arms("two-stage")] if c.baseline else []


def theseus_falls_to_finetune_level(c: Context) -> list[Comparison]:
    """Each Theseus arm against finetune-L_s: the share of runs below the fine-tuning level
    (finetune-L_s mean - 2 sd; the baseline's own runs are the reference), Fisher's exact test;
    claimed: higher."""
    return [c.below_level_rates(a, c.baseline, direction=+1) for a in c.arms(*THESEUS)] if c.baseline else []


def failures_had_fewer_replacements(c: Context) -> list[Comparison]:
    """Within each theseus-binary arm: successor replacements per module (summed over epochs,
    mean over modules) of the degenerate runs against the other runs, Mann-Whitney U with the
    Hodges-Lehmann shift and its exact interval (3 runs per side needed); claimed: fewer."""
    return [c.replacement_shift(a, direction=-1) for a in c.arms("theseus-binary")]


@dataclass(frozen=True)
class Claim:
    """A declared claim: id, the claim as a sentence, its Holm family, its function (whose
    docstring, the test in words, the report prints) and the figure that shows it (plots.PLOTS)."""
    id: str
    title: str
    family: str
    compare: Callable[[Context], list[Comparison]]
    figure: str = "claims"

    @property
    def test(self) -> str:
        return " ".join((self.compare.__doc__ or "").split())


CLAIMS: list[Claim] = [
    Claim("1", "Theseus beats direct fine-tuning of the first L_s layers", "1", theseus_beats_finetune),
    Claim("2a", "Proportional add fails (predicts one class) less often than binary random choice", "2",
          add_fails_less_often, figure="stability"),
    Claim("2b", "Proportional add's non-degenerate runs spread less than binary random choice's", "2",
          add_spreads_less, figure="stability"),
    Claim("3a", "Two-stage extraction is worse than Theseus", "3", two_stage_worse_than_theseus),
    Claim("3b", "Two-stage extraction is no better than direct fine-tuning (equivalent within the margin)",
          "3", two_stage_no_better_than_finetune),
    Claim("4a", "Theseus runs fall below fine-tuning level more often than fine-tuning runs do", "4",
          theseus_falls_to_finetune_level, figure="accuracy"),
    Claim("4b", "Theseus runs that failed (degenerate) had fewer successor replacements", "4",
          failures_had_fewer_replacements, figure="replacements"),
]


# ---------------------------------------------------------------- evaluation

def verdict(cmp: Comparison, p_adj: float, *, alpha: float = ALPHA) -> str:
    """The verdict rule of the module docstring for one comparison and its adjusted p."""
    if cmp.untested:
        return cmp.untested
    n = _n_verdict(cmp.n_a, cmp.n_b, cmp.n_paired)
    significant = np.isfinite(p_adj) and p_adj < alpha
    if cmp.direction == 0:  # equivalence
        if significant:
            return "supported"
        return f"inconclusive at n = {n}" if abs(cmp.estimate) < cmp.margin else "not supported"
    along = np.sign(cmp.signed) == cmp.direction
    if significant:
        return "supported" if along else "contradicted"
    return f"inconclusive at n = {n}" if along or not np.isfinite(cmp.signed) else "not supported"


def evaluate_claims(group_runs: pd.DataFrame, replacements: pd.DataFrame | None = None, *,
                    claims: list[Claim] | None = None, margin: float = 1.0, alpha: float = ALPHA,
                    seed: int = 0, n_perm: int = 10_000, with_power: bool = True) -> list[ClaimResult]:
    """Every claim of `claims` (default CLAIMS) on one group, in declaration order.

    group_runs: the normalised runs of one (task, model, successor_layers[, budget]) group, the
    predecessor's rows included (stats.normalize_runs output); replacements: the replacements
    table of those runs (run_id, module, replaced, ...), None when there are none. A claim with no
    comparison in this group (e.g. no two-stage arm) gives one row "not tested (no such arms)".
    Holm adjusts within each family over the comparisons that were tested. n_perm: resamples
    of the permutation tests; with_power=False skips the seeds-for-power searches (verdicts are
    unchanged; simulations use it).
    """
    claims = CLAIMS if claims is None else claims
    ctx = Context.of(group_runs, replacements, margin=margin, alpha=alpha, seed=seed, n_perm=n_perm,
                     with_power=with_power)
    made = [(claim, claim.compare(ctx)) for claim in claims]
    adjusted: dict[tuple[int, int], float] = {}  # (claim index, comparison index) -> Holm p
    for fam in dict.fromkeys(claim.family for claim in claims):
        members = [((i, j), cmp) for i, (claim, cmps) in enumerate(made) if claim.family == fam
                   for j, cmp in enumerate(cmps)]
        for (key, _), p in zip(members, stats.holm([np.nan if c.untested else c.p for _, c in members])):
            adjusted[key] = p
    out = []
    for i, (claim, cmps) in enumerate(made):
        if not cmps:
            out.append(ClaimResult(claim.id, claim.title, claim.family, "—", "", "", *(np.nan,) * 3, np.nan, "",
                                   np.nan, np.nan, "not tested (no such arms)", "", 0, 0, 0, np.nan, "", 0,
                                   np.nan, ""))
            continue
        for j, cmp in enumerate(cmps):
            p_adj = adjusted[(i, j)]
            out.append(ClaimResult(
                claim.id, claim.title, claim.family, cmp.label, cmp.a, cmp.b, cmp.estimate, cmp.ci_low,
                cmp.ci_high, cmp.ci_level, cmp.unit, np.nan if cmp.untested else cmp.p, p_adj,
                verdict(cmp, p_adj, alpha=alpha), _n_text(cmp.n_a, cmp.n_b, cmp.n_paired), cmp.n_a, cmp.n_b,
                cmp.n_paired, cmp.seeds_for_power, cmp.test, cmp.direction, cmp.margin, cmp.note))
    return out


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """The ClaimResults as a DataFrame, one row each, columns in ClaimResult's field order."""
    from dataclasses import asdict, fields

    return pd.DataFrame([asdict(r) for r in results], columns=[f.name for f in fields(ClaimResult)])
