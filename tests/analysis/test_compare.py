"""`compare`: two sweeps paired arm by arm and seed by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.analysis.compare import compare_runs
from harness.cli import main
from harness.errors import HarnessError


def _table(means: dict[str, float], *, n: int = 6, noise: float = 1.0, shift: float = 0.0,
           jitter: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Runs of each arm over seeds 0..n-1; the per-seed value is the same draw on both sides of a
    comparison (same `seed`), plus `shift` and independent `jitter`."""
    rng, jit = np.random.default_rng(seed), np.random.default_rng(seed + 99)
    rows = []
    for arm, mean in means.items():
        for s, v in enumerate(mean + noise * rng.standard_normal(n)):
            rows.append({"task": "t", "model": "m", "successor_layers": 3, "strategy": arm, "seed": s,
                         "test_accuracy": v + shift + jitter * jit.standard_normal(), "wall_seconds": 10.0})
    return pd.DataFrame(rows)


ARMS = {"finetune-3": 74.0, "theseus-add": 75.0, "finetune-6": 80.0}


def test_identical_tables_are_equivalent_with_every_seed_identical():
    a = _table(ARMS)
    t = compare_runs(a, a.copy(), label_a="fp32", label_b="bf16")
    assert set(t["verdict"]) == {"equivalent within ±1"}
    assert (t["diff"] == 0).all() and (t["identical"] == 1).all()
    assert (t["diff_ci_low"] == 0).all() and (t["diff_ci_high"] == 0).all()


def test_a_shift_is_found_with_its_sign_and_size():
    a = _table(ARMS)
    b = _table(ARMS, shift=3.0, jitter=0.2).assign(wall_seconds=5.0)
    t = compare_runs(a, b, label_a="old", label_b="new").set_index("arm")
    assert set(t["verdict"]) == {"differs"}
    assert (t["diff"] - 3.0).abs().max() < 0.3          # B - A, not A - B
    assert (t["diff_ci_low"] < t["diff"]).all() and (t["diff"] < t["diff_ci_high"]).all()
    assert (t["mean_b"] - t["mean_a"] - t["diff"]).abs().max() < 1e-9
    assert (t["paired_p_holm"] >= t["paired_p"]).all()
    assert (t["wall_ratio"] == 2.0).all()                 # B twice as fast
    assert (t["identical"] == 0).all()


def test_a_sweep_with_more_seeds_is_compared_on_the_shared_seeds_only():
    """B ran 10 seeds, A the first 5 (a sweep grown after A): means, counts and times cover the 5
    shared seeds, so mean_b - mean_a is the paired diff and the time totals are like for like."""
    a = _table(ARMS, n=5).assign(wall_seconds=20.0)
    b = pd.concat([_table(ARMS, n=5, shift=0.5), _table(ARMS, n=10, seed=7).query("seed >= 5").assign(
        test_accuracy=lambda d: d["test_accuracy"] + 30)]).assign(wall_seconds=10.0)
    t = compare_runs(a, b).set_index("arm")
    assert (t["n_a"] == 5).all() and (t["n_b"] == 5).all() and (t["n_paired"] == 5).all()
    assert (t["left_out"] == 5).all()
    assert (t["mean_b"] - t["mean_a"] - t["diff"]).abs().max() < 1e-9   # the +30 seeds are not in the means
    assert (t["diff"] - 0.5).abs().max() < 1e-9
    from harness.analysis.compare import render
    text = render(compare_runs(a, b), "a", "b")
    assert "300 s summed over A's runs, 150 s over B's (B is 2.00x as fast)" in text


def test_budgets_are_paired_within_a_budget_study_and_named_when_they_differ():
    """Two budget studies: each (arm, budget) is its own comparison, never averaged over budgets, and a
    budget-less predecessor pairs with the budget-less one. One budget against none: paired across,
    and the report says the training lengths differ."""
    from harness.analysis.compare import render

    def study(shift_at_400: float) -> pd.DataFrame:
        low = _table({"finetune-3": 74.0}).assign(budget=100)
        high = _table({"finetune-3": 76.0}, seed=3).assign(budget=400)
        high["test_accuracy"] += shift_at_400
        return pd.concat([low, high, _table({"finetune-6": 80.0}, seed=5)], ignore_index=True)

    t = compare_runs(study(0.0), study(3.0))
    assert len(t) == 3 and t["n_paired"].eq(6).all()
    by = t.set_index(["arm", t["budget"].fillna(0)])
    assert by.loc[("finetune-3", 100.0), "diff"] == 0 and by.loc[("finetune-6", 0.0), "diff"] == 0
    assert by.loc[("finetune-3", 400.0), "diff"] == pytest.approx(3.0)   # not 1.5: no averaging over budgets
    assert "| budget |" in render(t, "a", "b")
    one = compare_runs(_table(ARMS), _table(ARMS).assign(budget=567))
    assert len(one) == 3 and one["diff"].eq(0).all()
    assert "A ran at each arm's epochs (no budget), B at 567 student optimizer steps" in render(one, "a", "b")
    assert "Training lengths differ" not in render(compare_runs(_table(ARMS), _table(ARMS)), "a", "b")


def test_small_noise_within_margin_is_equivalent_and_large_noise_is_inconclusive():
    a = _table(ARMS, n=8)
    close = compare_runs(a, _table(ARMS, n=8, jitter=0.1))
    assert set(close["verdict"]) == {"equivalent within ±1"}
    far = compare_runs(a, _table(ARMS, n=8, jitter=3.0))
    assert all(v.startswith("inconclusive") or v == "differs" for v in far["verdict"])
    assert any(v.startswith("inconclusive") for v in far["verdict"])


def test_too_few_paired_seeds_is_not_tested_and_disjoint_tables_are_an_error():
    t = compare_runs(_table(ARMS, n=2), _table(ARMS, n=2))
    assert all(v.startswith("not tested") for v in t["verdict"])
    other = _table({"kd": 70.0})
    with pytest.raises(HarnessError, match="share no"):
        compare_runs(_table(ARMS), other)


def test_cli_compare_writes_tables_and_refuses_a_missing_input(tmp_path, capsys):
    a, b = tmp_path / "fp32" / "runs.csv", tmp_path / "bf16" / "runs.csv"
    for path, table in ((a, _table(ARMS)), (b, _table(ARMS, jitter=0.1))):
        path.parent.mkdir()
        table.to_csv(path, index=False)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "bf16-vs-fp32.csv")
    assert len(written) == 3 and "verdict" in written
    assert "# Comparison: bf16 vs fp32" in (tmp_path / "out" / "bf16-vs-fp32.md").read_text()
    capsys.readouterr()
    assert main(["compare", str(a), str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.csv not found" in err
