"""Which CPU kinds the runs came from, when more than one (docs/method.md, "Reports").

The same seed and configuration give different bf16 numbers on different CPU kinds (an Intel Xeon and an
AMD EPYC round matrix products differently), so a paired comparison whose seeds ran on several kinds
mixes that difference into its seed-to-seed spread, and a study whose looks ran on different machines
can differ between looks for that reason alone. A run's kind is its record's provenance: `cpu` (with
`matmul_isa`, results schema 3) or `device_name` (older records); the runs table carries it as the
`hardware` column (harness.report.pipeline.load_store). Nothing is shown when every run came from one
kind or the kind is unknown."""

from __future__ import annotations

import pandas as pd

from harness.analysis.groups import Analysis
from harness.report.format import md_table


def hardware_kind(record: dict) -> str:
    """The CPU kind of a run record: "AMD EPYC (avx512_bf16)", "Intel(R) Xeon(R) Processor"; "" unknown."""
    p = record.get("provenance") or {}
    name = str(p.get("cpu") or p.get("device_name") or "")
    isa = p.get("matmul_isa")
    return f"{name} ({isa})" if name and isa else name


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    if "hardware" not in runs:
        return runs.iloc[0:0]
    r = runs[(runs["status"] == "ok") & runs["hardware"].fillna("").astype(str).ne("")]
    return r


def hardware_table(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Runs per arm (rows) and CPU kind (columns), with the task where there are several; None
    when the successful runs came from one kind."""
    if "hardware" not in runs:
        return None
    r = _ok(runs)
    if r["hardware"].nunique() < 2:
        return None
    keys = ["task", "arm"] if r["task"].nunique() > 1 else ["arm"]
    t = r.groupby(keys + ["hardware"]).size().unstack("hardware", fill_value=0).reset_index()
    t.columns.name = None
    return t


def mixed_comparisons(a: Analysis, seq: dict | None = None) -> list[str]:
    """One line per primary comparison whose paired seeds ran on more than one CPU kind: the claim,
    where, the two arms, and how many seeds ran on each kind (a seed whose two arms ran on different
    kinds counted as split). A sequential study's comparisons read the seeds of their stopping look."""
    if "hardware" not in a.runs:
        return []
    rows = []
    if seq is not None and not seq["decisions"].empty:
        look_of = a.runs.set_index("run_id")["look"] if "look" in a.runs else None
        for r in seq["decisions"].itertuples():
            if r.b and r.verdict not in ("not run", "open"):
                rows.append((r.claim, r.task, r.successor_layers, r.budget, r.a, r.b, int(r.look or 0)))
    else:
        t = a.claims_table()
        for r in t[t["role"] == "primary"].itertuples():
            if r.b and r.verdict != "not run":
                rows.append((r.claim, r.task, r.successor_layers, r.budget, r.a, r.b, 0))
        look_of = None
    out = []
    runs = _ok(a.runs)
    for claim, task, ls, budget, arm_a, arm_b, look in rows:
        here = runs[(runs["task"] == task) & runs["arm"].isin([arm_a, arm_b])]
        here = here[(here["successor_layers"] == ls) | (here["arm"].str.startswith("finetune-")
                                                          & (here["successor_layers"] == here["predecessor_layers"]))]
        if pd.notna(budget) and "budget" in here:
            here = here[(here["budget"] == budget) | here["budget"].isna()]
        if look and look_of is not None:
            here = here[here["run_id"].map(look_of).fillna(0) <= look]
        per_seed = here.groupby("seed")["hardware"].agg(lambda k: tuple(sorted(set(k))))
        paired = per_seed[here.groupby("seed")["arm"].nunique() == 2]
        if paired.empty or len({k for ks in paired for k in ks}) < 2:
            continue
        counts = paired.map(lambda ks: ks[0] if len(ks) == 1 else "split across kinds").value_counts()
        detail = ", ".join(f"{n} on {k}" for k, n in counts.items())
        out.append(f"claim {claim} on {task} ({arm_a} vs {arm_b}): {len(paired)} paired seeds, {detail}")
    return out


def hardware_section(a: Analysis, seq: dict | None = None) -> str | None:
    """The warning and the hardware x arm table (module docstring); None on one CPU kind."""
    table = hardware_table(a.runs)
    if table is None:
        return None
    lines = mixed_comparisons(a, seq)
    kinds = [c for c in table.columns if c not in ("task", "arm")]
    out = [f"**Warning: the runs come from {len(kinds)} CPU kinds** ({', '.join(kinds)}). The same seed gives "
           "different bf16 numbers on different kinds, so a comparison whose paired seeds ran on several kinds "
           "carries that difference in its spread"
           + (":" if lines else "; no primary comparison's paired seeds mix kinds.")]
    out += [f"- {x}" for x in lines]
    out += ["", "Runs per arm and CPU kind:", "", md_table(table.astype({k: str for k in kinds}))]
    return "\n".join(out) + "\n"
