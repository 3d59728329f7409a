"""The tuning section: the trials and the selected rate per arm, the expected best of k trials,
and the primary verdicts at the tuned and at the shared rate side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.groups import Analysis
from harness.report.format import md_table, rel
from harness.report.sections.primary import primary_verdicts


def _why(c) -> str:
    """Why an arm's rate was selected, from select_settings' candidate, gain and gain_se (points)."""
    if c is None:
        return "—"
    cand, gain, se = getattr(c, "candidate", np.nan), getattr(c, "gain", np.nan), getattr(c, "gain_se", np.nan)
    if not np.isfinite(gain):
        return "the best rate is the shared one" if np.isfinite(cand) else "—"
    kept = not np.isclose(c.lr, cand)
    return (f"{cand:g} {gain:+.2f} ± {se:.2f}: " + ("within one se, shared kept" if kept else "beyond one se"))


def tuning_section(a: Analysis, tuning: dict, infos: list, report_path: Path) -> str:
    """The tuning stage: the trials and the selected rate per arm, the expected best of k trials, and
    the primary verdicts at the tuned and at the shared rate side by side."""
    lrs, seeds = sorted(tuning["lrs"]), tuning["seeds"]
    out = [f"Every student arm tried the same {len(lrs)} learning rates ({', '.join(f'{x:g}' for x in lrs)}) on "
           f"tuning seeds {', '.join(map(str, seeds))}, which are never evaluation seeds. An arm keeps its shared "
           "(declared) rate unless the rate with the best mean dev accuracy beats it by more than one standard "
           "error of their difference paired by tuning seed (a difference inside its own noise picks noise; ties: "
           "the shared rate, then the smaller); the evaluation seeds ran at the selected and at the shared rate. "
           "Every verdict above is at the selected rates. Cells: mean dev accuracy (%) over the tuning seeds; "
           "**bold**: selected; *edge*: the selected rate is the grid's smallest or largest, so the grid may "
           "have been too narrow; *why*: the best rate's gain over the shared one on dev, ± its standard error.\n"]
    if not tuning.get("complete", True) or tuning.get("evaluated", 0) < tuning.get("to_evaluate", 0):
        out.append(f"**Incomplete:** {'the tuning stage is not finished (every arm needs every rate on every tuning seed); ' if not tuning.get('complete', True) else ''}"
                   f"{tuning.get('evaluated', 0)} of {tuning.get('to_evaluate', 0)} evaluation runs at the selected "
                   "rates are stored. The verdicts below cover what is stored and will move as the sweep goes on "
                   "(it resumes where it stopped).\n")
    sel, trials = tuning["selected"], tuning["trials"]
    for task, t in trials.groupby("task", sort=True):
        chosen = {r.arm: r for r in sel[sel["task"] == task].itertuples()}
        rows = []
        for arm, g in t.groupby("arm", sort=False):
            by = dict(zip(g["lr"], g["dev"]))
            c = chosen.get(arm)
            cells = {f"lr {x:g}": ("—" if x not in by else (f"**{by[x]:.2f}**" if c is not None and c.lr == x
                                                           else f"{by[x]:.2f}")) for x in lrs}
            rows.append({"arm": arm, **cells, "selected": "—" if c is None else f"{c.lr:g}"
                         + (" (edge)" if c.at_edge else ""), "why": _why(c),
                         "trials": str(int(g["n_seeds"].eq(len(seeds)).sum()))})
        out += [f"**{task}: tuning trials.**\n", md_table(pd.DataFrame(rows))]
    exp = tuning["expected"]
    if not exp.empty:
        out.append("**Expected best of k trials** (Dodge et al. 2019): the expected best mean dev accuracy among "
                   "k trials drawn with replacement from an arm's trials, and the expected test accuracy of that "
                   "trial (dev / test, %). The estimator is biased low for k near the number of trials (it repeats "
                   "trials; Tang et al. 2020), so the last column lies below the best trial.\n")
        for task, t in exp.groupby("task", sort=True):
            wide = t.assign(cell=[f"{d:.2f} / {x:.2f}" for d, x in zip(t["expected_dev"], t["expected_test"])]) \
                .pivot(index="arm", columns="k", values="cell")
            wide.columns = [f"k={k}" for k in wide.columns]
            out += [f"*{task}*\n", md_table(wide.reset_index())]
        fig = next((i for i in infos if i.name == "tuning_expected_best"), None)
        if fig is not None and not fig.skipped:
            out.append(f"![expected best dev accuracy against the number of trials]({rel(fig.paths[0], report_path)})\n")
    shared = tuning["shared"]
    tuned_t, shared_t = primary_verdicts(a), primary_verdicts(shared)
    if not tuned_t.empty and not shared_t.empty:
        groups = [c for c in tuned_t.columns if c not in ("claim", "primary comparison")]
        side = tuned_t[["claim", "primary comparison"]].copy()
        sentences = []
        def word(table: pd.DataFrame, g: str, i: int) -> str:
            return str(table[g].iloc[i]).split(" (")[0] if g in table else "—"
        for gcol in groups:
            side[f"{gcol}: tuned"] = tuned_t[gcol]
            side[f"{gcol}: shared"] = shared_t[gcol] if gcol in shared_t else "—"
        for i, claim in enumerate(side["claim"]):
            pending = ("not run", "not testable") if tuning.get("evaluated", 0) < tuning.get("to_evaluate", 0) \
                else ("not run",)  # while the evaluation stage runs, too few runs is no verdict yet
            waiting = [g for g in groups if word(tuned_t, g, i) in pending and word(shared_t, g, i) not in pending]
            changed = [g for g in groups if g not in waiting and word(tuned_t, g, i) != word(shared_t, g, i)]
            text = ("the same verdict at the tuned and the shared rate" if not changed else
                    "tuning changes the verdict at " + "; ".join(
                        f"{g} ({word(shared_t, g, i)} at the shared rate -> {word(tuned_t, g, i)} tuned)"
                        for g in changed))
            if len(waiting) == len(groups):
                text = f"not yet run at the tuned rate ({', '.join(waiting)})"
            elif waiting:
                text += f" (not yet run at the tuned rate: {', '.join(waiting)})"
            sentences.append(f"- Claim {claim}: {text}.")
        out += ["**Primary verdicts at the tuned and at the shared rate** (the shared rate: the sensitivity row; "
                "whether the rate changes a comparison is tested, rate x arm paired by seed, on the findings page, "
                "report/README.md).\n",
                md_table(side), *sentences, ""]
    return "\n".join(out)
