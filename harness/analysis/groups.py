"""One runs table -> every statistic and claim, group by group (docs/method.md, "Statistics").

A group is one (task, model, successor_layers) with successor_layers < predecessor_layers, split
further by `budget` when that column holds more than one distinct value in it; the predecessor's
rows (and runs without a budget) belong to every group they share a task and model with. Each
group gets the tables of harness.analysis.stats and the claims of harness.analysis.claims (evaluated on the group's
own rows: a pure function of them, so the verdicts of several budgets sit side by side in
`Analysis.verdicts_by_budget`); each group's primaries are one family, G = the number of groups.

With primaries declared per budget (a sweep's `primaries`: claim id -> budget), the groups are split
by every budget, and the groups of one (task, model, successor_layers, predecessor_layers) share ONE
family: each declared primary is tested on the runs of its budget's group and sits in that group's
claims; the Holm adjustment runs over the whole family; G = the number of families
(claims.evaluate_family; docs/method.md, "Multiplicity"). plots.py and report.py only consume an
Analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis import stats, tables
from harness.analysis.claims import (CLAIMS, TASK_TEST, ClaimResult, claims_at, claims_frame, evaluate_claims,
                                     evaluate_family, primary_family_size, variance_decomposition)
from harness.store import schema


@dataclass
class Group:
    """All statistics of one group; `runs` holds its rows plus the predecessor's, with the
    columns `degenerate` (nullable boolean) and `below_level` (test accuracy below the
    fine-tuning level `level`, stats.fine_tuning_level of the baseline)."""
    task: str
    model: str
    successor_layers: float  # NaN when unknown (no finetune-k arm to infer it from)
    predecessor_layers: float
    budget: float  # student optimizer steps; NaN when the sweep has no budget axis
    runs: pd.DataFrame
    epochs: pd.DataFrame
    replacements: pd.DataFrame
    level: float
    variance: pd.DataFrame
    pairwise: pd.DataFrame
    expected_max: pd.DataFrame
    profile: pd.DataFrame
    power: pd.DataFrame
    components: pd.DataFrame | None
    claims: list[ClaimResult] = field(default_factory=list)
    variance_decomposition: pd.DataFrame | None = None  # per primary mean comparison (claims.variance_decomposition)

    @property
    def label(self) -> str:
        lp, ls = (f"{x:g}" if np.isfinite(x) else "?" for x in (self.predecessor_layers,
                                                               self.successor_layers))
        budget = f", budget {self.budget:g} steps" if np.isfinite(self.budget) else ""
        return f"{self.task} / {self.model}, {lp} -> {ls} layers{budget}"

    @property
    def key(self) -> dict:
        return dict(task=self.task, model=self.model, predecessor_layers=self.predecessor_layers,
                    successor_layers=self.successor_layers, budget=self.budget)

    def claims_table(self) -> pd.DataFrame:
        return claims_frame(self.claims)


@dataclass
class Analysis:
    """Everything the report and the CLI need: normalised inputs, one Group per group, and the
    settings behind the numbers (resamples, seed, equivalence margin)."""
    runs: pd.DataFrame
    epochs: pd.DataFrame
    replacements: pd.DataFrame
    groups: list[Group]
    n_boot: int
    seed: int
    margin: float = 1.0
    examples: tables.Examples | None = None  # per-example results (None: every verdict is seed-only)
    primaries: dict[str, float] | None = None  # claim id -> its primary's budget (None: every group's own family)
    families: int = 0  # G: the primary families the study's alpha is split over (the groups, or the declared ones)

    def table(self, name: str) -> pd.DataFrame:
        """Concatenate one per-group table ("variance", "pairwise", "expected_max", "profile",
        "power", "components", "variance_decomposition") across groups, the group key in front."""
        parts = [getattr(g, name).assign(**g.key) for g in self.groups
                 if getattr(g, name) is not None and not getattr(g, name).empty]
        if not parts:
            return pd.DataFrame()
        t = pd.concat(parts, ignore_index=True)
        front = list(self.groups[0].key)
        return t[front + [c for c in t.columns if c not in front]]

    @property
    def claims(self) -> list[ClaimResult]:
        return [c for g in self.groups for c in g.claims]

    def claims_table(self) -> pd.DataFrame:
        """One row per (group, claim, comparison): the ClaimResult fields behind the group key."""
        parts = [g.claims_table().assign(**g.key) for g in self.groups]
        if not parts:
            return claims_frame([])
        t = pd.concat(parts, ignore_index=True)
        front = list(self.groups[0].key)
        return t[front + [c for c in t.columns if c not in front]]

    def verdicts_by_budget(self) -> pd.DataFrame:
        """Verdicts laid side by side per budget: one row per (task, model, successor_layers,
        claim, comparison), one column per budget, and `flips` (True when the verdicts differ
        across budgets, "inconclusive at n = ..." counted as one verdict). Empty when no group
        has a budget."""
        t = self.claims_table()
        if t.empty or t["budget"].isna().all():
            return pd.DataFrame()
        keys = ["task", "model", "successor_layers", "claim", "role", "comparison"]
        wide = t.pivot_table(index=keys, columns="budget", values="verdict", aggfunc="first", sort=False)
        wide.columns = [f"budget {b:g}" for b in wide.columns]
        kinds = wide.apply(lambda r: {str(v).split(" (")[0] for v in r.dropna()}, axis=1)
        wide = wide.assign(flips=kinds.map(len) > 1).reset_index()
        # A budget where a claim's arms did not run gives a placeholder row ("—", "not tested"): it
        # says nothing where the claim has real comparisons at other budgets (their cell is "—").
        placeholder = wide["comparison"] == "—"
        claim_of = pd.MultiIndex.from_frame(wide[keys[:5]])
        covered = claim_of.isin(claim_of[~placeholder.to_numpy()])
        return wide[~(placeholder.to_numpy() & covered)].reset_index(drop=True)

    @property
    def failed(self) -> pd.DataFrame:
        cols = [c for c in ("run_id", "task", "model", "arm", "seed", "student_seed",
                            "successor_layers", "budget", "error") if c in self.runs]
        return self.runs.loc[self.runs["status"] != "ok", cols]


def _frame(x: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if x is None else x.copy()


def _budgets(rows: pd.DataFrame, split: bool = False) -> list[float]:
    """The budgets to split a (task, model, successor_layers) group by: [NaN] unless its rows hold
    more than one distinct budget (or, with `split`, any budget)."""
    b = sorted(rows["budget"].dropna().unique())
    return b if len(b) > 1 or split and b else [np.nan]


def annotate_pairwise(pairwise: pd.DataFrame, results: list[ClaimResult]) -> pd.DataFrame:
    """The pairwise table with `claim` and `claim_p_adj`: for a pair that is one of the claims'
    mean comparisons (paired or Welch t, the pairwise table's primary test), the claim id and its
    Holm-adjusted p, so the same comparison shows the same adjusted p wherever it appears."""
    t = pairwise.copy()
    t["claim"], t["claim_p_adj"] = "", np.nan
    by_pair = {}
    for r in results:
        if r.decided_by in ("paired t", "Welch t", TASK_TEST) and r.b:
            by_pair.setdefault(frozenset((r.a, r.b)), []).append(r)
    for i, row in t.iterrows():
        hits = by_pair.get(frozenset((row["a"], row["b"])), [])
        if hits:
            t.at[i, "claim"] = ", ".join(r.claim for r in hits)
            t.at[i, "claim_p_adj"] = hits[0].p_adj
    return t


def analyze(runs: pd.DataFrame, epochs: pd.DataFrame | None = None,
            replacements: pd.DataFrame | None = None, *, n_boot: int = 10_000, seed: int = 0,
            margin: float = 1.0, examples: pd.DataFrame | None = None,
            primaries: dict[str, float] | None = None) -> Analysis:
    """Normalise the runs table and compute every table and claim per group.

    n_boot: resamples of the permutation tests (spread) and ASO's bootstrap is 1,000 whatever
    it is; seed: their random seed; margin: the equivalence margin (points) of "no better";
    examples: per-example results (columns run_id, example, correct, one row per run and test
    example: harness.store.examples.examples_table), joined to the runs by run_id; with them every
    mean comparison whose arms have them at every paired seed is tested at the task level
    (docs/method.md, "The unit of inference"); None: seed-only, today's numbers. primaries: claim id
    -> the budget its primary is tested at (a sweep's `primaries`): one family per (task, model,
    successor and predecessor size) across its budgets (module docstring); None: each group its own.
    """
    r = schema.normalize_runs(runs)
    ep = schema.to_percent(_frame(epochs), ("dev_accuracy", "dev_macro_f1"))
    rep = _frame(replacements)
    ex = tables.Examples.of(examples)
    specs = group_specs(r, split_budgets=primaries is not None)
    if primaries is None:
        # the primaries of every group are tested at alpha / G: the study's error rate, not each group's
        groups = [_group(*spec, ep, rep, n_boot=n_boot, seed=seed, margin=margin, n_groups=len(specs), examples=ex)
                  for spec in specs]
        return Analysis(r, ep, rep, groups, n_boot, seed, margin, ex, None, len(specs))
    families = family_specs(specs)
    groups = []
    for members in families.values():
        rows = pd.concat([m[-1] for m in members]).drop_duplicates("run_id")
        ids = set(rows["run_id"])
        results = evaluate_family(rows, primaries, rep[rep["run_id"].isin(ids)] if "run_id" in rep else rep,
                                  margin=margin, seed=seed, n_perm=n_boot, groups=len(families), examples=ex)
        budgets = [m[4] for m in members]
        unplaced = [row for b, rs in results.items() if b not in budgets for row in rs]  # a budget without runs
        for i, spec in enumerate(members):
            claims = results.get(spec[4], []) + (unplaced if i == 0 else [])
            groups.append(_group(*spec, ep, rep, n_boot=n_boot, seed=seed, margin=margin, n_groups=len(families),
                                 examples=ex, results=claims, declared=primaries))
    return Analysis(r, ep, rep, groups, n_boot, seed, margin, ex, dict(primaries), len(families))


def family_specs(specs: list[tuple]) -> dict[tuple, list[tuple]]:
    """group_specs' groups by family: (task, model, successor_layers, predecessor_layers) -> its groups
    (one per budget), for primaries declared per budget."""
    out: dict[tuple, list[tuple]] = {}
    for spec in specs:
        out.setdefault(tuple(spec[:4]), []).append(spec)
    return out


def group_specs(r: pd.DataFrame, split_budgets: bool = False) -> list[tuple]:
    """The groups of a normalised runs table (module docstring): per group (task, model,
    successor_layers, predecessor_layers, budget, its rows with the predecessor's). split_budgets:
    a group per budget even where a (task, model, successor size) has runs at one budget only
    (primaries declared per budget)."""
    specs = []
    for (task, model), tm in r.groupby(["task", "model"], sort=True):
        lp = tm["predecessor_layers"].max()
        sizes = sorted(tm["successor_layers"].dropna().unique())
        sizes = [s for s in sizes if not np.isfinite(lp) or s < lp] or sizes
        if tm["successor_layers"].isna().any():  # no finetune-k to infer the size from
            sizes.append(np.nan)
        pred = f"finetune-{int(lp)}" if np.isfinite(lp) else None
        for ls in sizes:
            same = tm["successor_layers"].isna() if np.isnan(ls) else tm["successor_layers"] == ls
            for budget in _budgets(tm[same & (tm["arm"] != pred)], split_budgets):
                in_budget = tm["budget"].isna() | (tm["budget"] == budget) if np.isfinite(budget) else True
                specs.append((task, model, float(ls), float(lp), float(budget),
                              tm[(same & in_budget) | (tm["arm"] == pred)].copy()))
    return specs


def _group(task, model, ls, lp, budget, g, ep, rep, *, n_boot, seed, margin, n_groups=1, examples=None,
           results: list[ClaimResult] | None = None, declared: dict[str, float] | None = None) -> Group:
    """One group's tables and claims; results: its claims when its family spans other groups too
    (evaluate_family's rows for its budget; declared: the family's claim -> budget), else evaluated here."""
    var = tables.variance_table(g)
    level = float(var["fine_tuning_level"].iloc[0]) if len(var) else np.nan
    g["below_level"] = g["test_accuracy"] < level
    base = (g["arm"] == tables.roles(g)[1]) & (g["status"] == "ok") & g["test_accuracy"].notna()
    if np.isfinite(level) and base.any():  # the baseline's own runs: against the other baseline runs' level
        x = g.loc[base, "test_accuracy"].to_numpy(float)
        g.loc[base, "below_level"] = stats.below_level(x, x, leave_one_out=True)
    ids = set(g["run_id"])
    gep = ep[ep["run_id"].isin(ids)] if "run_id" in ep else ep.iloc[0:0]
    grep = rep[rep["run_id"].isin(ids)] if "run_id" in rep else rep.iloc[0:0]
    if results is None:
        results = evaluate_claims(g, grep, margin=margin, seed=seed, n_perm=n_boot, groups=n_groups,
                                  examples=examples)
        decomposition = variance_decomposition(g, examples, margin=margin, groups=n_groups)
    else:  # only the primaries declared at this budget, each at the family's level
        decomposition = variance_decomposition(g, examples, claims=claims_at(CLAIMS, declared, budget), margin=margin,
                                               groups=n_groups, family_size=primary_family_size())
    return Group(task, model, ls, lp, budget, g, gep, grep, level, var,
                 annotate_pairwise(tables.pairwise_tests(g, seed=seed), results), tables.expected_max(g),
                 tables.performance_profile(g), tables.power_table(g), tables.variance_components(g), results,
                 decomposition)

