"""The learning-rates section of a study whose rates come from tuning stages run as their own sweeps
(its `reuse` stores, e.g. the reproduce study and reproduce-tune-567 / -189): each arm's rate on each
task and budget as its runs trained, and why, read from the tuning stage's one-SE selection
(analysis/tuning.py, select_settings), recomputed from that store's records, never from a stored table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.format import md_table
from harness.report.sections.tuning import _why

GROUP = ["task", "model", "successor_layers", "budget", "arm"]


def tuning_selections(config: dict | None, results_root: Path, say=print) -> dict[str, pd.DataFrame]:
    """The one-SE selections of the tuning stages a sweep reuses: store name -> select_settings's table,
    for every `reuse` store beside this one whose sweep has a [tuning] stage (an absent store is named
    and skipped)."""
    from harness.report.pipeline import load_store

    out = {}
    for name in (config or {}).get("reuse") or []:
        path = Path(results_root) / name
        if not (path / "runs").is_dir():
            say(f"learning rates: the reused store {path} is absent; its selections are not stated")
            continue
        store = load_store(path, say=lambda *_: None, look_states=False)
        if store["tuning"] is not None:
            out[name] = store["tuning"]["selected"]
    return out


def rates_table(runs: pd.DataFrame, selections: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per student arm, task and budget of `runs`: the rate(s) its runs trained at, the tuning
    stage that selected a rate for it and that rate, why (the best rate's gain over the declared one on
    dev, ± its standard error), and whether the runs' rate is the selected one."""
    students = runs[(runs["status"] == "ok") & (runs["successor_layers"] != runs["predecessor_layers"])]
    chosen = {}
    for name, table in selections.items():
        for r in table.itertuples():
            budget = None if pd.isna(r.budget) else int(r.budget)
            chosen[(r.task, r.model, int(r.successor_layers), budget, r.arm)] = (name, r)
    rows = []
    for key, g in students.groupby(GROUP, sort=True, dropna=False):
        task, model, ls, budget, arm = key
        budget = None if pd.isna(budget) else int(budget)
        used = sorted(float(x) for x in g["lr"].dropna().unique())
        source, c = chosen.get((task, model, int(ls), budget, arm), (None, None))
        agrees = c is not None and len(used) == 1 and np.isclose(used[0], c.lr)
        rows.append({"task": task, "budget": "—" if budget is None else str(budget), "arm": arm,
                     "lr of its runs": ", ".join(f"{x:g}" for x in used),
                     "selected by": source or "—", "selected lr": "—" if c is None else f"{c.lr:g}"
                     + (" (edge)" if bool(getattr(c, "at_edge", False)) else ""),
                     "why": _why(c), "runs at the selection": "—" if c is None else ("yes" if agrees else "**no**")})
    return pd.DataFrame(rows)


def rates_section(runs: pd.DataFrame, selections: dict[str, pd.DataFrame]) -> str:
    """The section's markdown: a sentence on the rule, then the table."""
    table = rates_table(runs, selections)
    if table.empty:
        return ""
    stages = ", ".join(f"`{n}`" for n in selections) or "none stored"
    off = int((table["runs at the selection"] == "**no**").sum())
    return "\n".join([
        f"Each arm's learning rate was chosen before this study by its tuning stage ({stages}): every arm "
        "tried the same rates on tuning seeds that are never evaluation seeds, and kept its declared rate "
        "unless another beat it on dev by more than one standard error of their seed-paired difference "
        "(a choice inside its own noise picks noise). *why*: the best rate's gain over the declared one on "
        "dev (points), ± its standard error; *edge*: the selection is the grid's smallest or largest rate.\n",
        md_table(table),
        *([f"**{off} arm(s) ran at another rate than their tuning stage selected**: their verdicts are not "
           "at the selected rates.\n"] if off else []),
    ])
