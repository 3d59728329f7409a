"""The training budget as an axis: per-budget summaries and where each claim's verdict holds.

A sweep with `budgets = [...]` holds every student arm at several budgets (student optimizer
steps), paired by seed across arms and budgets. These are pure functions over the tidy runs table
(one row per run, with `budget`, `degenerate` and `still_improving` columns, see
harness.records.run_diagnostics) and over the claim results of harness.claims, computed once per
(task, model, successor size, budget) group; the report and the plots only lay them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

GROUP = ["task", "model", "successor_layers"]


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
    percent after harness.stats.normalize_runs),
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


def where_it_holds(verdicts: pd.DataFrame) -> list[str]:
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
                per_task.append((label, cells))
        if not per_task:
            continue
        words = {w for _, cells in per_task for _, w in cells}
        compared = sorted({b for _, cells in per_task for b, _ in cells},
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
        for label, cells in per_task:
            text = ", ".join(f"{w} at {b}" for b, w in cells)
            changes = [f"{cells[i][0]} -> {cells[i + 1][0]}" for i in range(len(cells) - 1)
                       if cells[i][1] != cells[i + 1][1]]
            tail = f" (changes {'; '.join(changes)})" if changes else " (same at every budget)"
            parts.append(f"{label}: {text}{tail}" if len(per_task) > 1 else f"{text}{tail}")
        sentences.append(f"{subject}: " + "; ".join(parts) + f"{absent}.")
    return sentences
