"""What the `python -m harness bench` modes share: `harness_loop`, the harness's own `fit` over one epoch
of a strategy's first phase, which throughput times against other loops; and the student step as the default
sweep runs it (`StudentSetup`, `student_setup`: 1 torch thread, batch 32; finetune-k and a Theseus step
L_p -> k, k = L_p / 2, each step a whole optimizer step of `fit`, seeded as a run is: docs/method.md, Seeds and
pairing), which profile, engines and prototypes measure.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from harness.data.splits import Encoded
from harness.encoders.models import build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.run.runner import cpu_name, loop_settings, prepare_data
from harness.strategies import Context, get_strategy
from harness.training.config import RunConfig
from harness.training.loop import fit, pick_device, seed_everything


def first(data: Encoded, n: int) -> Encoded:
    return Encoded(data.ids[:n], data.labels[:n], data.lengths[:n])


def harness_loop(config: RunConfig, strategy: str, variant: str, options: dict, pretrained, num_classes: int,
                 predecessor_layers: int, train: Encoded, dev: Encoded, settings, steps: int, on_step=None):
    """`fit` over one epoch of `train`; the strategy's first phase only. -> (epoch log, batch shapes, model).

    on_step(i): called as step i (1-based) begins its forward, so the time between two calls is one whole
    optimizer step of `fit` (forward, backward, optimizer, schedule, loop bookkeeping, the next collate)."""
    strat = get_strategy(strategy)
    cfg = config.replace(strategy=strategy, variant=variant, options=options).validated()
    opts = strat.resolve(variant, options)
    seed_everything(cfg.student)
    ctx = Context(config=cfg, options=opts, pretrained=pretrained, num_classes=num_classes, steps_per_epoch=steps,
                  predecessor_layers=predecessor_layers,
                  get_predecessor=lambda: build_classifier(pretrained, predecessor_layers, num_classes, cfg.head),
                  train=train, settings=settings)
    plan = strat.build(ctx)
    shapes, loss = [], plan.phases[0].loss

    def recorded(batch):  # the phase's own loss, recording the padded shape each step computes
        shapes.append(tuple(batch["input_ids"].shape))
        if on_step is not None:
            on_step(len(shapes))
        return loss(batch)

    phase = dataclasses.replace(plan.phases[0], epochs=1, loss=recorded)
    phase.modules.to(settings.device)
    plan.evaluated.to(settings.device)
    # dev/test evaluation inside fit is not timed (train_seconds); a few examples keep it short
    result = fit([phase], plan.evaluated, train, dev, dev, settings, torch.Generator().manual_seed(cfg.student))
    return result.epochs[0], shapes, plan.evaluated


def load_average() -> float | None:
    """The 1-minute load average (None where the OS keeps none): on a shared machine the figures move with it."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


@dataclasses.dataclass
class StudentSetup:
    """What every student-step measurement shares: the model, the data, and the two cases (finetune-k and
    a Theseus step L_p -> k, k = L_p / 2: 6 -> 3 on minilm-l6, the default sweep's setting)."""

    pretrained: object
    layers: int
    student: int
    config: RunConfig
    train: Encoded
    dev: Encoded
    num_classes: int
    cases: list[tuple[str, str, str, dict]]

    def run_loop(self, case: tuple, precision: str, steps: int, engine: str | None = None, on_step=None):
        """One harness_loop of `steps` steps of this case. -> (epoch log, shapes, evaluated model).
        engine None: what runs use (LoopSettings' default: $HARNESS_ENGINE, else "current")."""
        _, strategy, variant, options = case
        cfg = self.config.replace(precision=precision)
        settings = loop_settings(cfg, pick_device("auto"), self.pretrained)
        if engine is not None:
            settings = dataclasses.replace(settings, engine=engine)
        return harness_loop(cfg, strategy, variant, options, self.pretrained, self.num_classes, self.layers,
                            self.train, self.dev, settings, steps, on_step)


def student_setup(task: str, model: str, steps: int, batch_size: int, max_length: int, lr: float) -> StudentSetup:
    if steps < 4:
        raise HarnessError("student-step measurements need --steps >= 4 (steps 2 .. steps-1 are measured)")
    n = steps * batch_size
    pretrained = load_pretrained(model)
    layers = pretrained.num_layers
    student = max(1, layers // 2)
    config = RunConfig(task=task, model=model, layers=student, train_size=n, dev_size=16, test_size=1,
                       batch_size=batch_size, max_length=max_length, lr=lr, budget=None, allow_small_test=True)  # epochs of `steps`; no test split
    _, splits, encoded = prepare_data(config, pretrained)
    cases = [(f"finetune-{student}", "finetune", "", {"epochs": 1})]
    if layers % student == 0 and student < layers:
        cases.append((f"theseus {layers}->{student}", "theseus-binary", "seed",
                      {"theseus_epochs": 1, "successor_epochs": 0}))
    return StudentSetup(pretrained, layers, student, config, first(encoded["train"], n), first(encoded["dev"], 2),
                        splits.num_classes, cases)


def step_setup(task, model, steps, batch_size, max_length, lr, threads) -> dict:
    """The setup a student-step mode reports: torch, device, threads, workload and the load average now."""
    device = pick_device("auto")
    return {"torch": torch.__version__, "device": str(device), "threads": threads, "task": task, "model": model,
            "batch_size": batch_size, "steps": steps, "measured_steps": steps - 2, "max_length": max_length,
            "lr": lr, "device_name": cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
            "load_average": load_average()}


WARM_PASSES = 1


def warm(run_loop, passes: int = WARM_PASSES) -> None:
    """`passes` untimed passes of a loop after the one that counts its FLOPs, before the timed one: so that a
    step is timed as a run's steps run, with the process's memory grown to its working size. Measured here
    (minilm-l6 finetune-3, bf16, one thread): the second pass of a fresh process still page-faults 3,600-4,200
    fresh pages per step (its heap still growing), while a run's steps after its first 60 fault about 340 per
    step (a 200-step loop), and a third pass 0-430 (docs/performance.md)."""
    for _ in range(passes):
        run_loop(lambda i: None)


def matmul_flops_per_step(run_loop, steps: int) -> float:
    """Matmul FLOPs (forward and backward: mm, addmm, bmm, attention) of one step, averaged over steps
    2 .. steps-1 of one `harness_loop` call, counted by torch's FlopCounterMode on that call. A loop is
    seeded as a run is, so a second call computes the same steps (same batches, same Theseus draws): count on
    an untimed pass, time another. run_loop(on_step) runs the loop; on_step(i) marks step i's start."""
    from torch.utils.flop_counter import FlopCounterMode

    marks: dict[int, int] = {}
    with FlopCounterMode(display=False) as counter:
        run_loop(lambda i: marks.__setitem__(i, counter.get_total_flops()))
    return (marks[steps] - marks[2]) / (steps - 2)


def matmul_peak(precision: str, size: int = 2048, reps: int = 10) -> dict:
    """This machine's dense (size x size) @ (size x size) matmul FLOP/s in `precision` (bf16 or fp32) on the
    CPU with the current thread count: best and median of `reps` after two untimed products, per wall second
    and per process CPU second (on a shared machine a product is descheduled part of the time; CPU time
    counts only the time it ran). The peak a step's share is taken of, measured where the step runs ("AMD
    EPYC" names CPUs of very different peaks)."""
    import statistics
    import time

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size).to(dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    times, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    flops = 2.0 * size ** 3
    return {"precision": precision, "size": size, "reps": reps, "best_flops_per_s": flops / min(times),
            "median_flops_per_s": flops / statistics.median(times),
            "best_flops_per_cpu_s": flops / min(cpu), "median_flops_per_cpu_s": flops / statistics.median(cpu)}

