"""The report's first tables: every primary claim in words with its difference (A − B), interval and
verdict; the per-arm table (mean, sd, n, failed); the variance decomposition of each primary; and the
fixed-design verdict table (claim x group) that the tuning section and a sequential study's appendix
reuse (docs/method.md, "Reports", "The unit of inference").

The claims table may carry the task-level columns of harness.analysis.claims (the unit of inference,
the seed-only "this test set" interval beside the task-level one); an older store's table lacks them,
and then every interval is conditional on the one test set the runs were scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.claims import PRIMARY_CLAIMS
from harness.analysis.groups import Analysis, Group
from harness.analysis.stats import ALPHA
from harness.report.format import (arm_words, claim_words, difference, direction_words, finite, fmt_p, md_table,
                                   num)

# ClaimResult.unit is the estimate's unit (points, percentage points, sd ratio); the unit of inference
# ("task" or "test set") is a column of its own, under one of these names
INFERENCE_UNIT_COLUMNS = ("inference_unit", "unit_of_inference", "inference")
INFERENCE_UNITS = ("task", "test set")
SEED_ONLY = ("ci_low_seed_only", "ci_high_seed_only")
DECOMPOSITION_ATTRS = ("variance_decomposition", "decomposition")


# ---------------------------------------------------------------- where, and on what unit

def places(groups: list[Group]) -> dict[str, str]:
    """Group label -> the shortest text that tells the report's groups apart ("trec-6", "rt-polarity,
    800 steps", ...): only the parts that differ between groups, the task always."""
    def parts(g: Group) -> dict:
        return {"task": g.task, "model": g.model,
                "layers": f"{g.predecessor_layers:g} -> {g.successor_layers:g} layers"
                if finite(g.predecessor_layers, g.successor_layers) else "",
                "budget": f"{g.budget:,.0f} steps" if finite(g.budget) else ""}
    all_parts = [parts(g) for g in groups]
    varying = [k for k in ("task", "model", "layers", "budget") if k == "task"
               or len({p[k] for p in all_parts}) > 1]
    return {g.label: ", ".join(p[k] for k in varying if p[k]) for g, p in zip(groups, all_parts)}


def inference_unit(table: pd.DataFrame) -> str | None:
    """"task" or "test set" as the claims table declares its unit of inference (the most common
    value over its rows), None when the table predates the column (seed-only inference)."""
    # only the tested accuracy comparisons have a unit: failure rates are per run, and a comparison
    # not run or not testable has none
    if "claim" in table and "verdict" in table:
        tested = table["claim"].astype(str).isin(MEAN_CLAIMS) & ~table["verdict"].astype(str).str.startswith("not ")
        if tested.any():
            table = table[tested]
    for col in (*INFERENCE_UNIT_COLUMNS, "unit"):
        if col in table:
            vals = table[col].dropna().astype(str)
            vals = vals[vals.isin(INFERENCE_UNITS)]
            if len(vals):
                return vals.value_counts().index[0]
    return None


MEAN_CLAIMS = ("1", "3a", "3b")  # the claims that compare mean accuracies (task-level where predictions exist)


def _row_unit(r) -> str | None:
    for col in (*INFERENCE_UNIT_COLUMNS, "unit"):
        v = getattr(r, col, None)
        if isinstance(v, str) and v in INFERENCE_UNITS:
            return v
    return None


def test_sizes(meta: dict | None) -> list[int]:
    """The test-set sizes of the report's runs (meta test_examples, else the tasks' split sizes)."""
    meta = meta or {}
    sizes = set()
    for v in (meta.get("test_examples") or {}).values():
        sizes |= {int(x) for x in (v if isinstance(v, (list, tuple)) else [v]) if x}
    if not sizes:
        for t in (meta.get("tasks") or {}).values():
            n = ((t or {}).get("split_sizes") or {}).get("test")
            if n:
                sizes.add(int(n))
    return sorted(sizes)


def unit_sentence(a: Analysis, meta: dict | None) -> str:
    """What the intervals and verdicts are about: the task (seeds and test examples both random) or
    this one test set (the records lack per-example predictions, or the analysis predates them)."""
    unit = inference_unit(a.claims_table())
    sizes = test_sizes(meta)
    n = (f" of {sizes[0]:,} examples" if len(sizes) == 1 else
         f" of {', '.join(f'{s:,}' for s in sizes)} examples (per task)" if sizes else "")
    held = (meta or {}).get("predictions")
    if unit == "task":
        return ("**Unit of inference: the task.** Intervals and verdicts treat training seeds and test examples "
                "as random (paired by seed and by example), so they speak about the task, not about the "
                f"test set{n} scored; the seed-only interval (this test set only) is shown beside each primary as a "
                "sensitivity row.")
    if not held or not held.get("with"):
        why = "the records hold no per-example test predictions"
    elif held.get("scored") == 0:
        why = ("the records hold per-example test predictions, but the store's splits file lacks the test labels "
               "they are scored against (it predates results schema 3; `run-all` on this store writes it again)")
    elif held["with"] < held["of"]:
        why = f"only {held['with']} of {held['of']} records hold per-example test predictions"
    else:
        why = "this analysis does not pair the runs by test example"
    return (f"**These intervals are conditional on one test set{n}:** {why}, so only the training seed is "
            "treated as random; a verdict says which arm scores higher on these test examples, not on the task "
            "(a new test sample adds its own variance; docs/method.md, \"The unit of inference\").")


# ---------------------------------------------------------------- the primaries in words

def _baseline_layers(g: Group) -> float:
    return g.successor_layers


def counts_words(note: str) -> str:
    """'failed 0/5 vs 0/5' or 'below the fine-tuning level 0/5 vs 0/5' from a rate comparison's note."""
    first = str(note or "").split(";")[0].strip()
    if not first or ": " not in first:
        return ""
    what, counts = first.rsplit(": ", 1)
    return f"{'below the fine-tuning level' if what.startswith('below') else 'failed'} {counts}"


def _no_information_cell(r) -> str:
    counts = counts_words(r.note)
    return f"no information{f' ({counts})' if counts else ''}"


def primary_rows(a: Analysis) -> pd.DataFrame:
    """One row per (primary claim, group), the claim in words, then per task-level row a second,
    labelled sensitivity row with the seed-only interval ("this test set only") when the table has it."""
    where = places(a.groups)
    rows = []
    for g in a.groups:
        t = g.claims_table()
        t = t[t["role"] == "primary"]
        for r in t.itertuples():
            words = claim_words(r.claim, r.a, r.b, r.title, _baseline_layers(g))
            unit = _row_unit(r)
            no_info = r.verdict == "no information"
            diff = _no_information_cell(r) if no_info else difference(r)
            if finite(r.estimate) and not no_info and r.unit == "points":
                diff = diff.replace(" (", " points (", 1) if " (" in diff else f"{diff} points"
            verdict = r.verdict
            if r.verdict == "undecided" and finite(r.seeds_needed):
                verdict += f" (~{int(r.seeds_needed)} seeds would decide it at this effect)"
            elif r.verdict == "undecided" and finite(r.min_p_adj) and r.min_p_adj >= ALPHA:
                verdict += f" (unreachable at this n: smallest attainable adjusted p {fmt_p(r.min_p_adj)})"
            rows.append({"claim": r.claim, "in words": words, "where": where[g.label],
                         "A − B (interval)": diff, "adjusted p": fmt_p(r.p_adj), "verdict": verdict,
                         "n": r.n, "basis": {"task": "task", "test set": "this test set"}.get(unit, "this test set")})
            if unit == "task" and all(hasattr(r, c) for c in SEED_ONLY) and finite(getattr(r, SEED_ONLY[0])):
                seed_only = r._replace(ci_low=getattr(r, SEED_ONLY[0]), ci_high=getattr(r, SEED_ONLY[1]))
                p_adj = getattr(r, "p_adj_seed_only", np.nan)
                so_verdict = getattr(r, "verdict_seed_only", "") or "—"
                rows.append({"claim": "", "in words": "↳ sensitivity, this test set only (seeds random, test "
                                                     "examples fixed)", "where": where[g.label],
                             "A − B (interval)": difference(seed_only).replace(" (", " points (", 1),
                             "adjusted p": fmt_p(p_adj), "verdict": so_verdict, "n": r.n, "basis": "this test set"})
    return pd.DataFrame(rows)


def interval_note(a: Analysis) -> str:
    """Which intervals the primary table shows and whether they are adjusted."""
    t = a.claims_table()
    prim = t[t["role"] == "primary"]
    units = list(dict.fromkeys(prim["unit"])) if len(prim) else ["points"]
    m, g = len(PRIMARY_CLAIMS), a.families or len(a.groups)  # G: the families (declared primaries: per task)
    return ("*A − B*: " + "; ".join(direction_words(u) for u in units if u) + ". *Interval*: 95% (claim 3b: the "
            "90% interval its two one-sided tests read), **not adjusted** for multiplicity; the verdict reads the "
            f"adjusted p (Holm over the {m} primaries of a group, x {g} for the report's {g} group(s)), so an "
            "interval can exclude 0 while the verdict is *undecided*. *no information*: no run failed (or every "
            "run did) on either side, so a failure rate cannot differ.")


def primary_section(a: Analysis) -> str:
    """The primaries in words: one row per claim and group (module docstring)."""
    rows = primary_rows(a)
    if rows.empty:
        return "_No claim could be evaluated._\n"
    cols = {"claim": "claim", "in words": "the claim, in words", "where": "where",
            "A − B (interval)": "A − B (interval)", "adjusted p": "adjusted p", "verdict": "verdict", "n": "n"}
    if len(a.groups) == 1:
        cols.pop("where")
    return "\n".join([interval_note(a) + "\n", md_table(rows, cols)])


# ---------------------------------------------------------------- per arm

def _failed_cell(r) -> str:
    known = r.n_degenerate_known
    out = f"{int(r.n_degenerate)}/{int(known)}" if finite(known) and known else "unknown"
    if finite(r.n_failed) and r.n_failed:
        out += f" (+{int(r.n_failed)} stopped with an error)"
    return out


def per_arm_table(a: Analysis) -> pd.DataFrame:
    """One row per arm (and group when there are several): mean, sd, n, failed runs."""
    where = places(a.groups)
    rows = []
    for g in a.groups:
        for r in g.variance.itertuples():
            rows.append({"where": where[g.label], "arm": r.arm, "in words": arm_words(r.arm),
                         "role": r.role if r.role in ("predecessor", "baseline") else "",
                         "mean": num(r.mean) if finite(r.mean) else "—",
                         "sd": num(r.std) if finite(r.std) else "—", "n": int(r.n), "failed": _failed_cell(r)})
    return pd.DataFrame(rows)


def per_arm_section(a: Analysis, max_groups: int = 3) -> str:
    if len(a.groups) > max_groups:
        return (f"_{len(a.groups)} groups: the per-arm table of each is in the appendix and "
                "`tables/variance.csv`._\n")
    t = per_arm_table(a)
    if t.empty:
        return "_No runs._\n"
    cols = {"where": "where", "arm": "arm", "in words": "in words", "role": "role", "mean": "mean (%)",
            "sd": "sd", "n": "n", "failed": "failed"}
    if len(a.groups) == 1:
        cols.pop("where")
    return ("Test accuracy (%) at the best-dev checkpoint over seeds. *failed*: the run's test predictions "
            "collapsed (Cohen's kappa against the labels below 0.2), of the runs where this is known.\n\n"
            + md_table(t, cols))


# ---------------------------------------------------------------- variance decomposition

def decomposition_table(a: Analysis) -> pd.DataFrame:
    """The per-primary variance decomposition of harness.analysis (seed, test sample, split,
    residual; what a decision would need), every group's rows with the group's place; empty when the
    analysis does not provide one."""
    where = places(a.groups)
    parts = []
    for g in a.groups:
        for attr in DECOMPOSITION_ATTRS:
            d = getattr(g, attr, None)
            if isinstance(d, pd.DataFrame) and not d.empty:
                parts.append(d.assign(where=where[g.label], task=g.task, model=g.model, budget=g.budget,
                                      successor_layers=g.successor_layers))
                break
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _se_share(se: float, share: float) -> str:
    if not finite(se):
        return "—"
    return num(se) + (f" ({100 * share:.0f}%)" if finite(share) else "")


def decomposition_display(d: pd.DataFrame) -> pd.DataFrame:
    """The decomposition as the report shows it: each source's standard error with its share of the
    variance of A − B, the floor no number of seeds goes below, and what a decision needs."""
    def col(name):
        return d[name] if name in d else pd.Series([np.nan] * len(d), index=d.index)
    unit = col("inference_unit").fillna("")
    return pd.DataFrame({
        "where": col("where"), "claim": col("claim"), "comparison": col("comparison"),
        "basis": ["task" if u == "task" else "this test set" for u in unit],
        "SE of A − B": [num(x) if finite(x) else "—" for x in col("se")],
        "seed": [_se_share(a, b) for a, b in zip(col("se_seed"), col("share_seed"))],
        "test sample": [_se_share(a, b) if u == "task" else "unknown (no per-example predictions)"
                        for a, b, u in zip(col("se_test_sample"), col("share_test_sample"), unit)],
        "residual": [_se_share(a, b) for a, b in zip(col("se_residual"), col("share_residual"))],
        "split": col("split").fillna("—"),
        "floor (any number of seeds)": [num(x) if finite(x) else "—" for x in col("se_floor")],
        "seeds needed": ["—" if not finite(x) else f"{int(x)}" for x in col("seeds_needed")],
        "test examples needed": ["—" if not finite(x) else f"{int(x):,}" for x in col("test_size_needed")],
        "what a decision needs": col("needs").fillna("")})


def decided_primaries(a: Analysis, decisions: pd.DataFrame | None = None) -> set[tuple]:
    """(task, model, successor_layers, budget, claim) of every primary with a verdict (supported,
    contradicted or equivalent: the bottom line's kinds; not undecided, open or stopped for futility): a
    sequential study's from its decisions, else the fixed design's."""
    from harness.report.sections.bottom_line import _kind  # bottom_line imports this module

    def key(task, model, ls, budget, claim):
        return (task, model, float(ls), -1.0 if pd.isna(budget) else float(budget), str(claim))

    decided = ("supported", "contradicted", "equivalent")
    if decisions is not None:
        return {key(r.task, r.model, r.successor_layers, r.budget, r.claim) for r in decisions.itertuples()
                if _kind(r.verdict) in decided}
    return {key(g.task, g.model, g.successor_layers, g.budget, c.claim) for g in a.groups for c in g.claims
            if c.role == "primary" and _kind(c.verdict) in decided}


def decomposition_section(a: Analysis, decisions: pd.DataFrame | None = None) -> str | None:
    """The "Variance decomposition" section, or None when the analysis gives no decomposition. What a
    decision needs is shown for the primaries not yet decided (`decided_primaries`; decisions: a
    sequential study's); a decided one reads "decided"."""
    d = decomposition_table(a)
    if d.empty:
        return None
    shown = decomposition_display(d)
    done = decided_primaries(a, decisions)
    decided = [(t, m, float(ls), -1.0 if pd.isna(b) else float(b), str(c)) in done
               for t, m, ls, b, c in zip(d["task"], d["model"], d["successor_layers"], d["budget"], d["claim"])]
    for column in ("seeds needed", "test examples needed", "what a decision needs"):
        shown.loc[decided, column] = "decided" if column == "what a decision needs" else "—"
    if len(a.groups) == 1:
        shown = shown.drop(columns="where")
    if (shown["split"] == "—").all():
        shown = shown.drop(columns="split")
    if not (d.get("inference_unit", pd.Series(dtype=str)) == "task").any():
        shown = shown.drop(columns=["residual", "floor (any number of seeds)", "test examples needed"])
    return ("Where the uncertainty of each primary mean difference comes from: standard errors of A − B in points, "
            "with each source's share of its variance. *seed*: initialisation and data order (and the training "
            "sample when each seed draws its own split); *test sample*: which examples happen to be in the test "
            "set; *floor*: the standard error that no number of seeds goes below at this test size. "
            "*seeds needed* / *test examples needed*: what a decision at the observed effect would take (80% "
            "power at the primaries' level).\n\n" + md_table(shown))


# ---------------------------------------------------------------- the fixed-design verdict table

def short_verdict(r) -> str:
    """One cell of the primary-verdicts table: the verdict, the estimate and the adjusted p."""
    if r.verdict == "no information":
        return f"no information ({r.note.rsplit(': ', 1)[-1]})" if r.note else r.verdict
    if not np.isfinite(r.estimate):
        return r.verdict
    pp = r.unit == "percentage points"
    tail = f"{num(r.estimate, 0 if pp else 2, sign=True)}{' pp' if pp else ''}, p_adj {fmt_p(r.p_adj)}"
    if r.verdict == "undecided" and np.isfinite(r.seeds_needed):
        tail += f", ~{int(r.seeds_needed)} seeds"
    if r.verdict == "undecided" and np.isfinite(r.min_p_adj) and r.min_p_adj >= ALPHA:
        tail += f"; unreachable at this n: smallest attainable p_adj {fmt_p(r.min_p_adj)}"
    return f"{r.verdict} ({tail})"


def group_short(g: Group) -> str:
    ls = f"{g.successor_layers:g}" if np.isfinite(g.successor_layers) else "?"
    lp = f"{g.predecessor_layers:g}" if np.isfinite(g.predecessor_layers) else "?"
    budget = f", {g.budget:,.0f} steps" if np.isfinite(g.budget) else ""
    return f"{g.task}, {lp}->{ls}{budget}"


def primary_verdicts(a: Analysis) -> pd.DataFrame:
    """Rows: the declared primaries (claim, comparison); columns: one per group (task, sizes,
    budget); cells: short_verdict."""
    cols = {}
    for g in a.groups:
        t = g.claims_table()
        rows = {r.claim: r for r in t[t["role"] == "primary"].itertuples()}
        cols[group_short(g)] = [short_verdict(rows[c.id]) if c.id in rows else "—" for c in PRIMARY_CLAIMS]
    if not cols:
        return pd.DataFrame()
    return pd.DataFrame({"claim": [c.id for c in PRIMARY_CLAIMS],
                         "primary comparison": [f"{c.primary.a} vs {c.primary.b}" for c in PRIMARY_CLAIMS],
                         **cols})


def fixed_design_section(a: Analysis, sequential: bool = False) -> str:
    """Every declared primary in one claim x group table, and how its family is adjusted. For a
    sequential study the same runs read as if every arm's seeds had been fixed in advance: no error
    rate is stated, because it does not hold for sequentially collected data."""
    table = primary_verdicts(a)
    if table.empty:
        return "_No claim could be evaluated._\n"
    size, g = len(PRIMARY_CLAIMS), a.families or len(a.groups)
    adjust = (f"Holm within a group, Bonferroni over the {g} group(s): adjusted p = {g} x Holm p")
    lead = (f"**Fixed-design reading, not the study's verdicts.** The same runs read as if every arm's seeds had "
            f"been fixed in advance ({adjust}). The seeds were collected sequentially (more seeds only where a "
            "primary was still open), so these p-values and verdicts carry no stated error rate; the study's "
            "verdicts are the sequential ones at the top.\n" if sequential else
            f"One primary comparison per claim, declared before the runs ({size} per group). {adjust}, so the "
            f"chance of any false primary verdict in this report is at most {ALPHA}.\n")
    return "\n".join([lead, md_table(table)])
