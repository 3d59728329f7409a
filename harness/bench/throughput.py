"""`python -m harness bench`: training and evaluation throughput of the harness loop against Hugging
Face `Trainer` and a plain static-padding PyTorch loop, and the share of this machine's matmul peak: where the
harness's dynamic padding and precision leave it against what a user would otherwise run (docs/performance-history.md).

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
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import datasets
import torch
import transformers
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, PrinterCallback, Trainer,
                          TrainerCallback, TrainingArguments)

from harness.bench.common import first, harness_loop, load_average
from harness.data.splits import eval_batches
from harness.encoders.models import load_pretrained
from harness.errors import HarnessError
from harness.run.runner import cpu_name, loop_settings, prepare_data
from harness.training.config import RunConfig
from harness.training.loop import autocast, native_precision, pick_device, predict, seed_everything

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



# ---------------------------------------------------------------- the loops

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
                       budget=None, allow_small_test=True)  # no test split is used
    setup = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
             "threads": torch.get_num_threads(), "precision": precision, "load_average": load_average(),
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
    settings, k = loop_settings(config, device, pretrained), splits.num_classes

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
    setup["load_average_end"] = load_average()
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
