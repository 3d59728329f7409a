"""A sequential study's answer (docs/method.md, "Sequential seeds"): per group and primary the look
it stopped at, its verdict in words, the estimate and the repeated interval its decision used; what
was decided at which looks; the runs saved against a fixed design. The design in prose goes to the
appendix (`design_prose`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis import sequential
from harness.report.format import claim_words, finite, md_table, num
from harness.report.sections.primary import counts_words

COVERAGE_COLUMNS = ("rci_coverage", "coverage", "simultaneous_coverage")
NO_FAILURES = "no failures or only failures so far"


def _places(t: pd.DataFrame) -> list[str]:
    """Per decision row its group's place: the task, plus layers / budget where they differ."""
    out = []
    vary_ls = "successor_layers" in t and t["successor_layers"].nunique(dropna=False) > 1
    vary_b = "budget" in t and t["budget"].nunique(dropna=False) > 1
    for r in t.itertuples():
        parts = [str(r.task)]
        if vary_ls and finite(r.successor_layers):
            parts.append(f"{r.successor_layers:g} layers")
        if vary_b and finite(r.budget):
            parts.append(f"{r.budget:,.0f} steps")
        out.append(", ".join(parts))
    return out


def no_information(r) -> bool:
    """A failure-rate primary with no failed run (or only failed runs) on either side: nothing to
    estimate, so no interval is shown (its width would only reflect the design, e.g. ±87.57 pp)."""
    return NO_FAILURES in str(r.note or "") or str(r.verdict) == "no information"


def coverage_column(t: pd.DataFrame) -> str | None:
    return next((c for c in COVERAGE_COLUMNS if c in t), None)


def decisions_in_words(t: pd.DataFrame) -> pd.DataFrame:
    """The decisions table as the report shows it (module docstring)."""
    cov = coverage_column(t)
    rows = []
    for where, r in zip(_places(t), t.itertuples()):
        stop = "—" if not r.look else f"look {r.look} ({r.seeds} seeds)"
        verdict, est, ci, pb = r.verdict, "—", "—", "—"
        if no_information(r):
            counts = counts_words(r.note)
            verdict = (f"{r.verdict}: no information" if r.verdict != "no information" else r.verdict) \
                + (f" ({counts})" if counts else "")
        else:
            pp = r.unit == "percentage points"
            if finite(r.estimate):
                est = f"{num(r.estimate, 0 if pp else 2, sign=True)} {'pp' if pp else 'points'}"
            if finite(r.rci_low, r.rci_high):
                level = getattr(r, cov) if cov else np.nan
                tag = (f"{100 * level:.4g}% simultaneous" if finite(level) and level > 0 else
                       f"nominal {100 * (1 - r.rci_p):.4g}% at this look" if finite(r.rci_p) else "")
                ci = f"[{num(r.rci_low)}, {num(r.rci_high)}]" + (f" ({tag})" if tag else "")
            if finite(r.p):
                pb = f"{r.p:.2g} / {r.bound:.2g}"
        rows.append({"where": where, "claim": r.claim, "in words": claim_words(r.claim, r.a, r.b),
                     "stopped at": stop, "verdict": verdict, "A − B": est, "repeated interval": ci,
                     "p / boundary": pb, "n": r.n or "—"})
    return pd.DataFrame(rows)


def sequential_section(seq: dict, groups: int) -> str:
    """The study's verdicts (module docstring); `groups`: the number of groups (the where column is
    left out for one)."""
    looks, t = seq["looks"], seq["decisions"]
    cov = coverage_column(t)
    out = [f"Looks at {', '.join(map(str, looks))} seeds per arm, declared before the runs; after each look every "
           "open primary is tested against its group-sequential boundary, and it stops when it crosses (a "
           "verdict), when it can no longer cross (*stopped for futility*) or at the last look. *A − B*: the "
           "difference at the stopping look (positive: A higher; an early stop's estimate is biased away from 0). "
           "*Repeated interval*: the interval the decision read at that look"
           + (", with its simultaneous coverage over all looks" if cov else
              " at its nominal level; over all looks together these intervals cover with probability at least "
                "1 − alpha (Jennison & Turnbull)") + ". The design in full is in the appendix.\n"]
    if seq["open"]:
        out.append(f"**In progress:** {seq['open']} primary comparison(s) wait for their next look; "
                   "`python -m harness run-all` resumes where the study stopped.\n")
    shown = decisions_in_words(t)
    cols = {c: c for c in shown.columns}
    if groups <= 1:
        cols.pop("where")
    out.append(md_table(shown, cols))
    decided = t[t["verdict"].isin(["supported", "contradicted"]) | t["verdict"].str.startswith("equivalent")]
    at = ", ".join(f"{n} at look {k}" for k, n in decided.groupby("look").size().items()) or "none"
    counts = t["verdict"].str.split(" \\(").str[0].value_counts()
    out.append(f"Decided: {len(decided)} of {len(t)} primary comparisons ({at}); "
               + ", ".join(f"{v}: {n}" for v, n in counts.items()) + ".\n")
    saved = seq["fixed_runs"] - seq["runs"]
    out.append(f"Runs: {seq['runs']} (predecessor and student runs of every arm) against {seq['fixed_runs']} for a "
               f"fixed design at {looks[-1]} seeds: {saved} saved ({100 * saved / max(seq['fixed_runs'], 1):.0f}%)"
               + (" so far" if seq["open"] else "") + f". Training time summed over the runs this study trained: "
               f"{seq['wall_seconds'] / 3600:.1f} h"
               + (f", {seq['reused']} runs reused from other stores with the same run keys" if seq["reused"] else "")
               + ".\n")
    return "\n".join(out)


def design_prose(seq: dict) -> str:
    """The sequential design in words, for the appendix."""
    return (f"Looks at {', '.join(map(str, seq['looks']))} seeds per arm, declared before the runs. After each look "
            "every primary is tested against Lan-DeMets O'Brien-Fleming-type boundaries read on the nominal p scale "
            "(*boundary*: the p a test had to reach at that look), Holm within each group's family (a decided "
            f"primary passes its level to the others), alpha / {seq['groups']} per group; equivalence (the repeated "
            f"interval inside ±{seq['margin']:g}) and 3b's non-superiority at alpha / ({seq['groups']} x "
            f"{seq['family']}); a primary stops for futility (non-binding) when its conditional power at the current "
            f"trend falls below {seq['futility']:g}. Only arms of open primaries get the next look's seeds. "
            f"{sequential.BIAS_NOTE[0].upper() + sequential.BIAS_NOTE[1:]}. A failure-rate primary with no failed "
            "run on either side has nothing to estimate: it shows its counts, not an interval.\n")
