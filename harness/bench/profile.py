"""`python -m harness bench --profile`: the share of one student step's time per operator family
(torch.profiler; see FAMILY_OF_OP), for finetune-k and a Theseus step L_p -> k in each precision: what a step
spends its time on, so a speed-up is sought where the time goes (docs/performance-history.md). Process CPU time is
reported beside wall time: on a shared machine it moves less with the others' load. `step_profile` times
steps 2 .. steps-1 of a loop with or without the profiler; engines times with it too.
"""

from __future__ import annotations

import os
import time

import torch

from harness.bench.common import (WARM_PASSES, load_average, matmul_flops_per_step, matmul_peak, step_setup,
                                  student_setup, warm)

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
    "aten::softmax": "attention (sdpa, softmax)",  # the harness's attention (dropout.attention) writes SDPA out
    "aten::dropout": "dropout + RNG", "aten::native_dropout": "dropout + RNG", "aten::bernoulli_": "dropout + RNG",
    "aten::rand": "dropout + RNG",  # Theseus's replacement draws
    "aten::random_": "dropout + RNG",  # the harness's dropout masks (harness/training/dropout.py)
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



def timed_pass(run_loop, steps: int, precision: str) -> dict:
    """One case as `bench --engine` and `--profile` time it: an untimed pass counting its matmul FLOPs
    (matmul_flops_per_step), `warm`, then the timed pass (step_profile) between two measurements of the
    matmul peak in `precision` (the better of the two: this CPU's speed drifts over minutes, so a step's
    share is of the peak next to it). -> step_profile's figures (with "result") and "matmul_flops",
    "peak_flops_per_s", "peak_flops_per_cpu_s"."""
    flops = matmul_flops_per_step(run_loop, steps)
    warm(run_loop)
    peaks = [matmul_peak(precision)]
    timed = step_profile(run_loop, steps, profiled=False)
    peaks.append(matmul_peak(precision))
    return {**timed, "matmul_flops": flops, "peak_flops_per_s": max(m["best_flops_per_s"] for m in peaks),
            "peak_flops_per_cpu_s": max(m["best_flops_per_cpu_s"] for m in peaks)}


def run_profile(task: str = "rt-polarity", model: str = "minilm-l6", *, steps: int = 12, batch_size: int = 32,
                max_length: int = 128, lr: float = 5e-5, precisions=("bf16", "fp32"), threads: int = 1,
                log=print) -> dict:
    """Profile one student step (finetune-k and a Theseus step L_p -> k) per precision: each case runs
    `steps` steps untimed (counting their matmul FLOPs: matmul_flops_per_step), again untimed (`warm`), then
    timed, then under torch.profiler (steps 2 .. steps-1 count). This machine's matmul peak in the case's precision is
    measured just before and just after its timed pass (the better of the two; this CPU's speed drifts over
    minutes), so each case states its fraction of peak: FLOPs per step / step time / peak, per wall second and
    per process CPU second.
    Returns {"setup", "peak": {precision: {"flops_per_s", "flops_per_cpu_s"}}, "cases": [{"case",
    "precision", "step_ms", "cpu_step_ms", "steps_per_s", "page_faults_per_step", "profiled_step_ms",
    "matmul_flops_per_step", "peak_flops_per_s", "peak_flops_per_cpu_s", "fraction_of_peak",
    "fraction_of_peak_cpu", "ms_per_step": {family: ms}, "shares": {family: share}, "top_ops"}]}."""
    setup = step_setup(task, model, steps, batch_size, max_length, lr, threads)
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

                # every pass of a case computes the same steps (a loop is seeded as a run is)
                timed = timed_pass(run_loop, steps, precision)
                profiled = step_profile(run_loop, steps, profiled=True)
                flops, top, top_cpu = timed["matmul_flops"], timed["peak_flops_per_s"], timed["peak_flops_per_cpu_s"]
                rows.append({"case": case[0], "precision": precision, "step_ms": timed["step_ms"],
                             "cpu_step_ms": timed["cpu_step_ms"], "steps_per_s": timed["steps_per_s"],
                             "page_faults_per_step": timed["page_faults_per_step"],
                             "matmul_flops_per_step": flops, "peak_flops_per_s": top, "peak_flops_per_cpu_s": top_cpu,
                             "fraction_of_peak": flops / (timed["step_ms"] / 1e3) / top,
                             "fraction_of_peak_cpu": flops / (timed["cpu_step_ms"] / 1e3) / top_cpu,
                             "profiled_step_ms": profiled["step_ms"], "ms_per_step": profiled["ms_per_step"],
                             "shares": profiled["shares"], "top_ops": profiled["top_ops"]})
    finally:
        torch.set_num_threads(before)
    peak = {}
    for row in rows:
        best = peak.setdefault(row["precision"], {"flops_per_s": 0.0, "flops_per_cpu_s": 0.0})
        best["flops_per_s"] = max(best["flops_per_s"], row["peak_flops_per_s"])
        best["flops_per_cpu_s"] = max(best["flops_per_cpu_s"], row["peak_flops_per_cpu_s"])
    setup.update(load_average_end=load_average(), warm_passes=WARM_PASSES)
    return {"setup": setup, "peak": peak, "cases": rows}


def format_profile(results: dict) -> str:
    s, cases = results["setup"], results["cases"]
    heads = [f"{c['case']} {c['precision']}" for c in cases]
    width = max(16, *(len(h) for h in heads))
    lines = [f"one student step: {s['model']}, batch {s['batch_size']}, {s['threads']} thread(s), {s['device_name']}; "
             f"steps 2-{s['steps'] - 1} of {s['steps']} (after {1 + s.get('warm_passes', 0)} untimed passes); "
             f"load average {s['load_average']} "
             f"-> {s['load_average_end']}", "",
             f"{'share of step time (ms)':<28}" + "".join(f" {h:>{width}}" for h in heads)]
    for family in FAMILIES:
        lines.append(f"{family:<28}" + "".join(
            f" {c['shares'][family]:>{width - 9}.1%} ({c['ms_per_step'][family]:>5.1f})" for c in cases))
    lines.append(f"{'step ms, profiled':<28}" + "".join(f" {c['profiled_step_ms']:>{width}.1f}" for c in cases))
    lines.append(f"{'step ms, not profiled':<28}" + "".join(f" {c['step_ms']:>{width}.1f}" for c in cases))
    lines.append(f"{'step CPU ms, not profiled':<28}" + "".join(f" {c['cpu_step_ms']:>{width}.1f}" for c in cases))
    if cases and cases[0].get("page_faults_per_step") is not None:
        lines.append(f"{'page faults per step':<28}" + "".join(
            f" {c['page_faults_per_step']:>{width}.0f}" for c in cases))
    if cases and "matmul_flops_per_step" in cases[0]:
        lines.append(f"{'matmul GFLOP per step':<28}" + "".join(
            f" {c['matmul_flops_per_step'] / 1e9:>{width}.2f}" for c in cases))
        lines.append(f"{'fraction of peak (wall)':<28}" + "".join(f" {c['fraction_of_peak']:>{width}.2f}" for c in cases))
        lines.append(f"{'fraction of peak (CPU)':<28}" + "".join(
            f" {c['fraction_of_peak_cpu']:>{width}.2f}" for c in cases))
        lines.append(f"{'peak GFLOP/s next to it':<28}" + "".join(
            f" {c.get('peak_flops_per_s', results['peak'][c['precision']]['flops_per_s']) / 1e9:>{width}.1f}"
            for c in cases))
        lines += ["", "matmul peak: dense 2048^3 products measured just before and just after each case's timed pass, "
                  "the better of the two; each case's fraction is of its own peak"]
    return "\n".join(lines)
