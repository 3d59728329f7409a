"""`python -m harness bench`: training and evaluation throughput of the harness loop against Hugging
Face `Trainer` and a plain static-padding PyTorch loop, and the share of this machine's matmul peak.

One process, one device, the same examples (the first steps x batch size of the training split),
batch size and optimizer steps for every loop. Rates are wall-clock: on a shared machine they move
with its load, so compare them within one run.

Every loop runs its steps once untimed before the timed pass (`warmup`, on by default): the first
pass over new batch shapes pays one-time costs (oneDNN/AMX kernels generated per shape, allocator
growth) that would otherwise be charged to whichever loop happens to run first. A sweep pays them
once per shape and worker process, so the warm figures are what a run of several epochs sees.

FLOPs are analytic. Per token and encoder layer, forward = 2 (4h^2 + 2hi) (Q/K/V/output projections,
feed-forward) + 2 * 2sh (attention scores and their weighted sum at sequence length s); training =
3 x forward; embeddings, LayerNorm, softmax and the head are left out. "Computed" FLOPs count every
padded position; "useful" FLOPs count each example at its own length (the same work in every loop).

Three more modes time one student step as the default sweep runs it (1 torch thread, batch 32; finetune-k
and a Theseus step L_p -> k, k = L_p / 2), each step a whole optimizer step of `fit`:
  --profile       the share of step time per operator family (torch.profiler; see FAMILY_OF_OP)
  --engine        student steps/s of the engines "previous" and "current" (train.ENGINES) in alternating
                  fresh processes, and whether both train bit-identical weights
  --experimental  prototype speed-ups that change values (never used by runs), as ratios to the same loop
They report process CPU time beside wall time: on a shared machine it moves less with the others' load.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, PrinterCallback, Trainer,
                          TrainerCallback, TrainingArguments)

from harness.data.splits import Encoded, eval_batches, train_batches
from harness.encoders.models import build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.run.runner import _cpu_name, _settings, prepare_data
from harness.strategies import Context, get_strategy
from harness.training.config import RunConfig
from harness.training.loop import autocast, fit, native_precision, pick_device, predict, seed_everything

# ---------------------------------------------------------------- analytic FLOPs

def forward_flops_per_token(layers: int, hidden: int, intermediate: int, seq_len: int) -> float:
    """Forward matmul FLOPs of one token through `layers` encoder layers in a sequence of seq_len."""
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * seq_len * hidden)


def computed_flops(shapes: list[tuple[int, int]], layers: int, hidden: int, intermediate: int,
                   training: bool) -> float:
    """FLOPs of batches of padded shape (batch, width), padding included; x3 when training."""
    fwd = sum(b * w * forward_flops_per_token(layers, hidden, intermediate, w) for b, w in shapes)
    return fwd * (3 if training else 1)


def useful_flops(lengths, layers: int, hidden: int, intermediate: int, training: bool) -> float:
    """FLOPs of each example at its own length (no padding); x3 when training."""
    return computed_flops([(1, int(n)) for n in lengths], layers, hidden, intermediate, training)


# ---------------------------------------------------------------- measurement helpers

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn) -> float:
    """Seconds fn() takes, the device's queued work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, precision: str, size: int | None = None, reps: int = 10) -> dict:
    """Dense (size x size) @ (size x size) FLOP/s in the run's precision: best and median of `reps`."""
    size = size or (8192 if device.type == "cuda" else 2048)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    timed(device, lambda: [a @ b for _ in range(2)])  # warm-up
    times = [timed(device, lambda: a @ b) for _ in range(reps)]
    flops = 2.0 * size ** 3
    return {"size": size, "dtype": str(dtype).replace("torch.", ""), "reps": reps,
            "best_flops_per_s": flops / min(times), "median_flops_per_s": flops / statistics.median(times)}


def rates(name: str, steps: int, seconds: float, examples: int, tokens: int, padded: int,
          flops: float | None = None, useful: float | None = None) -> dict:
    """One measured loop as a row: counts, seconds, and the rates derived from them."""
    return {"name": name, "steps": steps, "seconds": seconds, "examples": examples, "tokens": tokens,
            "padded_tokens": padded, "examples_per_s": examples / seconds, "tokens_per_s": tokens / seconds,
            "padded_tokens_per_s": padded / seconds, "flops": flops, "useful_flops": useful,
            "flops_per_s": None if flops is None else flops / seconds,
            "useful_flops_per_s": None if useful is None else useful / seconds, "share_of_peak": None}


def first(data: Encoded, n: int) -> Encoded:
    return Encoded(data.ids[:n], data.labels[:n], data.lengths[:n])


# ---------------------------------------------------------------- the loops

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


def hf_model(path: str, num_classes: int, layers: int, device: torch.device):
    """What a user loads: AutoModelForSequenceClassification (pooler head), its first `layers` layers."""
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_classes,
                                                              num_hidden_layers=layers).to(device)


def trainer_loop(path: str, tokenizer, texts: list[str], labels: list[int], num_classes: int, layers: int,
                 config: RunConfig, steps: int, device: torch.device) -> tuple[dict, list]:
    """Hugging Face Trainer with its defaults: tokenised with truncation, DataCollatorWithPadding."""
    datasets.disable_progress_bars()
    data = datasets.Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=config.max_length), batched=True,
        remove_columns=["text"])
    base, shapes, counts = DataCollatorWithPadding(tokenizer), [], {"tokens": 0, "padded": 0}

    def collate(features):  # the default collator, recording what each step computes
        batch = base(features)
        shapes.append(tuple(batch["input_ids"].shape))
        counts["tokens"] += int(batch["attention_mask"].sum())
        counts["padded"] += batch["attention_mask"].numel()
        return batch

    class Clock(TrainerCallback):  # the training epoch alone, as the harness's train_seconds
        def on_epoch_begin(self, args, state, control, **kwargs):
            sync(device)
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            sync(device)
            self.seconds = time.perf_counter() - self.start

    clock = Clock()
    seed_everything(config.student)
    model = hf_model(path, num_classes, layers, device)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=config.batch_size, num_train_epochs=1,
                                 max_steps=steps, learning_rate=config.lr, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, use_cpu=device.type != "cuda",
                                 bf16=config.precision == "bf16")
        trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                          data_collator=collate, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # it only prints the final metrics
        out = trainer.train()
    row = {"steps": out.global_step, "seconds": clock.seconds, "examples": len(labels), **counts,
           "train_call_seconds": out.metrics["train_runtime"], "optim": getattr(args.optim, "value", args.optim),
           "mixed_precision": trainer.accelerator.mixed_precision, "attention": model.config._attn_implementation}
    return row, shapes


def plain_loop(path: str, tokenizer, texts: list[str], labels: list[int], num_classes: int, layers: int,
               config: RunConfig, steps: int, device: torch.device) -> dict:
    """The obvious hand-written loop: every batch padded to max_length, AdamW at the same lr."""
    enc = tokenizer(texts, truncation=True, max_length=config.max_length, padding="max_length", return_tensors="pt")
    y = torch.tensor(labels)
    seed_everything(config.student)
    model = hf_model(path, num_classes, layers, device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.student))

    def train():
        for step in range(steps):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = {k: v[idx].to(device) for k, v in enc.items()}
            with autocast(device, config.precision):
                loss = model(**batch, labels=y[idx].to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    seconds = timed(device, train)
    return {"steps": steps, "seconds": seconds, "examples": len(labels), "tokens": int(enc["attention_mask"].sum()),
            "padded": enc["attention_mask"].numel()}


# ---------------------------------------------------------------- the benchmark

def run_bench(task: str = "rt-polarity", model: str = "minilm-l6", *, steps: int = 30, batch_size: int = 32,
              layers: int | None = None, train_size: int | None = None, dev_size: int = 500, max_length: int = 128,
              lr: float = 5e-5, precision: str = "fp32", peak_size: int | None = None, warmup: bool = True,
              log=print) -> dict:
    """Measure every loop (after an untimed pass when `warmup`); returns {"setup", "peak", "train": {name: row},
    "eval", "ratios"}."""
    device, n = pick_device("auto"), steps * batch_size
    if precision == "auto":
        precision = native_precision("auto")
    if steps < 1 or (train_size is not None and train_size < n):
        raise HarnessError(f"need steps >= 1 and a train size of at least steps x batch size = {n}")
    pretrained = load_pretrained(model)
    layers = layers or pretrained.num_layers  # build_classifier refuses more layers than the model has
    arch = transformers.AutoConfig.from_pretrained(pretrained.path)
    hidden, inter = arch.hidden_size, arch.intermediate_size
    # budget None: every loop times whole epochs of its own `steps` (not the runs' default budget)
    config = RunConfig(task=task, model=model, layers=layers, train_size=train_size or n, dev_size=dev_size,
                       test_size=1, batch_size=batch_size, max_length=max_length, lr=lr, precision=precision,
                       budget=None)
    setup = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
             "threads": torch.get_num_threads(), "precision": precision, "load_average": _load(),
             "cpu_count": os.cpu_count(),
             "task": task, "model": model, "layers": layers, "hidden": hidden, "intermediate": inter,
             "batch_size": batch_size, "steps": steps, "examples": n, "max_length": max_length, "lr": lr,
             "warmup": warmup}
    log(f"bench: torch {setup['torch']}, transformers {setup['transformers']}, device {device} "
        f"({setup['device_name']}), {setup['threads']} threads, precision {precision}")
    log(f"workload: {task}, {model} ({layers} layers, hidden {hidden}, intermediate {inter}), batch {batch_size}, "
        f"{steps} steps = {n} examples, max length {max_length}, lr {lr}, "
        f"{'each loop timed after an untimed pass' if warmup else 'no warm-up pass'}")

    def warm(run):  # the untimed pass: same loop, same data, same shapes; its result is dropped
        if warmup:
            run()
        return run()

    peak_before = matmul_peak(device, precision, peak_size)
    _, splits, encoded = prepare_data(config, pretrained)
    train, dev = first(encoded["train"], n), encoded["dev"]
    texts, labels = splits.train.texts[:n], splits.train.labels[:n]
    settings, k = _settings(config, device, pretrained), splits.num_classes

    def flops(shapes, depth):
        return (computed_flops(shapes, depth, hidden, inter, True),
                useful_flops(train.lengths, depth, hidden, inter, True))

    rows = {}

    def harness_row(name, strategy, variant, options, depth, with_flops=True):
        log(f"  running {name} ...")
        e, shapes, evaluated = warm(lambda: harness_loop(config.replace(layers=depth), strategy, variant, options,
                                                         pretrained, k, layers, train, first(dev, 2), settings,
                                                         steps))
        f, u = flops(shapes, depth) if with_flops else (None, None)
        rows[name] = rates(name, e["steps"], e["train_seconds"], n, e["tokens"], e["padded_tokens"], f, u)
        return e, evaluated

    _, model_l = harness_row(f"harness finetune-{layers}", "finetune", "", {"epochs": 1}, layers)

    log("  running evaluation (predict on dev) ...")
    seconds = warm(lambda: timed(device, lambda: predict(model_l, dev, settings)))
    eval_shapes = [tuple(b["input_ids"].shape) for b in eval_batches(dev, settings.eval_batch_size, settings.pad_id)]
    evaluation = rates("harness predict (dev)", len(eval_shapes), seconds, len(dev.labels), dev.num_tokens,
                       sum(b * w for b, w in eval_shapes), computed_flops(eval_shapes, layers, hidden, inter, False),
                       useful_flops(dev.lengths, layers, hidden, inter, False))

    log("  running HF Trainer ...")
    threads = torch.get_num_threads()
    row, shapes = warm(lambda: trainer_loop(pretrained.path, pretrained.tokenizer, texts, labels, k, layers, config,
                                            steps, device))
    setup["threads_in_trainer"] = torch.get_num_threads()
    torch.set_num_threads(threads)  # every loop on the same thread count, whatever Trainer set
    rows["HF Trainer"] = rates("HF Trainer", row["steps"], row["seconds"], n, row["tokens"], row["padded"],
                               *flops(shapes, layers))
    rows["HF Trainer"].update((key, row[key]) for key in ("train_call_seconds", "optim", "mixed_precision",
                                                          "attention"))

    log(f"  running plain loop (static padding to {max_length}) ...")
    row = warm(lambda: plain_loop(pretrained.path, pretrained.tokenizer, texts, labels, k, layers, config, steps,
                                  device))
    rows["plain loop"] = rates("plain loop", row["steps"], row["seconds"], n, row["tokens"], row["padded"],
                               *flops([(batch_size, max_length)] * steps, layers))

    successor, theseus = layers // 2, None
    if successor >= 1 and layers % successor == 0:  # theseus 6 -> 3 on minilm-l6
        harness_row(f"harness finetune-{successor}", "finetune", "", {"epochs": 1}, successor)
        theseus, _ = harness_row(f"theseus-binary seed {layers}->{successor}", "theseus-binary", "seed",
                                 {"theseus_epochs": 1, "successor_epochs": 0}, successor, with_flops=False)

    # measured again at the end, as other work on the machine may have come or gone; the better one is the peak
    peak_after = matmul_peak(device, precision, peak_size)
    peak = {"flops_per_s": max(peak_before["best_flops_per_s"], peak_after["best_flops_per_s"]),
            "before": peak_before, "after": peak_after}
    setup["load_average_end"] = _load()
    for row in [*rows.values(), evaluation]:
        row["share_of_peak"] = None if row["flops"] is None else row["flops_per_s"] / peak["flops_per_s"]
    results = {"setup": setup, "peak": peak, "train": rows, "eval": evaluation,
               "theseus_replacement_rate": theseus["replacement_rate"] if theseus else None}
    results["ratios"] = ratios(results, layers, successor)
    return results


def ratios(results: dict, layers: int, successor: int) -> dict:
    """Quotients of the reported figures (examples/s and share of peak)."""
    rows, harness = results["train"], results["train"][f"harness finetune-{layers}"]
    out = {"harness / HF Trainer (examples/s)": harness["examples_per_s"] / rows["HF Trainer"]["examples_per_s"],
           "harness / plain static loop (examples/s)": harness["examples_per_s"] / rows["plain loop"]["examples_per_s"],
           "harness achieved / peak": harness["share_of_peak"],
           "HF Trainer achieved / peak": rows["HF Trainer"]["share_of_peak"],
           "plain loop achieved / peak": rows["plain loop"]["share_of_peak"],
           "eval achieved / peak": results["eval"]["share_of_peak"]}
    theseus = rows.get(f"theseus-binary seed {layers}->{successor}")
    if theseus is not None:
        for depth in (successor, layers):
            out[f"theseus / finetune-{depth} (examples/s)"] = (
                theseus["examples_per_s"] / rows[f"harness finetune-{depth}"]["examples_per_s"])
    return out


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _g(x) -> str:
    return "-" if x is None else f"{x / 1e9:.1f}"


def format_report(results: dict) -> str:
    s, p = results["setup"], results["peak"]
    b, a = p["before"], p["after"]
    lines = [f"matmul peak ({b['size']}x{b['size']} {b['dtype']}): {_g(p['flops_per_s'])} GFLOP/s (best / median "
             f"of {b['reps']}: {_g(b['best_flops_per_s'])} / {_g(b['median_flops_per_s'])} at the start, "
             f"{_g(a['best_flops_per_s'])} / {_g(a['median_flops_per_s'])} at the end)\nload average "
             f"{s['load_average']} at the start, {s['load_average_end']} at the end, on {s['cpu_count']} CPUs", "",
             f"{'loop':<30} {'steps':>5} {'seconds':>8} {'examples/s':>10} {'tokens/s':>9} {'padded tok/s':>12} "
             f"{'GFLOP/s':>8} {'useful GFLOP/s':>14} {'of peak':>8}"]
    for r in list(results["train"].values()) + [results["eval"]]:
        share = "-" if r["share_of_peak"] is None else f"{r['share_of_peak']:.1%}"
        lines.append(f"{r['name']:<30} {r['steps']:>5} {r['seconds']:>8.2f} {r['examples_per_s']:>10.1f} "
                     f"{r['tokens_per_s']:>9.0f} {r['padded_tokens_per_s']:>12.0f} {_g(r['flops_per_s']):>8} "
                     f"{_g(r['useful_flops_per_s']):>14} {share:>8}")
    if (rate := results["theseus_replacement_rate"]) is not None:
        lines.append(f"(theseus: successor modules ran in {rate:.0%} of module-steps; its FLOPs are data dependent)")
    lines += ["", f"ratios ({s['precision']}, {s['threads']} threads, {s['device']}, torch {s['torch']}):"]
    lines += [f"  {name:<44} {value:.3f}" if value is not None else f"  {name:<44} -"
              for name, value in results["ratios"].items()]
    return "\n".join(lines)


# ---------------------------------------------------------------- profile of one student step

OVERHEAD = "Python/framework overhead"
FAMILIES = ("matmul/linear", "attention (sdpa, softmax)", "dropout + RNG", "dtype casts/copies", "layer norm", "GELU",
            "optimizer step", "embedding", "loss", "other ops", OVERHEAD)
# The op (or record_function) names that decide a family. Each op's self time goes to the innermost enclosing
# op named here: the bernoulli_ inside SDPA's attention dropout is dropout, the weight cast inside a linear is
# a cast, the mm of a linear's backward is matmul (backward ops inherit the family of the forward op that
# created their autograd node, matched by sequence number). Ops under none of them are "other ops" (residual
# adds, views, masks, the next batch's collate); time in no op at all is Python and framework overhead.
FAMILY_OF_OP = {
    "aten::linear": "matmul/linear", "aten::matmul": "matmul/linear",
    "aten::scaled_dot_product_attention": "attention (sdpa, softmax)",
    "aten::dropout": "dropout + RNG", "aten::native_dropout": "dropout + RNG", "aten::bernoulli_": "dropout + RNG",
    "aten::rand": "dropout + RNG",  # Theseus's replacement draws
    "aten::to": "dtype casts/copies", "aten::_to_copy": "dtype casts/copies", "aten::contiguous": "dtype casts/copies",
    "aten::clone": "dtype casts/copies",
    "aten::layer_norm": "layer norm", "aten::native_layer_norm": "layer norm",
    "aten::gelu": "GELU",
    "aten::embedding": "embedding",
    "aten::cross_entropy_loss": "loss",
    "aten::_fused_adamw_": "optimizer step",
}
_BACKWARD = "autograd::engine::evaluate_function: "


def op_families(events) -> dict[str, float]:
    """Self CPU time (µs) per family (FAMILIES less the overhead) over torch.profiler FunctionEvents."""
    seq_family: dict[int, str] = {}

    def ancestry(event):
        while event is not None:
            yield event
            event = event.cpu_parent

    def family(event):
        for node in ancestry(event):
            if node.name.startswith("Optimizer."):  # Optimizer.step#AdamW.step, Optimizer.zero_grad#...
                return "optimizer step"
            if node.name.startswith(_BACKWARD):  # AccumulateGrad has no forward op: "other ops"
                return seq_family.get(node.sequence_nr, "other ops")
            if node.name in FAMILY_OF_OP:
                return FAMILY_OF_OP[node.name]
        return "other ops"

    ordered = sorted(events, key=lambda e: e.time_range.start)
    for event in ordered:  # forward ops; for one sequence number, the op that created the node starts last
        if event.sequence_nr >= 0 and not any(n.name.startswith(_BACKWARD) for n in ancestry(event)):
            seq_family[event.sequence_nr] = family(event)
    out = dict.fromkeys(FAMILIES[:-1], 0.0)
    for event in ordered:
        out[family(event)] += event.self_cpu_time_total
    return out


def _page_faults() -> int | None:
    """Minor page faults of this process so far (each a fresh page the kernel zeroes and maps), or None."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _QuietStderr:
    """Kineto prints a line to stderr (fd 2) as it starts and stops; this hides exactly those calls."""

    def __enter__(self):
        import sys
        sys.stderr.flush()
        self.saved, self.null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.null, 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        os.close(self.null)


def step_profile(run_loop, steps: int, profiled: bool) -> dict:
    """Time (and with `profiled`, profile) steps 2 .. steps-1 of one `harness_loop` call: every one a
    whole optimizer step of `fit`, away from the epoch's start and end. run_loop(on_step) runs the loop.
    Wall and process CPU time both: on a shared machine the CPU time moves less with the others' load."""
    from torch.profiler import ProfilerActivity, profile

    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    faults: dict[int, int] = {}
    prof = profile(activities=[ProfilerActivity.CPU]) if profiled else None

    def mark(i):
        wall[i], cpu[i], faults[i] = time.perf_counter(), time.process_time(), _page_faults()

    def on_step(i):
        if i == steps and prof is not None:
            mark(i)
            with _QuietStderr():
                prof.stop()
            return
        if i == 2 and prof is not None:
            with _QuietStderr():
                prof.start()
        mark(i)

    result = run_loop(on_step)
    seconds, cpu_seconds, n = wall[steps] - wall[2], cpu[steps] - cpu[2], steps - 2
    out = {"steps": n, "seconds": seconds, "cpu_seconds": cpu_seconds, "step_ms": 1e3 * seconds / n,
           "steps_per_s": n / seconds, "cpu_step_ms": 1e3 * cpu_seconds / n,
           "page_faults_per_step": None if faults[2] is None else (faults[steps] - faults[2]) / n, "result": result}
    if prof is not None:
        us = op_families(prof.events())
        us[OVERHEAD] = max(0.0, 1e6 * seconds - sum(us.values()))
        total = sum(us.values())
        out["ms_per_step"] = {k: v / 1e3 / n for k, v in us.items()}
        out["shares"] = {k: v / total for k, v in us.items()}
        top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
        out["top_ops"] = [{"op": e.key, "calls_per_step": e.count / n, "ms_per_step": e.self_cpu_time_total / 1e3 / n}
                          for e in top]
    return out


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
        settings = _settings(cfg, pick_device("auto"), self.pretrained)
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
    config = RunConfig(task=task, model=model, layers=student, train_size=n, dev_size=None, test_size=1,
                       batch_size=batch_size, max_length=max_length, lr=lr, budget=None)  # epochs of `steps`
    _, splits, encoded = prepare_data(config, pretrained)
    cases = [(f"finetune-{student}", "finetune", "", {"epochs": 1})]
    if layers % student == 0 and student < layers:
        cases.append((f"theseus {layers}->{student}", "theseus-binary", "seed",
                      {"theseus_epochs": 1, "successor_epochs": 0}))
    return StudentSetup(pretrained, layers, student, config, first(encoded["train"], n), first(encoded["dev"], 2),
                        splits.num_classes, cases)


def _step_setup(task, model, steps, batch_size, max_length, lr, threads) -> dict:
    device = pick_device("auto")
    return {"torch": torch.__version__, "device": str(device), "threads": threads, "task": task, "model": model,
            "batch_size": batch_size, "steps": steps, "measured_steps": steps - 2, "max_length": max_length,
            "lr": lr, "device_name": _cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
            "load_average": _load()}


def run_profile(task: str = "rt-polarity", model: str = "minilm-l6", *, steps: int = 12, batch_size: int = 32,
                max_length: int = 128, lr: float = 5e-5, precisions=("bf16", "fp32"), threads: int = 1,
                log=print) -> dict:
    """Profile one student step (finetune-k and a Theseus step L_p -> k) per precision: each case runs
    `steps` steps untimed, then again timed, then again under torch.profiler (steps 2 .. steps-1 count).
    Returns {"setup", "cases": [{"case", "precision", "step_ms", "cpu_step_ms", "steps_per_s",
    "profiled_step_ms", "ms_per_step": {family: ms}, "shares": {family: share}, "top_ops"}]}."""
    setup = _step_setup(task, model, steps, batch_size, max_length, lr, threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        student = student_setup(task, model, steps, batch_size, max_length, lr)
        setup.update(layers=student.layers, student_layers=student.student)
        for precision in precisions:
            for case in student.cases:
                log(f"  profiling {case[0]}, {precision} ...")

                def run_loop(on_step, case=case, precision=precision):
                    return student.run_loop(case, precision, steps, on_step=on_step)

                run_loop(None)  # untimed: per-shape kernels, allocator growth
                timed = step_profile(run_loop, steps, profiled=False)
                profiled = step_profile(run_loop, steps, profiled=True)
                rows.append({"case": case[0], "precision": precision, "step_ms": timed["step_ms"],
                             "cpu_step_ms": timed["cpu_step_ms"], "steps_per_s": timed["steps_per_s"],
                             "profiled_step_ms": profiled["step_ms"], "ms_per_step": profiled["ms_per_step"],
                             "shares": profiled["shares"], "top_ops": profiled["top_ops"]})
    finally:
        torch.set_num_threads(before)
    setup["load_average_end"] = _load()
    return {"setup": setup, "cases": rows}


def format_profile(results: dict) -> str:
    s, cases = results["setup"], results["cases"]
    heads = [f"{c['case']} {c['precision']}" for c in cases]
    width = max(16, *(len(h) for h in heads))
    lines = [f"one student step: {s['model']}, batch {s['batch_size']}, {s['threads']} thread(s), {s['device_name']}; "
             f"steps 2-{s['steps'] - 1} of {s['steps']} (after an untimed pass); load average {s['load_average']} "
             f"-> {s['load_average_end']}", "",
             f"{'share of step time (ms)':<28}" + "".join(f" {h:>{width}}" for h in heads)]
    for family in FAMILIES:
        lines.append(f"{family:<28}" + "".join(
            f" {c['shares'][family]:>{width - 9}.1%} ({c['ms_per_step'][family]:>5.1f})" for c in cases))
    lines.append(f"{'step ms, profiled':<28}" + "".join(f" {c['profiled_step_ms']:>{width}.1f}" for c in cases))
    lines.append(f"{'step ms, not profiled':<28}" + "".join(f" {c['step_ms']:>{width}.1f}" for c in cases))
    lines.append(f"{'step CPU ms, not profiled':<28}" + "".join(f" {c['cpu_step_ms']:>{width}.1f}" for c in cases))
    return "\n".join(lines)


# ---------------------------------------------------------------- engines: previous against current

def _fingerprint(model: torch.nn.Module) -> str:
    """sha256 of every tensor of a state dict, in order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def engine_steps(task: str, model: str, steps: int, batch_size: int, max_length: int, lr: float, precisions,
                 engine: str, threads: int = 1) -> list[dict]:
    """Student steps/s of every case and precision under one engine, in this process (untimed pass first),
    with the trained weights' fingerprint and the epoch's mean loss to check that engines agree."""
    torch.set_num_threads(threads)
    student = student_setup(task, model, steps, batch_size, max_length, lr)
    rows = []
    for precision in precisions:
        for case in student.cases:
            def run_loop(on_step, case=case, precision=precision):
                return student.run_loop(case, precision, steps, engine, on_step)

            run_loop(None)
            timed = step_profile(run_loop, steps, profiled=False)
            epoch, _, evaluated = timed.pop("result")
            rows.append({"case": case[0], "precision": precision, "engine": engine, **timed,
                         "train_loss": epoch["train_loss"], "weights": _fingerprint(evaluated)})
    return rows


def _engine_worker() -> None:
    """`python -c` entry for one engine measurement in a fresh process: JSON arguments on stdin, rows on stdout."""
    import sys
    args = json.loads(sys.stdin.read())
    rows = engine_steps(**args)
    print("ENGINE-ROWS " + json.dumps(rows), flush=True)


def compare_engines(task: str = "rt-polarity", model: str = "minilm-l6", *, steps: int = 12, batch_size: int = 32,
                    max_length: int = 128, lr: float = 5e-5, precisions=("bf16", "fp32"), threads: int = 1,
                    rounds: int = 2, log=print) -> dict:
    """Engines "previous" and "current" measured in alternating fresh processes (`rounds` each: a speed-up
    such as keep_freed_memory holds for the rest of a process), the median per case, and the ratio
    current / previous of student steps per CPU second and per wall second. `identical` per case: the
    trained weights and the loss agree bit for bit across engines and rounds."""
    import subprocess
    import sys

    setup = _step_setup(task, model, steps, batch_size, max_length, lr, threads)
    args = {"task": task, "model": model, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "precisions": list(precisions), "threads": threads}
    runs = []
    for r in range(rounds):
        for engine in ("previous", "current"):
            log(f"  round {r + 1}/{rounds}: engine {engine} (a fresh process) ...")
            out = subprocess.run([sys.executable, "-c", "from harness.bench.bench import _engine_worker; _engine_worker()"],
                                 input=json.dumps({**args, "engine": engine}), capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("ENGINE-ROWS ")), None)
            if out.returncode or line is None:
                raise HarnessError(f"the engine {engine!r} measurement failed:\n{out.stderr.strip()[-2000:]}")
            runs += json.loads(line[len("ENGINE-ROWS "):])
    rows = []
    for precision in precisions:
        for case in dict.fromkeys(r["case"] for r in runs):
            mine = [r for r in runs if r["case"] == case and r["precision"] == precision]
            med = {e: {k: statistics.median(r[k] for r in mine if r["engine"] == e)
                       for k in ("step_ms", "cpu_step_ms")} for e in ("previous", "current")}
            rows.append({"case": case, "precision": precision,
                         "previous_steps_per_s": 1e3 / med["previous"]["step_ms"],
                         "current_steps_per_s": 1e3 / med["current"]["step_ms"],
                         "previous_steps_per_cpu_s": 1e3 / med["previous"]["cpu_step_ms"],
                         "current_steps_per_cpu_s": 1e3 / med["current"]["cpu_step_ms"],
                         "ratio_wall": med["previous"]["step_ms"] / med["current"]["step_ms"],
                         "ratio_cpu": med["previous"]["cpu_step_ms"] / med["current"]["cpu_step_ms"],
                         "identical": len({(r["weights"], r["train_loss"]) for r in mine}) == 1})
    setup["load_average_end"] = _load()
    return {"setup": {**setup, "rounds": rounds}, "cases": rows, "runs": runs}


def format_engines(results: dict) -> str:
    s = results["setup"]
    lines = [f"engines: student steps/s, previous -> current ({s['rounds']} alternating fresh processes each, "
             f"median; steps 2-{s['steps'] - 1} of {s['steps']}, {s['threads']} thread(s), batch {s['batch_size']}; "
             f"load average {s['load_average']} -> {s['load_average_end']})",
             f"{'case':<22} {'prec':<5} {'per CPU s':>17} {'ratio':>6} {'per wall s':>17} {'ratio':>6}  identical"]
    for c in results["cases"]:
        lines.append(f"{c['case']:<22} {c['precision']:<5} {c['previous_steps_per_cpu_s']:>7.2f} -> "
                     f"{c['current_steps_per_cpu_s']:<7.2f} {c['ratio_cpu']:>6.3f} "
                     f"{c['previous_steps_per_s']:>7.2f} -> {c['current_steps_per_s']:<7.2f} {c['ratio_wall']:>6.3f}  "
                     f"{'yes' if c['identical'] else 'NO'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- experimental: speed-ups that change values
# Measured here only, never used by a run: each changes the numbers a run produces (other random streams,
# other rounding), so adopting one needs a new results schema and `compare` of the default sweep before/after.

class _Student(nn.Module):
    """finetune-k's model called directly: HF embeddings -> BERT layers with a boolean (batch, 1, 1, seq)
    padding mask -> head. The prototypes' common ground (BERT-family layers; vmap needs a mask computed
    outside the model, as the harness's own forward skips it for batches without padding)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.embeddings, self.layers, self.head = classifier.embeddings.embeddings, classifier.layers, classifier.head

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        hidden = hidden.to(self.head.classifier.weight.dtype)  # bf16-weights: the layers hold bf16
        for layer in self.layers:
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return self.head(hidden)


def cheap_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
    """Prototype dropout: the keep mask from 16 random bits per element (four per 64-bit draw of the CPU
    generator) instead of one Bernoulli draw per element; p is rounded to a multiple of 1/65536."""
    if not training or p == 0.0:
        return x
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    keep = bits.view(torch.int16)[:n].view(x.shape) >= round(p * 65536) - 32768
    return torch.where(keep, x * (1.0 / (1.0 - p)), 0.0)


_SDPA = torch.nn.functional.scaled_dot_product_attention


def _math_attention(dropout):
    """SDPA's math path written out (plain softmax instead of aten's _safe_softmax, which also scans every
    score row for all -inf), with `dropout` on the attention probabilities."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if dropout_p == 0.0 or is_causal or kwargs:
            return _SDPA(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                         scale=scale, **kwargs)
        scores = torch.matmul(query, key.transpose(-2, -1)) * (scale or query.shape[-1] ** -0.5)
        if attn_mask is not None:
            scores = (scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                      else scores + attn_mask)
        return torch.matmul(dropout(torch.softmax(scores, -1), dropout_p), value)

    return sdpa


@contextlib.contextmanager
def _patched(dropout=None, attention=None):
    """Swap torch.nn.functional.dropout / scaled_dot_product_attention (what HF BERT layers call)."""
    F_ = torch.nn.functional
    saved = F_.dropout, F_.scaled_dot_product_attention
    try:
        if dropout is not None:
            F_.dropout = dropout
        if attention is not None:
            F_.scaled_dot_product_attention = attention
        yield
    finally:
        F_.dropout, F_.scaled_dot_product_attention = saved


PROTOTYPES = {
    "baseline": "finetune-k step as fit runs it (autocast, HF dropout and SDPA), in the prototypes' own loop",
    "math-attention": "attention written out without _safe_softmax's row scan (dropout unchanged)",
    "cheap-dropout": "math-attention + cheap_dropout everywhere (16 random bits per element)",
    "bf16-weights": "layers and head held in bf16 (weights, activations, LayerNorm; no autocast), fp32 master "
                    "weights in fused AdamW; embeddings fp32 (in bf16 too: slower, the 47 MB of word-embedding "
                    "gradient and weights cast every step)",
    "cheap-dropout+bf16-weights": "both",
    "lockstep-2": "2 seeds in one process, stacked weights, torch.func.vmap (randomness='different'), "
                  "each seed's batch padded to the pair's width",
}


def _batch_pairs(student: StudentSetup, seeds: int, pad_id: int):
    """Per step, one batch per seed (each seed its own data order), padded to a common width."""
    streams = [list(train_batches(student.train, student.config.batch_size, torch.Generator().manual_seed(s), pad_id))
               for s in range(seeds)]
    for group in zip(*streams):
        width = max(b["input_ids"].shape[1] for b in group)
        ids = torch.stack([F.pad(b["input_ids"], (0, width - b["input_ids"].shape[1]), value=pad_id) for b in group])
        mask = torch.stack([F.pad(b["attention_mask"], (0, width - b["attention_mask"].shape[1])) for b in group])
        yield ids, mask.bool()[:, :, None, None, :], torch.stack([b["labels"] for b in group])


def prototype_loop(kind: str, student: StudentSetup, precision: str, steps: int) -> float:
    """One pass of `steps` student steps of a PROTOTYPES kind; -> process CPU seconds per student step over
    steps 2 .. steps-1 (a lockstep step of S seeds counts S student steps)."""
    seeds = 2 if kind.startswith("lockstep") else 1
    bf16_weights = "bf16-weights" in kind and precision == "bf16"
    device, pad_id = torch.device("cpu"), student.pretrained.tokenizer.pad_token_id or 0
    models = []
    for s in range(seeds):
        seed_everything(s)
        models.append(_Student(build_classifier(student.pretrained, student.student, student.num_classes)).train())
    if seeds > 1:
        from torch.func import functional_call, stack_module_state, vmap
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        forward = vmap(lambda p, b, i, m: functional_call(base, (p, b), (i, m)), randomness="different")
        model_call = lambda ids, mask: forward(params, buffers, ids, mask)  # noqa: E731
        optimized = list(params.values())
    else:
        model_call = models[0]
        if bf16_weights:
            model_call.layers.to(torch.bfloat16)
            model_call.head.to(torch.bfloat16)
        optimized = list(model_call.parameters())
    low = [p for p in optimized if p.dtype == torch.bfloat16]  # held in bf16: AdamW updates fp32 masters
    master = [p.detach().float() for p in low]
    optimizer = torch.optim.AdamW([p for p in optimized if p.dtype != torch.bfloat16] + master,
                                  lr=student.config.lr, weight_decay=0.0, fused=True)
    dropout = cheap_dropout if "cheap-dropout" in kind else torch.nn.functional.dropout
    attention = _math_attention(dropout) if kind in ("math-attention", "cheap-dropout", "cheap-dropout+bf16-weights") \
        else None
    marks = {}
    with _patched(dropout if dropout is cheap_dropout else None, attention):
        for step, (ids, mask, labels) in enumerate(_batch_pairs(student, seeds, pad_id), 1):
            marks[step] = time.process_time()
            if step == steps:
                break
            if seeds == 1:
                ids, mask, labels = ids[0], mask[0], labels[0]
            with autocast(device, "fp32" if bf16_weights else precision):
                logits = model_call(ids, mask).float()
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
                loss = loss.view(seeds, -1).mean(1).sum()  # each seed's own mean loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for m, p in zip(master, low):
                m.grad, p.grad = p.grad.float(), None
            optimizer.step()
            if low:
                with torch.no_grad():
                    torch._foreach_copy_(low, master)
    if steps not in marks:
        raise HarnessError(f"the prototypes need {steps} batches; give a larger --train-size")
    return (marks[steps] - marks[2]) / ((steps - 2) * seeds)


def eval_batch_check(student: StudentSetup, dev: Encoded, precision: str, sizes=(128, 512)) -> dict:
    """Are predictions (and logits) with larger evaluation batches bit-identical, and how much faster? The
    model is finetune-k as built (fresh head): predictions need not be good to be compared."""
    seed_everything(0)
    model = build_classifier(student.pretrained, student.student, student.num_classes)
    settings = _settings(student.config.replace(precision=precision), torch.device("cpu"), student.pretrained)
    out = {"precision": precision, "examples": len(dev.labels), "sizes": list(sizes)}
    logits, cpu = {}, {}
    for size in sizes:
        settings_b = dataclasses.replace(settings, eval_batch_size=size)
        predict(model, dev, settings_b)  # untimed pass
        start = time.process_time()
        predict(model, dev, settings_b)
        cpu[size] = time.process_time() - start
        model.eval()
        rows = torch.empty(len(dev.labels), student.num_classes)
        with torch.inference_mode(), autocast(settings.device, precision):
            for batch in eval_batches(dev, size, settings.pad_id):
                rows[batch["index"]] = model(batch["input_ids"], batch["attention_mask"]).float()
        logits[size] = rows
    a, b = sizes[0], sizes[-1]
    out.update(cpu_seconds={str(k): v for k, v in cpu.items()}, speedup=cpu[a] / cpu[b],
               identical_logits=bool(torch.equal(logits[a], logits[b])),
               identical_predictions=bool(torch.equal(logits[a].argmax(-1), logits[b].argmax(-1))),
               max_abs_logit_difference=float((logits[a] - logits[b]).abs().max()))
    return out


def run_prototypes(task: str = "rt-polarity", model: str = "minilm-l6", *, steps: int = 10, batch_size: int = 32,
                   max_length: int = 128, lr: float = 5e-5, precisions=("bf16", "fp32"), threads: int = 1,
                   rounds: int = 2, log=print) -> dict:
    """Every PROTOTYPES kind per precision, interleaved (`rounds` timed passes each after an untimed one);
    speed-up = baseline CPU time per student step / the kind's (medians). Plus eval_batch_check."""
    setup = _step_setup(task, model, steps, batch_size, max_length, lr, threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows, evals = [], []
    try:
        student = student_setup(task, model, steps, batch_size, max_length, lr)
        _, _, encoded = prepare_data(student.config, student.pretrained)
        for precision in precisions:
            kinds = [k for k in PROTOTYPES if precision == "bf16" or "bf16-weights" not in k]
            times = {k: [] for k in kinds}
            for r in range(rounds + 1):
                for kind in kinds:
                    log(f"  {precision} {kind}: {'untimed pass' if r == 0 else f'round {r}/{rounds}'} ...")
                    seconds = prototype_loop(kind, student, precision, steps)
                    if r:
                        times[kind].append(seconds)
            base = statistics.median(times["baseline"])
            for kind in kinds:
                med = statistics.median(times[kind])
                rows.append({"kind": kind, "precision": precision, "cpu_step_ms": 1e3 * med, "speedup": base / med,
                             "what": PROTOTYPES[kind]})
            log(f"  {precision}: evaluation batch sizes ...")
            evals.append(eval_batch_check(student, encoded["dev"], precision))
    finally:
        torch.set_num_threads(before)
    setup["load_average_end"] = _load()
    return {"setup": {**setup, "rounds": rounds}, "prototypes": rows, "eval_batches": evals}


def format_prototypes(results: dict) -> str:
    s = results["setup"]
    lines = [f"prototypes (change values; never used by runs): CPU ms per student step, median of {s['rounds']} "
             f"interleaved passes, steps 2-{s['steps'] - 1}, {s['threads']} thread(s); load average "
             f"{s['load_average']} -> {s['load_average_end']}",
             f"{'kind':<28} {'prec':<5} {'ms':>7} {'speed-up':>9}  what"]
    for r in results["prototypes"]:
        lines.append(f"{r['kind']:<28} {r['precision']:<5} {r['cpu_step_ms']:>7.1f} {r['speedup']:>8.3f}x  {r['what']}")
    for e in results["eval_batches"]:
        a, b = e["sizes"][0], e["sizes"][-1]
        lines.append(f"evaluation {e['precision']}, batch {a} -> {b} ({e['examples']} examples): "
                     f"{e['speedup']:.3f}x, logits {'identical' if e['identical_logits'] else 'differ'} "
                     f"(max |diff| {e['max_abs_logit_difference']:.2g}), predictions "
                     f"{'identical' if e['identical_predictions'] else 'differ'}")
    return "\n".join(lines)


STEP_MODES = ("profile", "engine", "experimental")


def main(args) -> int:
    log = lambda m: print(m, flush=True)  # noqa: E731
    modes = [m for m in STEP_MODES if getattr(args, m, False)]
    if not modes:
        if args.threads:
            torch.set_num_threads(args.threads)
        results = run_bench(args.task, args.model, steps=args.steps or 30, batch_size=args.batch_size,
                            layers=args.layers, train_size=args.train_size, precision=args.precision or "fp32",
                            warmup=args.warmup, log=log)
        print(format_report(results))
    else:  # one student step, as the default sweep runs it: 1 thread unless --threads, both precisions unless set
        precisions = (("bf16", "fp32") if args.precision is None
                      else (native_precision("auto") if args.precision == "auto" else args.precision,))
        common = {"task": args.task, "model": args.model, "steps": args.steps or 10, "batch_size": args.batch_size,
                  "precisions": precisions, "threads": args.threads or 1, "log": log}
        results = {}
        if "profile" in modes:
            results["profile"] = run_profile(**common)
            print(format_profile(results["profile"]))
        if "engine" in modes:
            results["engine"] = compare_engines(**common)
            print(format_engines(results["engine"]))
        if "experimental" in modes:
            results["experimental"] = run_prototypes(**common)
            print(format_prototypes(results["experimental"]))
    if args.out is not None:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures: {args.out}")
    return 0
