"""The variance-decomposition section says what a decision needs only for primaries not yet decided."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.groups import analyze
from harness.store.schema import normalize_runs
from harness.report.sections.primary import decomposition_section


def _task(task: str, lift: float, rng, n: int = 8, big_n: int = 600):
    """finetune-6, finetune-3 and theseus-add/seed on `task`; Theseus gets `lift` more examples right."""
    right = rng.random(big_n) < 0.8
    runs, ex = [], []
    for arm in ("finetune-6", "finetune-3", "theseus-add/seed"):
        for s in range(n):
            c = np.where(rng.random(big_n) < 0.05, ~right, right)
            if arm == "theseus-add/seed":
                c = c | (rng.random(big_n) < lift)
            rid = f"{task}-{arm}-{s}"
            strategy, _, variant = arm.partition("/")
            runs.append(dict(task=task, strategy=strategy, variant=variant, seed=s, run_id=rid, test_accuracy=c.mean()))
            ex.append(pd.DataFrame(dict(run_id=rid, example=np.arange(big_n), correct=c.astype(int))))
    return runs, ex


def test_a_decided_primary_reads_decided_and_an_undecided_one_what_it_needs():
    rng = np.random.default_rng(3)
    runs_a, ex_a = _task("clear", 0.5, rng)
    runs_b, ex_b = _task("close", 0.0, rng)
    a = analyze(normalize_runs(pd.DataFrame(runs_a + runs_b)), examples=pd.concat(ex_a + ex_b, ignore_index=True))
    verdicts = {g.task: next(c.verdict for c in g.claims if c.claim == "1" and c.role == "primary") for g in a.groups}
    assert verdicts["clear"] == "supported" and verdicts["close"] == "undecided"
    text = decomposition_section(a)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| c")}
    assert rows["clear"].rstrip(" |").endswith("decided")
    assert "decided" not in rows["close"] and ("seeds" in rows["close"] or "test examples" in rows["close"])
