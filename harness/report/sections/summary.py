"""The summary: per group its headline facts (predecessor, baseline, failures, the fine-tuning
level, a short-budget warning) and one line per claim with its verdicts counted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.claims import CLAIMS
from harness.analysis.groups import Analysis, Group
from harness.analysis.stats import LEVEL_SDS
from harness.arms import THESEUS
from harness.report.format import difference, fmt_p, num


def _counts(values) -> str:
    """'3 of 4 contradicted, 1 of 4 inconclusive' (sample-size notes dropped)."""
    s = pd.Series(list(values), dtype=object).str.replace(r" at n = .*", "", regex=True)
    return ", ".join(f"{n} of {len(s)} {v}" for v, n in s.value_counts().items())


def _headlines(g: Group) -> list[str]:
    """Short sentences with the group's headline facts and one per claim."""
    v = g.variance.set_index("arm")
    out = []
    for role in ("predecessor", "baseline"):
        x = g.variance[g.variance["role"] == role]
        if len(x):
            x = x.iloc[0]
            out.append(f"The {role} {x['arm']} scores {num(x['mean'])} (sd {num(x['std'])}, n = {x['n']}).")
    known = v[v["n_degenerate_known"] > 0]
    if known.empty:
        out.append("Which runs failed is unknown here (no `degenerate` column).")
    else:
        deg = known[known["n_degenerate"] > 0]
        for fam, d in deg.groupby("family", sort=False):
            out.append(f"{int(d['n_degenerate'].sum())} of {int(d['n_degenerate_known'].sum())} {fam} runs "
                       "failed: their test predictions collapsed, Cohen's kappa < 0.2 (" + ", ".join(
                           f"{a} {int(r.n_degenerate)}/{int(r.n_degenerate_known)}" for a, r in d.iterrows()) + ").")
        others = known[known["n_degenerate"] == 0]
        if len(others):
            out.append("No run of any other arm did." if len(deg) else "No run failed (predictions collapsed).")
    students = g.variance[(g.variance["role"] != "predecessor") & (g.variance["n"] > 0)]
    if len(students):
        best = students.loc[students["mean"].idxmax()]
        out.append(f"The highest mean below the predecessor: {best['arm']} {num(best['mean'])}"
                   + (f" ({num(best['gap_to_baseline'], sign=True)} over the baseline)."
                      if np.isfinite(best["gap_to_baseline"]) else "."))
    if np.isfinite(g.level):
        th = v[v["family"].isin(THESEUS)]
        base = g.variance[g.variance["role"] == "baseline"].iloc[0]
        out.append(f"Fine-tuning level = {num(g.level)} ({base['arm']} mean − {LEVEL_SDS:g} sd): "
                   f"{int(th['n_below_level'].sum())} of {int(th['n'].sum())} Theseus runs fall below it, "
                   f"{int(base['n_below_level'])} of {int(base['n'])} {base['arm']} runs.")
    out += _budget_warning(g)
    return out


def _budget_warning(g: Group) -> list[str]:
    """A sentence when the budget looks short of convergence: a quarter or more of the student runs,
    or half or more of one arm's runs, were still improving when training stopped
    (harness.training.diagnostics.still_improving). Arms with half or more of their runs still improving are
    named as under-trained at this budget."""
    if "still_improving" not in g.runs:
        return []
    predecessor = set(g.variance.loc[g.variance["role"] == "predecessor", "arm"])
    r = g.runs[(g.runs["status"] == "ok") & ~g.runs["arm"].isin(predecessor)]
    known = r["still_improving"].dropna().astype(bool)
    if len(known) == 0:
        return []
    share = r.dropna(subset=["still_improving"]).groupby("arm")["still_improving"].agg(
        lambda s: (int(s.astype(bool).sum()), len(s)))
    under = [a for a, (k, n) in share.items() if 2 * k >= n]
    if not under and known.mean() < 0.25:
        return []
    return [f"**Short budget:** {int(known.sum())} of {len(known)} student runs were still improving when "
            "training stopped (dev accuracy up by more than half a point over the last 20% of the last "
            "phase's steps: "
            + ", ".join(f"{a} {k}/{n}" for a, (k, n) in share.items()) + "). "
            + (f"Under-trained at this budget: {', '.join(under)} (half or more of their runs still "
               "improving); their verdicts may move with more steps. " if under else "")
            + "The verdicts below hold at this budget only; a sweep with `budgets = [...]` shows where they "
            "change (`python -m harness run-all --preset budget`, committed as `report/budget.md`)."]


def claim_lines(g: Group) -> list[str]:
    """One bullet per claim: its title and its verdicts counted over its comparisons."""
    c, out = g.claims_table(), []
    for claim in CLAIMS:
        rows = c[c["claim"] == claim.id]
        if rows.empty:
            continue
        prim, expl = rows[rows["role"] == "primary"], rows[rows["role"] != "primary"]
        parts = []
        for r in prim.itertuples():
            parts.append(r.verdict + (f" ({r.comparison}: {difference(r)}, adjusted p {fmt_p(r.p_adj)})"
                                      if np.isfinite(r.estimate) else f" ({r.comparison})"))
        if len(expl):
            parts.append(f"exploratory: {_counts(expl['verdict'])}")
        out.append(f"- **{claim.id}** {claim.title}: {'; '.join(parts)}.")
    return out


def dirty_commits(meta: dict | None) -> list[str]:
    """The git commits of the runs (meta git_commits, provenance.git_commit) that carry the
    "-dirty" suffix: made from a working tree with uncommitted changes."""
    meta = meta or {}
    commits = meta.get("git_commits") or []
    commits = [commits] if isinstance(commits, str) else list(commits)
    commits.append((meta.get("provenance") or {}).get("git_commit") or "")
    commits.append(meta.get("git_commit") or "")
    return sorted({str(c) for c in commits if str(c).endswith("-dirty")})


def dirty_details(meta: dict | None) -> str:
    """What a report says of runs made from a dirty tree: how many, and which uncommitted files their
    records list, with whether any is the harness package's code (the code that computes a run's numbers);
    empty when the meta has no such figures."""
    d = (meta or {}).get("git_dirty") or {}
    if not d.get("runs"):
        return ""
    files = d.get("files") or {}
    code = [f for f in files if f.startswith("harness/") and f.endswith(".py")]
    out = f"{d['runs']} of {d['of']} runs were made from a dirty tree"
    if files:
        out += ("; their uncommitted files: " + ", ".join(f"`{f}` ({n})" for f, n in files.items())
                + ("; " + (f"{len(code)} of them are the harness's own code, so those runs' code is not a commit"
                           if code else "none is the harness package's code (`harness/*.py`)")))
    if d.get("unlisted"):
        out += f"; {d['unlisted']} run(s) predate records listing the changed files"
    return out + "."


def summary(a: Analysis, meta: dict) -> str:
    r = a.runs
    ok = r[r["status"] == "ok"]
    per_arm = ok.groupby(["task", "model", "successor_layers", "arm"], dropna=False).size()
    lo, hi = (int(per_arm.min()), int(per_arm.max())) if len(per_arm) else (0, 0)
    out = [f"{len(ok)} successful runs ({int((r['status'] != 'ok').sum())} failed), {r['arm'].nunique()} arms, "
           f"{lo if lo == hi else f'{lo}–{hi}'} seeds per arm, {len(a.groups)} group(s). Accuracy is test "
           f"accuracy (%) at the best-dev epoch.\n"]
    dirty = dirty_commits(meta)
    if dirty:
        out.append(f"**Provenance warning:** the runs were made from a dirty working tree "
                   f"({', '.join(f'`{c}`' for c in dirty)}): the code that produced them is not a commit.\n")
    retrained = (meta or {}).get("predecessor_mismatch") or []
    if retrained:
        seeds = sorted({(m["task"], m["seed"]) for m in retrained})
        out.append(f"**Provenance warning:** {len(retrained)} student run(s) used a predecessor retrained after its "
                   "stored record was made (its cache was missing, e.g. on another machine), whose test accuracy "
                   "differs from the stored record's: " + "; ".join(
                       f"{t} seed {sd}" for t, sd in seeds) + ". Those students are paired by seed with runs that "
                   "used the stored predecessor; the list is in the report's metadata (predecessor_mismatch).\n")
    for g in a.groups:
        out.append(f"**{g.label}.** " + " ".join(_headlines(g)) + "\n")
        if len(a.groups) <= 2:  # with more, each claim's line per group is in Claims
            out.append("\n".join(claim_lines(g)) + "\n")
    return "\n".join(out)
