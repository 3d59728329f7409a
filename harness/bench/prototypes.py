"""`python -m harness bench --experimental`: prototype speed-ups of the student step that change values
(PROTOTYPES, on the prototypes' own loop; STEP_PROTOTYPES, on the harness's own step), each as a ratio of
process CPU time per step to the same loop without it, and larger evaluation batches (eval_batch_check).
Measured here only, never used by a run: each changes the numbers a run produces (other random streams, other
rounding), so adopting one needs a new results schema (RESULTS_SCHEMA, and with it every run key:
docs/method.md, One run) and `compare` of the default sweep before/after. They stay so that the figures in
docs/performance.md and performance-history.md can be measured again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from harness.bench.common import WARM_PASSES, StudentSetup, load_average, step_setup, student_setup
from harness.data.splits import Encoded, eval_batches, train_batches
from harness.encoders.models import build_classifier
from harness.errors import HarnessError
from harness.run.runner import loop_settings, prepare_data
from harness.training.loop import autocast, predict, seed_everything


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


# Prototypes on the harness's own step (StudentSetup.run_loop, the current engine): each changes values too.
STEP_PROTOTYPES = {
    "harness step": "finetune-k step as a run computes it (current engine; attention softmax in bf16, as CPU "
                    "autocast runs it)",
    "fp32-softmax": "the same step with the attention's softmax in fp32 (scores cast up, probabilities cast "
                    "back): torch's bf16 softmax kernel computes a row's tail past its last 32 (max) and 16 "
                    "(exp) elements one element at a time",
}


def _fp32_softmax(scores: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores.float(), -1).to(scores.dtype)


def step_prototype(kind: str, student: StudentSetup, precision: str, steps: int) -> float:
    """One pass of `steps` finetune-k steps of the harness's own loop with a STEP_PROTOTYPES kind applied;
    -> process CPU seconds per step over steps 2 .. steps-1."""
    from unittest import mock

    from harness.bench.profile import step_profile
    from harness.training import dropout

    def run_loop(on_step):
        return student.run_loop(student.cases[0], precision, steps, on_step=on_step)

    softmax = {"fp32-softmax": _fp32_softmax}.get(kind, dropout._softmax)
    with mock.patch.object(dropout, "_softmax", softmax):
        return step_profile(run_loop, steps, profiled=False)["cpu_seconds"] / (steps - 2)


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
    settings = loop_settings(student.config.replace(precision=precision), torch.device("cpu"), student.pretrained)
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
    speed-up = baseline CPU time per student step / the kind's (medians). In bf16 also every STEP_PROTOTYPES
    kind on the harness's own step (interleaved, after 1 + WARM_PASSES untimed passes each). Plus eval_batch_check."""
    setup = step_setup(task, model, steps, batch_size, max_length, lr, threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows, step_rows, evals = [], [], []
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
            if precision == "bf16":
                step_times = {k: [] for k in STEP_PROTOTYPES}
                untimed = 1 + WARM_PASSES  # as bench --engine and --profile time a step
                for r in range(untimed + rounds):
                    for kind in STEP_PROTOTYPES:
                        log(f"  {precision} {kind}: "
                            f"{'untimed pass' if r < untimed else f'round {r - untimed + 1}/{rounds}'} ...")
                        seconds = step_prototype(kind, student, precision, steps)
                        if r >= untimed:
                            step_times[kind].append(seconds)
                base = statistics.median(step_times["harness step"])
                for kind, seconds in step_times.items():
                    med = statistics.median(seconds)
                    step_rows.append({"kind": kind, "precision": precision, "cpu_step_ms": 1e3 * med,
                                      "speedup": base / med, "what": STEP_PROTOTYPES[kind]})
            log(f"  {precision}: evaluation batch sizes ...")
            evals.append(eval_batch_check(student, encoded["dev"], precision))
    finally:
        torch.set_num_threads(before)
    setup["load_average_end"] = load_average()
    return {"setup": {**setup, "rounds": rounds}, "prototypes": rows, "step_prototypes": step_rows,
            "eval_batches": evals}


def format_prototypes(results: dict) -> str:
    s = results["setup"]
    lines = [f"prototypes (change values; never used by runs): CPU ms per student step, median of {s['rounds']} "
             f"interleaved passes, steps 2-{s['steps'] - 1}, {s['threads']} thread(s); load average "
             f"{s['load_average']} -> {s['load_average_end']}",
             f"{'kind':<28} {'prec':<5} {'ms':>7} {'speed-up':>9}  what"]
    for r in results["prototypes"]:
        lines.append(f"{r['kind']:<28} {r['precision']:<5} {r['cpu_step_ms']:>7.1f} {r['speedup']:>8.3f}x  {r['what']}")
    if results.get("step_prototypes"):
        lines.append("on the harness's own step (speed-up against its current engine):")
        for r in results["step_prototypes"]:
            lines.append(f"{r['kind']:<28} {r['precision']:<5} {r['cpu_step_ms']:>7.1f} {r['speedup']:>8.3f}x  "
                         f"{r['what']}")
    for e in results["eval_batches"]:
        a, b = e["sizes"][0], e["sizes"][-1]
        lines.append(f"evaluation {e['precision']}, batch {a} -> {b} ({e['examples']} examples): "
                     f"{e['speedup']:.3f}x, logits {'identical' if e['identical_logits'] else 'differ'} "
                     f"(max |diff| {e['max_abs_logit_difference']:.2g}), predictions "
                     f"{'identical' if e['identical_predictions'] else 'differ'}")
    return "\n".join(lines)
