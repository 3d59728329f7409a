"""The markdown report, the CSV tables and the report index (SPEC section 6).

Consumes stats.analyze and plots.plot_all; computes nothing of its own beyond formatting and the
join of our means with the seed's fixed reference numbers (SPEC section 7).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from harness import plots
from harness.stats import Analysis, Group, analyze

SECTIONS = ("Summary", "Results by group", "Claims", "Reference numbers from the seed",
            "Beyond the references", "Failed runs", "Provenance")
GROUP_SUBSECTIONS = ("Variance", "Significance", "Stability", "Figures")
CLAIM_TITLES = {1: "Claim 1: Theseus vs direct fine-tuning of the first L_s layers",
                2: "Claim 2: proportional add is more stable than binary random choice",
                3: "Claim 3: two-stage extraction is worse than Theseus",
                4: "Claim 4: collapse to fine-tuning level and replacement counts"}
CLAIM_FIGURE = {1: "forest", 2: "std", 3: "forest", 4: "replacements"}

# SPEC section 7: the seed's numbers, CLUE iflytek dev accuracy (%) with bert-base-chinese (12 layers)
SEED_REFERENCE = pd.DataFrame([
    ("predecessor (direct fine-tune, all layers)", 1, 12, 60.11),
    ("direct fine-tune, first L_s layers", 2, 6, 58.99),
    ("direct fine-tune, first L_s layers", 4, 3, 57.96),
    ("Theseus (proportional add)", 2, 6, 59.7),
    ("Theseus (proportional add)", 4, 3, 59.5),
], columns=["setting", "compression_ratio", "layers", "dev_accuracy"])
TABLES = ("variance", "pairwise", "expected_max", "power", "variance_components", "claims", "runs")


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
        if col.endswith("_p") or col.endswith("_holm") or col == "p":
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
                isinstance(x, (dict, list, tuple)) for x in v.values()):
            out.append(f"{pad}- " + "; ".join(f"**{a}**: `{b}`" for a, b in v.items()))
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


def _summary(a: Analysis) -> str:
    r = a.runs
    ok = r[r["status"] == "ok"]
    per_arm = ok.groupby(["task", "model", "successor_layers", "arm"], dropna=False).size()
    parts = [f"{len(ok)} successful runs ({int((r['status'] != 'ok').sum())} failed) over "
             f"{r['arm'].nunique()} arms in {len(a.groups)} group(s); {per_arm.min() if len(per_arm) else 0}"
             f"–{per_arm.max() if len(per_arm) else 0} seeds per arm. Accuracy is test accuracy (%) at the "
             f"best-dev epoch."]
    for g in a.groups:
        v = g.variance.set_index("arm")
        line = [f"**{g.label}**:"]
        for role in ("predecessor", "baseline"):
            x = g.variance[g.variance["role"] == role]
            if len(x):
                x = x.iloc[0]
                line.append(f"{role} {x['arm']} {_cell('m', x['mean'])} ± {_cell('s', x['std'])} (n={x['n']});")
        th = v[v["family"].isin(["theseus-binary", "theseus-add"]) & (v["n"] > 0)]
        if len(th):
            best = th["mean"].idxmax()
            line.append(f"best Theseus arm {best} {_cell('m', th.loc[best, 'mean'])} "
                        f"(gap to baseline {_cell('g', th.loc[best, 'gap_to_baseline'])} points, "
                        f"n={th.loc[best, 'n']}).")
        line.append("Claims: " + "; ".join(f"{c.number}: {_verdicts(c)}" for c in g.claims) + ".")
        parts.append(" ".join(line))
    return " ".join(parts) + "\n"


def _verdicts(c) -> str:
    """The overall verdict, spelled out per comparison when it is mixed."""
    if c.verdict != "mixed":
        return c.verdict
    names = (c.table["arm"] if "arm" in c.table else c.table["a"] + " vs " + c.table["b"])
    if len(names) > 4:  # a summary line, not the claim's table: count the verdicts
        counts = c.table["verdict"].value_counts()
        return (f"mixed over {len(names)} comparisons (" + ", ".join(f"{v}: {n}" for v, n in counts.items())
                + f"; see claim {c.number})")
    return "mixed (" + ", ".join(f"{n}: {v}" for n, v in zip(names, c.table["verdict"])) + ")"


VARIANCE_COLUMNS = {
    "arm": "arm", "role": "role", "n": "n", "n_failed": "failed", "mean": "mean", "std": "std",
    "sem": "SEM", "ci": "95% CI (BCa)", "median": "median", "iqr": "IQR", "min": "min", "max": "max",
    "gap_to_predecessor": "gap to predecessor", "gap_to_baseline": "gap to finetune-L_s",
    "retention_pct": "retention (%)", "collapse_pct": "collapse rate (%)",
    "dev_accuracy": "dev-max acc", "test_macro_f1": "test macro-F1", "tested": "tested (n≥3)"}
SIGNIFICANCE_COLUMNS = {
    "a": "A", "b": "B", "n_a": "n_A", "n_b": "n_B", "n_paired": "n paired", "diff": "diff A−B",
    "diff_ci": "95% CI of diff", "welch_p": "Welch p", "welch_p_holm": "Welch p (Holm)",
    "mwu_p": "MWU p", "mwu_p_holm": "MWU p (Holm)", "paired_p": "paired t p",
    "paired_p_holm": "paired t p (Holm)", "wilcoxon_p": "Wilcoxon p",
    "wilcoxon_p_holm": "Wilcoxon p (Holm)", "aso_eps_min": "ASO eps_min", "hedges_g": "Hedges g",
    "prob_improvement": "P(A>B)", "note": "note"}
POWER_COLUMNS = {
    "arm": "arm", "baseline": "against", "observed_gap": "observed gap", "std_arm": "std arm",
    "std_baseline": "std baseline", "seeds_for_observed_gap": "seeds for observed gap",
    "seeds_for_0.5pt_gap": "seeds for 0.5-point gap", "seeds_for_1pt_gap": "seeds for 1-point gap"}
STABILITY_COLUMNS = {
    "a": "A", "b": "B", "n_a": "n_A", "n_b": "n_B", "std_a": "std A", "std_b": "std B",
    "std_ratio": "std ratio A/B", "ratio_ci": "95% CI of ratio", "bf_p": "Brown-Forsythe p",
    "bf_p_holm": "BF p (Holm)", "levene_p": "Levene p", "levene_p_holm": "Levene p (Holm)"}


def _group_section(g: Group, infos: dict, report_path: Path) -> str:
    v = _ci(g.variance, "ci_low", "ci_high", "ci").assign(
        retention_pct=g.variance["retention"] * 100, collapse_pct=g.variance["collapse_rate"] * 100)
    t = _ci(_ci(g.pairwise, "diff_ci_low", "diff_ci_high", "diff_ci"),
            "std_ratio_ci_low", "std_ratio_ci_high", "ratio_ci") if not g.pairwise.empty else g.pairwise
    out = [f"### {g.label}\n",
           f"#### Variance\n\nTest accuracy (%) over seeds, failed runs excluded; CSV keeps full precision. "
           f"Collapse rate: share of runs at or below the finetune-L_s mean.\n",
           md_table(v, VARIANCE_COLUMNS),
           "#### Significance\n\nEvery pair of arms; raw p-values beside Holm-adjusted ones (family: "
           "this table, per column). Paired tests pair runs by predecessor seed. eps_min < 0.5: A "
           "almost stochastically dominates B. Pairs with n < 3 on either side are not tested.\n",
           md_table(t, SIGNIFICANCE_COLUMNS),
           "#### Stability\n\nStd of test accuracy over seeds per pair; ratio CI from a percentile "
           "bootstrap; Brown-Forsythe = Levene with median centring.\n",
           md_table(t, STABILITY_COLUMNS), "#### Figures\n"]
    captions = {"accuracy": "test accuracy per arm", "forest": "mean and 95% CI per arm",
                "significance": "pairwise significance matrix", "std": "std per arm with 95% CI",
                "dev_curves": "successor-only dev accuracy per epoch",
                "replacements": "replacements per module per epoch",
                "expected_max": "expected max vs number of seeds"}
    out += [_figure(infos, g, name, report_path, cap) for name, cap in captions.items()]
    return "\n".join(out)


def _claims_section(a: Analysis, infos: dict, report_path: Path) -> str:
    out = []
    for number, title in CLAIM_TITLES.items():
        out.append(f"### {title}\n")
        for g in a.groups:
            c = next(c for c in g.claims if c.number == number)
            out += [f"**{g.label}**: {c.question} Verdict: **{c.verdict}**.\n", c.text + "\n",
                    _figure(infos, g, CLAIM_FIGURE[number], report_path, f"figure for claim {number}")]
        out.append("")
    return "\n".join(out) + (
        "_Verdicts: 'supported' / 'contradicted' need a Holm-adjusted p < 0.05 in / against the "
        "claimed direction; otherwise 'inconclusive at n = ...' (estimate in the claimed direction) "
        "or 'not supported' (estimate against it); n < 3 is never tested._\n")


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


def _beyond_section(a: Analysis, infos: dict, report_path: Path) -> str:
    out = ["Expected maximum test accuracy (%) when the best of n seeds is kept (Dodge et al. "
           "2019, exact from the empirical CDF); seeds per arm needed for 80% power (two-sided "
           "Welch t, alpha 0.05) against finetune-L_s for the observed gap and fixed gaps; "
           "variance components when the sweep is factorial.\n"]
    for g in a.groups:
        em = g.expected_max
        out.append(f"### {g.label}\n")
        if not em.empty:
            show = sorted({n for n in (1, 2, 3, 5, 10, 20) if n <= em["n_seeds"].max()} |
                          {int(em["n_seeds"].max())})
            piv = em[em["n_seeds"].isin(show)].pivot(index="arm", columns="n_seeds",
                                                     values="expected_max")
            piv.columns = [f"n={c}" for c in piv.columns]
            out.append(md_table(piv.reset_index()))
        out.append(_figure(infos, g, "expected_max", report_path, "expected max vs seeds"))
        out.append("Seeds per arm for 80% power (— = undefined or > 10000):\n")
        out.append(md_table(g.power, POWER_COLUMNS))
        out.append("Variance components:\n")
        out.append(md_table(g.components) if g.components is not None else
                   "_Not a factorial design (one student seed per predecessor seed): no "
                   "variance components._\n")
    return "\n".join(out)


def render_report(a: Analysis, infos: list, meta: dict, report_path: Path) -> str:
    """The whole markdown report as a string (figures linked relative to report_path)."""
    by = {(i.group, i.name): i for i in infos}
    title = f"BERT-of-Theseus reproducibility report: {meta.get('sweep', 'runs') if meta else 'runs'}"
    produced = (meta or {}).get("produced_at") or datetime.now(timezone.utc).isoformat(timespec="seconds")
    failed = a.failed
    parts = [f"# {title}\n", f"_Generated: {produced}_\n",
             f"## {SECTIONS[0]}\n", _summary(a),
             f"## {SECTIONS[1]}\n", *[_group_section(g, by, report_path) for g in a.groups],
             f"## {SECTIONS[2]}\n", _claims_section(a, by, report_path),
             f"## {SECTIONS[3]}\n", _reference_section(a),
             f"## {SECTIONS[4]}\n", _beyond_section(a, by, report_path),
             f"## {SECTIONS[5]}\n",
             md_table(failed) if len(failed) else "_No failed runs._\n",
             f"## {SECTIONS[6]}\n",
             f"Statistics: {a.n_boot} bootstrap resamples, seed {a.seed}; alpha 0.05.\n",
             "\n".join(render_meta(meta or {})) + "\n"]
    return "\n".join(parts)


# ---------------------------------------------------------------- entry points

def write_tables(a: Analysis, runs: pd.DataFrame, tables_dir: Path) -> dict[str, Path]:
    """Every table as CSV at full precision; returns name -> path."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    comps = a.table("components")
    frames = {"variance": a.table("variance"), "pairwise": a.table("pairwise"),
              "expected_max": a.table("expected_max"), "power": a.table("power"),
              "variance_components": comps if not comps.empty else pd.DataFrame(
                  columns=["task", "model", "predecessor_layers", "successor_layers", "arm", "design",
                           "var_predecessor", "var_student", "var_residual", "share_predecessor"]),
              "claims": a.claims_table(), "runs": runs}
    paths = {}
    for name, df in frames.items():
        paths[name] = tables_dir / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def write_outputs(runs: pd.DataFrame, epochs: pd.DataFrame | None, replacements: pd.DataFrame | None,
                  meta: dict | None, *, results_dir: Path, report_path: Path, n_boot: int = 10_000,
                  seed: int = 0) -> dict:
    """Analyse, then write results_dir/tables/*.csv, results_dir/plots/*.png|svg, the report at
    report_path and the index README.md beside it.

    Returns {"analysis", "tables": name -> path, "plots": [PlotInfo], "report", "index"}.
    """
    results_dir, report_path = Path(results_dir), Path(report_path)
    a = analyze(runs, epochs, replacements, n_boot=n_boot, seed=seed)
    tables = write_tables(a, runs, results_dir / "tables")
    infos = plots.plot_all(a, results_dir / "plots")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render_report(a, infos, meta or {}, report_path), encoding="utf-8")
    return {"analysis": a, "tables": tables, "plots": infos, "report": report_path,
            "index": update_index(report_path.parent)}


def update_index(report_dir: Path) -> Path:
    """Write report_dir/README.md: one line per *.md report there, with its title and date."""
    report_dir = Path(report_dir)
    rows = []
    for p in sorted(report_dir.glob("*.md")):
        if p.name == "README.md":
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        title = re.search(r"^# (.+)$", text, re.M)
        date = re.search(r"^_Generated: (.+?)_$", text, re.M)
        when = date.group(1) if date else datetime.fromtimestamp(
            p.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        rows.append(f"| [{p.name}]({p.name}) | {title.group(1) if title else p.stem} | {when} |")
    index = report_dir / "README.md"
    index.write_text("# Reports\n\nGenerated from the results store, one line per report.\n\n"
                     "| report | title | date |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n",
                     encoding="utf-8")
    return index
