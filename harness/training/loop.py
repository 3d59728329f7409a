"""The one training loop every strategy shares, and the one evaluation function.

A strategy hands `fit` a list of phases (e.g. Theseus phase, then successor phase). Each phase
says which parameter groups train at which learning rate and what one step's loss is; `fit`
owns everything else: optimizer, schedule, data order, per-epoch dev evaluation of the model
that will be reported, best-dev weights, and a single test evaluation at those weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from harness.data.splits import Encoded, eval_batches, train_batches
from harness.errors import HarnessError
from harness.training.dropout import DROPOUT_STREAM, DropoutAudit, harness_dropout
from harness.training.vocabulary import slices_for, token_ids


class NonFiniteLoss(HarnessError):
    """Training produced a NaN or infinite loss; the run is recorded as failed."""


@dataclass
class Phase:
    """One stretch of training with one optimizer.

    param_groups: torch param groups, each {"params": [...], "lr": float, "name": str};
        parameters in no group get no gradient and no optimizer state (they are frozen).
    loss: batch (dict of tensors on the device) -> scalar training loss.
    modules: everything the training forward touches; put in train mode (dropout on) each epoch.
    diagnostics: called after each epoch's training steps; returns extra per-epoch fields
        (e.g. replacement counts) and resets its counters.
    steps: when set, the phase trains exactly this many optimizer steps instead of `epochs` epochs.
    """

    name: str
    epochs: int
    param_groups: list[dict]
    loss: Callable[[dict], torch.Tensor]
    modules: nn.Module
    diagnostics: Callable[[], dict] | None = None
    steps: int | None = None            # optimizer steps (a budget's share); None = `epochs` full epochs


@dataclass
class EvalResult:
    accuracy: float
    macro_f1: float
    n: int
    pred_counts: list[int] = field(default_factory=list)  # predictions per class (index = class id)
    predictions: np.ndarray | None = None  # the predicted class of every example, in data order


@dataclass
class FitResult:
    epochs: list[dict]
    best_epoch: int
    dev: EvalResult
    test: EvalResult
    train_seconds: float
    steps: int
    curve: list[dict] = field(default_factory=list)   # dev accuracy of `evaluated` at each evaluation
    best_step: int = 0


@dataclass
class LoopSettings:
    batch_size: int = 32
    eval_batch_size: int = 128
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    group_by_length: bool = True
    precision: str = "fp32"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    pad_id: int = 0
    num_classes: int = 0                # length of EvalResult.pred_counts (at least max label + 1)
    # what runs use is "current"; see ENGINES for "reference" and "previous" (bench --engine and the tests)
    engine: str = field(default_factory=lambda: os.environ.get("HARNESS_ENGINE", "current"))


def seed_everything(seed: int) -> None:
    """python, numpy and torch (CPU and CUDA) RNGs from one seed."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def stream_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU RNG for one purpose of a run (1: Theseus's replacement draws, 2: dropout), seeded by the student
    seed and the stream id, so it does not shift when another purpose draws more numbers."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise HarnessError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def _cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run natively (elsewhere autocast emulates them, slowly)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_precision(device_name: str = "auto") -> str:
    """What precision "auto" means on this machine: bf16 on CUDA devices and CPUs with native bf16
    arithmetic, fp32 elsewhere."""
    device = pick_device(device_name)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and _cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- engines
# "current" (what runs use): the harness's dropout (harness/training/dropout.py) and the speed-ups that change
#     no value: keep_freed_memory, FrozenCasts, vocabulary slicing (harness/training/vocabulary.py).
# "reference": the harness's dropout without those speed-ups; the tests check it gives bit-identical runs.
# "previous": the engine before the harness drew its own dropout: torch's dropout (nn.Dropout's bernoulli_,
#     SDPA's dropout_p), keep_freed_memory and FrozenCasts, no vocabulary slicing. Other numbers (other
#     masks); kept so that `bench --engine` can measure what this engine buys over it, never for runs.
ENGINES = ("current", "reference", "previous")
_EXACT_SPEEDUPS = ("current", "previous")   # the engines with keep_freed_memory and FrozenCasts
_MEMORY_KEPT = False


def keep_freed_memory() -> None:
    """Let this process keep the memory it frees instead of handing it back to the OS at every step
    (glibc only; elsewhere nothing changes).

    glibc serves each allocation above its mmap threshold (at most 32 MB by default: the word-embedding
    gradient, 47 MB for MiniLM, is one) with a fresh mapping and unmaps it when freed, and trims the
    heap top: each training step page-faults tens of MB of zeroed pages back in (14,000 faults per bf16
    3-layer step). Raising both thresholds once keeps those pages; the resident size stays at its peak
    instead. Values cannot change: only where tensors live moves, and torch aligns every CPU tensor to
    64 bytes either way.
    """
    global _MEMORY_KEPT
    if _MEMORY_KEPT:
        return
    _MEMORY_KEPT = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not mallopt(m_mmap_threshold, 1 << 30):  # a glibc that refuses more than its documented 32 MB maximum
        mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, (1 << 31) - 1)


class FrozenCasts:
    """bf16 copies of the frozen nn.Linear weights of a phase's modules, made once instead of at every use.

    Under bf16 autocast a linear casts its fp32 weight and bias at every call; autocast reuses that cast
    within a forward only for trainable weights, so a frozen module (the Theseus predecessor) pays it in
    every step. Here each frozen Linear's parameters are cast once (again if modified in place), with
    the same `Tensor.to` autocast calls, and swapped in while the loss is computed: the linear receives
    identical bf16 tensors, so no value changes. Outside `with` the modules hold their own parameters.
    """

    def __init__(self, modules: nn.Module, trained: set[int], dtype: torch.dtype):
        self.dtype, self.copies, self.saved = dtype, {}, []
        self.linears = [m for m in modules.modules() if type(m) is nn.Linear and all(
            id(p) not in trained and p.dtype == torch.float32 for p in m.parameters(recurse=False))]

    def __enter__(self):
        for module in self.linears:
            for name, p in module._parameters.items():
                if p is None:
                    continue
                version, copy = self.copies.get(id(p), (None, None))
                if version != p._version:
                    version, copy = p._version, nn.Parameter(p.detach().to(self.dtype), requires_grad=False)
                    self.copies[id(p)] = version, copy
                self.saved.append((module, name, p))
        for module, name, p in self.saved:
            module._parameters[name] = self.copies[id(p)][1]
        return self

    def __exit__(self, *exc):
        for module, name, p in self.saved:
            module._parameters[name] = p
        self.saved = []


def frozen_casts(modules: nn.Module, trained: set[int], settings: LoopSettings):
    """A FrozenCasts for a phase when the engine and precision use it, else a context that does nothing."""
    if settings.engine in _EXACT_SPEEDUPS and settings.precision == "bf16":
        return FrozenCasts(modules, trained, torch.bfloat16)
    return contextlib.nullcontext()


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred (sklearn's rule)."""
    classes = np.union1d(y_true, y_pred)
    scores = []
    for c in classes:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def predict(model: nn.Module, data: Encoded, settings: LoopSettings) -> np.ndarray:
    """Predicted class per example of `data`, in data order. model: batch -> logits (batch, classes)."""
    was_training = model.training
    model.eval()
    preds = np.empty(len(data.labels), dtype=np.int64)
    with torch.inference_mode(), autocast(settings.device, settings.precision):
        for batch in eval_batches(data, settings.eval_batch_size, settings.pad_id):
            logits = model(batch["input_ids"].to(settings.device), batch["attention_mask"].to(settings.device))
            preds[batch["index"].numpy()] = logits.argmax(-1).cpu().numpy()
    model.train(was_training)
    return preds


def evaluate(model: nn.Module, data: Encoded, settings: LoopSettings) -> EvalResult:
    y_true = data.labels.numpy()
    y_pred = predict(model, data, settings)
    counts = np.bincount(y_pred, minlength=max(settings.num_classes, int(y_true.max(initial=0)) + 1))
    return EvalResult(float(np.mean(y_pred == y_true)), macro_f1(y_true, y_pred), len(y_true),
                      [int(c) for c in counts], y_pred)


def _optimizer(groups: list[dict], settings: LoopSettings) -> torch.optim.Optimizer:
    """AdamW over the phase's groups; bias and LayerNorm weights are exempt from weight decay."""
    torch_groups = []
    for g in groups:
        params = list(g["params"])
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, settings.weight_decay), (no_decay, 0.0)):
            if ps:
                torch_groups.append({"params": ps, "lr": g["lr"], "weight_decay": wd, "name": g.get("name", "")})
    if not torch_groups:
        raise HarnessError("this phase has no trainable parameters")
    # fused: one kernel per step over all parameters, on CUDA and on CPU (measured here: the AdamW
    # step of a 6-layer MiniLM takes 12 ms fused against 47 ms foreach, a quarter of a bf16 step)
    return torch.optim.AdamW(torch_groups, fused=True)


def _linear_schedule(optimizer, total_steps: int, warmup_ratio: float):
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _to_device(batch: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}


def eval_steps(phase_steps: list[int], points: int) -> set[int]:
    """Global steps after which dev is evaluated in eval-points mode: `points` evenly spaced over the
    whole run (so curves line up across budgets) plus the end of every phase."""
    total = sum(phase_steps)
    at = {max(1, round(total * i / points)) for i in range(1, points + 1)}
    ends = 0
    for n in phase_steps:
        ends += n
        at.add(ends)
    return at


def fit(phases: list[Phase], evaluated: nn.Module, train: Encoded, dev: Encoded, test: Encoded,
        settings: LoopSettings, generator: torch.Generator,
        on_epoch: Callable[[dict], None] | None = None, eval_points: int = 0,
        dropout_generator: torch.Generator | None = None,
        on_dev: Callable[[dict], None] | None = None) -> FitResult:
    """Train phase after phase; evaluate `evaluated` on dev at fixed points, keep the best-dev
    weights (earliest on ties), and evaluate test once, at those weights.

    A phase trains `phase.steps` optimizer steps when set (the budget: epochs are passes over the
    data, the last one cut short), else `phase.epochs` full epochs; its linear LR decay spans its own
    steps. eval_points = 0: dev after every epoch; n > 0: after n evenly spaced global steps and at
    every phase's end (see `eval_steps`). Evaluation draws no random numbers, so where it happens
    never changes the training trajectory, only which weights are selected.
    generator: the run's data-order RNG. dropout_generator: the run's dropout RNG (harness/training/dropout.py,
    every dropout of every training forward draws from it); None: stream DROPOUT_STREAM of the seed
    `generator` was seeded with. on_dev: called after every dev evaluation with {"step", "total_steps",
    "phase", "dev_accuracy", "best_dev_accuracy", "seconds"} (seconds since fit began): a run's heartbeat.
    Returns the per-epoch log, the dev curve and the final metrics.
    """
    if settings.engine not in ENGINES:
        raise HarnessError(f"unknown engine {settings.engine!r}; choose one of {', '.join(ENGINES)}")
    if settings.engine in _EXACT_SPEEDUPS:
        keep_freed_memory()
    if dropout_generator is None:
        dropout_generator = stream_generator(generator.initial_seed(), DROPOUT_STREAM)
    own_dropout = harness_dropout(dropout_generator) if settings.engine != "previous" else None
    # vocabulary slicing: the ids training looks up (evaluation runs on the full table, see `dev_point`)
    vocabulary = token_ids(train.ids, settings.pad_id) if settings.engine == "current" else None
    log: list[dict] = []
    curve: list[dict] = []
    best_acc, best_state, best_point = -1.0, None, None
    start = time.perf_counter()
    steps = 0
    steps_per_epoch = math.ceil(len(train.labels) / settings.batch_size)
    phase_steps = [p.steps if p.steps is not None else p.epochs * steps_per_epoch for p in phases]
    total_steps = sum(phase_steps)
    evaluate_at = eval_steps(phase_steps, eval_points) if eval_points else set()
    slices = []  # the vocabulary slices of the phase that trains now

    def dev_point(phase_name: str, epoch: int) -> dict:
        nonlocal best_acc, best_state, best_point
        for s in slices:  # the full tables back for evaluation and the best-dev copy
            s.leave()
        result = evaluate(evaluated, dev, settings)
        point = {"step": steps, "phase": phase_name, "epoch": epoch,
                 "dev_accuracy": result.accuracy, "dev_macro_f1": result.macro_f1}
        curve.append(point)
        if result.accuracy > best_acc:
            best_acc, best_point = result.accuracy, point
            best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
        for s in slices:
            s.enter()
        if on_dev is not None:
            on_dev({"step": steps, "total_steps": total_steps, "phase": phase_name,
                    "dev_accuracy": result.accuracy, "best_dev_accuracy": best_acc,
                    "seconds": time.perf_counter() - start})
        return point

    def train_forward(phase: Phase, batch: dict, audit: bool) -> torch.Tensor:
        """The phase's loss under autocast, the frozen casts and the run's dropout; `audit` (each phase's
        first step) also checks that no dropout of the forward went through torch's own RNG."""
        with autocast(settings.device, settings.precision), frozen, own_dropout or contextlib.nullcontext():
            if not audit:
                return phase.loss(batch)
            with DropoutAudit() as seen:
                loss = phase.loss(batch)
        seen.check(f"phase {phase.name!r}")
        return loss

    for phase, n_steps in zip(phases, phase_steps):
        # exactly the grouped parameters train; everything else the phase touches is frozen
        trained = {id(p) for g in phase.param_groups for p in g["params"]}
        for p in phase.modules.parameters():
            p.requires_grad_(id(p) in trained)
        slices = [] if vocabulary is None else slices_for(phase.modules, trained, vocabulary, settings.weight_decay)
        compact = {id(s.full): s.compact for s in slices}
        groups = [{**g, "params": [compact.get(id(p), p) for p in g["params"]]} for g in phase.param_groups]
        optimizer = _optimizer(groups, settings)
        scheduler = _linear_schedule(optimizer, n_steps, settings.warmup_ratio)
        frozen = frozen_casts(phase.modules, trained, settings)
        done = 0
        for s in slices:
            s.enter()
        try:
            while done < n_steps:
                epoch_start = time.perf_counter()
                epoch = len(log) + 1
                phase.modules.train()
                loss_sum, n_batches, tokens, padded, idle = 0.0, 0, 0, 0, 0
                for batch in train_batches(train, settings.batch_size, generator, settings.pad_id,
                                           settings.group_by_length):
                    tokens += int(batch["attention_mask"].sum())
                    padded += batch["attention_mask"].numel()
                    batch = _to_device(batch, settings.device)
                    loss = train_forward(phase, batch, audit=own_dropout is not None and done == 0)
                    if not torch.isfinite(loss):
                        raise NonFiniteLoss(f"non-finite training loss ({loss.item()}) in phase {phase.name!r}, "
                                            f"epoch {epoch}, step {steps + 1}")
                    if loss.requires_grad:
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                    else:  # e.g. a Theseus step that drew no successor module: nothing trainable ran
                        idle += 1
                    with warnings.catch_warnings():  # the schedule counts idle steps too, by design
                        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
                        scheduler.step()
                    loss_sum += loss.item()
                    n_batches += 1
                    steps += 1
                    done += 1
                    if steps in evaluate_at:
                        dev_point(phase.name, epoch)
                    if done == n_steps:
                        break
                entry = {"phase": phase.name, "epoch": epoch, "train_loss": loss_sum / max(1, n_batches),
                         "steps": n_batches, "idle_steps": idle, "tokens": tokens, "padded_tokens": padded,
                         "train_seconds": time.perf_counter() - epoch_start}
                if phase.diagnostics is not None:
                    entry.update(phase.diagnostics())
                if not eval_points:
                    point = dev_point(phase.name, epoch)
                else:  # the dev accuracy at this epoch's end, where one was measured there
                    point = curve[-1] if curve and curve[-1]["step"] == steps else \
                        {"dev_accuracy": None, "dev_macro_f1": None}
                entry.update(dev_accuracy=point["dev_accuracy"], dev_macro_f1=point["dev_macro_f1"],
                             seconds=time.perf_counter() - epoch_start)
                log.append(entry)
                if on_epoch is not None:
                    on_epoch(entry)
        finally:  # the full tables back, whatever happened
            for s in slices:
                s.leave()
            slices = []
    evaluated.load_state_dict(best_state)
    dev_best = EvalResult(best_point["dev_accuracy"], best_point["dev_macro_f1"], len(dev.labels))
    test_result = evaluate(evaluated, test, settings)
    return FitResult(log, best_point["epoch"], dev_best, test_result, time.perf_counter() - start, steps,
                     curve, best_point["step"])
