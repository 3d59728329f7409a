"""The markdown report, the CSV tables and the report index (docs/method.md, "Reports").

Consumes analysis.analyze (harness.analysis.stats + harness.analysis.claims) and plots.plot_all; computes nothing of
its own beyond formatting, counting verdicts for the summary sentences, and the join of our means
with the seed's fixed reference numbers (docs/method.md, "Reports").

Order: the answer first (the primary verdicts in one table: claim x group), then the summary
sentences, the training budget where there are several, the figures, one section per claim, the
seed's numbers, and an appendix with every comparison, everything per arm and pairwise (the CSVs
under tables/ hold every pair and every sensitivity check at full precision).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import sequential
from harness.analysis.budget import GROUP as BUDGET_GROUP
from harness.analysis.budget import budget_summary, has_budget_axis, interactions, where_it_holds
from harness.analysis.claims import CLAIMS, PRIMARY_CLAIMS, QUESTIONS
from harness.analysis.groups import Analysis, Group
from harness.analysis.stats import ALPHA, ASO_THRESHOLD, LEVEL_SDS
from harness.arms import THESEUS

SECTIONS = ("Summary", "Figures", "Claims", "Reference numbers from the seed", "Appendix",
            "Failed runs", "Provenance")
APPENDIX_SUBSECTIONS = ("Every comparison (primary and exploratory)", "Per arm: accuracy, failures, fine-tuning level",
                        "Sensitivity checks of the claims' mean comparisons",
                        "Expected best-of-n accuracy (Dodge et al.)", "Seeds for 80% power",
                        "Variance components", "More figures")
SUMMARY_FIGURES = {"accuracy": "test accuracy per arm, every run a dot (crosses: failed runs)",
                   "profile": "performance profile: share of runs at or above each accuracy",
                   "claims": "claims: every comparison's estimate and interval, coloured by verdict",
                   "stability": "failures per arm and spread of the working runs"}
MORE_FIGURES = {"forest": "mean and 95% t interval per arm",
                "significance": "pairwise raw p (exploratory) and ASO eps_min",
                "dev_curves": "successor-only dev accuracy per epoch",
                "replacements": "replacements per module per epoch (red: failed runs)",
                "expected_max": "expected test accuracy of the best-by-dev run among n seeds"}

# the seed's numbers, CLUE iflytek dev accuracy (%) with bert-base-chinese (12 layers)
SEED_REFERENCE = pd.DataFrame([
    ("predecessor (direct fine-tune, all layers)", 1, 12, 60.11),
    ("direct fine-tune, first L_s layers", 2, 6, 58.99),
    ("direct fine-tune, first L_s layers", 4, 3, 57.96),
    ("Theseus (proportional add)", 2, 6, 59.7),
    ("Theseus (proportional add)", 4, 3, 59.5),
], columns=["setting", "compression_ratio", "layers", "dev_accuracy"])
TABLES = ("claims", "variance", "pairwise", "sensitivity", "expected_max", "profile", "power",
          "variance_components", "runs")


# ---------------------------------------------------------------- formatting

INT_COLUMN = re.compile(r"^(n|N|n_.*|seed|.*_seed|.*seeds.*|.*layers|.*epoch|module|compression_ratio|left_out)$")

def _cell(col: str, v) -> str:
    """Display form of one value: p-values to 3 decimals ("<0.001"), counts as integers, other
    numbers to 2 decimals, NaN as an em dash."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, float, np.integer, np.floating)):
        if col.endswith("_p") or col.endswith("_holm") or col.endswith("p_adj") or col == "p":
            return "<0.001" if v < 0.001 else f"{v:.3f}"
        if INT_COLUMN.match(col) and float(v).is_integer():
            return str(int(v))
        return f"{v:.2f}" if np.isfinite(v) else ("∞" if v > 0 else "-∞")
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame, columns: dict[str, str] | None = None) -> str:
    """Markdown table of df; `columns` maps column -> header (and selects/orders them)."""
    if df is None or df.empty:
        return "_(none)_\n"
    columns = columns or {c: c for c in df.columns}
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(columns[c] for c in cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_cell(c, r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines) + "\n"


def _ci(df: pd.DataFrame, lo: str, hi: str, name: str) -> pd.DataFrame:
    df = df.copy()
    df[name] = [f"{_cell('x', a)} – {_cell('x', b)}" if not np.isnan([a, b]).any() else "—"
                for a, b in zip(df[lo].astype(float), df[hi].astype(float))]
    return df


def render_meta(meta, indent: int = 0) -> list[str]:
    """Nested dict / list provenance as a readable nested bullet list."""
    pad, out = "  " * indent, []
    items = meta.items() if isinstance(meta, dict) else enumerate(meta)
    for k, v in items:
        key = f"**{k}**: " if isinstance(meta, dict) else ""
        if isinstance(v, dict) and v and not isinstance(meta, dict) and not any(
                isinstance(x, (list, tuple)) or isinstance(x, dict) and any(isinstance(y, (dict, list, tuple))
                                                                            for y in x.values())
                for x in v.values()):  # a list item of scalars and flat tables (an arm): one line
            out.append(f"{pad}- " + "; ".join(
                f"**{a}**: `{', '.join(f'{c}={d}' for c, d in b.items()) if isinstance(b, dict) else b}`"
                for a, b in v.items()))
        elif isinstance(v, dict) and v:
            out += [f"{pad}- {key}".rstrip()] + render_meta(v, indent + 1)
        elif isinstance(v, (list, tuple)) and v and any(isinstance(x, (dict, list)) for x in v):
            out += [f"{pad}- {key}".rstrip()] + render_meta(list(v), indent + 1)
        elif isinstance(v, (list, tuple)):
            out.append(f"{pad}- {key}{', '.join(f'`{x}`' for x in v) or '_(empty)_'}")
        elif isinstance(v, str) and "\n" in v:
            out += [f"{pad}- {key}", f"{pad}  ```", *[f"{pad}  {x}" for x in v.splitlines()], f"{pad}  ```"]
        else:
            out.append(f"{pad}- {key}`{v}`")
    return out


# ---------------------------------------------------------------- sections

def _rel(path: Path, report_path: Path) -> str:
    return Path(os.path.relpath(path, report_path.parent)).as_posix()


def _figure(infos: dict, group: Group, name: str, report_path: Path, caption: str) -> str:
    info = infos.get((group.label, name))
    if info is None or info.skipped:
        return f"_{caption}: not drawn ({info.skipped if info else 'not requested'})._\n"
    return f"![{caption}]({_rel(info.paths[0], report_path)})\n"


def _p(p: float) -> str:
    return "—" if p is None or not np.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _num(x: float, d: int = 2, sign: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "—" if x is None or np.isnan(x) else ("∞" if x > 0 else "−∞")
    return (f"{x:+.{d}f}" if sign else f"{x:.{d}f}").replace("-", "−")


def _difference(r) -> str:
    """'+1.03 (−0.07 to 2.13)' for one claims row, the unit and a non-95% level spelled out."""
    if not np.isfinite(r.estimate):
        return "—"
    ratio = r.unit == "sd ratio"
    d = 0 if r.unit == "percentage points" else 2
    unit = {"points": "", "percentage points": " pp", "sd ratio": "×"}.get(r.unit, f" {r.unit}")
    ci = (f" ({_num(r.ci_low, d, sign=not ratio and r.ci_low < 0)} to {_num(r.ci_high, d)}"
          + ("" if r.ci_level == 0.95 else f", {r.ci_level:.0%} CI") + ")")
    if not np.isfinite([r.ci_low, r.ci_high]).any():
        ci = " (interval not bounded at this n)"
    elif not np.isfinite([r.ci_low, r.ci_high]).all():
        ci = ci.replace("—", "not bounded")
    return f"{_num(r.estimate, d, sign=not ratio)}{unit}{ci}"


def claims_display(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as the report shows it: claim, role, comparison, difference (CI), adjusted
    p, verdict, smallest attainable adjusted p, seeds needed, n, test."""
    return pd.DataFrame({
        "claim": table["claim"], "role": table["role"].replace({"secondary": "exploratory"}),
        "comparison": table["comparison"], "difference": [_difference(r) for r in table.itertuples()],
        "adjusted p": [_p(p) for p in table["p_adj"]], "verdict": table["verdict"],
        "smallest attainable adjusted p": [_p(p) for p in table["min_p_adj"]],
        "seeds needed": ["—" if not np.isfinite(x) else f"{int(x)}" for x in table["seeds_needed"]],
        "n": table["n"], "test": table["decided_by"]})


def _short_verdict(r) -> str:
    """One cell of the primary-verdicts table: the verdict, the estimate and the adjusted p."""
    if r.verdict == "no information":
        return f"no information ({r.note.rsplit(': ', 1)[-1]})" if r.note else r.verdict
    if not np.isfinite(r.estimate):
        return r.verdict
    pp = r.unit == "percentage points"
    tail = f"{_num(r.estimate, 0 if pp else 2, sign=True)}{' pp' if pp else ''}, p_adj {_p(r.p_adj)}"
    if r.verdict == "undecided" and np.isfinite(r.seeds_needed):
        tail += f", ~{int(r.seeds_needed)} seeds"
    if r.verdict == "undecided" and np.isfinite(r.min_p_adj) and r.min_p_adj >= ALPHA:
        tail += f"; unreachable at this n: smallest attainable p_adj {_p(r.min_p_adj)}"
    return f"{r.verdict} ({tail})"


def _group_short(g: Group) -> str:
    ls = f"{g.successor_layers:g}" if np.isfinite(g.successor_layers) else "?"
    lp = f"{g.predecessor_layers:g}" if np.isfinite(g.predecessor_layers) else "?"
    budget = f", {g.budget:,.0f} steps" if np.isfinite(g.budget) else ""
    return f"{g.task}, {lp}->{ls}{budget}"


def primary_verdicts(a: Analysis) -> pd.DataFrame:
    """Rows: the declared primaries (claim, comparison); columns: one per group (task, sizes,
    budget); cells: _short_verdict."""
    cols = {}
    for g in a.groups:
        t = g.claims_table()
        rows = {r.claim: r for r in t[t["role"] == "primary"].itertuples()}
        cols[_group_short(g)] = [_short_verdict(rows[c.id]) if c.id in rows else "—" for c in PRIMARY_CLAIMS]
    if not cols:
        return pd.DataFrame()
    return pd.DataFrame({"claim": [c.id for c in PRIMARY_CLAIMS],
                         "primary comparison": [f"{c.primary.a} vs {c.primary.b}" for c in PRIMARY_CLAIMS],
                         **cols})


def _primary_section(a: Analysis) -> str:
    """The answer: every declared primary in one table, and how its family is adjusted."""
    table = primary_verdicts(a)
    if table.empty:
        return "_No claim could be evaluated._\n"
    size, g = len(PRIMARY_CLAIMS), len(a.groups)
    return "\n".join([
        f"One primary comparison per claim, declared before the runs ({size} per group; the Claims section "
        f"says why each). Holm within a group, Bonferroni over the {g} group(s): adjusted p = {g} x Holm p, "
        f"so the chance of any false primary verdict in this report is at most {ALPHA}. *equivalent within "
        f"±{a.margin:g}*: the difference lies inside ±{a.margin:g} point (TOST); *undecided*: with the seeds a "
        "decision would need at the observed effect; *no information*: no failed run (or only failed runs) "
        "on either side. Claims 2b and 4b are exploratory only. Every comparison, with its interval and the "
        "smallest adjusted p its test can reach, is in the appendix.\n",
        md_table(table)])


CLAIMS_NOTE = """_How to read the comparison tables._

- *role*: *primary* (one per claim, declared before the runs; one Holm family over the primaries of a
  group, Bonferroni over the report's groups) or *exploratory* (every other comparison: Holm within
  its claim's exploratory family in its group; read it as a lead, not a finding).
- *Difference*: A − B. Accuracy in points, with the 95% t interval of the seed-paired difference
  (claim 3b: the 90% interval its two one-sided tests read). Shares of runs in percentage points (pp),
  with Newcombe's interval. Spread as an sd ratio, with Bonett's interval.
- *supported* / *contradicted*: adjusted p < {alpha}, estimate on / against the claimed side (3b:
  significantly below +{margin:g} / significantly better). *equivalent within ±{margin:g}*: the TOST p,
  adjusted over the whole family, < {alpha}. *undecided*: none of these. *no information*: no failed
  run (or only failed runs) on either side. *not testable*: with the reason.
- *Smallest attainable adjusted p*: what the test could reach at this n (an exact test's smallest p
  times the family's multiplier); above {alpha}, no outcome of these runs could decide it.
- *Seeds needed*: runs per arm (seed pairs for a paired test) at which the test reaches 80% power at
  the observed effect and the adjusted alpha. — : decided, no effect, or over 10,000.
- A *failed* run's predictions collapsed: Cohen's kappa against the test labels below 0.2 (the older
  one-class rule is the `single_class` column). The *fine-tuning level* is the baseline's mean −
  {sds:g} sd (each baseline run against the level of the other baseline runs).
"""


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
            out.append(f"The {role} {x['arm']} scores {_num(x['mean'])} (sd {_num(x['std'])}, n = {x['n']}).")
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
        out.append(f"The highest mean below the predecessor: {best['arm']} {_num(best['mean'])}"
                   + (f" ({_num(best['gap_to_baseline'], sign=True)} over the baseline)."
                      if np.isfinite(best["gap_to_baseline"]) else "."))
    if np.isfinite(g.level):
        th = v[v["family"].isin(THESEUS)]
        base = g.variance[g.variance["role"] == "baseline"].iloc[0]
        out.append(f"Fine-tuning level = {_num(g.level)} ({base['arm']} mean − {LEVEL_SDS:g} sd): "
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


def _claim_lines(g: Group) -> list[str]:
    """One bullet per claim: its title and its verdicts counted over its comparisons."""
    c, out = g.claims_table(), []
    for claim in CLAIMS:
        rows = c[c["claim"] == claim.id]
        if rows.empty:
            continue
        prim, expl = rows[rows["role"] == "primary"], rows[rows["role"] != "primary"]
        parts = []
        for r in prim.itertuples():
            parts.append(r.verdict + (f" ({r.comparison}: {_difference(r)}, adjusted p {_p(r.p_adj)})"
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


def _summary(a: Analysis, meta: dict) -> str:
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
            out.append("\n".join(_claim_lines(g)) + "\n")
    return "\n".join(out)


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


def _budget_section(a: Analysis, infos: list, report_path: Path) -> str:
    """The budget axis first: accuracy against budget per group, where each claim holds, the
    verdicts by budget, and per group the arm x budget table with failure and convergence counts."""
    summary = budget_summary(a.runs)
    out = ["Every student arm ran at each budget (student optimizer steps: a Theseus phase and its "
           "successor phase together); the predecessor trained once per seed at its own length and is "
           "shared by every budget, so runs are paired by seed across arms and budgets. *failed*: "
           "the test predictions collapsed (Cohen's kappa against the labels below 0.2); *improving*: dev accuracy still rising "
           "over the last 20% of the run's last phase (a longer budget would likely help; for a Theseus "
           "arm with a successor phase that is the successor phase: whether its Theseus phase was long "
           "enough shows only across budgets).\n"]
    panel = next((i for i in infos if i.name == "accuracy_vs_budget_panels"), None)
    if panel is not None and not panel.skipped:
        out.append(f"![test accuracy against budget]({_rel(panel.paths[0], report_path)})\n")
    flips = a.verdicts_by_budget()
    inter = interactions(a.runs, a.claims_table())
    primary = flips[flips["role"] == "primary"] if "role" in flips else flips
    sentences = where_it_holds(primary, inter)
    if sentences:
        out.append("**Where each primary verdict holds.** A verdict is said to change with the budget only where "
                   "the budget x arm interaction (the seed-paired difference between two budgets of the paired "
                   "differences) is significant, Holm over every interaction test of this report (a family of "
                   f"its own: {len(inter)} tests); the exploratory comparisons' verdicts by budget are in "
                   "`tables/verdicts_by_budget.csv`.\n")
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
        out.append(md_table(inter.assign(estimate=[_difference(r) for r in inter.assign(
            unit="points", ci_level=0.95).itertuples()], p=[_p(x) for x in inter["p"]],
            p_adj=[_p(x) for x in inter["p_adj"]]).drop(columns=["ci_low", "ci_high", "model"])))
    return "\n".join(out)


def _figures_section(a: Analysis, infos: dict, report_path: Path) -> str:
    out = []
    for g in a.groups:
        if len(a.groups) > 1:
            out.append(f"### {g.label}\n")
        names = SUMMARY_FIGURES if len(a.groups) <= 2 else {"accuracy": SUMMARY_FIGURES["accuracy"]}
        out += [_figure(infos, g, name, report_path, cap) for name, cap in names.items()]
    return "\n".join(out)


def _claims_section(a: Analysis, infos: dict, report_path: Path) -> str:
    """One subsection per question: each claim with its test in words, its primary comparison and
    the reason for it (or why it has none), its verdicts per group in one line, and its figures.
    Every comparison's row is in the appendix."""
    out = []
    for family in dict.fromkeys(c.family for c in CLAIMS):
        members = [c for c in CLAIMS if c.family == family]
        out.append(f"### Claim {family}: {QUESTIONS.get(family, members[0].title)}\n")
        for claim in members:
            why = (f"Primary: {claim.primary.a} vs {claim.primary.b}, because {claim.primary.reason}."
                   if claim.primary else f"No primary: {claim.no_primary}.")
            out.append(f"*{claim.id}: {claim.title}.* {claim.how} {why}\n")
            for g in a.groups:
                lines = [ln for ln in _claim_lines(g) if ln.startswith(f"- **{claim.id}**")]
                if lines:
                    out.append(lines[0].replace(f"- **{claim.id}** {claim.title}", f"- {g.label}"))
            out.append("")
        if len(a.groups) == 1:
            for fig in dict.fromkeys(c.figure for c in members):
                out.append(_figure(infos, a.groups[0], fig, report_path, f"figure for claim {family}"))
        out.append("")
    return "\n".join(out)


def reference_comparison(a: Analysis) -> pd.DataFrame:
    """The seed's reference numbers beside our measured means, matched by role and compression
    ratio L_p / L_s (the tasks and models differ; see the heading)."""
    rows = []
    for g in a.groups:
        lp = g.predecessor_layers
        ratio = lp / g.successor_layers if np.isfinite(lp) else np.nan
        for _, v in g.variance[g.variance["n"] > 0].iterrows():
            if v["role"] == "predecessor":
                setting, r = "predecessor (direct fine-tune, all layers)", 1
            elif v["role"] == "baseline":
                setting, r = "direct fine-tune, first L_s layers", ratio
            elif v["family"] == "theseus-add":
                setting, r = "Theseus (proportional add)", ratio
            elif v["family"] in ("theseus-binary", "two-stage", "kd"):
                setting, r = f"other: {v['family']}", ratio
            else:
                continue
            rows.append(dict(setting=setting, compression_ratio=r,
                             ours=f"{g.task} / {g.model}: {v['arm']}, {int(v['n'])} seeds",
                             ours_layers=lp if r == 1 else g.successor_layers,
                             ours_test_accuracy=v["mean"], ours_std=v["std"],
                             ours_dev_max=v["dev_accuracy"], ours_gap=v["gap_to_predecessor"]))
    seed = SEED_REFERENCE.assign(seed_gap=SEED_REFERENCE["dev_accuracy"] - 60.11)
    ours = pd.DataFrame(rows, columns=["setting", "compression_ratio", "ours", "ours_layers",
                                       "ours_test_accuracy", "ours_std", "ours_dev_max", "ours_gap"])
    t = seed.merge(ours, on=["setting", "compression_ratio"], how="outer")
    return t.sort_values(["compression_ratio", "setting"], kind="stable").drop_duplicates()


def _reference_section(a: Analysis) -> str:
    cols = {"setting": "setting", "compression_ratio": "L_p/L_s", "layers": "seed layers",
            "dev_accuracy": "seed dev acc (iflytek, bert-base-chinese)",
            "seed_gap": "seed gap to 12 layers", "ours": "ours (task / model: arm)",
            "ours_layers": "our layers", "ours_test_accuracy": "our test acc", "ours_std": "our std",
            "ours_dev_max": "our dev-max acc", "ours_gap": "our gap to predecessor"}
    return "\n".join([
        "**Different task and model.** The seed's numbers are CLUE iflytek *dev* accuracy (%) "
        "with bert-base-chinese (12 layers), single runs; ours are test accuracy (%) at the "
        "best-dev epoch on our task and model, means over seeds. Compare the gaps, not the "
        "levels. Rows are matched by role and compression ratio L_p/L_s.\n",
        md_table(SEED_REFERENCE, {"setting": "setting", "compression_ratio": "L_p/L_s",
                                  "layers": "layers", "dev_accuracy": "dev accuracy (%)"}),
        "The seed's script header gives another run: 12 layers 60.7, 6 layers 59.1, 3 layers "
        "57.9, Theseus-3 59.5. Xu et al. (EMNLP 2020) report a 6-layer successor of BERT-base "
        "keeping about 98% of its GLUE score.\n",
        md_table(reference_comparison(a), cols)])


VARIANCE_COLUMNS = {
    "arm": "arm", "role": "role", "n": "n", "n_failed": "failed", "mean": "mean", "std": "std",
    "ci": "95% CI (t)", "median": "median", "iqr": "IQR", "min": "min", "max": "max",
    "gap_to_predecessor": "gap to predecessor", "gap_to_baseline": "gap to finetune-L_s",
    "degenerate": "failed (95% CP CI)", "std_nondegenerate": "std, working runs",
    "below_level": "below fine-tuning level (95% CP CI)", "le_median_pct": "≤ baseline median (%)",
    "dev_accuracy": "dev-max acc", "test_macro_f1": "test macro-F1"}
SENSITIVITY_SHOWN = {
    "claim": "claim", "a": "A", "b": "B", "claim_p_adj": "claim's adjusted p (primary)",
    "primary_p": "primary p (raw)", "welch_p": "Welch p", "mwu_p": "Mann-Whitney p",
    "wilcoxon_p": "Wilcoxon p", "aso_eps_min": "ASO eps_min A over B", "aso_eps_min_ba": "ASO eps_min B over A",
    "hedges_g": "Hedges g", "prob_improvement": "P(A>B)"}
POWER_COLUMNS = {
    "arm": "arm", "baseline": "against", "test": "test", "observed_gap": "observed gap",
    "sd": "sd of paired diffs", "seeds_for_observed_gap": "seeds for observed gap",
    "seeds_for_0.5pt_gap": "seeds for 0.5-point gap", "seeds_for_1pt_gap": "seeds for 1-point gap"}


def _count_ci(k, n, lo, hi) -> str:
    if not np.isfinite(n) or n == 0 or not np.isfinite(k):
        return "unknown"
    return f"{int(k)}/{int(n)} ({100 * lo:.0f}–{100 * hi:.0f}%)"


def variance_display(v: pd.DataFrame) -> pd.DataFrame:
    """The per-arm table as the appendix shows it (counts with their exact intervals)."""
    return _ci(v, "ci_low", "ci_high", "ci").assign(
        degenerate=[_count_ci(r.n_degenerate, r.n_degenerate_known, r.degenerate_ci_low, r.degenerate_ci_high)
                    for r in v.itertuples()],
        below_level=[_count_ci(r.n_below_level, r.n, r.below_level_ci_low, r.below_level_ci_high)
                     for r in v.itertuples()],
        le_median_pct=v["share_le_baseline_median"] * 100)


def claim_sensitivity(g: Group) -> pd.DataFrame:
    """The pairwise rows of the claims' mean comparisons, in claim order and oriented as the claim
    states them (A = the claim's first arm: ASO columns swapped, Hedges g negated, P(A>B)
    complemented where the pairwise table has the pair the other way round)."""
    pw = g.pairwise.set_index(["a", "b"])
    rows = []
    for r in g.claims:
        if r.decided_by not in ("paired t", "Welch t") or not r.b:
            continue
        if (r.a, r.b) in pw.index:
            row = pw.loc[(r.a, r.b)].to_dict()
        elif (r.b, r.a) in pw.index:
            row = pw.loc[(r.b, r.a)].to_dict()
            row.update(aso_eps_min=row["aso_eps_min_ba"], aso_eps_min_ba=row["aso_eps_min"],
                       hedges_g=-row["hedges_g"], prob_improvement=1 - row["prob_improvement"])
        else:
            continue
        rows.append({**row, "claim": r.claim, "a": r.a, "b": r.b, "claim_p_adj": r.p_adj})
    return pd.DataFrame(rows)


def _appendix(a: Analysis, infos: dict, report_path: Path) -> str:
    out = [CLAIMS_NOTE.format(alpha=ALPHA, margin=a.margin, sds=LEVEL_SDS)]
    if len(a.groups) > 2:
        out.append(f"With {len(a.groups)} groups this appendix keeps, per group, every comparison and links to "
                   "its other figures; the per-arm table (`tables/variance.csv`), the sensitivity checks "
                   "(`tables/sensitivity.csv`), expected best-of-n (`tables/expected_max.csv`), seeds for power "
                   "(`tables/power.csv`) and variance components are in the CSVs.\n")
    for g in a.groups:
        if len(a.groups) > 1:
            out.append(f"### {g.label}\n")
        h = "####" if len(a.groups) > 1 else "###"
        base = g.variance[g.variance["role"] == "baseline"]
        out += [f"{h} {APPENDIX_SUBSECTIONS[0]}\n",
                md_table(claims_display(g.claims_table()).assign(note=g.claims_table()["note"].to_numpy()))]
        if len(a.groups) > 2:  # many groups: the rest is in tables/*.csv and the figures
            links = [i for i in (infos.get((g.label, n)) for n in MORE_FIGURES) if i is not None and not i.skipped]
            out.append("More figures: " + ", ".join(f"[{i.name}]({_rel(i.paths[0], report_path)})" for i in links)
                       + ".\n")
            continue
        out += [f"{h} {APPENDIX_SUBSECTIONS[1]}\n",
                "Test accuracy (%) over seeds, runs that stopped with an error excluded; the CSV keeps full "
                "precision. *Failed*: the run's test predictions collapsed, Cohen's kappa < 0.2 (Clopper-Pearson "
                "interval). *Fine-tuning level*: "
                + (f"{_num(g.level)} = the {base['arm'].iloc[0]} mean − {LEVEL_SDS:g} sd; the baseline's own row "
                   "is the reference, each of its runs judged against the level of the other baseline runs." if np.isfinite(g.level) else "not defined (no baseline with n ≥ 3).")
                + " *≤ baseline median*: SPEC's descriptive share, about 50% for the baseline itself.\n",
                md_table(variance_display(g.variance), VARIANCE_COLUMNS)]
        sens = claim_sensitivity(g)
        out += [f"{h} {APPENDIX_SUBSECTIONS[2]}\n",
                "Sensitivity checks, raw p-values, not used for any verdict: the other tests of each pair a claim "
                f"compares by its mean. ASO eps_min below {ASO_THRESHOLD:g} reads \"almost stochastically "
                "better\" (deepsig's threshold). Every pair of arms, with Brown-Forsythe, Levene, Fisher and the "
                "rest, is in `tables/pairwise.csv` and `tables/sensitivity.csv`.\n",
                md_table(sens, SENSITIVITY_SHOWN)]
        em = g.expected_max
        out.append(f"{h} {APPENDIX_SUBSECTIONS[3]}\n")
        if not em.empty:
            by = set(em["selected_by"])
            out.append("Expected test accuracy (%) of the run kept when the best of n seeds is chosen *by dev "
                       "accuracy* (Dodge et al. 2019; exact from the empirical distribution)"
                       + ("" if by == {"dev"} else "; arms without dev scores are chosen by test (optimistic)")
                       + ". The last column, the expected max of *test* accuracy over all N seeds, selects on the "
                         "test set itself and is optimistic.\n")
            show = sorted({n for n in (1, 2, 3, 5, 10, 20) if n <= em["n_seeds"].max()} | {int(em["n_seeds"].max())})
            piv = em[em["n_seeds"].isin(show)].pivot(index="arm", columns="n_seeds", values="expected_max")
            piv.columns = [f"n={c}" for c in piv.columns]
            last = em.loc[em.groupby("arm")["n_seeds"].idxmax(), ["arm", "expected_max_test"]].set_index("arm")
            out.append(md_table(piv.join(last.rename(columns={"expected_max_test": "max of test, n=N"})).reset_index()))
        out += [f"{h} {APPENDIX_SUBSECTIONS[4]}\n",
                "Seeds per arm (seed pairs for the paired t) the primary test needs for 80% power at alpha "
                f"{ALPHA} against finetune-L_s, for the observed gap and fixed gaps (— = no gap or > 10,000).\n",
                md_table(g.power, POWER_COLUMNS),
                f"{h} {APPENDIX_SUBSECTIONS[5]}\n",
                md_table(g.components) if g.components is not None else
                "_Not a factorial design (one student seed per predecessor seed): no variance components._\n",
                f"{h} {APPENDIX_SUBSECTIONS[6]}\n",
                *[_figure(infos, g, name, report_path, cap) for name, cap in MORE_FIGURES.items()]]
    return "\n".join(out)


def _tuning_section(a: Analysis, tuning: dict, infos: list, report_path: Path) -> str:
    """The tuning stage: the trials and the selected rate per arm, the expected best of k trials, and
    the primary verdicts at the tuned and at the shared rate side by side."""
    lrs, seeds = sorted(tuning["lrs"]), tuning["seeds"]
    out = [f"Every student arm tried the same {len(lrs)} learning rates ({', '.join(f'{x:g}' for x in lrs)}) on "
           f"tuning seeds {', '.join(map(str, seeds))}, which are never evaluation seeds; its rate is the one "
           "with the best mean dev accuracy over them (ties: the smaller), and the evaluation seeds ran at it "
           "and at the arm's shared (declared) rate. Every verdict above is at the tuned rates. Cells: mean dev "
           "accuracy (%) over the tuning seeds; **bold**: selected; *edge*: the selected rate is the grid's "
           "smallest or largest, so the grid may have been too narrow.\n"]
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
                         + (" (edge)" if c.at_edge else ""), "trials": str(int(g["n_seeds"].eq(len(seeds)).sum()))})
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
            out.append(f"![expected best dev accuracy against the number of trials]({_rel(fig.paths[0], report_path)})\n")
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
        out += ["**Primary verdicts at the tuned and at the shared rate** (the shared rate: the sensitivity row).\n",
                md_table(side), *sentences, ""]
    return "\n".join(out)


def _sequential_section(seq: dict) -> str:
    """The study's answer when it ran as a sequential design: per group and primary the stopping
    look, the verdict and the repeated interval; what was decided, at which looks; the runs saved."""
    looks = seq["looks"]
    t = seq["decisions"]
    out = [f"Sequential design: looks at {', '.join(map(str, looks))} seeds per arm, declared before the runs. "
           "After each look every primary is tested against Lan-DeMets O'Brien-Fleming-type boundaries "
           "read on the nominal p scale (*bound*: the p a test had to reach at that look), Holm within each "
           f"group's family (a decided primary passes its level to the others), alpha / {seq['groups']} per "
           f"group; equivalence (the repeated interval inside ±{seq['margin']:g}) and 3b's non-superiority at "
           f"alpha / ({seq['groups']} x {seq['family']}); a primary stops for futility (non-binding) when its "
           f"conditional power at the current trend falls below {seq['futility']:g}. Only arms of open primaries "
           "get the next look's seeds. *repeated CI*: the interval at the look's boundary, valid whenever the "
           f"study stopped. {sequential.BIAS_NOTE[0].upper() + sequential.BIAS_NOTE[1:]}. The fixed-n tables "
           "further down treat each arm's seeds as fixed in advance; their p-values do not apply to this "
           "design (docs/method.md, \"Sequential seeds\").\n"]
    if seq["open"]:
        out.append(f"**In progress:** {seq['open']} primary comparison(s) wait for their next look; "
                   "`python -m harness run-all` resumes where the study stopped.\n")
    rows = []
    for r in t.itertuples():
        stop = "—" if not r.look else f"{r.look} ({r.seeds} seeds)"
        ci = "—" if not np.isfinite(r.rci_low) else f"[{_num(r.rci_low)}, {_num(r.rci_high)}]"
        rows.append({"group": r.task, "claim": r.claim, "comparison": r.comparison, "look": stop,
                     "verdict": r.verdict, "estimate": _num(r.estimate, sign=True) if np.isfinite(r.estimate) else "—",
                     "unit": r.unit, "repeated CI": ci,
                     "p / bound": "—" if not np.isfinite(r.p) else f"{r.p:.2g} / {r.bound:.2g}",
                     "n": r.n or "—", "note": r.note})
    out.append(md_table(pd.DataFrame(rows)))
    decided = t[t["verdict"].isin(["supported", "contradicted"]) | t["verdict"].str.startswith("equivalent")]
    at = ", ".join(f"{n} at look {k}" for k, n in decided.groupby("look").size().items()) or "none"
    counts = t["verdict"].str.split(" \\(").str[0].value_counts()
    out.append(f"Decided: {len(decided)} of {len(t)} primary comparisons ({at}); "
               + ", ".join(f"{v}: {n}" for v, n in counts.items()) + ".\n")
    saved = seq["fixed_runs"] - seq["runs"]
    out.append(f"Runs: {seq['runs']} (predecessor and student runs of every arm) against {seq['fixed_runs']} for a "
               f"fixed design at {looks[-1]} seeds: {saved} saved ({100 * saved / seq['fixed_runs']:.0f}%)"
               + (" so far" if seq["open"] else "") + f". Training time summed over the runs this study trained: "
               f"{seq['wall_seconds'] / 3600:.1f} h"
               + (f", {seq['reused']} runs reused from other stores with the same run keys" if seq["reused"] else "")
               + ".\n")
    return "\n".join(out)


def render_report(a: Analysis, infos: list, meta: dict, report_path: Path, tuning: dict | None = None,
                  sequential_view: dict | None = None) -> str:
    """The whole markdown report as a string (figures linked relative to report_path)."""
    by = {(i.group, i.name): i for i in infos}
    title = (meta or {}).get("title") or \
        f"BERT-of-Theseus reproducibility report: {meta.get('sweep', 'runs') if meta else 'runs'}"
    produced = (meta or {}).get("produced_at") or datetime.now(timezone.utc).isoformat(timespec="seconds")
    failed = a.failed
    dirty = dirty_commits(meta)
    budget = [f"## Training budget\n", _budget_section(a, infos, report_path)] if has_budget_axis(a.runs) else []
    tuned = [f"## Tuning\n", _tuning_section(a, tuning, infos, report_path)] if tuning else []
    seq = [f"## Sequential verdicts\n", _sequential_section(sequential_view)] if sequential_view else []
    fixed_note = (["_The same runs read as a fixed design (every seed each arm ran), for reference only: the "
                   "study's verdicts are the sequential ones above._\n"] if sequential_view else [])
    parts = [f"# {title}\n", f"_Generated: {produced}_\n", *seq, "## Primary verdicts\n", *fixed_note,
             _primary_section(a),
             *tuned, *budget, f"## {SECTIONS[0]}\n", _summary(a, meta),
             f"## {SECTIONS[1]}\n", _figures_section(a, by, report_path),
             f"## {SECTIONS[2]}\n", _claims_section(a, by, report_path),
             f"## {SECTIONS[3]}\n", _reference_section(a),
             f"## {SECTIONS[4]}\n", _appendix(a, by, report_path),
             f"## {SECTIONS[5]}\n",
             md_table(failed) if len(failed) else "_No failed runs._\n",
             *([f"Records skipped (unreadable, left out of every figure): {'; '.join(meta['skipped_records'])}\n"]
               if (meta or {}).get("skipped_records") else []),
             f"## {SECTIONS[6]}\n",
             *([f"**Dirty working tree:** the runs carry git commit(s) {', '.join(f'`{c}`' for c in dirty)}: "
                "they were made from uncommitted changes, so that commit alone does not reproduce them.\n"]
               if dirty else []),
             f"Statistics: permutation tests with {a.n_boot} resamples (exact when there are fewer splits), "
             f"ASO with 1000 bootstrap resamples, seed {a.seed}; alpha {ALPHA}, Holm within each claim's family; "
             f"equivalence margin ±{a.margin:g} point(s); fine-tuning level = baseline mean − {LEVEL_SDS:g} sd.\n",
             "\n".join(render_meta(meta or {})) + "\n"]
    return "\n".join(parts)


# ---------------------------------------------------------------- entry points


