"""A/A and margin simulations of the whole claims procedure under a crossed model: seeds and test
examples both random (docs/method.md, "The unit of inference"; harness.analysis.design). Each
simulated study draws its own test sample from a population of examples on which every arm has
its own example effects, averaging to zero there, with seed effects on top. The task-level
procedure must keep its error rate; the old seed-only procedure, on the same studies, must not."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import design as design_mod
from harness.analysis.claims import CLAIMS
from harness.analysis.sequential import Design

SIMS = 1000
BOUND = 0.05 + 2 * np.sqrt(0.05 * 0.95 / SIMS)  # 5% + 2 Monte Carlo standard errors
# the decide preset's arms: the primaries' arms and the predecessor, one group
DECIDE_ARMS = ["finetune-6", "finetune-3", "theseus-binary/seed", "theseus-add/seed", "two-stage/predecessor-1x"]
GROUP = [(DECIDE_ARMS, "finetune-6")]
# trec-6's disagreement bound at 1,000 test examples (test-sample se 0.77 points)
TREC = design_mod.CrossedModel(test_size=1000, var_example=design_mod.DISAGREEMENT)


def test_aa_fixed_design_task_level_keeps_its_error_rate_and_seed_only_does_not():
    """10 seeds, a fixed split of 1,000 examples: the task-level procedure's share of studies with
    any false primary verdict is at most 5% (+ 2 s.e.); the seed-only procedure on the same studies
    (the same generator seed) is far above it."""
    task = design_mod.simulate_task(GROUP, 10, SIMS, TREC, seed=1)
    old = design_mod.simulate_task(GROUP, 10, 300, TREC, seed=1, seed_only=True)
    assert task <= BOUND, task
    assert old > 0.15, old


def test_aa_sequential_design_task_level_keeps_its_error_rate_and_seed_only_does_not():
    """The decide design's looks (5/10/15/20 seeds, futility 0.10) on the same crossed model."""
    d = Design((5, 10, 15, 20))
    task = design_mod.simulate_task_sequential(GROUP, d, SIMS, TREC, seed=2)
    old = design_mod.simulate_task_sequential(GROUP, d, 200, TREC, seed=2, seed_only=True)
    assert task["fwer"] <= BOUND, task
    assert old["fwer"] > 0.25, old


def test_aa_split_per_seed():
    """Each seed draws its own 1,000 test examples from a pool of 2,000 drawn by the study: the
    overlap-aware estimate keeps the error rate (claims 1, 3a, 3b's arms)."""
    arms = [(["finetune-6", "finetune-3", "theseus-add/seed", "two-stage/predecessor-1x"], "finetune-6")]
    model = design_mod.CrossedModel(test_size=1000, var_example=design_mod.DISAGREEMENT, pool=2000)
    task = design_mod.simulate_task(arms, 10, SIMS, model, seed=3)
    assert task <= BOUND, task


def test_a_true_difference_at_the_margin_is_rarely_called_equivalent_or_no_better():
    """Claim 1 alone (a family of one, G = 1: the worst case) with theseus-add/seed exactly one point
    above fine-tuning, a small test-sample component and 20 seeds, so that equivalence is within
    reach: "equivalent within ±1" is false and stays at most 5% (+ 2 s.e.), while at no difference
    it is reached often (the check can fail); claim 3b alone with two-stage one point above
    fine-tuning: "supported" (no better) is false, at most 5% (+ 2 s.e.)."""
    one = [c for c in CLAIMS if c.id == "1"]
    three_b = [c for c in CLAIMS if c.id == "3b"]
    arms = [(["finetune-6", "finetune-3", "theseus-add/seed"], "finetune-6")]
    small = design_mod.CrossedModel(test_size=1000, var_example=0.002)
    at_margin = design_mod.simulate_task(arms, 20, SIMS, small, seed=4, shift={"theseus-add/seed": 1.0},
                                         false=design_mod.false_equivalent, claims=one)
    at_zero = design_mod.simulate_task(arms, 20, 200, small, seed=5, false=design_mod.false_equivalent, claims=one)
    assert at_margin <= BOUND, at_margin
    assert at_zero > 0.3, at_zero
    arms = [(["finetune-6", "finetune-3", "two-stage/predecessor-1x"], "finetune-6")]
    no_better = design_mod.simulate_task(arms, 10, SIMS, TREC, seed=6, shift={"two-stage/predecessor-1x": 1.0},
                                         false=design_mod.false_no_better, claims=three_b)
    assert no_better <= BOUND, no_better


@pytest.mark.parametrize("var_example", [0.0, 0.01, 0.06])
def test_the_simulated_example_component_is_the_one_asked_for(var_example):
    """The crossed model's example component of a paired difference (design.CrossedModel) is
    var_example: the estimator's mean over simulated studies recovers it."""
    from harness.analysis import crossed, tables

    rng = np.random.default_rng(7)
    model = design_mod.CrossedModel(test_size=2000, var_example=var_example)
    template = design_mod.group_template(["finetune-6", "finetune-3", "theseus-add/seed"], 5)
    got = []
    for _ in range(40):
        g, ex = design_mod.simulate_crossed_group(rng, template, "finetune-6", model)
        cells = tables.example_differences(tables.arm_runs(g, "theseus-add/seed"), tables.arm_runs(g, "finetune-3"), ex)
        got.append(crossed.crossed_matrix(cells).var_example / 1e4)
    assert np.mean(got) == pytest.approx(var_example, abs=0.004)


def test_design_reports_the_test_sample_floor_and_warns():
    """`design`'s dict has test_sample_se and min_detectable_effect, and warns when the targeted
    effect is below what the test size can detect."""
    from harness.sweep.plan import load_sweep

    sweep = load_sweep("default", None)
    out = design_mod.check(sweep, sims=20)
    task = out["task_level"]
    assert out["test_sample_se"] == pytest.approx(100 * np.sqrt(design_mod.DISAGREEMENT / task["test_size"]))
    assert out["min_detectable_effect"] > task["min_detectable_effect_any_seeds"] > 2 * out["test_sample_se"]
    assert any("below what" in w for w in task["warnings"])
    big = design_mod.task_level(sweep, *design_mod.design_of(sweep), sims=0, failure_rate=0.0, seed=0,
                                test_size=200_000, disagreement=0.001)
    assert big["test_sample_se"] < 0.01  # the seeds still limit at 5 seeds, the test size no longer does
    assert not any("no number of seeds" in w or "out of reach" in w for w in big["warnings"])
    assert any(line.startswith("test sample: ") for line in design_mod.describe_task_level(out))
