"""The tuning stage: the same trials for every arm, tuning seeds never evaluated, selection by dev."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_sweep

from harness.analysis.tuning import annotate, effective_lr, lr_setting, select_settings
from harness.errors import HarnessError
from harness.run.identity import key_of
from harness.sweep import execute
from harness.sweep import plan as sweep_mod


def _tune_rows(dev: dict[float, list[float]], arm="theseus-add/seed", seeds=(100, 101)) -> list[dict]:
    return [{"task": "t", "model": "m", "successor_layers": 3, "predecessor_layers": 6, "budget": 567, "arm": arm,
             "seed": s, "lr": lr, "status": "ok", "dev_accuracy": d}
            for lr, ds in dev.items() for s, d in zip(seeds, ds)]


def test_selection_takes_the_best_mean_dev_and_flags_the_grid_edge():
    grid = [2e-5, 5e-5, 1e-4, 3e-4]
    runs = pd.DataFrame(_tune_rows({2e-5: [0.5, 0.6], 5e-5: [0.80, 0.70], 1e-4: [0.74, 0.77], 3e-4: [0.7, 0.7]})
                        + _tune_rows({2e-5: [0.5, 0.5], 5e-5: [0.6, 0.6], 1e-4: [0.7, 0.7], 3e-4: [0.8, 0.7]},
                                     arm="finetune-3"))
    sel = select_settings(runs, grid, [100, 101]).set_index("arm")
    assert sel.loc["theseus-add/seed", "lr"] == 1e-4  # mean 0.755 beats 5e-5's 0.75 (max of one seed is 0.80)
    assert not sel.loc["theseus-add/seed", "at_edge"]
    assert sel.loc["finetune-3", "lr"] == 3e-4 and sel.loc["finetune-3", "at_edge"]
    assert sel["complete"].all() and (sel["trials"] == 4).all()


def test_selection_breaks_ties_toward_the_smaller_rate_and_needs_every_tuning_seed():
    grid = [1e-5, 1e-4, 1e-3]
    runs = pd.DataFrame(_tune_rows({1e-5: [0.5, 0.5], 1e-4: [0.7, 0.8], 1e-3: [0.8, 0.7]}))
    assert select_settings(runs, grid, [100, 101])["lr"].item() == 1e-4
    # a rate with one tuning seed missing (or failed) is not a trial: it can be neither chosen nor counted
    partial = pd.DataFrame(_tune_rows({1e-5: [0.5, 0.5], 1e-4: [0.7, 0.7]}) + _tune_rows({1e-3: [0.99]}))
    sel = select_settings(partial, grid, [100, 101])
    assert sel["lr"].item() == 1e-4 and sel["trials"].item() == 2 and not sel["complete"].item()
    # evaluation seeds never select
    leak = pd.DataFrame(_tune_rows({1e-5: [0.5, 0.5], 1e-4: [0.7, 0.7]}) + _tune_rows({1e-3: [0.9, 0.9]}, seeds=(0, 1)))
    assert select_settings(leak, grid, [100, 101])["lr"].item() == 1e-4


def test_the_declared_rate_stays_unless_another_beats_it_by_more_than_one_standard_error():
    grid = [5e-5, 1e-4, 3e-4]
    seeds = (100, 101, 102)
    # 5e-5 leads by 0.4 points on average but its paired differences (+1.2, -0.4, +0.4) have se 0.46: noise
    noisy = pd.DataFrame(_tune_rows({5e-5: [0.762, 0.746, 0.754], 1e-4: [0.750, 0.750, 0.750],
                                     3e-4: [0.70, 0.70, 0.70]}, seeds=seeds))
    row = select_settings(noisy, grid, list(seeds), declared={"theseus-add/seed": 1e-4}).iloc[0]
    assert row["lr"] == 1e-4 and row["candidate"] == 5e-5
    assert row["gain"] == pytest.approx(0.4) and row["gain_se"] == pytest.approx(np.std([1.2, -0.4, 0.4], ddof=1) / 3 ** 0.5)
    # a lead of 2 points on every seed is not noise: the rate moves
    clear = pd.DataFrame(_tune_rows({5e-5: [0.77, 0.77, 0.78], 1e-4: [0.75, 0.75, 0.76], 3e-4: [0.7] * 3},
                                    seeds=seeds))
    assert select_settings(clear, grid, list(seeds), declared={"theseus-add/seed": 1e-4})["lr"].item() == 5e-5
    # without a declared rate: the best mean dev, as before
    assert select_settings(noisy, grid, list(seeds))["lr"].item() == 5e-5


def test_selection_and_expected_best_break_dev_ties_by_one_rule_never_by_test():
    from harness.analysis.tuning import expected_best, preference

    lrs = np.array([5e-5, 1e-4, 3e-4])
    assert preference(lrs, 1e-4).tolist() == [1, 0, 2]  # the declared rate first, then the smaller
    assert preference(lrs, None).tolist() == [0, 1, 2]
    # every rate ties on dev; the test scores differ. The kept trial is the declared one whatever the test says
    dev, test = np.array([0.8, 0.8, 0.8]), np.array([0.9, 0.5, 0.7])
    # (50 trials drawn: the declared one is among them but for a chance of (2/3)^50)
    assert expected_best(dev, test, 50, lrs, 1e-4)[1] == pytest.approx(0.5, abs=1e-6)
    assert expected_best(dev, np.array([0.5, 0.9, 0.7]), 50, lrs, 1e-4)[1] == pytest.approx(0.9, abs=1e-6)
    runs = pd.DataFrame(_tune_rows({5e-5: [0.8, 0.8], 1e-4: [0.8, 0.8], 3e-4: [0.8, 0.8]}))
    assert select_settings(runs, list(lrs), [100, 101], declared={"theseus-add/seed": 1e-4})["lr"].item() == 1e-4
    assert select_settings(runs, list(lrs), [100, 101])["lr"].item() == 5e-5


def test_a_trial_sets_only_the_students_rate():
    arm = {"strategy": "two-stage", "variant": "predecessor-1x", "options": {"epochs": 3, "lr": 5e-5}}
    assert lr_setting(arm, 5e-5, declared=5e-5) == {}  # the declared setting keeps its run key
    assert lr_setting(arm, 1e-4, declared=5e-5) == {"options": {"epochs": 3, "lr": 1e-4}}
    assert effective_lr({"lr": 1e-4, "options": {"lr": 3e-4}}) == 3e-4
    assert effective_lr({"lr": 1e-4, "options": {"lr": 0.0}}) == 1e-4


def test_tuned_preset_gives_every_arm_the_same_trials_on_seeds_it_never_evaluates():
    from harness.run.identity import CODE_VERSION, predecessor_key

    sweep = sweep_mod.load_sweep("tuned")
    assert not set(sweep.tuning.seeds) & set(sweep.seeds)
    lrs = sweep.tuning.lrs
    assert len(lrs) >= 4 and max(lrs) / min(lrs) >= 10 and 2e-5 in lrs
    trials = sweep_mod.tuning_configs(sweep)
    students = [c for c in trials if c.budget is not None]
    assert {c.seed for c in trials} == set(sweep.tuning.seeds)
    per_arm = pd.Series([(c.task, c.strategy, c.variant, c.seed) for c in students]).value_counts()
    assert (per_arm == len(lrs)).all() and len(per_arm) == 2 * 6 * 2  # tasks x arms x tuning seeds
    rates = {(c.task, c.strategy, c.variant, c.seed): set() for c in students}
    for c in students:
        rates[(c.task, c.strategy, c.variant, c.seed)].add(effective_lr(c.to_dict()))
    assert all(r == set(lrs) for r in rates.values())
    # every trial of a (task, seed) starts from the one predecessor: no trial moves it
    assert len({(c.task, c.seed, predecessor_key(c, 6, CODE_VERSION)) for c in students}) == 2 * 2
    # the shared setting is the budget study's 567-step runs, key for key
    budget = sweep_mod.load_sweep("budget")
    budget_keys = {key_of(c) for c in sweep_mod.expand(budget) if c.budget in (None, 567)}
    assert {key_of(c) for c in sweep_mod.expand(sweep)} <= budget_keys


def test_tuning_seeds_must_not_be_evaluation_seeds(tmp_path, tiny_model_dir, tiny_task):
    bad = write_tiny_sweep(tmp_path / "bad.toml", tiny_model_dir, tiny_task, seeds=2,
                           tuning={"seeds": [1, 7], "lrs": [1e-3, 3e-3]})
    with pytest.raises(HarnessError, match="tuning.*seeds 1 are also evaluation seeds"):
        sweep_mod.load_sweep(config_path=bad)
    for tuning, message in (({"seeds": [7]}, r"\[tuning\] lrs: missing"),
                            ({"seeds": [7], "lrs": [1e-3, -1.0]}, "item 2 is -1.0"),
                            ({"seeds": [7], "lrs": [1e-3], "grid": 1}, "unknown key")):
        cfg = write_tiny_sweep(tmp_path / "bad2.toml", tiny_model_dir, tiny_task, tuning=tuning)
        with pytest.raises(HarnessError, match=message):
            sweep_mod.load_sweep(config_path=cfg)


def test_a_tuned_sweep_tunes_then_evaluates_at_the_selected_and_the_shared_rate(tmp_path, tiny_model_dir, tiny_task):
    arms = ({"strategy": "finetune", "layers": "predecessor"}, {"strategy": "finetune"},
            {"strategy": "two-stage", "variant": "random-1x", "options": {"epochs": 1, "lr": 3e-3}})
    cfg = write_tiny_sweep(tmp_path / "tuned.toml", tiny_model_dir, tiny_task, arms=arms, seeds=2,
                           tuning={"seeds": [50], "lrs": [3e-4, 3e-3]})
    out, lines = tmp_path / "store", []
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lines.append) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert {"stage", "lr", "selected", "shared"} <= set(runs.columns)
    tune = runs[runs["stage"] == "tune"]
    assert set(tune["seed"]) == {50} and set(runs.loc[runs["stage"] == "evaluate", "seed"]) == {0, 1}
    students = tune[tune["arm"] != "finetune-4"]
    assert all(sorted(g["lr"]) == [3e-4, 3e-3] for _, g in students.groupby("arm"))
    for arm, g in students.groupby("arm"):
        # one tuning seed gives no standard error of a difference: the one-SE rule keeps the declared rate
        chosen = runs[(runs["arm"] == arm) & runs["selected"]]
        assert len(chosen) == 2 and (chosen["lr"] == 3e-3).all()  # both evaluation seeds at the selected rate
    shared = runs[runs["shared"] & (runs["arm"] != "finetune-4")]
    assert len(shared) == 4 and np.allclose(shared["lr"], 3e-3)  # the declared rate on both evaluation seeds
    assert any(line.startswith("selected: ") for line in lines)
    # the report: the trials with the selected rate, the expected best of k trials, the verdicts at
    # the tuned and at the shared rate side by side
    text = (tmp_path / "r" / "tiny.md").read_text()
    assert text.index("## Primary verdicts") < text.index("## Tuning") < text.index("## Summary")
    assert "tuning trials.**" in text and "| arm | lr 0.0003 | lr 0.003 | selected | why | trials |" in text
    assert "**Expected best of k trials**" in text and "| arm | k=1 | k=2 |" in text
    assert "**Primary verdicts at the tuned and at the shared rate**" in text and "- Claim 1: " in text
    sel = pd.read_csv(out / "tables" / "tuning_selected.csv")
    assert set(sel["arm"]) == {"finetune-2", "two-stage/random-1x"} and sel["trials"].eq(2).all()
    assert (out / "plots" / "tuning_expected_best.png").exists()
    # run again: nothing trains
    lines.clear()
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lines.append) == 0
    assert sum("0 to run" in line for line in lines) == 2


def test_annotate_marks_stage_and_settings():
    runs = pd.DataFrame([
        {"task": "t", "model": "m", "successor_layers": 6, "predecessor_layers": 6, "budget": pd.NA,
         "arm": "finetune-6", "seed": 0, "lr": 1e-4},
        {"task": "t", "model": "m", "successor_layers": 3, "predecessor_layers": 6, "budget": 567,
         "arm": "finetune-3", "seed": 0, "lr": 1e-4},
        {"task": "t", "model": "m", "successor_layers": 3, "predecessor_layers": 6, "budget": 567,
         "arm": "finetune-3", "seed": 0, "lr": 3e-4},
        {"task": "t", "model": "m", "successor_layers": 3, "predecessor_layers": 6, "budget": 567,
         "arm": "finetune-3", "seed": 100, "lr": 3e-4},
    ])
    selected = pd.DataFrame([{"task": "t", "model": "m", "successor_layers": 3, "budget": 567, "arm": "finetune-3",
                              "lr": 3e-4}])
    out = annotate(runs, selected, [100], {"finetune-3": 1e-4})
    assert out["stage"].tolist() == ["evaluate", "evaluate", "evaluate", "tune"]
    assert out["selected"].tolist() == [True, False, True, False]
    assert out["shared"].tolist() == [True, True, False, False]


def test_expected_best_of_k_trials_is_dodge_et_al_with_replacement():
    from itertools import product

    from harness.analysis.tuning import expected_best

    dev, test = np.array([0.70, 0.80, 0.75, 0.60]), np.array([0.71, 0.78, 0.77, 0.61])
    assert expected_best(dev, test, 1) == pytest.approx((dev.mean(), test.mean()))
    for k in (2, 3):  # against brute force over every draw of k trials with replacement
        draws = list(product(range(4), repeat=k))
        best = [max(d, key=lambda i: dev[i]) for d in draws]
        assert expected_best(dev, test, k) == pytest.approx((np.mean(dev[best]), np.mean(test[best])))
    assert expected_best(dev, test, 4)[0] < dev.max()  # the known downward bias at k = N


def test_the_committed_tuned_runs_table_has_equal_trials_and_disjoint_seeds():
    """results/tuned/runs.csv as committed: `stage` and `lr` columns, the same number of tuning
    trials for every student arm of a task, and no seed both tuned on and evaluated on."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "results" / "tuned" / "runs.csv"
    runs = pd.read_csv(path)
    assert {"stage", "lr"} <= set(runs.columns) and set(runs["stage"]) == {"tune", "evaluate"}
    tune = runs[(runs["stage"] == "tune") & ~runs["strategy"].str.startswith("finetune-6")]
    trials = tune.groupby(["task", "strategy", "variant"], dropna=False).size()
    assert len(trials) == 2 * 6 and trials.nunique() == 1 and trials.iloc[0] == 4 * 2  # 4 rates x 2 seeds
    assert not set(runs.loc[runs["stage"] == "tune", "seed"]) & set(runs.loc[runs["stage"] == "evaluate", "seed"])
