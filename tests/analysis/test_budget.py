"""The budget axis: it reaches the run key, every arm at one budget takes the same number of steps,
length-dependent schedules scale with it, and the per-run failure/convergence diagnostics."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import PREDECESSOR_AND_BASELINE, write_tiny_sweep

from harness.encoders.models import build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.report import pipeline
from harness.run.identity import run_key
from harness.store.records import read_records, runs_table
from harness.strategies import Context, get_strategy, split_budget
from harness.sweep import execute
from harness.sweep import plan as sweep_mod
from harness.training.config import DEFAULTS, LATER_DEFAULTS, RunConfig, configured, stable_hash
from harness.training.diagnostics import is_degenerate, single_class_from_metrics, still_improving
from harness.training.loop import eval_steps


def test_budget_and_eval_points_reach_the_key_and_old_keys_stay():
    base = RunConfig(**DEFAULTS["seed"].values)  # no budget, dev after every epoch: as before they existed
    assert len({run_key(base.replace(budget=b), "v") for b in (None, 100, 300)}) == 3
    assert run_key(base.replace(eval_points=10), "v") != run_key(base, "v")
    # a run without a budget keeps the key it had before the field existed
    legacy = {k: v for k, v in base.to_dict().items()
              if k not in ("device", "threads", "force", "allow_small_test", "budget", "eval_points", "split")}
    assert run_key(base, "v") == stable_hash({"config": legacy, "code": "v"})


def test_the_run_defaults_are_the_studied_ones_and_the_seeds_keep_the_old_keys():
    studied, seed = DEFAULTS["studied"].values, DEFAULTS["seed"].values
    assert {k: getattr(RunConfig(), k) for k in studied} == studied == {
        "lr": 1e-4, "budget": 567, "eval_points": 10, "epochs": 3}
    # the seed's defaults are the settings before the change, and the key leaves out exactly those values
    assert seed == {"lr": 5e-5, "budget": None, "eval_points": 0, "epochs": 3}
    assert {k: seed[k] for k in LATER_DEFAULTS if k in seed} == {k: v for k, v in LATER_DEFAULTS.items() if k in seed}
    assert LATER_DEFAULTS["split"] == RunConfig().split == "fixed"  # a later field at its only earlier value
    assert configured("seed") == RunConfig(lr=5e-5, epochs=3, budget=None, eval_points=0)
    assert configured() == RunConfig()
    # epochs given without a budget: a run of that many epochs; with one, the budget
    assert configured(epochs=5).budget is None and configured(epochs=5, budget=100).budget == 100
    with pytest.raises(HarnessError, match="unknown defaults 'x'; defaults: studied, seed"):
        configured("x")


def test_split_budget_keeps_the_proportion_and_the_total():
    assert split_budget(189, [2, 1]) == [126, 63]
    assert split_budget(100, [2, 1]) == [67, 33]
    assert split_budget(7, [3, 0]) == [7, 0]
    assert split_budget(2, [10, 1]) == [1, 1]  # a phase that exists gets a step
    assert all(sum(split_budget(b, [2, 1])) == b for b in range(2, 200))


def test_eval_steps_are_evenly_spaced_and_include_phase_ends():
    assert eval_steps([126, 63], 3) == {63, 126, 189}
    assert eval_steps([100], 4) == {25, 50, 75, 100}
    assert eval_steps([10, 5], 2) == {8, 10, 15}


def _sweep_config(tmp_path, model, task, budgets):
    two_plus_one = {"theseus_epochs": 2, "successor_epochs": 1}
    arms = PREDECESSOR_AND_BASELINE + (
        {"strategy": "theseus-binary", "variant": "seed", "options": two_plus_one},
        {"strategy": "theseus-binary", "variant": "official", "options": {"theseus_epochs": 3}},
        {"strategy": "theseus-add", "variant": "seed", "options": two_plus_one},
        {"strategy": "two-stage", "variant": "predecessor-1x", "options": {"epochs": 3}},
        {"strategy": "kd"})
    return write_tiny_sweep(tmp_path / "budget.toml", model, task, name="tiny-budget", jobs=1, budgets=budgets,
                            base={"train_size": 120, "dev_size": 40, "test_size": 40, "eval_points": 4}, arms=arms)


def test_every_arm_at_one_budget_takes_that_many_steps(tiny_model_dir, tiny_task, tmp_path):
    sweep = sweep_mod.load_sweep(config_path=_sweep_config(tmp_path, tiny_model_dir, tiny_task, [5, 12]))
    configs = sweep_mod.expand(sweep)
    # one predecessor per seed, shared by both budgets; 6 student arms x 2 budgets
    assert len(configs) == 1 + 6 * 2
    assert configs[0].budget is None and sweep_mod.is_predecessor(configs[0])
    assert [c.budget for c in configs[1:]] == sorted(c.budget for c in configs[1:])  # whole budgets first
    # wave 1: the predecessor and the smallest budget's baseline; wave 2 goes budget by budget
    first, second = execute.job_waves(configs)
    assert [(c.strategy, c.budget) for c in first] == [("finetune", None), ("finetune", 5)]
    assert [c.budget for c in second] == [5] * 5 + [12] * 6
    out = tmp_path / "store"
    results = execute.execute_jobs(configs, out, "tiny-budget", jobs=1, say=lambda *_: None)
    assert all(r["status"] == "ok" for r in results), results
    records = read_records(out)
    students = [r for r in records if r["budget"] is not None]
    assert len(students) == 12
    for r in students:
        # counted from the record: every optimizer step of every phase, and the epochs' own counts
        assert r["final"]["steps"] == r["budget"], (r["strategy"], r["variant"], r["final"]["steps"])
        assert sum(e["steps"] for e in r["epochs"]) == r["budget"]
        assert r["curve"][-1]["step"] == r["budget"]
        assert r["predecessor"] is None or r["predecessor"]["trained_now"] is False
        assert sum(r["final"]["test_pred_counts"]) == 40
    seed_arm = next(r for r in students if r["variant"] == "seed" and r["strategy"] == "theseus-binary"
                    and r["budget"] == 12)
    assert [sum(e["steps"] for e in seed_arm["epochs"] if e["phase"] == p) for p in ("theseus", "successor")] == [8, 4]
    table = runs_table(records)
    assert sorted(table["budget"].dropna().unique().tolist()) == [5, 12]
    assert {"degenerate", "still_improving", "max_class_share", "steps"} <= set(table.columns)
    # the report leads with the budget axis: figure, where each claim holds, arm x budget table
    report = pipeline.build_report(out, report_dir=tmp_path / "report", say=lambda *_: None)
    text = report.read_text()
    assert text.index("## Training budget") < text.index("## Summary")
    assert "accuracy_vs_budget.png" in text and (out / "plots" / "accuracy_vs_budget.png").exists()
    assert "| arm | 5 steps | 12 steps |" in text
    assert "Every student arm ran at each budget" in text  # here every arm runs at both
    from harness.analysis.groups import analyze
    from harness.report.sections.budget import budget_section

    # an arm at one budget only (its own budgets): the section says so, not "every arm at each budget"
    one = table[~((table["strategy"] == "theseus-binary") & (table["budget"] == 5))].reset_index(drop=True)
    assert "Each student arm ran at its own budgets" in budget_section(analyze(one), [], tmp_path / "r.md")
    # in a sequential study's report "where each verdict holds" says it is the fixed-design reading
    fixed = "These verdicts read all the stored runs as a fixed design"
    assert fixed not in text and fixed in budget_section(analyze(table), [], tmp_path / "r.md", sequential=True)
    summary = pd.read_csv(out / "tables" / "budget_summary.csv")
    assert set(summary["budget"]) == {5, 12} and (summary["n"] == 1).all()
    assert list(out.glob("plots/*dev_curves_by_budget.png"))


def test_length_dependent_schedules_scale_with_the_budget(tiny_model_dir, tiny_config):
    pretrained = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    predecessor = build_classifier(pretrained, 4, 2)

    def theseus_plan(strategy, variant, budget):
        s = get_strategy(strategy)
        options = s.resolve(variant, {"theseus_epochs": 2, "successor_epochs": 1})
        config = tiny_config.replace(strategy=strategy, variant=variant, budget=budget)
        ctx = Context(config=config, options=options, pretrained=pretrained, num_classes=2, steps_per_epoch=10,
                      predecessor_layers=4, get_predecessor=lambda: predecessor)
        return s.build(ctx)

    for budget in (30, 300):
        plan = theseus_plan("theseus-binary", "official", budget)
        theseus_steps = plan.phases[0].steps
        assert theseus_steps + plan.phases[1].steps == budget and theseus_steps == budget * 2 // 3
        schedule = plan.info["theseus_model"].mixer.schedule
        reach = 0.66 * theseus_steps  # the curriculum reaches rate 1 at 66% of the Theseus phase
        assert schedule(int(reach) - 1) < 1.0 and schedule(int(reach) + 1) == 1.0
        add = theseus_plan("theseus-add", "seed", budget).info["theseus_model"].mixer
        assert add.total == theseus_steps  # a linear k schedule spans the Theseus phase


def _record(curve, counts, acc=0.5, f1=0.5, steps=None, num_classes=2):
    steps = steps or curve[-1]["step"]
    return {"run_id": "x", "strategy": "kd", "variant": "", "seed": 0, "config": {}, "status": "ok",
            "task": {"num_classes": num_classes}, "curve": curve,
            "final": {"steps": steps, "test_accuracy": acc, "test_macro_f1": f1,
                      **({"test_pred_counts": counts} if counts is not None else {})}}


def _curve(values, total):
    return [{"step": round(total * (i + 1) / len(values)), "dev_accuracy": v} for i, v in enumerate(values)]


def test_degenerate_is_set_on_single_class_predictions():
    assert is_degenerate([578, 422]) is False
    assert is_degenerate([1000, 0]) is True
    assert is_degenerate([0, 990, 10]) is True       # 99% one class: nearly every example
    assert is_degenerate([970, 30]) is False
    assert is_degenerate([]) is None
    # records stored before counts: exact single-class runs from accuracy and macro-F1
    p = 0.578
    assert single_class_from_metrics(p, 2 * p / (1 + p) / 2, 2) is True
    assert single_class_from_metrics(0.578, 0.55, 2) is False
    table = runs_table([_record(_curve([0.5, 0.5], 10), [1000, 0]),
                        {**_record(_curve([0.5, 0.5], 10), None, acc=p, f1=p / (1 + p)), "run_id": "y"},
                        {**_record(_curve([0.7, 0.8], 10), [600, 400]), "run_id": "z"}])
    assert table.set_index("run_id")["degenerate"].to_dict() == {"x": True, "y": True, "z": False}


def test_still_improving_on_crafted_curves():
    assert still_improving(_curve([0.6, 0.7, 0.75, 0.78, 0.8], 100), 100) is True   # best at the end, +2
    assert still_improving(_curve([0.6, 0.78, 0.8, 0.8, 0.8], 100), 100) is False   # plateau
    assert still_improving(_curve([0.6, 0.78, 0.8, 0.8, 0.803], 100), 100) is False  # +0.3 points: noise
    assert still_improving(_curve([0.6, 0.8, 0.8, 0.8, 0.7], 100), 100) is False    # falling at the end
    assert still_improving([{"step": 100, "dev_accuracy": 0.7}], 100) is None        # nothing before the end
    # a Theseus arm (2:1 split): its successor, evaluated alone, jumps when its own phase starts (step
    # 67) and levels off from step 81 on: not improving, though the whole run's last 20% beats all before
    theseus = [{"step": s, "phase": "theseus", "dev_accuracy": 0.58} for s in (20, 40, 60, 67)]
    flat = theseus + [{"step": s, "phase": "successor", "dev_accuracy": v}
                      for s, v in ((70, 0.756), (81, 0.766), (90, 0.766), (100, 0.762))]
    assert still_improving(flat, 100) is False
    rising = theseus + [{"step": s, "phase": "successor", "dev_accuracy": v}
                        for s, v in ((70, 0.70), (81, 0.74), (90, 0.76), (100, 0.78))]
    assert still_improving(rising, 100) is True
    assert still_improving(theseus + [{"step": 100, "phase": "successor", "dev_accuracy": 0.78}], 100) is None
    table = runs_table([_record(_curve([0.6, 0.7, 0.75, 0.78, 0.8], 100), [500, 500]),
                        {**_record(_curve([0.6, 0.78, 0.8, 0.8, 0.8], 100), [500, 500]), "run_id": "y"}])
    assert table.set_index("run_id")["still_improving"].to_dict() == {"x": True, "y": False}


def test_records_without_curves_use_the_epoch_evaluations(tmp_path):
    record = {"run_id": "old", "strategy": "kd", "variant": "", "seed": 0, "config": {}, "status": "ok",
              "task": {"name": "t", "num_classes": 2}, "model": {"name": "m"},
              "epochs": [{"steps": 63, "dev_accuracy": 0.70}, {"steps": 63, "dev_accuracy": 0.72},
                         {"steps": 63, "dev_accuracy": 0.75}],
              "final": {"steps": 189, "test_accuracy": 0.74, "test_macro_f1": 0.73}}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old.json").write_text(json.dumps(record))
    row = runs_table(read_records(tmp_path)).iloc[0]
    assert bool(row["still_improving"]) is True and bool(row["degenerate"]) is False
    assert row["steps"] == 189 and row["budget"] is pd.NA


def test_budget_summary_counts_failures_and_unfinished_runs_per_arm_and_budget():
    from harness.analysis.budget import budget_summary, has_budget_axis

    rows = []
    for budget, accs, deg, imp in [(100, [0.578, 0.578, 0.70], [True, True, False], [False, False, True]),
                                   (400, [0.77, 0.78, 0.79], [False, False, False], [False, None, False])]:
        for seed, (a, d, i) in enumerate(zip(accs, deg, imp)):
            rows.append({"task": "t", "model": "m", "successor_layers": 3, "arm": "theseus-binary/seed",
                         "budget": budget, "seed": seed, "status": "ok", "test_accuracy": a, "degenerate": d,
                         "still_improving": i, "steps": budget, "wall_seconds": 1.0})
    runs = pd.DataFrame(rows)
    assert has_budget_axis(runs) and not has_budget_axis(runs[runs["budget"] == 100])
    s = budget_summary(runs).set_index("budget")
    assert s.loc[100, "degenerate"] == 2 and s.loc[100, "still_improving"] == 1
    assert s.loc[400, "degenerate"] == 0 and s.loc[400, "n_improving_known"] == 2
    assert abs(s.loc[400, "mean"] - 0.78) < 1e-12 and abs(s.loc[400, "std"] - 0.01) < 1e-12
    # the t interval: mean +- t(0.975, 2) * sd / sqrt(3)
    assert abs(s.loc[400, "ci_high"] - (0.78 + 4.302652729911275 * 0.01 / 3 ** 0.5)) < 1e-9


def test_where_it_holds_says_where_a_claim_holds_and_where_it_flips():
    from harness.analysis.budget import where_it_holds

    def row(task, claim, comparison, *verdicts):
        return {"task": task, "model": "m", "successor_layers": 3.0, "claim": claim, "comparison": comparison,
                **dict(zip(["budget 189", "budget 567", "budget 1512"], verdicts))}

    verdicts = pd.DataFrame([
        row("rt", "1", "a vs b", "contradicted", "inconclusive at n = 5", "supported"),
        row("trec", "1", "a vs b", "contradicted", "contradicted", "contradicted"),
        row("rt", "2a", "c vs d", "supported", "supported", "supported"),
        row("trec", "2a", "c vs d", "supported", "supported", "supported")])
    # words that differ are not evidence: without an interaction test the sentence says so
    sentences = where_it_holds(verdicts)
    assert sentences[0] == ("Claim 1 (a vs b): rt: contradicted at 189 steps, inconclusive at 567 steps, "
                            "supported at 1,512 steps (no interaction test for this comparison: the words differ, "
                            "the evidence is not tested); trec: contradicted at 189 steps, contradicted at 567 "
                            "steps, contradicted at 1,512 steps (same at every budget).")

    def inter(p_adj):
        return pd.DataFrame([{"task": "rt", "model": "m", "successor_layers": 3.0, "claim": "1",
                              "comparison": "a vs b", "budgets": "189 -> 567", "estimate": -2.5, "ci_low": -4.0,
                              "ci_high": -1.0, "p": p_adj / 2, "p_adj": p_adj, "n": 5}])
    changed = where_it_holds(verdicts, inter(0.01))[0]
    assert "rt: contradicted at 189 steps" in changed and ("the verdict changes with the budget: budget x arm "
                                                           "interaction 189 -> 567 -2.50 points, adjusted p 0.010") in changed
    assert "(no evidence the budget matters: budget x arm interaction adjusted p 189 -> 567 0.200)" in \
        where_it_holds(verdicts, inter(0.2))[0]
    undecided = pd.DataFrame([row("rt", "2a", "c vs d", "undecided", "no information", "no information")])
    assert where_it_holds(undecided)[0] == ("Claim 2a (c vs d): undecided at 189 steps, no information at 567 "
                                            "steps, no information at 1,512 steps (no decision at any budget).")
    assert sentences[1] == "Claim 2a (c vs d): supported at every budget and task."
    one_task = where_it_holds(verdicts[verdicts["task"] == "rt"])
    assert one_task[1] == "Claim 2a (c vs d): supported at every budget."
    partial = verdicts.assign(**{"budget 567": None, "budget 1512": None})
    assert where_it_holds(partial)[1] == ("Claim 2a (c vs d): supported at 189 steps (not compared at 567 steps, "
                                          "1,512 steps: no runs there).")
    placeholder = pd.DataFrame([row("rt", "3b", "—", "not tested (n < 3)", "not tested (n < 3)", None)])
    assert where_it_holds(placeholder) == []


@pytest.mark.parametrize("improving, warned", [(4, True), (1, False), (2, True)])
def test_report_warns_when_the_budget_is_short_of_convergence(tmp_path, improving, warned):
    import numpy as np

    from harness.analysis.groups import analyze
    from harness.report import markdown as report

    rng = np.random.default_rng(0)
    rows = [dict(task="t", strategy="finetune-6", seed=i, test_accuracy=0.8 + 0.01 * rng.normal()) for i in range(5)]
    rows += [dict(task="t", strategy=s, seed=i, test_accuracy=0.74 + 0.01 * rng.normal(), still_improving=i < improving)
             for s in ("finetune-3", "kd") for i in range(5)]
    a = analyze(pd.DataFrame(rows), n_boot=200)
    text = report.render_report(a, [], {"sweep": "s"}, tmp_path / "s.md")
    assert ("**Short budget:**" in text) is warned
    if improving == 2:  # 4 of 10 still improving: warned, but no arm has half of its runs still improving
        assert "Under-trained" not in text
    elif warned:
        assert "8 of 10 student runs were still improving" in text and "finetune-3 4/5, kd 4/5" in text
        assert "Under-trained at this budget: finetune-3, kd" in text


def test_report_names_an_under_trained_arm_even_when_few_runs_are_improving(tmp_path):
    import numpy as np

    from harness.analysis.groups import analyze
    from harness.report import markdown as report

    rng = np.random.default_rng(0)
    rows = [dict(task="t", strategy="finetune-6", seed=i, test_accuracy=0.8 + 0.01 * rng.normal()) for i in range(5)]
    rows += [dict(task="t", strategy=s, seed=i, test_accuracy=0.74 + 0.01 * rng.normal(),
                  still_improving=s == "finetune-3" and i < 3)
             for s in ("finetune-3", "kd", "two-stage") for i in range(5)]
    a = analyze(pd.DataFrame(rows), n_boot=200)
    text = report.render_report(a, [], {"sweep": "s"}, tmp_path / "s.md")  # 3 of 15 improving, 3 of 5 in one arm
    assert "3 of 15 student runs were still improving" in text
    assert "Under-trained at this budget: finetune-3 (half" in text


def test_seed_12_budget_check_reuses_seed_12s_predecessors_and_reruns_its_12_to_3_arms():
    """seed-12-budget answers "is seed-12's 12 -> 3 verdict a budget artefact?" only while it stays
    seed-12 at another length: the same predecessor run (so the cache serves it) and, at 189 steps,
    the same 12 -> 3 training as seed-12's 3 epochs (2 + 1 for Theseus, 63 steps per epoch)."""
    from harness.run.identity import key_of
    from harness.sweep.plan import expand

    def configs(name):
        sweep = sweep_mod.load_sweep(name)
        sweep.seeds = [0, 1]
        return expand(sweep)

    seed12, check = configs("seed-12"), configs("seed-12-budget")
    predecessors = {key_of(c) for c in seed12 if sweep_mod.is_predecessor(c)}
    assert predecessors and predecessors == {key_of(c) for c in check if sweep_mod.is_predecessor(c)}
    assert {c.budget for c in check if not sweep_mod.is_predecessor(c)} == {189, 567}
    steps_per_epoch = -(-seed12[0].train_size // seed12[0].batch_size)

    def arm(c):
        return c.strategy, c.variant, c.seed, c.layers, c.lr, c.options

    three_epochs = {arm(c) for c in seed12 if c.layers == 3}
    at_189 = [c for c in check if c.budget == 189]
    assert at_189 and all(arm(c) in three_epochs for c in at_189)
    assert 3 * steps_per_epoch == 189
    assert all(c.train_size == seed12[0].train_size and c.batch_size == seed12[0].batch_size for c in check)
