"""Per-arm budgets and tasks and primaries declared per budget (docs/configuration.md, "Training budget
as an axis"): an arm runs only at its own budgets and on its own tasks, the schema refuses what cannot
run, and the reproduce preset's first look is exactly the tuning stages' evaluation runs at the rates
they selected."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import load_sweep_text, sweep_config_error

from harness.sweep import plan as sweep_mod
from harness.training.config import RunConfig

SWEEP = """
name = "mine"
seeds = 2
budgets = [100, 300]
successor_layers = [2]
{top}
[base]
task = "rt-polarity"
predecessor_layers = 4
[[arms]]
strategy = "finetune"
layers = "predecessor"
[[arms]]
strategy = "finetune"
{finetune}
[[arms]]
strategy = "theseus-add"
variant = "seed"
{add}
[[arms]]
strategy = "theseus-binary"
variant = "seed"
{binary}
[[arms]]
strategy = "two-stage"
variant = "predecessor-1x"
{two_stage}
"""
PRIMARIES = '[primaries]\n"1" = 300\n"3a" = 300\n"3b" = 300\n"2a" = 100\n"4a" = 100\n'


def _text(top="", finetune="", add="", binary="budgets = [100]", two_stage="budgets = [300]") -> str:
    return SWEEP.format(top=top, finetune=finetune, add=add, binary=binary, two_stage=two_stage)




def test_an_arm_runs_only_at_its_own_budgets(tmp_path):
    sweep = load_sweep_text(tmp_path, _text())
    runs = Counter((c.strategy, c.variant, c.budget) for c in sweep_mod.expand(sweep))
    assert runs == {("finetune", "", None): 2,  # the predecessor, once per seed, no budget
                    ("finetune", "", 100): 2, ("finetune", "", 300): 2,
                    ("theseus-add", "seed", 100): 2, ("theseus-add", "seed", 300): 2,
                    ("theseus-binary", "seed", 100): 2, ("two-stage", "predecessor-1x", 300): 2}
    # without per-arm budgets every arm runs at every budget, as before
    every = load_sweep_text(tmp_path, _text(binary="", two_stage=""))
    assert len(sweep_mod.expand(every)) == 2 + 4 * 2 * 2
    # an arm declared once per budget (each may carry its own rate)
    split = load_sweep_text(tmp_path, _text(finetune="budgets = [100]\n[[arms]]\nstrategy = \"finetune\"\n"
                                           "budgets = [300]\nset = { lr = 5e-5 }"))
    lrs = {(c.budget, c.lr) for c in sweep_mod.expand(split) if c.strategy == "finetune" and c.budget}
    assert lrs == {(100, RunConfig.lr), (300, 5e-5)}


TWO_TASKS = 'tasks = ["rt-polarity", "trec-6"]'
ADD_PER_TASK = ('tasks = ["rt-polarity"]\noptions = { lr = 5e-5 }\n[[arms]]\nstrategy = "theseus-add"\n'
                'variant = "seed"\ntasks = ["trec-6"]')


def test_an_arm_runs_only_on_its_own_tasks_each_declaration_at_its_rate(tmp_path):
    """Two declarations of theseus-add/seed, one per task, each at the rate selected on that task: each task
    runs the arm once per seed at its own rate; every other arm runs on both tasks as before."""
    sweep = load_sweep_text(tmp_path, _text(top=TWO_TASKS, add=ADD_PER_TASK))
    configs = sweep_mod.expand(sweep)
    adds = Counter((c.task, c.budget, dict(c.options).get("lr")) for c in configs if c.strategy == "theseus-add")
    assert adds == {("rt-polarity", 100, 5e-5): 2, ("rt-polarity", 300, 5e-5): 2,
                    ("trec-6", 100, None): 2, ("trec-6", 300, None): 2}
    others = Counter((c.task, c.strategy) for c in configs if c.strategy != "theseus-add")
    assert all(others[("rt-polarity", s)] == others[("trec-6", s)] > 0 for s in ("finetune", "two-stage"))
    # an arm on one task only: the other task has no run of it (and its primaries may not name it there)
    only = load_sweep_text(tmp_path, _text(top=TWO_TASKS, two_stage='budgets = [300]\ntasks = ["trec-6"]'))
    assert {c.task for c in sweep_mod.expand(only) if c.strategy == "two-stage"} == {"trec-6"}
    from harness.analysis.design import design_of

    groups, _ = design_of(only)
    assert len(groups) == 4 and sum("two-stage/predecessor-1x" in arms for arms, _ in groups) == 1


@pytest.mark.parametrize("change, where, message", [
    (dict(top=TWO_TASKS, add='tasks = ["sst-2"]'), "[[arms]] #3 (theseus-add) tasks",
     "item 1 is 'sst-2', not one of the sweep's tasks (rt-polarity, trec-6)"),
    (dict(add='tasks = ["trec-6"]'), "[[arms]] #3 (theseus-add) tasks",
     "item 1 is 'trec-6', not one of the sweep's tasks (rt-polarity)"),
    (dict(top=TWO_TASKS, add=ADD_PER_TASK.replace('tasks = ["trec-6"]', 'tasks = ["trec-6", "rt-polarity"]')),
     "[[arms]] #4 (theseus-add) tasks", "arm #3 already runs theseus-add/seed on rt-polarity at 100 steps"),
    (dict(top=TWO_TASKS + "\n" + PRIMARIES, two_stage='budgets = [300]\ntasks = ["trec-6"]'), "[primaries] 3a",
     "its arm two-stage/predecessor-1x does not run on rt-polarity"),
    (dict(top=TWO_TASKS + '\n[tuning]\nseeds = [10, 11]\nlrs = [5e-5, 1e-4]', add=ADD_PER_TASK),
     "[[arms]] #4 (theseus-add) options", "declares lr 0.0001 but arm #3 declares theseus-add/seed at 5e-05"),
])
def test_bad_arm_tasks_are_one_line(tmp_path, change, where, message):
    text = sweep_config_error(tmp_path, _text(**change))
    assert text.startswith(f"sweep config mine.toml: {where}: "), text
    assert message in text, text


def test_the_predecessor_takes_no_tasks(tmp_path):
    pred = _text(top=TWO_TASKS).replace('layers = "predecessor"', 'layers = "predecessor"\ntasks = ["trec-6"]')
    assert "[[arms]] #1 (finetune) tasks: the predecessor trains at its own length (epochs) and serves every " \
        "task's students" in sweep_config_error(tmp_path, pred)


@pytest.mark.parametrize("change, where, message", [
    (dict(binary="budgets = [200]"), "[[arms]] #4 (theseus-binary) budgets",
     "item 1 is 200, not one of the sweep's budgets (100, 300)"),
    (dict(binary="budgets = []"), "[[arms]] #4 (theseus-binary) budgets", "is empty"),
    (dict(binary="budgets = [100, 100]"), "[[arms]] #4 (theseus-binary) budgets", "lists 100 more than once"),
    (dict(binary='budgets = ["100"]'), "[[arms]] #4 (theseus-binary) budgets", "item 1 must be an integer"),
    (dict(add="budgets = [300]\n[[arms]]\nstrategy = \"theseus-add\"\nvariant = \"seed\""),
     "[[arms]] #4 (theseus-add) budgets", "arm #3 already runs theseus-add/seed on rt-polarity at 300 steps"),
    (dict(top="reuse_any_cpu = true"), "top level reuse_any_cpu", "applies to reuse = [...]"),
    (dict(top='[primaries]\n"1" = 300'), "[primaries] 2a", "missing; the family is every declared primary"),
    (dict(top=PRIMARIES.replace('"1" = 300', '"1" = 300\n"2b" = 100')), "[primaries] 2b",
     "unknown key; claims with a primary: 1, 2a, 3a, 3b, 4a"),
    (dict(top=PRIMARIES.replace('"1" = 300', '"1" = 200')), "[primaries] 1", "is 200, not one of the sweep's"),
    (dict(top=PRIMARIES.replace('"1" = 300', '"1" = "300"')), "[primaries] 1", "expected an integer"),
    (dict(top=PRIMARIES.replace('"2a" = 100', '"2a" = 300')), "[primaries] 2a",
     "is tested at 300 steps, where its arm theseus-binary/seed does not run"),
    (dict(top=PRIMARIES, finetune="budgets = [100]"), "[primaries] 1",
     "is tested at 300 steps, where its arm finetune-2 does not run"),
])
def test_bad_budgets_and_primaries_are_one_line(tmp_path, change, where, message):
    text = sweep_config_error(tmp_path, _text(**change))
    assert text.startswith(f"sweep config mine.toml: {where}: "), text
    assert message in text, text


def test_arm_budgets_need_the_sweeps_budgets_and_not_the_predecessor(tmp_path):
    no_list = _text().replace("budgets = [100, 300]\n", "")
    assert "picks from the sweep's budgets; give budgets = [...]" in sweep_config_error(tmp_path, no_list)
    pred = _text().replace('layers = "predecessor"', 'layers = "predecessor"\nbudgets = [100]')
    assert "[[arms]] #1 (finetune) budgets: the predecessor trains at its own length" in sweep_config_error(tmp_path, pred)
    primaries = _text(top=PRIMARIES, binary="", two_stage="").replace("budgets = [100, 300]\n", "")
    assert "top level primaries: declares budgets per primary" in sweep_config_error(tmp_path, primaries)


def test_primaries_load_as_claim_to_budget(tmp_path):
    sweep = load_sweep_text(tmp_path, _text(top=PRIMARIES))
    assert sweep.primaries == {"1": 300, "3a": 300, "3b": 300, "2a": 100, "4a": 100}
    assert load_sweep_text(tmp_path, _text()).primaries is None


def test_reproduce_looks_one_is_the_tuning_stages_selected_rate_runs(monkeypatch):
    """The reproduce preset's first look (seeds 0-4) has exactly the run keys of the evaluation seeds of
    reproduce-tune-567 and reproduce-tune-189 at the rates their one-SE rule selected (the committed
    tables/tuning_selected.csv), so `reuse` copies all of it and every arm runs at its own rate."""
    from types import SimpleNamespace

    import pandas as pd

    from harness.encoders import models
    from harness.run.identity import key_of

    monkeypatch.setattr(models, "load_pretrained", lambda model: SimpleNamespace(num_layers=6))
    sweep = sweep_mod.load_sweep("reproduce")
    assert sweep.primaries == {"1": 567, "3a": 567, "3b": 567, "2a": 189, "4a": 189}
    assert sweep.looks == [5, 10, 15, 20] and sweep.reuse == ["reproduce-tune-567", "reproduce-tune-189"]
    look1 = sweep_mod.expand(sweep, seeds=sweep.seeds[:5])
    stored = Path(__file__).resolve().parents[2] / "results"
    selected, tuned = {}, set()
    for name in sweep.reuse:
        table = stored / name / "tables" / "tuning_selected.csv"
        if not table.exists():
            continue  # a tuning stage not yet complete: its declared-rate runs only
        chosen = pd.read_csv(table)
        tuned |= {key_of(c) for c in sweep_mod.evaluation_configs(sweep_mod.load_sweep(name), chosen)}
        selected |= {(r.task, int(r.budget), r.arm): r.lr for r in chosen.itertuples()}
    tuned |= {key_of(c) for name in sweep.reuse for c in sweep_mod.expand(sweep_mod.load_sweep(name))}
    assert {key_of(c) for c in look1} <= tuned
    from harness.analysis.tuning import effective_lr
    from harness.sweep.preflight import arm_of

    for c in look1:
        want = selected.get((c.task, c.budget, arm_of(c)))
        if want is not None:
            assert effective_lr(c.to_dict()) == want, (c.task, c.budget, arm_of(c))
    assert ("rt-polarity", 567, "theseus-add/seed") in selected  # stage 1 is committed
    arms = Counter((c.strategy, c.variant, c.budget) for c in look1)
    assert arms == {("finetune", "", None): 10, ("finetune", "", 189): 10, ("finetune", "", 567): 10,
                    ("theseus-add", "seed", 189): 10, ("theseus-add", "seed", 567): 10,
                    ("theseus-binary", "seed", 189): 10, ("two-stage", "predecessor-1x", 567): 10}
    assert all(c.test_size is None for c in look1)  # every remaining example


def test_a_sequential_look_lists_each_run_once_when_two_budgets_continue(tmp_path):
    """The next look's runs when primaries at both budgets continue: the predecessor (shared by every
    budget) is one run per seed, not one per budget (it was trained twice in the reproduce study's look 2)."""
    from harness.run.identity import key_of
    from harness.sweep import execute

    sweep = load_sweep_text(tmp_path, _text(top=TWO_TASKS + "\n" + PRIMARIES))
    wave = execute._wave(sweep, [5, 6], lambda *_: True)
    keys = [key_of(c) for c in wave]
    assert len(keys) == len(set(keys))
    assert Counter(c.task for c in wave if c.budget is None) == {"rt-polarity": 2, "trec-6": 2}
    assert {key_of(c) for c in wave} == {key_of(c) for c in sweep_mod.expand(sweep, seeds=[5, 6])}
