"""The appendix: how to read the comparison tables, each claim's test and the reason for its
primary (the method in prose), the seed's reference numbers, and per group every comparison, the
per-arm table, the sensitivity checks, expected best-of-n, seeds for power, variance components and
the other figures (the CSVs under tables/ hold every pair and check at full precision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.claims import CLAIMS, QUESTIONS
from harness.analysis.groups import Analysis, Group
from harness.analysis.stats import ALPHA, ASO_THRESHOLD, LEVEL_SDS
from harness.report.format import ci_column, difference, fmt_p, md_table, num, rel
from harness.report.sections.figures import MORE_FIGURES, figure
from harness.report.sections.summary import claim_lines

APPENDIX_SUBSECTIONS = ("Every comparison (primary and exploratory)", "Per arm: accuracy, failures, fine-tuning level",
                        "Sensitivity checks of the claims' mean comparisons",
                        "Expected best-of-n accuracy (Dodge et al.)", "Seeds for 80% power",
                        "Variance components", "More figures")

# the seed's numbers, CLUE iflytek dev accuracy (%) with bert-base-chinese (12 layers)
SEED_REFERENCE = pd.DataFrame([
    ("predecessor (direct fine-tune, all layers)", 1, 12, 60.11),
    ("direct fine-tune, first L_s layers", 2, 6, 58.99),
    ("direct fine-tune, first L_s layers", 4, 3, 57.96),
    ("Theseus (proportional add)", 2, 6, 59.7),
    ("Theseus (proportional add)", 4, 3, 59.5),
], columns=["setting", "compression_ratio", "layers", "dev_accuracy"])


def claims_display(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as the appendix shows it: claim, role, comparison, difference (CI), adjusted
    p, verdict, smallest attainable adjusted p, seeds needed, n, test."""
    return pd.DataFrame({
        "claim": table["claim"], "role": table["role"].replace({"secondary": "exploratory"}),
        "comparison": table["comparison"], "difference": [difference(r) for r in table.itertuples()],
        "adjusted p": [fmt_p(p) for p in table["p_adj"]], "verdict": table["verdict"],
        "smallest attainable adjusted p": [fmt_p(p) for p in table["min_p_adj"]],
        "seeds needed": ["—" if not np.isfinite(x) else f"{int(x)}" for x in table["seeds_needed"]],
        "n": table["n"], "test": table["decided_by"]})


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



def claims_method_section(a: Analysis, infos: dict, report_path: Path, level: str = "###") -> str:
    """One subsection per question: each claim with its test in words, its primary comparison and
    the reason for it (or why it has none), its verdicts per group in one line, and its figures.
    Every comparison's row is in the appendix."""
    out = []
    for family in dict.fromkeys(c.family for c in CLAIMS):
        members = [c for c in CLAIMS if c.family == family]
        out.append(f"{level} Claim {family}: {QUESTIONS.get(family, members[0].title)}\n")
        for claim in members:
            why = (f"Primary: {claim.primary.a} vs {claim.primary.b}, because {claim.primary.reason}."
                   if claim.primary else f"No primary: {claim.no_primary}.")
            out.append(f"*{claim.id}: {claim.title}.* {claim.how} {why}\n")
            for g in a.groups:
                lines = [ln for ln in claim_lines(g) if ln.startswith(f"- **{claim.id}**")]
                if lines:
                    out.append(lines[0].replace(f"- **{claim.id}** {claim.title}", f"- {g.label}"))
            out.append("")
        if len(a.groups) == 1:
            for fig in dict.fromkeys(c.figure for c in members):
                out.append(figure(infos, a.groups[0], fig, report_path, f"figure for claim {family}"))
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


def reference_section(a: Analysis) -> str:
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
    return ci_column(v, "ci_low", "ci_high", "ci").assign(
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


def appendix(a: Analysis, infos: dict, report_path: Path) -> str:
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
            out.append("More figures: " + ", ".join(f"[{i.name}]({rel(i.paths[0], report_path)})" for i in links)
                       + ".\n")
            continue
        out += [f"{h} {APPENDIX_SUBSECTIONS[1]}\n",
                "Test accuracy (%) over seeds, runs that stopped with an error excluded; the CSV keeps full "
                "precision. *Failed*: the run's test predictions collapsed, Cohen's kappa < 0.2 (Clopper-Pearson "
                "interval). *Fine-tuning level*: "
                + (f"{num(g.level)} = the {base['arm'].iloc[0]} mean − {LEVEL_SDS:g} sd; the baseline's own row "
                   "is the reference, each of its runs judged against the level of the other baseline runs." if np.isfinite(g.level) else "not defined (no baseline with n ≥ 3).")
                + " *≤ baseline median*: a descriptive share, about 50% for the baseline itself.\n",
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
                *[figure(infos, g, name, report_path, cap) for name, cap in MORE_FIGURES.items()]]
    return "\n".join(out)
