"""The findings page (report/README.md), the hardware warning of a report, and the accuracy-vs-budget
axis: built from synthetic stores of hand-written run records (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.analysis.budget import budget_summary  # noqa: E402
from harness.report import budget_plots, pipeline  # noqa: E402
from harness.report.findings import findings_page  # noqa: E402
from harness.store.schema import normalize_runs  # noqa: E402

ARMS = [("finetune-6", "", 6), ("finetune-3", "", 3), ("theseus-add", "seed", 3), ("theseus-binary", "seed", 3),
        ("two-stage", "predecessor-1x", 3)]
INTEL, AMD = "Intel(R) Xeon(R) Processor", "AMD EPYC"


def _record(name, task, strategy, variant, layers, seed, acc, budget, cpu, lr=1e-4):
    run_id = f"{name}-{task}-{strategy}-{variant}-{layers}-{seed}"
    return {"run_id": run_id, "status": "ok", "strategy": strategy, "variant": variant, "seed": seed,
            "student_seed": seed, "predecessor_layers": 6, "successor_layers": layers, "sweep": name,
            "budget": None if layers == 6 else budget,
            "config": {"task": task, "model": "tiny", "strategy": strategy, "variant": variant, "seed": seed,
                       "lr": lr, "budget": None if layers == 6 else budget, "precision": "bf16"},
            "task": {"name": task, "num_classes": 2, "data_hash": "h"}, "model": {"name": "tiny"},
            "final": {"test_accuracy": acc, "dev_accuracy": acc, "n_test": 1000, "degenerate": False},
            "provenance": {"cpu": cpu, "device": "cpu"}, "wall_seconds": 1.0}


def _store(root: Path, name: str, seeds, effect: float, budget: int, cpu=lambda s: INTEL) -> Path:
    """A fixed-design store: the primaries' arms on two tasks; theseus-add/seed beats finetune-3 by
    `effect` points plus seed noise shared by the other arms."""
    out = root / name
    (out / "runs").mkdir(parents=True)
    rng = np.random.default_rng(7)
    noise = {s: rng.normal(0, 0.004, 4) for s in seeds}
    for task in ("alpha", "beta"):
        for s in seeds:
            n = noise[s]
            acc = {("finetune-6", 6): 0.85 + n[0], ("finetune-3", 3): 0.80 + n[1],
                   ("theseus-add", 3): 0.80 + effect / 100 + n[2] + n[1] * 0.5,
                   ("theseus-binary", 3): 0.805 + n[3], ("two-stage", 3): 0.801 + n[1]}
            for strategy, variant, layers in ARMS:
                r = _record(name, task, strategy, variant, layers, s, round(float(acc[(strategy, layers)]), 4),
                            budget, cpu(s))
                (out / "runs" / f"{r['run_id']}.json").write_text(json.dumps(r))
    (out / "sweep.json").write_text(json.dumps({"name": name, "config": {}, "run_ids": None}))
    return out


def test_findings_page_opens_with_the_claims_table_and_reconciles_with_a_test(tmp_path):
    root = tmp_path / "results"
    _store(root, "short", range(5), effect=0.0, budget=100)
    _store(root, "long", range(5), effect=3.0, budget=300)
    page = findings_page(root, tmp_path / "report")
    lines = page.splitlines()
    first_table = next(i for i, x in enumerate(lines) if x.startswith("|"))
    assert lines[0] == "# Findings" and first_table <= 4  # title, date line, then the table
    assert lines[first_table].startswith("| claim | task | verdict (reproduce study in progress")
    assert "beats direct fine-tuning of 3 layers" in page  # claims in words
    assert "not started: reproduce-tune-567, reproduce-tune-189, reproduce" in page
    # claim 1 differs between the two budgets: the reconciliation names the setting and tests it
    why = page.split("## Why the reports' words differ", 1)[1].split("## Reports", 1)[0]
    claim1 = next(x for x in why.splitlines() if "budget 100 vs 300" in x or "budget 300 vs 100" in x)
    assert "interaction paired by seed on 5 common seeds" in claim1 and " p " in claim1
    assert "Holm over the" in claim1
    # no verdict words are written by hand: with equal effects nothing differs and nothing is reconciled
    root2 = tmp_path / "results2"
    _store(root2, "short", range(5), effect=3.0, budget=100)
    _store(root2, "long", range(5), effect=3.0, budget=300)
    assert "budget 100 vs 300" not in findings_page(root2, tmp_path / "report")


def test_same_runs_with_more_seeds_read_as_power_not_a_setting(tmp_path):
    root = tmp_path / "results"
    _store(root, "five", range(5), effect=0.8, budget=100)
    _store(root, "twenty", range(20), effect=0.8, budget=100)
    page = findings_page(root, tmp_path / "report")
    why = page.split("## Why the reports' words differ", 1)[1]
    claim1 = why.split("**Claim 1**", 1)[1].split("**Claim", 1)[0]  # undecided at 5 seeds, supported at 20
    assert "undecided" in claim1 and "supported" in claim1
    assert "same runs" in claim1 and "number of seeds (power)" in claim1 and "5 against 20" in claim1


def test_report_warns_when_paired_seeds_mix_cpu_kinds(tmp_path):
    root = tmp_path / "results"
    store = _store(root, "mixed", range(6), effect=1.0, budget=100, cpu=lambda s: INTEL if s < 3 else AMD)
    report = pipeline.build_report(store, report_dir=tmp_path / "report", say=lambda *_: None)
    text = report.read_text()
    assert "## Hardware" in text and text.index("## Hardware") < text.index("## Per arm")
    assert "Warning: the runs come from 2 CPU kinds" in text
    assert "claim 1 on alpha (theseus-add/seed vs finetune-3): 6 paired seeds, 3 on " in text
    assert f"| alpha | finetune-3 | 3 | 3 |" in text
    assert (tmp_path / "report" / "README.md").read_text().startswith("# Findings")
    one = _store(tmp_path / "one", "single", range(6), effect=1.0, budget=100)
    assert "## Hardware" not in pipeline.build_report(one, report_dir=tmp_path / "r1", say=lambda *_: None).read_text()


def test_budget_axis_follows_the_working_runs_and_counts_the_collapsed(tmp_path):
    rows = []
    for budget in (100, 300):
        for s in range(5):
            rows.append({"task": "t", "model": "m", "strategy": "finetune", "arm": "finetune-3", "seed": s,
                         "budget": budget, "test_accuracy": 0.80 + 0.002 * s, "degenerate": False,
                         "predecessor_layers": 6, "successor_layers": 3, "status": "ok"})
            collapsed = budget == 100
            rows.append({"task": "t", "model": "m", "strategy": "theseus-binary", "arm": "theseus-binary/seed",
                         "variant": "seed", "seed": s, "budget": budget,
                         "test_accuracy": 0.50 if collapsed else 0.81 + 0.002 * s, "degenerate": collapsed,
                         "predecessor_layers": 6, "successor_layers": 3, "status": "ok"})
    runs = normalize_runs(pd.DataFrame(rows))
    fig, ax = plt.subplots()
    budget_plots.plot_accuracy_vs_budget(runs, budget_summary(runs), {}, tmp_path / "p", "t", ax=ax)
    low, high = ax.get_ylim()
    assert low > 75 and high < 85  # the collapsed runs at 50% do not set the axis
    texts = [t.get_text() for t in ax.texts]
    assert "5" in texts and "collapsed runs (count)" in texts  # 5 collapsed runs at budget 100, counted
    plt.close(fig)


def test_a_stores_reading_is_cached_by_its_content_and_the_code(tmp_path, monkeypatch):
    """An unchanged store is not analysed again; a changed record (or other harness code) is."""
    from harness.report import findings

    store = _store(tmp_path / "results", "one", range(4), effect=1.0, budget=100)
    reads = []
    real = findings.read_study
    monkeypatch.setattr(findings, "read_study", lambda p: reads.append(p) or real(p))
    first = findings.cached_study(store)
    again = findings.cached_study(store)
    estimates = lambda study: np.array([c.estimate for c in study.cells])  # noqa: E731
    assert len(reads) == 1 and np.array_equal(estimates(again), estimates(first), equal_nan=True)
    record = next((store / "runs").glob("*theseus-add*-0.json"))
    data = json.loads(record.read_text())
    data["final"]["test_accuracy"] += 0.01
    record.write_text(json.dumps(data))
    changed = findings.cached_study(store)
    assert len(reads) == 2 and not np.array_equal(estimates(changed), estimates(first), equal_nan=True)
    monkeypatch.setattr(findings, "_SOURCE_HASH", ["other code"])
    findings.cached_study(store)
    assert len(reads) == 3
