"""Per-arm budgets and primaries declared per budget (docs/configuration.md, "Training budget as an
axis"): an arm runs only at its own budgets, the schema refuses what cannot run, and the reproduce
preset's first look is exactly the tuning stages' evaluation runs at the declared rates."""

from __future__ import annotations

from collections import Counter

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


@pytest.mark.parametrize("change, where, message", [
    (dict(binary="budgets = [200]"), "[[arms]] #4 (theseus-binary) budgets",
     "item 1 is 200, not one of the sweep's budgets (100, 300)"),
    (dict(binary="budgets = []"), "[[arms]] #4 (theseus-binary) budgets", "is empty"),
    (dict(binary="budgets = [100, 100]"), "[[arms]] #4 (theseus-binary) budgets", "lists 100 more than once"),
    (dict(binary='budgets = ["100"]'), "[[arms]] #4 (theseus-binary) budgets", "item 1 must be an integer"),
    (dict(add="budgets = [300]\n[[arms]]\nstrategy = \"theseus-add\"\nvariant = \"seed\""),
     "[[arms]] #4 (theseus-add) budgets", "arm #3 already runs theseus-add/seed at 300 steps"),
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


def test_reproduce_looks_one_is_the_tuning_stages_declared_rate_runs(monkeypatch):
    """The reproduce preset's first look (seeds 0-4) has exactly the run keys of the evaluation seeds of
    reproduce-tune-567 and reproduce-tune-189 at the declared rates, so `reuse` copies all of it."""
    from types import SimpleNamespace

    from harness.encoders import models
    from harness.run.identity import key_of

    monkeypatch.setattr(models, "load_pretrained", lambda model: SimpleNamespace(num_layers=6))
    sweep = sweep_mod.load_sweep("reproduce")
    assert sweep.primaries == {"1": 567, "3a": 567, "3b": 567, "2a": 189, "4a": 189}
    assert sweep.looks == [5, 10, 15, 20] and sweep.reuse == ["reproduce-tune-567", "reproduce-tune-189"]
    look1 = sweep_mod.expand(sweep, seeds=sweep.seeds[:5])
    tuned = {key_of(c) for name in sweep.reuse for c in sweep_mod.expand(sweep_mod.load_sweep(name))}
    assert {key_of(c) for c in look1} <= tuned
    arms = Counter((c.strategy, c.variant, c.budget) for c in look1)
    assert arms == {("finetune", "", None): 10, ("finetune", "", 189): 10, ("finetune", "", 567): 10,
                    ("theseus-add", "seed", 189): 10, ("theseus-add", "seed", 567): 10,
                    ("theseus-binary", "seed", 189): 10, ("two-stage", "predecessor-1x", 567): 10}
    assert all(c.test_size is None for c in look1)  # every remaining example
