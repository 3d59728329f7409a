"""`harness design`: check a sweep's design before it spends compute.

A verdict must be reachable: before a study trains anything, the whole claims procedure
(harness.analysis.claims.evaluate_claims on every group, the primaries' fixed family, Bonferroni over the
groups) is run on synthetic runs laid out exactly as the preset's runs will be: its seeds, its arms,
its tasks x models x successor sizes x budgets. Two questions are answered:

- fwer_null: with no arm differing, the share of simulated studies in which any primary verdict is
  false (supported or contradicted; for claim 3b, "two-stage is no better", only contradicted: with
  no difference "no better" is true). It must stay at or below alpha.
- power: with claim 1's primary arm (theseus-add/seed) better than every other arm by an effect given
  in paired-sd units, the share of groups in which that primary reads "supported".

The synthetic model: per group and seed a shared seed effect (sd 0.8 points) plus independent run
noise (sd 1 point), so arms pair by seed and a paired difference has sd sqrt(2); a run fails
(predictions collapsed, accuracy at the floor) with probability `failure_rate`. The design is fixed,
so expected_seeds = fixed_seeds = the preset's number of seeds.

The task level (`task_level`; docs/method.md, "Checking a design"): the test-sample standard error
of a paired difference at the design's test size and the smallest effect it can detect, with
warnings, and the procedure simulated under a crossed model in which test examples are random too
(`CrossedModel`, `simulate_crossed_group`): the error rate of task-level inference beside the old
seed-only one, and false "equivalent" / 3b "no better" verdicts at a true difference of the margin.

A sequential design (a sweep with `looks`, harness.analysis.sequential) is simulated as it will run: each
simulated group is replayed look by look (sequential.replay), so arms stop when their primaries
are decided. It adds, per effect, expected_seeds (the mean seeds of claim 1's primary at its
stopping look) and expected_runs (student and predecessor runs of the whole study) against
fixed_seeds and fixed_runs, those of a fixed design at the last look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.claims import evaluate_claims, evaluate_family
from harness.store import schema

EFFECTS = (0.0, 0.5, 1.0, 1.5)  # in paired-sd units
FLOOR = 57.8  # accuracy of a run whose predictions collapsed (any constant: only its failed flag matters)
SEED_SD, RUN_SD = 0.8, 1.0
EFFECT_ARM = "theseus-add/seed"  # claim 1's primary arm
DISAGREEMENT = 0.06  # share of test examples two arms disagree on: trec-6's finetune-3 vs theseus-add/seed (issue 31)
DEFAULT_TEST_SIZE = 2000  # harness.data.splits.DEFAULT_SIZES["test"]: the least a default test split holds
HARD_SHARE = 0.15  # examples whose correctness varies with the seed (the rest: right unless an arm's own)


def group_template(arms: list, n: int) -> pd.DataFrame:
    """A normalised runs table of one group, arms x seeds 0..n-1, values filled in per simulation.
    An arm is a name, or (name, budget) for a family whose primaries are declared per budget (its
    runs then carry that budget; a plain name, e.g. the predecessor, has none)."""
    rows = []
    for arm in arms:
        a, budget = arm if isinstance(arm, tuple) else (arm, None)
        tag = a if budget is None else f"{a}@{budget}"
        rows += [dict(task="t", model="m", strategy=a.partition("/")[0], variant=a.partition("/")[2], seed=i,
                      budget=budget, run_id=f"{tag}-{i}", test_accuracy=70.0, degenerate=False) for i in range(n)]
    return schema.normalize_runs(pd.DataFrame(rows))


def arm_label(arm) -> str:
    """A layout's arm as text: "finetune-3", or "finetune-3 at 567 steps"."""
    return arm if not isinstance(arm, tuple) else f"{arm[0]} at {arm[1]:g} steps"


def _claims_of(g: pd.DataFrame, *, groups: int, primaries: dict | None, examples=None, claims=None):
    """(claim, verdict) of the primaries of one simulated group: evaluate_claims, or with primaries
    declared per budget evaluate_family over the group's budgets."""
    if primaries is None:
        results = evaluate_claims(g, groups=groups, with_power=False, primaries_only=True, examples=examples,
                                  claims=claims)
    else:
        results = [r for rows in evaluate_family(g, primaries, groups=groups, with_power=False, primaries_only=True,
                                                 examples=examples, claims=claims).values() for r in rows]
    return [(r.claim, r.verdict) for r in results]


def simulate_group(rng: np.random.Generator, template: pd.DataFrame, predecessor: str, *,
                   failure_rate: float = 0.0, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """One simulated group: template's arms and seeds, every student arm the same distribution (plus
    `shift`: arm -> points), the predecessor 6 points above; each student run failed with
    probability failure_rate (its accuracy then FLOOR)."""
    is_pred = (template["arm"] == predecessor).to_numpy()
    seeds = template["seed"].to_numpy(int)
    effect = rng.normal(0, SEED_SD, seeds.max() + 1)
    x = np.where(is_pred, 80.0, 74.0) + effect[seeds] + rng.normal(0, RUN_SD, len(template))
    for arm, d in (shift or {}).items():
        x[(template["arm"] == arm).to_numpy()] += d
    failed = (rng.random(len(template)) < failure_rate) & ~is_pred
    g = template.copy()
    g["test_accuracy"] = np.where(failed, FLOOR, x)
    g["degenerate"] = pd.array(failed, dtype="boolean")
    return g


def false_verdict(claim: str, verdict: str) -> bool:
    """A primary verdict that is false when no arm differs."""
    return verdict == "contradicted" or verdict == "supported" and claim != "3b"


def _layout(groups: list[tuple[list[str], str]], n: int, failure_rate, effect: float):
    """(per group its template and predecessor, per group its failure rate, the effect's shift)."""
    templates = [(group_template(arms, n), pred) for arms, pred in groups]
    rates = list(failure_rate) if isinstance(failure_rate, (list, tuple)) else [failure_rate] * len(templates)
    shift = {EFFECT_ARM: effect * math.sqrt(2) * RUN_SD} if effect else None
    return templates, rates, shift


def simulate(groups: list[tuple[list, str]], n: int, sims: int, *, failure_rate=0.0,
             effect: float = 0.0, seed: int = 0, primaries: dict | None = None) -> float:
    """effect = 0: the share of simulated studies with any false primary verdict; effect > 0 (in
    paired-sd units, EFFECT_ARM shifted up by effect x sqrt(2) x RUN_SD): the share of groups whose
    claim-1 primary reads supported. groups: per group (its arms, its predecessor arm);
    failure_rate: one rate for every group, or one per group; primaries: claim id -> budget (each
    group one family across budgets: design_of), None: each group its own family."""
    rng = np.random.default_rng(seed)
    templates, rates, shift = _layout(groups, n, failure_rate, effect)
    hits = 0
    for _ in range(sims):
        verdicts = [_claims_of(simulate_group(rng, t, pred, failure_rate=rate, shift=shift), groups=len(templates),
                               primaries=primaries) for (t, pred), rate in zip(templates, rates)]
        if effect:
            hits += sum(v == "supported" for group in verdicts for c, v in group if c == "1") / len(templates)
        else:
            hits += any(false_verdict(c, v) for group in verdicts for c, v in group)
    return hits / sims


def simulate_sequential(groups: list[tuple[list, str]], design, sims: int, *, failure_rate=0.0,
                        effect: float = 0.0, seed: int = 0, primaries: dict | None = None) -> dict:
    """The sequential procedure on `sims` simulated studies (module docstring): a dict with
    fwer (effect 0: share of studies with any false primary verdict), power (share of groups whose
    claim-1 primary reads supported), seeds (mean seeds of claim 1's primary at its stop) and runs
    (mean runs of a whole study)."""
    from harness.analysis.sequential import replay

    rng = np.random.default_rng(seed)
    templates, rates, shift = _layout(groups, design.looks[-1], failure_rate, effect)
    false = supported = seeds = runs = 0.0
    for _ in range(sims):
        study_false = False
        for (t, pred), rate in zip(templates, rates):
            r = replay(simulate_group(rng, t, pred, failure_rate=rate, shift=shift), design, budgets=primaries)
            study_false |= any(false_verdict(d.claim, d.verdict) for d in r.decisions)
            one = next(d for d in r.decisions if d.claim == "1")
            supported += one.verdict == "supported"
            seeds += one.seeds
            runs += _runs(r)
        false += study_false
    g = len(templates)
    return {"fwer": false / sims, "power": supported / (sims * g), "seeds": seeds / (sims * g), "runs": runs / sims}


def _runs(r) -> float:
    """The runs a replayed group trained: every (arm, budget) at its seeds, and the predecessor at
    the most seeds any student arm ran (finetune arms need none)."""
    students = [n for (a, _), n in r.runs_at.items() if not a.startswith("finetune-")]
    return sum(r.runs_at.values()) + max(students, default=0)


def design_of(sweep) -> tuple[list[tuple[list, str]], int]:
    """(per group: its arms and the predecessor's name, number of seeds) of a sweep as it will run:
    a group per (task, model, successor size, budget), each arm at the budgets it runs at; with
    primaries declared per budget (`sweep.primaries`) a group per family (task, model, successor
    size), its student arms as (name, budget) at each budget they run at."""
    from harness.sweep.plan import _arm_name, _predecessor_layers

    groups = []
    for model in sweep.models:
        lp = _predecessor_layers(sweep, model)
        for task in sweep.tasks:
            for ls in sweep.successor_layers:
                students = [(a, b) for b in sweep.budgets for a in sweep.arms
                            if a.get("layers") != "predecessor" and sweep.runs(a, task, b)]
                if getattr(sweep, "primaries", None):
                    arms = [f"finetune-{lp}"] + [(_arm_name(a, ls), b) for a, b in students]
                    groups.append((list(dict.fromkeys(arms)), f"finetune-{lp}"))
                    continue
                for budget in sweep.budgets:
                    arms = [f"finetune-{lp}" if a.get("layers") == "predecessor" else _arm_name(a, ls)
                            for a in sweep.arms if sweep.runs(a, task, budget)]
                    groups.append((list(dict.fromkeys(arms)), f"finetune-{lp}"))
    return groups, len(sweep.seeds)


def check(sweep, *, sims: int = 1000, failure_rate: float = 0.0, seed: int = 0, test_size: int | None = None,
          disagreement: float = DISAGREEMENT, pilot: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict:
    """The design check of a loaded sweep, as a JSON-ready dict (module docstring), with the task
    level (`task_level`: test examples random too) under "task_level" and its two headline figures,
    test_sample_se and min_detectable_effect (points), at the top. test_size: the test examples per
    seed (default the sweep's test_size, else DEFAULT_TEST_SIZE); disagreement: the share of test
    examples two arms disagree on (used without a pilot); pilot: (runs, examples) of a pilot store
    whose per-example predictions give the test-sample component instead."""
    groups, n = design_of(sweep)
    primaries = getattr(sweep, "primaries", None)
    out = (check_sequential(sweep, groups, sims=sims, failure_rate=failure_rate, seed=seed)
           if getattr(sweep, "looks", None) else _check_fixed(sweep, groups, n, sims=sims, failure_rate=failure_rate,
                                                              seed=seed))
    size_source = "given" if test_size else ""
    if not test_size and "test_size" not in (getattr(sweep, "base", None) or {}):
        test_size, size_source = split_test_size(sweep)
    task = task_level(sweep, groups, n, sims=sims, failure_rate=failure_rate, seed=seed, test_size=test_size,
                      disagreement=disagreement, pilot=pilot)
    if size_source:
        task["test_size_source"] = size_source
    if primaries:
        out["primaries"] = dict(primaries)
    return {**out, "test_sample_se": task["test_sample_se"], "min_detectable_effect": task["min_detectable_effect"],
            "task_level": task}


def split_test_size(sweep) -> tuple[int | None, str]:
    """(the smallest test split of the sweep's tasks as its runs will split them, which task) when
    the sweep leaves the test size to the data (every example train and dev leave): read from the
    data here (preflight.check_tasks); (None, "") when it cannot be read."""
    from harness.errors import HarnessError
    from harness.sweep.preflight import check_tasks

    try:
        info = check_tasks(sweep, f"{sweep.name} (preset)")
    except (HarnessError, OSError, AttributeError, TypeError):
        return None, ""
    sizes = [(v["sizes"]["test"], task) for (task, _), v in info.items()]
    if not sizes:
        return None, ""
    size, task = min(sizes)
    return int(size), f"the smallest test split of the sweep's tasks, {task}: " + ", ".join(
        f"{t} {n:,}" for n, t in sorted(sizes, key=lambda x: x[1]))


def _check_fixed(sweep, groups, n: int, *, sims: int, failure_rate: float, seed: int) -> dict:
    primaries = getattr(sweep, "primaries", None)
    fwer = simulate(groups, n, sims, failure_rate=failure_rate, seed=seed, primaries=primaries)
    power = {f"{e:g}": simulate(groups, n, sims, failure_rate=failure_rate, effect=e, seed=seed + 1,
                                primaries=primaries) for e in EFFECTS if e}
    return {"preset": sweep.name, "seeds": n, "groups": len(groups),
            "arms": [arm_label(a) for a in groups[0][0]] if groups else [],
            "failure_rate": failure_rate, "sims": sims, "fwer_null": fwer,
            "fwer_null_se": math.sqrt(fwer * (1 - fwer) / sims) if sims else math.nan,
            "power": power, "power_arm": EFFECT_ARM, "effects_in": "paired-sd units",
            "expected_seeds": {f"{e:g}": n for e in EFFECTS}, "fixed_seeds": n}


def check_sequential(sweep, groups, *, sims: int, failure_rate: float, seed: int) -> dict:
    """check() of a sweep with looks: the sequential procedure against a fixed design at the last look."""
    from harness.analysis.sequential import Design

    design = Design(tuple(sweep.looks), groups=len(groups), futility=sweep.futility)
    primaries = getattr(sweep, "primaries", None)
    by_effect = {f"{e:g}": simulate_sequential(groups, design, sims, failure_rate=failure_rate, effect=e,
                                               seed=seed + i, primaries=primaries) for i, e in enumerate(EFFECTS)}
    null = by_effect["0"]
    fixed_runs = sum(len(arms) for arms, _ in groups) * design.looks[-1]
    return {"preset": sweep.name, "seeds": design.looks[-1], "looks": list(design.looks), "groups": len(groups),
            "arms": [arm_label(a) for a in groups[0][0]] if groups else [], "failure_rate": failure_rate,
            "sims": sims, "spending": "Lan-DeMets O'Brien-Fleming type, Holm passing within each group, alpha / G over groups",
            "futility": design.futility, "fwer_null": null["fwer"],
            "fwer_null_se": math.sqrt(null["fwer"] * (1 - null["fwer"]) / sims),
            "power": {k: v["power"] for k, v in by_effect.items() if k != "0"}, "power_arm": EFFECT_ARM,
            "fixed_power": {f"{e:g}": simulate(groups, design.looks[-1], sims, failure_rate=failure_rate, effect=e,
                                               seed=seed + i, primaries=primaries) for i, e in enumerate(EFFECTS) if e},
            "effects_in": "paired-sd units",
            "expected_seeds": {k: v["seeds"] for k, v in by_effect.items()},
            "expected_runs": {k: v["runs"] for k, v in by_effect.items()},
            "fixed_seeds": design.looks[-1], "fixed_runs": fixed_runs}


# ---------------------------------------------------------------- the task level: test examples random too



def test_sample_se(test_size: int, disagreement: float = DISAGREEMENT) -> float:
    """The test-sample standard error (points) of a paired accuracy difference at a fixed split of
    `test_size` examples when two arms disagree on a share `disagreement` of the test examples,
    every disagreement counted as systematic (the example always right for one arm and wrong for
    the other): 100 sqrt(disagreement / test_size). An upper bound: disagreements that move with the
    seed go to the residual, which seeds average away. No number of seeds lowers it."""
    return 100 * math.sqrt(disagreement / test_size)


def min_detectable_effect(se: float, *, alpha: float, power: float = 0.8) -> float:
    """The smallest true difference (points) a two-sided z test at level alpha detects with
    probability `power` at standard error se: (z_{1 - alpha/2} + z_power) se."""
    from scipy import stats as st

    return float((st.norm.isf(alpha / 2) + st.norm.ppf(power)) * se)


def _forced_share(var_example: float) -> float:
    """phi, the share of (arm, example) pairs on which an arm is right or wrong whatever the seed
    (half each), that gives a paired difference the example component var_example (fraction^2):
    var_example = 2 [(1 - h) (phi / 2)(1 - phi / 2) + h phi / 4] = (1 - h/2) phi - (1 - h) phi^2 / 2,
    h = HARD_SHARE (two arms' own effects are independent given the example)."""
    if var_example <= 0:
        return 0.0
    h = HARD_SHARE
    a, b = (1 - h) / 2, 1 - h / 2  # a phi^2 - b phi + v = 0, the smaller root
    disc = b * b - 4 * a * var_example
    if disc < 0:
        raise ValueError(f"an example component of {var_example} is more than this model can hold")
    return float((b - math.sqrt(disc)) / (2 * a))


@dataclass(frozen=True)
class CrossedModel:
    """The synthetic task of a task-level simulation (docs/method.md, "Checking a design"): a
    population of test examples; a share HARD_SHARE whose correctness moves with the seed (base
    0.5), the rest right; on each example each arm independently, with probability phi, right or
    wrong whatever the seed (its own example effect: they average to zero over the population, so
    no arm differs there), phi set by var_example, the example component of a paired difference
    (fraction^2; the disagreement bound: var_example = disagreement). Seeds shift the hard
    examples' chance (a seed effect shared by the arms, sd SEED_SD points of accuracy, plus a run's
    own, RUN_SD). Each simulated study draws its own test sample of test_size examples, or with
    pool set (a split per seed) its own pool and per seed a test set of test_size from it."""
    test_size: int = 1000
    var_example: float = DISAGREEMENT
    pool: int | None = None

    @property
    def phi(self) -> float:
        return _forced_share(self.var_example)


def simulate_crossed_group(rng: np.random.Generator, template: pd.DataFrame, predecessor: str, model: CrossedModel,
                           *, failure_rate: float = 0.0, shift: dict[str, float] | None = None):
    """One simulated group under the crossed model: (runs, tables.Examples). template: a
    group_template; shift: arm -> points added to its population accuracy (exactly: on the hard
    examples, scaled); the predecessor 6 points above. A failed student run (probability
    failure_rate) predicts one class: right exactly on that class's examples (share FLOOR / 100)."""
    from harness.analysis.tables import Examples

    phi, h = model.phi, HARD_SHARE
    arms = list(dict.fromkeys(template["arm"]))
    n = int(template["seed"].max()) + 1
    n_ex = model.pool or model.test_size
    hard = rng.random(n_ex) < h
    forced = rng.random((len(arms), n_ex)) < phi
    value = np.where(forced, (rng.random((len(arms), n_ex)) < 0.5).astype(float), np.where(hard, 0.5, 1.0))
    movable = hard & ~forced  # (arms, examples)
    scale = 100 * h * (1 - phi)
    seed_effect = rng.normal(0, SEED_SD, n)
    majority = rng.random(n_ex) < FLOOR / 100
    if model.pool:
        tests = np.stack([np.sort(rng.choice(model.pool, model.test_size, replace=False)) for _ in range(n)])
    else:
        tests = np.broadcast_to(np.arange(n_ex), (n, n_ex))
    run_ids, seeds = template["run_id"].to_numpy(), template["seed"].to_numpy(int)
    arm_of = {a: i for i, a in enumerate(arms)}
    correct = np.empty((len(template), tests.shape[1]))
    failed = np.zeros(len(template), bool)
    for r, (arm, s) in enumerate(zip(template["arm"], seeds)):
        a, ids = arm_of[arm], tests[s]
        move = (seed_effect[s] + rng.normal(0, RUN_SD) + (shift or {}).get(arm, 0.0)
                + (6.0 if arm == predecessor else 0.0)) / scale
        p = np.clip(value[a, ids] + movable[a, ids] * move, 0, 1)
        correct[r] = rng.random(len(ids)) < p
        if arm != predecessor and rng.random() < failure_rate:
            correct[r], failed[r] = majority[ids], True
    g = template.copy()
    g["test_accuracy"] = 100 * correct.mean(1)
    g["degenerate"] = pd.array(failed, dtype="boolean")
    order = np.argsort(run_ids.astype(str))
    width = tests.shape[1]
    examples = Examples(run_ids.astype(str)[order], np.arange(len(order) + 1) * width,
                        tests[seeds[order]].ravel().astype(np.int64), correct[order].ravel())
    return g, examples


def _task_verdicts(g, ex, *, groups: int, seed_only: bool, claims=None, primaries=None):
    return _claims_of(g, groups=groups, primaries=primaries, examples=None if seed_only else ex, claims=claims)


def simulate_task(groups: list[tuple[list, str]], n: int, sims: int, model: CrossedModel, *,
                  failure_rate=0.0, seed: int = 0, seed_only: bool = False, shift: dict | None = None,
                  false=None, claims=None, primaries: dict | None = None) -> float:
    """The fixed design's claims under the crossed model: the share of `sims` simulated studies
    with any false primary verdict (`false(claim, verdict)`, default false_verdict: no arm differs).
    seed_only: the old procedure (the per-example results withheld: seeds the only randomness)."""
    rng = np.random.default_rng(seed)
    templates, rates, _ = _layout(groups, n, failure_rate, 0.0)
    false = false or false_verdict
    hits = 0
    for _ in range(sims):
        hits += any(false(c, v) for (t, pred), rate in zip(templates, rates)
                    for c, v in _task_verdicts(*simulate_crossed_group(rng, t, pred, model, failure_rate=rate,
                                                                       shift=shift),
                                               groups=len(templates), seed_only=seed_only, claims=claims,
                                               primaries=primaries))
    return hits / sims if sims else math.nan


def simulate_task_sequential(groups: list[tuple[list, str]], design, sims: int, model: CrossedModel, *,
                             failure_rate=0.0, seed: int = 0, seed_only: bool = False, shift: dict | None = None,
                             false=None, claims=None, primaries: dict | None = None) -> dict:
    """The sequential procedure under the crossed model: {"fwer": share of studies with any false
    primary verdict (`false`, default false_verdict), "seeds": mean seeds of claim 1's primary at
    its stop (of the first of `claims`)}. seed_only: the old procedure."""
    from harness.analysis.sequential import replay

    rng = np.random.default_rng(seed)
    templates, rates, _ = _layout(groups, design.looks[-1], failure_rate, 0.0)
    false = false or false_verdict
    hits = seeds = 0.0
    for _ in range(sims):
        study = False
        for (t, pred), rate in zip(templates, rates):
            g, ex = simulate_crossed_group(rng, t, pred, model, failure_rate=rate, shift=shift)
            r = replay(g, design, examples=None if seed_only else ex, claims=claims, budgets=primaries)
            study |= any(false(d.claim, d.verdict) for d in r.decisions)
            seeds += r.decisions[0].seeds
        hits += study
    if not sims:
        return {"fwer": math.nan, "seeds": math.nan}
    return {"fwer": hits / sims, "seeds": seeds / (sims * len(templates))}


def false_equivalent(claim: str, verdict: str) -> bool:
    """At a true difference of exactly the margin, "equivalent within +-margin" is false."""
    return verdict.startswith("equivalent")


def false_no_better(claim: str, verdict: str) -> bool:
    """With two-stage exactly the margin above fine-tuning, 3b's "supported" (no better:
    significantly below +margin) is false."""
    return claim == "3b" and verdict == "supported"


def pilot_components(runs: pd.DataFrame, examples: pd.DataFrame, margin: float = 1.0):
    """The task-level components of a pilot store (its runs and per-example results): the
    primaries' crossed estimates (claims.variance_decomposition per group); the largest example
    component of a paired difference among them (points^2 per example), or None without any."""
    from harness.analysis.claims import variance_decomposition
    from harness.analysis.groups import group_specs

    best = None
    for *_, rows in group_specs(schema.normalize_runs(runs)):
        t = variance_decomposition(rows, examples, margin=margin)
        t = t[t["inference_unit"] == "task"]
        if len(t):
            v = float(np.max(t["se_test_sample"] ** 2 * t["test_examples"]))
            best = v if best is None else max(best, v)
    return best


def task_level(sweep, groups, n: int, *, sims: int, failure_rate: float, seed: int, test_size: int | None = None,
               disagreement: float = DISAGREEMENT, pilot: tuple[pd.DataFrame, pd.DataFrame] | None = None,
               margin: float = 1.0) -> dict:
    """The task-level part of the design check (module docstring; docs/method.md, "Checking a design"):
    test_sample_se and min_detectable_effect at the design's test size (from a pilot's per-example
    results when given, else from `disagreement`), warnings, and the simulated procedure under the
    crossed model: fwer_null (task level) beside fwer_null_seed_only (the old procedure) and, at a
    true difference of exactly the margin, the share of studies with a false "equivalent" or a
    false 3b "supported"; for a sequential sweep the same for its looks."""
    from harness.analysis.claims import CLAIMS, primary_family_size

    size = int(test_size or (sweep.base.get("test_size") if isinstance(getattr(sweep, "base", None), dict)
                             else None) or DEFAULT_TEST_SIZE)
    var_example, source = disagreement, f"disagreement {disagreement:g} (every disagreement systematic: an upper bound)"
    if pilot is not None:
        found = pilot_components(*pilot, margin=margin)
        if found is not None:
            var_example, source = found / 1e4, "the pilot's per-example predictions"
    floor = 100 * math.sqrt(var_example / size)
    alpha_adj = 0.05 / (primary_family_size() * max(1, len(groups)))
    seed_se = math.sqrt(2) * RUN_SD / math.sqrt(n)  # the synthetic model's paired seed se
    mde = min_detectable_effect(math.hypot(floor, seed_se), alpha=alpha_adj)
    mde_floor = min_detectable_effect(floor, alpha=alpha_adj)
    smallest = min(e for e in EFFECTS if e) * math.sqrt(2) * RUN_SD
    warnings = []
    if smallest < mde:
        warnings.append(f"the smallest effect the design targets ({smallest:.2f} points) is below what {size:,} test "
                        f"examples and {n} seeds can detect ({mde:.2f} points at 80% power, alpha {alpha_adj:.4g})")
    if mde_floor > smallest:
        warnings.append(f"no number of seeds detects {smallest:.2f} points at {size:,} test examples "
                        f"(test-sample floor: se {floor:.2f}, {mde_floor:.2f} points with infinitely many seeds)")
    from scipy import stats as st
    eq_alpha = 0.05 / (primary_family_size() * max(1, len(groups)))
    if margin <= (st.norm.isf(eq_alpha) + st.norm.ppf(0.8)) * floor:
        warnings.append(f"equivalence within ±{margin:g} is out of reach at {size:,} test examples: the test-sample "
                        f"floor (se {floor:.2f}) leaves less than 80% power even with no difference")
    model = CrossedModel(size_sim := min(size, 1000), var_example * size_sim / size)
    out = {"test_size": size, "test_sample_se": floor, "test_sample_source": source,
           "min_detectable_effect": mde, "min_detectable_effect_any_seeds": mde_floor,
           "min_detectable_alpha": alpha_adj, "warnings": warnings,
           "simulated_test_size": size_sim,
           "simulated_note": f"simulated at {size_sim:,} test examples with the example component scaled to give "
                             f"the same test-sample se"}
    three_b = [c for c in CLAIMS if c.id == "3b"]
    at_margin = {"theseus-add/seed": margin}  # claim 1 at +margin, 3a (two-stage vs add/seed) at -margin
    two_stage = {"two-stage/predecessor-1x": margin}  # 3b at +margin (alone: no family adjustment, the worst case)
    primaries = getattr(sweep, "primaries", None)
    if getattr(sweep, "looks", None):
        from harness.analysis.sequential import Design
        design = Design(tuple(sweep.looks), groups=len(groups), futility=sweep.futility, margin=margin)

        def run(**kw):
            return simulate_task_sequential(groups, design, sims, model, failure_rate=failure_rate,
                                            primaries=primaries, **kw)["fwer"]
    else:
        def run(**kw):
            return simulate_task(groups, n, sims, model, failure_rate=failure_rate, primaries=primaries, **kw)
    out.update(fwer_null=run(seed=seed), fwer_null_seed_only=run(seed=seed, seed_only=True),
               margin_false_equivalent=run(seed=seed + 1, shift=at_margin, false=false_equivalent),
               margin_false_no_better=run(seed=seed + 2, shift=two_stage, false=false_no_better, claims=three_b))
    out["fwer_null_se"] = math.sqrt(out["fwer_null"] * (1 - out["fwer_null"]) / sims) if sims else math.nan
    return out


def describe_task_level(out: dict) -> list[str]:
    """The task-level lines of `harness design`'s text (out: check()'s dict)."""
    t = out.get("task_level")
    if not t:
        return []
    where = f" ({t['test_size_source']})" if t.get("test_size_source", "given") != "given" else ""
    lines = [f"test sample: {t['test_size']:,} examples{where}, test-sample se {t['test_sample_se']:.2f} points "
             f"(from {t['test_sample_source']}); smallest detectable effect {t['min_detectable_effect']:.2f} points "
             f"at {out['seeds']} seeds ({t['min_detectable_effect_any_seeds']:.2f} with any number of seeds)",
             f"task level (seeds and test examples random): any false primary verdict {t['fwer_null']:.3f} "
             f"(s.e. {t['fwer_null_se']:.3f}; seed-only inference: {t['fwer_null_seed_only']:.3f}); at a true "
             f"difference of the margin: a false 'equivalent' {t['margin_false_equivalent']:.3f}, a false 3b "
             f"'no better' {t['margin_false_no_better']:.3f}"]
    return lines + [f"warning: {w}" for w in t["warnings"]]
