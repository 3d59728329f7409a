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

A sequential design (a sweep with `looks`, harness.analysis.sequential) is simulated as it will run: each
simulated group is replayed look by look (sequential.replay), so arms stop when their primaries
are decided. It adds, per effect, expected_seeds (the mean seeds of claim 1's primary at its
stopping look) and expected_runs (student and predecessor runs of the whole study) against
fixed_seeds and fixed_runs, those of a fixed design at the last look.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.claims import evaluate_claims
from harness.store import schema

EFFECTS = (0.0, 0.5, 1.0, 1.5)  # in paired-sd units
FLOOR = 57.8  # accuracy of a run whose predictions collapsed (any constant: only its failed flag matters)
SEED_SD, RUN_SD = 0.8, 1.0
EFFECT_ARM = "theseus-add/seed"  # claim 1's primary arm


def group_template(arms: list[str], n: int) -> pd.DataFrame:
    """A normalised runs table of one group, arms x seeds 0..n-1, values filled in per simulation."""
    rows = [dict(task="t", model="m", strategy=a.partition("/")[0], variant=a.partition("/")[2], seed=i,
                 run_id=f"{a}-{i}", test_accuracy=70.0, degenerate=False) for a in arms for i in range(n)]
    return schema.normalize_runs(pd.DataFrame(rows))


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


def simulate(groups: list[tuple[list[str], str]], n: int, sims: int, *, failure_rate=0.0,
             effect: float = 0.0, seed: int = 0) -> float:
    """effect = 0: the share of simulated studies with any false primary verdict; effect > 0 (in
    paired-sd units, EFFECT_ARM shifted up by effect x sqrt(2) x RUN_SD): the share of groups whose
    claim-1 primary reads supported. groups: per group (its arms, its predecessor arm);
    failure_rate: one rate for every group, or one per group."""
    rng = np.random.default_rng(seed)
    templates, rates, shift = _layout(groups, n, failure_rate, effect)
    hits = 0
    for _ in range(sims):
        verdicts = [[(r.claim, r.verdict) for r in evaluate_claims(
            simulate_group(rng, t, pred, failure_rate=rate, shift=shift), groups=len(templates),
            with_power=False, primaries_only=True)] for (t, pred), rate in zip(templates, rates)]
        if effect:
            hits += sum(v == "supported" for group in verdicts for c, v in group if c == "1") / len(templates)
        else:
            hits += any(false_verdict(c, v) for group in verdicts for c, v in group)
    return hits / sims


def simulate_sequential(groups: list[tuple[list[str], str]], design, sims: int, *, failure_rate=0.0,
                        effect: float = 0.0, seed: int = 0) -> dict:
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
            r = replay(simulate_group(rng, t, pred, failure_rate=rate, shift=shift), design)
            study_false |= any(false_verdict(d.claim, d.verdict) for d in r.decisions)
            one = next(d for d in r.decisions if d.claim == "1")
            supported += one.verdict == "supported"
            seeds += one.seeds
            students = [a for a in r.arm_seeds if not a.startswith("finetune-")]
            runs += sum(r.arm_seeds.values()) + max((r.arm_seeds[a] for a in students), default=0)
        false += study_false
    g = len(templates)
    return {"fwer": false / sims, "power": supported / (sims * g), "seeds": seeds / (sims * g), "runs": runs / sims}


def design_of(sweep) -> tuple[list[tuple[list[str], str]], int]:
    """(per group: arm names and the predecessor's, number of seeds) of a sweep as it will run."""
    from harness.sweep.plan import _arm_name, _predecessor_layers

    groups = []
    for model in sweep.models:
        lp = _predecessor_layers(sweep, model)
        for _task in sweep.tasks:
            for ls in sweep.successor_layers:
                for _budget in sweep.budgets:
                    arms = [f"finetune-{lp}" if a.get("layers") == "predecessor" else _arm_name(a, ls)
                            for a in sweep.arms]
                    groups.append((list(dict.fromkeys(arms)), f"finetune-{lp}"))
    return groups, len(sweep.seeds)


def check(sweep, *, sims: int = 1000, failure_rate: float = 0.0, seed: int = 0) -> dict:
    """The design check of a loaded sweep, as a JSON-ready dict (module docstring)."""
    groups, n = design_of(sweep)
    if getattr(sweep, "looks", None):
        return check_sequential(sweep, groups, sims=sims, failure_rate=failure_rate, seed=seed)
    fwer = simulate(groups, n, sims, failure_rate=failure_rate, seed=seed)
    power = {f"{e:g}": simulate(groups, n, sims, failure_rate=failure_rate, effect=e, seed=seed + 1)
             for e in EFFECTS if e}
    return {"preset": sweep.name, "seeds": n, "groups": len(groups), "arms": groups[0][0] if groups else [],
            "failure_rate": failure_rate, "sims": sims, "fwer_null": fwer,
            "fwer_null_se": math.sqrt(fwer * (1 - fwer) / sims) if sims else math.nan,
            "power": power, "power_arm": EFFECT_ARM, "effects_in": "paired-sd units",
            "expected_seeds": {f"{e:g}": n for e in EFFECTS}, "fixed_seeds": n}


def check_sequential(sweep, groups, *, sims: int, failure_rate: float, seed: int) -> dict:
    """check() of a sweep with looks: the sequential procedure against a fixed design at the last look."""
    from harness.analysis.sequential import Design

    design = Design(tuple(sweep.looks), groups=len(groups), futility=sweep.futility)
    by_effect = {f"{e:g}": simulate_sequential(groups, design, sims, failure_rate=failure_rate, effect=e,
                                               seed=seed + i) for i, e in enumerate(EFFECTS)}
    null = by_effect["0"]
    fixed_runs = sum(len(arms) for arms, _ in groups) * design.looks[-1]
    return {"preset": sweep.name, "seeds": design.looks[-1], "looks": list(design.looks), "groups": len(groups),
            "arms": groups[0][0] if groups else [], "failure_rate": failure_rate, "sims": sims,
            "spending": "Lan-DeMets O'Brien-Fleming type, Holm passing within each group, alpha / G over groups",
            "futility": design.futility, "fwer_null": null["fwer"],
            "fwer_null_se": math.sqrt(null["fwer"] * (1 - null["fwer"]) / sims),
            "power": {k: v["power"] for k, v in by_effect.items() if k != "0"}, "power_arm": EFFECT_ARM,
            "fixed_power": {f"{e:g}": simulate(groups, design.looks[-1], sims, failure_rate=failure_rate, effect=e,
                                               seed=seed + i) for i, e in enumerate(EFFECTS) if e},
            "effects_in": "paired-sd units",
            "expected_seeds": {k: v["seeds"] for k, v in by_effect.items()},
            "expected_runs": {k: v["runs"] for k, v in by_effect.items()},
            "fixed_seeds": design.looks[-1], "fixed_runs": fixed_runs}
