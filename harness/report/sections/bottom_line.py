"""The bottom line: two to four sentences generated from the primary verdicts (the claims table, or a
sequential study's decisions): what holds, where, by how much; what is not decided and what would
decide it. Nothing here is written by hand about a result: every claim, place and number comes from
the tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.groups import Analysis
from harness.report.format import claim_words, finite, num
from harness.report.sections.primary import places
from harness.report.sections.sequential import _places as sequential_places
from harness.report.sections.sequential import no_information

MAX_PLACES = 3  # more places than this read as "in k of n groups"


@dataclass
class Finding:
    """One primary verdict at one place: claim id, the claim in words, where, the verdict, the
    estimate (A − B) in its unit, seeds a decision would need (NaN: none stated)."""
    claim: str
    words: str
    where: str
    verdict: str
    estimate: float
    unit: str
    seeds_needed: float = np.nan


def _kind(verdict: str) -> str:
    v = str(verdict)
    if v.startswith("equivalent"):
        return "equivalent"
    if v in ("supported", "contradicted"):
        return v
    if v == "no information" or v.startswith("not testable") or v in ("not run", "open"):
        return "no information" if v == "no information" else "other"
    return "undecided"  # undecided, stopped for futility


def findings(a: Analysis, seq: dict | None = None) -> list[Finding]:
    """Every primary verdict of the report: a sequential study's decisions, else the claims table's
    primaries (group by group)."""
    out = []
    if seq is not None and not seq["decisions"].empty:
        t = seq["decisions"]
        for where, r in zip(sequential_places(t), t.itertuples()):
            verdict = "no information" if no_information(r) else r.verdict
            out.append(Finding(r.claim, claim_words(r.claim, r.a, r.b, capital=False), where, verdict, r.estimate, r.unit))
        return out
    where = places(a.groups)
    for g in a.groups:
        t = g.claims_table()
        for r in t[t["role"] == "primary"].itertuples():
            out.append(Finding(r.claim, claim_words(r.claim, r.a, r.b, r.title, g.successor_layers, capital=False), where[g.label],
                               r.verdict, r.estimate, r.unit, r.seeds_needed))
    return out


def _amount(f: Finding) -> str:
    if not finite(f.estimate):
        return ""
    pp = f.unit == "percentage points"
    return f"{num(f.estimate, 0 if pp else 2, sign=True)} {'pp' if pp else 'points' if f.unit == 'points' else f.unit}"


def _where(fs: list[Finding], n_places: int) -> str:
    """'on trec-6 (+1.42 points) and rt-polarity (+0.91 points)', or 'in 5 of 8 groups (+0.50 to
    +2.10 points)'."""
    if n_places == 1:
        amount = _amount(fs[0])
        return f"({amount})" if amount else ""
    if len(fs) > MAX_PLACES:
        est = [f.estimate for f in fs if finite(f.estimate)]
        span = ""
        if est:
            lo, hi = min(est), max(est)
            unit = "pp" if fs[0].unit == "percentage points" else "points"
            span = f" ({num(lo, sign=True)} to {num(hi, sign=True)} {unit})"
        return f"in {len(fs)} of {n_places} groups{span}"
    items = [f"{f.where}{f' ({_amount(f)})' if _amount(f) else ''}" for f in fs]
    return "on " + (items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1])


def _by_claim(fs: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in fs:
        out.setdefault(f.claim, []).append(f)
    return out


def bottom_line(a: Analysis, seq: dict | None = None, margin: float = 1.0) -> str:
    """The bottom line as 2-4 sentences (module docstring); one sentence when nothing was evaluated."""
    fs = findings(a, seq)
    if not fs:
        return "No primary claim could be evaluated on these runs."
    n_places = len({f.where for f in fs})
    kinds = {k: [f for f in fs if _kind(f.verdict) == k] for k in
             ("supported", "contradicted", "equivalent", "undecided", "no information", "other")}
    sentences = []
    holds = [f"{group[0].words} {_where(group, n_places)}".rstrip()
             for group in _by_claim(kinds["supported"]).values()]
    if holds:
        sentences.append("Supported: " + "; ".join(holds) + ".")
    against = [f"the claim that {group[0].words} is contradicted "
               f"{_where(group, n_places)}".rstrip() for group in _by_claim(kinds["contradicted"]).values()]
    against += [f"claim {group[0].claim}'s two arms are equivalent within ±{margin:g} point "
                f"{_where(group, n_places)}".rstrip() for group in _by_claim(kinds["equivalent"]).values()]
    if against:
        text = "; ".join(against)
        sentences.append(text[0].upper() + text[1:] + ".")
    if not holds and not against:
        sentences.insert(0, "No primary claim is decided in either direction by these runs.")
    open_ = []
    for claim, group in _by_claim(kinds["undecided"]).items():
        futile = all(str(f.verdict).startswith("stopped for futility") for f in group)
        need = [f.seeds_needed for f in group if finite(f.seeds_needed)]
        extra = [x for x in ("stopped for futility" if futile else "",
                             f"{'up to ' if len(need) > 1 else ''}about {int(max(need))} seeds per arm would decide "
                             f"it" if need else "") if x]
        where = _where(group, n_places)
        if n_places == 1:  # where is "(+1.34 points)": one parenthesis for everything
            inner = "; ".join([where.strip("()")] * bool(where) + extra)
            open_.append(f"claim {claim}" + (f" ({inner})" if inner else ""))
        elif extra and where.endswith(")"):  # "in 6 of 6 groups (+0.36 to +1.66 points; ...)": one parenthesis
            open_.append(f"claim {claim} {where[:-1]}; {'; '.join(extra)})")
        else:
            open_.append(f"claim {claim} {where}" + (f" ({'; '.join(extra)})" if extra else ""))
    nothing = sorted(_by_claim(kinds["no information"]))
    if open_ or nothing:
        parts = []
        if open_:
            parts.append("not decided: " + ", ".join(x.rstrip() for x in open_))
        if nothing:
            parts.append(f"no information on claim{'s' if len(nothing) > 1 else ''} {', '.join(nothing)} "
                         "(what it counts, a failed run or a run below the fine-tuning level, happened in no run or in "
                         "every run on either side, so the rates cannot differ)")
        text = "; ".join(parts)
        sentences.append(text[0].upper() + text[1:] + ".")
    return " ".join(sentences[:4])


def bottom_line_section(a: Analysis, seq: dict | None, unit_sentence: str) -> str:
    """The bottom line, then what its intervals are about (the unit of inference)."""
    return "\n".join([bottom_line(a, seq, a.margin) + "\n", unit_sentence + "\n"])
