"""The training-budget section: accuracy against budget, where each primary verdict holds, the
arm x budget table and the budget x arm interactions (harness.analysis.budget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.budget import GROUP as BUDGET_GROUP
from harness.analysis.budget import budget_summary, interactions, where_it_holds
from harness.analysis.groups import Analysis
from harness.report.format import difference, fmt_p, md_table, rel


def _cell_text(row) -> str:
    """mean ± sd (n) of one arm at one budget, then its degenerate and still-improving counts."""
    sd = "" if not np.isfinite(row["std"]) else f" ± {row['std']:.2f}"
    marks = []
    if row["degenerate"]:
        marks.append(f"{int(row['degenerate'])}/{int(row['n_degenerate_known'])} failed")
    if row["still_improving"]:
        marks.append(f"{int(row['still_improving'])}/{int(row['n_improving_known'])} improving")
    return f"{row['mean']:.2f}{sd} (n={int(row['n'])})" + (f"; {', '.join(marks)}" if marks else "")


def budget_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per arm, one column per budget: the cells of `_cell_text` (one group's summary)."""
    wide = summary.assign(cell=summary.apply(_cell_text, axis=1)).pivot(index="arm", columns="budget",
                                                                        values="cell")
    wide.columns = [f"{int(b):,} steps" for b in wide.columns]
    return wide.reset_index().fillna("—")


def budget_section(a: Analysis, infos: list, report_path: Path, sequential: bool = False) -> str:
    """The budget axis first: accuracy against budget per group, where each claim holds, the
    verdicts by budget, and per group the arm x budget table with failure and convergence counts.
    sequential: the report's verdicts are a sequential study's, so "where each verdict holds" says it
    reads every stored run as a fixed design."""
    summary = budget_summary(a.runs)
    students = a.runs[a.runs["budget"].notna()]
    every = bool(len(students)) and (students.groupby(["task", "model", "successor_layers", "arm"])["budget"].nunique()
                                     == students["budget"].nunique()).all()
    out = [("Every student arm ran at each budget" if every else
            "Each student arm ran at its own budgets (those its primaries are tested at; a dash: not run there)")
           + " (student optimizer steps: a Theseus phase and its successor phase together); the predecessor "
           "trained once per seed at its own length and is shared by every budget, so runs are paired by seed across arms and budgets. *failed*: "
           "the test predictions collapsed (Cohen's kappa against the labels below 0.2); *improving*: dev accuracy still rising "
           "over the last 20% of the run's last phase (a longer budget would likely help; for a Theseus "
           "arm with a successor phase that is the successor phase: whether its Theseus phase was long "
           "enough shows only across budgets).\n"]
    panel = next((i for i in infos if i.name == "accuracy_vs_budget_panels"), None)
    if panel is not None and not panel.skipped:
        out.append(f"![test accuracy against budget]({rel(panel.paths[0], report_path)})\n")
    flips = a.verdicts_by_budget()
    inter = interactions(a.runs, a.claims_table())
    primary = flips[flips["role"] == "primary"] if "role" in flips else flips
    sentences = where_it_holds(primary, inter)
    if sentences:
        out.append("**Where each primary verdict holds.** A verdict is said to change with the budget only where "
                   "the budget x arm interaction (the seed-paired difference between two budgets of the paired "
                   "differences) is significant, Holm over every interaction test of this report (a family of "
                   f"its own: {len(inter)} tests); the exploratory comparisons' verdicts by budget are in "
                   "`tables/verdicts_by_budget.csv`."
                   + (" These verdicts read all the stored runs as a fixed design; the study's own verdicts are "
                      "its sequential ones above." if sequential else "") + "\n")
        out += [f"- {x}" for x in sentences] + [""]
    for key, g in summary.groupby(BUDGET_GROUP, sort=False):
        task, model, ls = key
        pred = a.runs[(a.runs["task"] == task) & (a.runs["model"] == model) & a.runs["budget"].isna()
                      & (a.runs["status"] == "ok")]
        ref = ""
        if len(pred):
            p = pred.groupby("arm")["test_accuracy"].agg(["mean", "std", "size"])
            ref = " Predecessor (own fixed length): " + ", ".join(
                f"{arm} " + _cell_text({**r, "n": r["size"], "degenerate": 0, "still_improving": 0})
                for arm, r in p.iterrows()) + "."
        out.append(f"**{task} / {model}, {ls:g} layers: test accuracy (%) by budget.**{ref}\n")
        out.append(md_table(budget_table(g)))
    if not inter.empty:
        out.append("**Budget x arm interactions of the primary mean comparisons** (points; positive: the "
                   "difference A − B is larger at the smaller budget).\n")
        out.append(md_table(inter.assign(estimate=[difference(r) for r in inter.assign(
            unit="points", ci_level=0.95).itertuples()], p=[fmt_p(x) for x in inter["p"]],
            p_adj=[fmt_p(x) for x in inter["p_adj"]]).drop(columns=["ci_low", "ci_high", "model"])))
    return "\n".join(out)
