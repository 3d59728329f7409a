"""The training budget as an axis: per-budget summaries and where each claim's verdict holds.

A sweep with `budgets = [...]` holds every student arm at several budgets (student optimizer
steps), paired by seed across arms and budgets. These are pure functions over the tidy runs table
(one row per run, with `budget`, `degenerate` and `still_improving` columns, see
harness.store.records.run_diagnostics) and over the claim results of harness.analysis.claims, computed once per
(task, model, successor size, budget) group; the report and the plots only lay them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from harness.analysis import inference, stats, tables

GROUP = ["task", "model", "successor_layers"]
DECISIONS = ("supported", "contradicted", "equivalent")  # the verdicts that decide a comparison


def has_budget_axis(runs: pd.DataFrame) -> bool:
    """True when the runs hold more than one budget (a single-budget sweep reports as before)."""
    return "budget" in runs.columns and runs["budget"].dropna().nunique() > 1


def _count(values: pd.Series) -> tuple[int, int]:
    """(true count, known count) of a boolean column that may hold missing values."""
    known = values.dropna()
    return int(known.astype(bool).sum()), int(len(known))


def budget_summary(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per (task, model, successor_layers, arm, budget) of the successful student runs.

    Columns: n, mean, std and the t interval of the mean of test accuracy (in the table's units:
    percent after harness.analysis.schema.normalize_runs),
    degenerate / still_improving counts out of the runs where each is known (n_degenerate_known,
    n_improving_known), mean optimizer steps and mean wall seconds per run.
    """
    ok = runs[(runs["status"] == "ok") & runs["budget"].notna()]
    rows = []
    for key, g in ok.groupby(GROUP + ["arm", "budget"], sort=True, dropna=False):
        x = g["test_accuracy"].dropna().to_numpy(float)
        n = len(x)
        mean = float(np.mean(x)) if n else np.nan
        sd = float(np.std(x, ddof=1)) if n > 1 else np.nan
        half = float(st.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)) if n > 1 else np.nan
        deg, deg_known = _count(g["degenerate"]) if "degenerate" in g else (0, 0)
        imp, imp_known = _count(g["still_improving"]) if "still_improving" in g else (0, 0)
        rows.append({**dict(zip(GROUP + ["arm", "budget"], key)), "n": n, "mean": mean, "std": sd,
                     "ci_low": mean - half, "ci_high": mean + half,
                     "degenerate": deg, "n_degenerate_known": deg_known,
                     "still_improving": imp, "n_improving_known": imp_known,
                     "steps": float(g["steps"].mean()) if "steps" in g else np.nan,
                     "wall_seconds": float(g["wall_seconds"].mean()) if "wall_seconds" in g else np.nan})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["budget"] = out["budget"].astype(int)
    return out


def _head(verdict: str) -> str:
    """The verdict's word without its note ("inconclusive at n = 5" -> "inconclusive", "not
    testable: 5 of 5 runs degenerate" -> "not testable")."""
    return str(verdict).split(" at n")[0].split(" (")[0].split(":")[0]


def _budget_text(column: str) -> str:
    """"budget 1512" -> "1,512 steps"."""
    return f"{int(float(column.split()[-1])):,} steps"


def interactions(runs: pd.DataFrame, claims: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The budget x arm interaction of every primary mean comparison, paired by seed.

    runs: the normalised runs table (budget column); claims: Analysis.claims_table(). For each
    (task, model, successor_layers, claim) whose primary compares means (unit "points") and each
    pair of adjacent budgets, d_B(seed) = a - b at budget B: the mean over seeds of
    d_B1 - d_B2 with its t interval and p (inference.paired_interaction). One Holm family: every
    interaction test of the table (they decide "the verdict changes with the budget", nothing else).
    Columns: task, model, successor_layers, claim, comparison, budgets ("189 -> 567"), estimate,
    ci_low, ci_high, p, p_adj, n."""
    cols = GROUP + ["claim", "comparison", "budgets", "estimate", "ci_low", "ci_high", "p", "p_adj", "n"]
    prim = claims[(claims["role"] == "primary") & (claims["unit"] == "points") & claims["budget"].notna()]
    rows = []
    for (task, model, ls, claim), g in prim.groupby(GROUP + ["claim"], sort=False):
        a, b = g["a"].iloc[0], g["b"].iloc[0]
        budgets = sorted(g["budget"].unique())
        here = runs[(runs["task"] == task) & (runs["model"] == model) & (runs["status"] == "ok")]

        def diffs(budget):
            at = here[(here["budget"] == budget) | here["budget"].isna()]
            return tables.arm_runs(at, a).per_seed() - tables.arm_runs(at, b).per_seed()
        for b1, b2 in zip(budgets, budgets[1:]):
            d1, d2 = diffs(b1).dropna(), diffs(b2).dropna()
            seeds = sorted(set(d1.index) & set(d2.index))
            r = inference.paired_interaction(d1.loc[seeds].to_numpy(), d2.loc[seeds].to_numpy(), alpha)
            rows.append({"task": task, "model": model, "successor_layers": ls, "claim": claim,
                         "comparison": g["comparison"].iloc[0], "budgets": f"{b1:g} -> {b2:g}",
                         "estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p, "n": r.n})
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "p_adj"])
    out["p_adj"] = stats.holm(out["p"].to_numpy(float)) if len(out) else []
    return out[cols]


def where_it_holds(verdicts: pd.DataFrame, interaction: pd.DataFrame | None = None,
                   alpha: float = 0.05) -> list[str]:
    """One sentence per (claim, comparison) of analysis.Analysis.verdicts_by_budget (rows: task,
    model, successor_layers, claim, comparison; one "budget B" column per budget): the same verdict
    at every task and budget, or the verdicts per task with the budgets where they change; budgets
    where the comparison could not be made (no runs there yet) are named. Verdicts are compared by
    their word (supported, contradicted, inconclusive, ...)."""
    if verdicts.empty:
        return []
    columns = [c for c in verdicts.columns if str(c).startswith("budget ")]
    sentences = []
    for (claim, comparison), rows in verdicts.groupby(["claim", "comparison"], sort=False):
        if comparison == "—":  # a claim's placeholder row where none of its comparisons could be made
            continue
        per_task = []  # (task label, [(budget text, word), ...])
        for _, row in rows.iterrows():
            cells = [(_budget_text(c), _head(row[c])) for c in columns if isinstance(row[c], str)]
            if cells:
                label = row["task"] if rows["task"].nunique() == len(rows) else \
                    f"{row['task']} {row['model']} {row['successor_layers']:g}"
                per_task.append((label, cells, row))
        if not per_task:
            continue
        words = {w for _, cells, _ in per_task for _, w in cells}
        compared = sorted({b for _, cells, _ in per_task for b, _ in cells},
                          key=lambda b: int(b.split()[0].replace(",", "")))
        missing = [_budget_text(c) for c in columns if _budget_text(c) not in compared]
        absent = f" (not compared at {', '.join(missing)}: no runs there)" if missing else ""
        subject = f"Claim {claim} ({comparison})"
        if len(words) == 1:
            where = ("every budget" + (" and task" if len(per_task) > 1 else "")) if not missing else \
                ", ".join(compared)
            sentences.append(f"{subject}: {words.pop()} at {where}{absent}.")
            continue
        parts = []
        for label, cells, row in per_task:
            text = ", ".join(f"{w} at {b}" for b, w in cells)
            changes = [i for i in range(len(cells) - 1) if cells[i][1] != cells[i + 1][1]]
            if not changes:
                tail = " (same at every budget)"
            elif not any(w.split(" within")[0] in DECISIONS for _, w in cells):
                tail = " (no decision at any budget)"
            else:
                tail = " (" + _interaction_text(interaction, row, claim, alpha) + ")"
            parts.append(f"{label}: {text}{tail}" if len(per_task) > 1 else f"{text}{tail}")
        sentences.append(f"{subject}: " + "; ".join(parts) + f"{absent}.")
    return sentences


def _interaction_text(interaction: pd.DataFrame | None, row, claim: str, alpha: float) -> str:
    """Whether a verdict that differs across budgets rests on evidence: the budget x arm interaction
    of that comparison (Holm over the report's interaction tests), or why there is none."""
    if interaction is None or interaction.empty:
        return "no interaction test for this comparison: the words differ, the evidence is not tested"
    hit = interaction[(interaction["task"] == row["task"]) & (interaction["model"] == row["model"])
                      & (interaction["successor_layers"] == row["successor_layers"]) & (interaction["claim"] == claim)]
    if hit.empty:
        return "no interaction test for this comparison: the words differ, the evidence is not tested"
    sig = hit[hit["p_adj"] < alpha]
    if sig.empty:
        return ("no evidence the budget matters: budget x arm interaction adjusted p "
                + ", ".join(f"{r.budgets} {_p(r.p_adj)}" for r in hit.itertuples()))
    return ("the verdict changes with the budget: budget x arm interaction "
            + ", ".join(f"{r.budgets} {r.estimate:+.2f} points, adjusted p {_p(r.p_adj)}" for r in sig.itertuples()))


def _p(p: float) -> str:
    return "—" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
