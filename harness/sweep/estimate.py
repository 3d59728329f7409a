"""How long a sweep will take, before (`run-all --dry-run`) and while it runs (the ETA of each
progress line).

Before: each planned run's optimizer steps times a per-step time. That time is the mean over the
store's own finished runs of the same arm where there are some (measured on this machine), else
REFERENCE_SECONDS_PER_STEP, measured by the committed default study. While it runs: the mean wall
time of the runs finished so far times the runs left, divided by the parallel jobs.
"""

from __future__ import annotations

import math

from harness.training.config import RunConfig

# Seconds per optimizer step of each arm, measured by the default study (results/default, 55 records, results
# schema 3: mean over 5 seeds of wall_seconds / final steps, evaluations included): minilm-l6 on rt-polarity
# (train 2,000, max length 128, batch 32), bf16, 1 torch thread per run, 2 runs at once on a 2-core AMD EPYC
# (2026-12-05). finetune-6 is the 6-layer predecessor (189 steps: 3 epochs).
REFERENCE_SECONDS_PER_STEP = {
    "finetune-3": 0.131, "finetune-6": 0.328, "kd": 0.135,
    "theseus-add/convex": 0.228, "theseus-add/seed": 0.235,
    "theseus-binary/official": 0.120, "theseus-binary/seed": 0.131,
    "two-stage/predecessor-1x": 0.125, "two-stage/predecessor-5x": 0.126,
    "two-stage/random-1x": 0.132, "two-stage/random-5x": 0.132,
}
# fp32 over bf16 on the same CPU: the summed per-arm mean wall time of results/default-fp32 over that of
# results/default-3ep/runs.csv (the same 3-epoch sweep in bf16; 55 and 110 runs).
FP32_FACTOR = 2.55
REFERENCE_SOURCE = ("the default study's measured seconds per optimizer step (results/default: minilm-l6, "
                    "rt-polarity, bf16, 1 thread per run, 2-core AMD EPYC; fp32 runs x 2.55, the fp32 over bf16 "
                    "time of the earlier 3-epoch default)")


def planned_steps(config: RunConfig, train_size: int) -> int:
    """Optimizer steps a run will take: its budget, else its strategy's epochs (the sum of its phases'
    epoch options, else the run's epochs) over a training split of train_size examples."""
    if config.budget is not None and not _is_predecessor(config):
        return config.budget
    from harness.strategies import get_strategy

    options = get_strategy(config.strategy).resolve(config.variant, config.option_dict)
    epochs = sum(int(v) for k, v in options.items() if k.endswith("epochs") and v) or config.epochs
    if _is_predecessor(config):
        epochs = config.epochs
    return epochs * math.ceil(train_size / config.batch_size)


def _is_predecessor(config: RunConfig) -> bool:
    from harness.sweep.plan import is_predecessor

    return is_predecessor(config)


def seconds_per_step(records: list[dict]) -> dict[str, float]:
    """Mean seconds per optimizer step of each arm over finished records (wall_seconds / final steps)."""
    from harness import arms

    sums: dict[str, list[float]] = {}
    for r in records:
        final = r.get("final") or {}
        if r.get("status") == "ok" and final.get("steps") and r.get("wall_seconds"):
            name = arms.name(r["strategy"], r.get("variant") or "")  # records hold the table's names
            sums.setdefault(name, []).append(r["wall_seconds"] / final["steps"])
    return {k: sum(v) / len(v) for k, v in sums.items()}


def estimate_seconds(configs: list[RunConfig], train_sizes: list[int], measured: dict[str, float]):
    """(total run seconds, how many runs used this store's own figures) of `configs`, each with the
    training split size it will draw. Per step: `measured` (this store) for the arm, else the
    reference for the arm (x FP32_FACTOR for an fp32 run), else the reference mean of its family, else
    of every arm."""
    from harness.arms import family
    from harness.sweep.preflight import arm_of

    ref_mean = sum(REFERENCE_SECONDS_PER_STEP.values()) / len(REFERENCE_SECONDS_PER_STEP)
    total, own = 0.0, 0
    for config, n in zip(configs, train_sizes):
        arm = arm_of(config)
        if arm in measured:
            per_step, own = measured[arm], own + 1
        elif arm in REFERENCE_SECONDS_PER_STEP:
            per_step = REFERENCE_SECONDS_PER_STEP[arm]
        else:
            same = [v for k, v in REFERENCE_SECONDS_PER_STEP.items() if family(k) == family(arm)]
            per_step = sum(same) / len(same) if same else ref_mean
        if arm not in measured and config.precision == "fp32":
            per_step *= FP32_FACTOR
        total += per_step * planned_steps(config, n)
    return total, own


def duration(seconds: float) -> str:
    """12 s, 4.5 min, 1.3 h: a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def eta(walls: list[float], left: int, jobs: int) -> str:
    """The ETA of a sweep from its finished runs' wall times: mean x runs left / parallel jobs."""
    if not walls or left <= 0:
        return "done" if left <= 0 else "?"
    return duration(sum(walls) / len(walls) * left / max(1, jobs))
