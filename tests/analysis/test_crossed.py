"""The task-level estimator of a paired accuracy difference (harness.analysis.crossed): against a
brute-force computation, in the regimes where the seeds or the test examples dominate, and in the
claims (task unit with per-example results, seed-only without)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis import crossed
from harness.analysis.claims import TASK, TEST_SET, evaluate_claims
from harness.store.schema import normalize_runs


def _cells(matrix):
    n, big_n = matrix.shape
    return matrix.ravel(), np.repeat(np.arange(n), big_n), np.tile(np.arange(big_n), n)


def test_a_complete_design_is_the_two_way_anova_with_satterthwaite_df():
    rng = np.random.default_rng(0)
    n, big_n = 7, 300
    y = (rng.normal(0, 1, (n, big_n)) + rng.normal(0, 0.5, (n, 1)) + rng.normal(0, 0.8, (1, big_n))) / 10
    cd = crossed.crossed_difference(*_cells(y))
    g = y.mean()
    ms_s = big_n * ((y.mean(1) - g) ** 2).sum() / (n - 1)
    ms_e = n * ((y.mean(0) - g) ** 2).sum() / (big_n - 1)
    r = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + g
    ms_r = (r ** 2).sum() / ((n - 1) * (big_n - 1))
    a, b, c = (m / (n * big_n) for m in (ms_s, ms_e, ms_r))
    assert cd.estimate == pytest.approx(100 * g)
    assert cd.se == pytest.approx(100 * math.sqrt(a + b - c), rel=1e-10)
    assert cd.df == pytest.approx((a + b - c) ** 2 / (a * a / (n - 1) + b * b / (big_n - 1)
                                                     + c * c / ((n - 1) * (big_n - 1))), rel=1e-10)
    assert cd.se ** 2 == pytest.approx(cd.se_seed ** 2 + cd.se_test_sample ** 2 + cd.se_residual ** 2)
    assert cd.split == "fixed" and cd.overlap == 1


def test_an_incomplete_design_uses_owens_pair_statistics_and_counts_shared_examples():
    """Per-seed test sets drawn from a pool of 12: the components from every pair of cells by brute
    force (half the mean squared difference of pairs with the same example, the same seed, neither),
    and Var D from the weights w_si = 1 / (n N_s) with an example counted once per test set holding it."""
    rng = np.random.default_rng(1)
    seeds, examples = [], []
    for s in range(4):
        pick = np.sort(rng.choice(12, 7, replace=False))
        seeds += [s] * 7
        examples += list(pick)
    seed, example = np.array(seeds), np.array(examples)
    d = rng.integers(-1, 2, len(seed)).astype(float) * 0.7 + rng.normal(0, 0.2, len(seed))
    cd = crossed.crossed_difference(d, seed, example)
    sums = {"seed": [], "example": [], "none": []}
    for i, j in itertools.permutations(range(len(d)), 2):
        same_s, same_e = seed[i] == seed[j], example[i] == example[j]
        key = "seed" if same_s else ("example" if same_e else "none")
        sums[key].append((d[i] - d[j]) ** 2 / 2)
    u = {k: np.mean(v) for k, v in sums.items()}
    v_seed, v_ex = max(u["none"] - u["seed"], 0), max(u["none"] - u["example"], 0)
    v_res = max(u["seed"] + u["example"] - u["none"], 0)
    w = np.zeros((4, 12))
    w[seed, example] = 1 / (4 * 7)
    var = v_seed * (w.sum(1) ** 2).sum() + v_ex * (w.sum(0) ** 2).sum() + v_res * (w ** 2).sum()
    assert cd.split == "per-seed"
    assert cd.var_seed == pytest.approx(1e4 * v_seed) and cd.var_example == pytest.approx(1e4 * v_ex)
    assert cd.se == pytest.approx(100 * math.sqrt(var))
    m = np.bincount(example, minlength=12)
    assert cd.overlap == pytest.approx((m * (m - 1)).sum() / (4 * 3 * 7))


def test_where_test_examples_dominate_the_se_does_not_shrink_with_seeds():
    """6% of examples always right for one arm and wrong for the other (half each way), 1% of cells
    flipped per seed: from 5 to 40 seeds the se stays at the test-sample floor."""
    rng = np.random.default_rng(3)
    base = rng.choice([0.0, 1.0, -1.0], size=1000, p=[0.94, 0.03, 0.03])

    def se_at(n):
        y = np.where(rng.random((n, 1000)) < 0.01, 0.0, np.repeat(base[None], n, 0))
        return crossed.crossed_difference(*_cells(y))
    few, many = se_at(5), se_at(40)
    floor = 100 * math.sqrt(np.var(base, ddof=1) / 1000)
    assert many.se > 0.9 * few.se and many.se == pytest.approx(floor, rel=0.1)
    assert many.floor == pytest.approx(many.se_test_sample)
    # a decision needing half the floor: no number of seeds suffices, about 4x the test set does
    target = (many.floor / 2) ** 2
    assert crossed.seeds_needed(many, target) == math.inf
    assert 3500 < crossed.test_size_needed(many, target) < 5000


def test_where_seeds_dominate_it_is_close_to_the_paired_t():
    """No example effect, a large seed effect: the se is about the seed-only paired t's sd / sqrt(n)."""
    rng = np.random.default_rng(5)
    n, big_n = 10, 2000
    shift = rng.normal(0, 0.02, n)
    a = (rng.random((n, big_n)) < 0.8 + shift[:, None]).astype(float)
    b = (rng.random((n, big_n)) < 0.8).astype(float)
    cd = crossed.crossed_difference(*_cells(a - b))
    per_seed = 100 * (a - b).mean(1)
    assert cd.se == pytest.approx(per_seed.std(ddof=1) / math.sqrt(n), rel=0.05)
    assert cd.df < 3 * n
    assert crossed.seeds_needed(cd, (cd.se / 2) ** 2) == pytest.approx(4 * n, rel=0.2)


def test_a_cell_twice_and_misaligned_input_are_refused():
    with pytest.raises(ValueError):
        crossed.crossed_difference([0.0, 1.0], [0, 0], [3, 3])
    with pytest.raises(ValueError):
        crossed.crossed_difference([0.0, 1.0], [0], [3, 4])
    one = crossed.crossed_difference([0.0, 1.0], [0, 0], [1, 2])
    assert one.estimate == 50 and math.isnan(one.se)


# ---------------------------------------------------------------- in the claims

def _group(n=6, big_n=400, missing=None, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    right = rng.random(big_n) < 0.85
    runs, ex = [], []
    for arm in ("finetune-6", "finetune-3", "theseus-add/seed"):
        for s in range(n):
            c = np.where(rng.random(big_n) < 0.05, ~right, right)
            rid = f"{arm}-{s}"
            strategy, _, variant = arm.partition("/")
            runs.append(dict(task="t", strategy=strategy, variant=variant, seed=s, run_id=rid,
                             test_accuracy=c.mean()))
            if rid != missing:
                ex.append(pd.DataFrame(dict(run_id=rid, example=np.arange(big_n), correct=c.astype(int))))
    return normalize_runs(pd.DataFrame(runs)), pd.concat(ex, ignore_index=True)


def test_claims_use_the_task_unit_with_predictions_and_keep_the_seed_only_beside_it():
    runs, ex = _group()
    seed_only = {r.claim: r for r in evaluate_claims(runs)}
    task = {r.claim: r for r in evaluate_claims(runs, examples=ex)}
    one, old = task["1"], seed_only["1"]
    assert (one.inference_unit, old.inference_unit) == (TASK, TEST_SET)
    assert one.estimate == pytest.approx(old.estimate)
    assert (one.p_seed_only, one.ci_low_seed_only, one.ci_high_seed_only, one.se_seed_only) == pytest.approx(
        (old.p, old.ci_low, old.ci_high, old.se_seed_only))
    assert one.p_adj_seed_only == pytest.approx(old.p_adj) and one.verdict_seed_only == old.verdict
    assert one.se ** 2 == pytest.approx(one.se_seed ** 2 + one.se_test_sample ** 2 + one.se_residual ** 2)
    assert one.decided_by.startswith("crossed t")
    assert (old.p_seed_only, old.verdict_seed_only) == (old.p, old.verdict)  # without predictions: the same


def test_a_run_without_predictions_at_a_paired_seed_falls_back_to_the_seed_only_test():
    runs, ex = _group(missing="finetune-3-2")
    one = next(r for r in evaluate_claims(runs, examples=ex) if r.claim == "1")
    assert one.inference_unit == TEST_SET and one.decided_by == "paired t"


def test_the_matrix_form_equals_the_pair_statistics():
    rng = np.random.default_rng(6)
    y = rng.integers(-1, 2, (6, 150)).astype(float) + rng.normal(0, 0.3, (1, 150))
    a, b = crossed.crossed_matrix(y), crossed.crossed_difference(*_cells(y))
    for f in ("estimate", "se", "df", "se_seed", "se_test_sample", "se_residual", "var_example"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-9), f


def test_a_sequential_look_is_task_level_and_each_interval_says_its_coverage():
    """replay with per-example results: a mean comparison's decision reads the task-level test, and
    every repeated interval carries its simultaneous coverage; 3b's is the two-sided interval at
    twice its one-sided level (the one its decision read)."""
    from harness.analysis import design as design_mod
    from harness.analysis.sequential import Design, replay

    arms = ["finetune-6", "finetune-3", "theseus-add/seed", "two-stage/predecessor-1x"]
    rng = np.random.default_rng(8)
    model = design_mod.CrossedModel(test_size=500, var_example=0.01)
    g, ex = design_mod.simulate_crossed_group(rng, design_mod.group_template(arms, 10), "finetune-6", model,
                                              shift={"two-stage/predecessor-1x": 8.0})
    d = Design((5, 10))
    task = {x.claim: x for x in replay(g, d, examples=ex).decisions}
    old = {x.claim: x for x in replay(g, d).decisions}
    assert task["1"].inference_unit == "task" and old["1"].inference_unit == "test set"
    b3 = task["3b"]
    assert b3.verdict == "contradicted" and b3.look == 1
    assert b3.rci_p == pytest.approx(d.nominal(2 * b3.level)[0]) and b3.rci_coverage == pytest.approx(1 - 2 * b3.level)
    for x in task.values():
        assert np.isnan(x.rci_p) or 0 < x.rci_coverage < 1
