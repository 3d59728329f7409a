"""`python -m harness bench --engine`: student steps/s of the engines "previous" and "current"
(harness.training.loop.ENGINES) in alternating fresh processes. "current" is what runs use: the harness's own
dropout (harness/training/dropout.py) and the speed-ups that change no number; "previous" is the engine before
the harness drew its own dropout (torch's dropout, other masks, so other numbers: it is never used by runs).
This measures what "current" buys, and checks that each engine trains the same weights in every round
(tests/bench/test_bench.py checks that "current" and "reference", the same dropout without the speed-ups, give
bit-identical whole runs). CPU time per step is reported beside wall time: on a shared machine it moves less
with the others' load.
"""

from __future__ import annotations

import hashlib
import json
import statistics

import torch

from harness.bench.common import WARM_PASSES, load_average, matmul_peak, step_setup, student_setup
from harness.bench.profile import timed_pass
from harness.errors import HarnessError


def _fingerprint(model: torch.nn.Module) -> str:
    """sha256 of every tensor of a state dict, in order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def engine_steps(task: str, model: str, steps: int, batch_size: int, max_length: int, lr: float, precisions,
                 engine: str, threads: int = 1) -> list[dict]:
    """Student steps/s of every case and precision under one engine, in this process, each case timed as
    `timed_pass` does (untimed passes first; the matmul peak measured just before and just after), with the trained
    weights' fingerprint and the epoch's mean loss to check that each engine trains the same weights in every
    round."""
    torch.set_num_threads(threads)
    student = student_setup(task, model, steps, batch_size, max_length, lr)
    rows = []
    for precision in precisions:
        for case in student.cases:
            def run_loop(on_step, case=case, precision=precision):
                return student.run_loop(case, precision, steps, engine, on_step)

            timed = timed_pass(run_loop, steps, precision)
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
    current / previous of student steps per CPU second and per wall second. `reproducible` per case: each
    engine's trained weights and loss agree bit for bit across its rounds (the two engines draw other dropout
    masks, so they differ from each other by design).

    Each case's matmul FLOPs per step (FlopCounterMode on engine "current"'s steps: the same batches and
    draws in every engine and round) and this machine's matmul peak in its precision, measured with the same
    thread count just before and after each timed pass (the better of the two), give each engine's fraction
    of peak: FLOPs per step / wall seconds per step / that pass's peak per wall second, the median over rounds,
    and the same in process CPU time (on a shared machine the figure to read: both the step and the peak count
    only the time they ran). Pairing each pass with its own peak matters here: this CPU's speed drifts by 10%
    or more over minutes (peaks of 432-500 GFLOP/s in one hour), so a peak measured minutes away from a step
    misstates its fraction. The peak measured before and after all the engines is reported as well."""
    import subprocess
    import sys

    setup = step_setup(task, model, steps, batch_size, max_length, lr, threads)
    args = {"task": task, "model": model, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "precisions": list(precisions), "threads": threads}
    torch.set_num_threads(threads)
    peaks = {p: [matmul_peak(p)] for p in precisions}
    runs = []
    for r in range(rounds):
        for engine in ("previous", "current"):
            log(f"  round {r + 1}/{rounds}: engine {engine} (a fresh process) ...")
            worker = "from harness.bench.engines import _engine_worker; _engine_worker()"
            out = subprocess.run([sys.executable, "-c", worker], input=json.dumps({**args, "engine": engine}),
                                 capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("ENGINE-ROWS ")), None)
            if out.returncode or line is None:
                raise HarnessError(f"the engine {engine!r} measurement failed:\n{out.stderr.strip()[-2000:]}")
            runs += json.loads(line[len("ENGINE-ROWS "):])
    for p in precisions:
        peaks[p].append(matmul_peak(p))
    peak = {p: {"flops_per_s": max(m["best_flops_per_s"] for m in peaks[p]),
                "flops_per_cpu_s": max(m["best_flops_per_cpu_s"] for m in peaks[p]), "before": peaks[p][0],
                "after": peaks[p][1]} for p in precisions}
    rows = []
    for precision in precisions:
        for case in dict.fromkeys(r["case"] for r in runs):
            mine = [r for r in runs if r["case"] == case and r["precision"] == precision]
            med = {e: {k: statistics.median(r[k] for r in mine if r["engine"] == e)
                       for k in ("step_ms", "cpu_step_ms", "page_faults_per_step")} for e in ("previous", "current")}
            flops = statistics.median(r["matmul_flops"] for r in mine if r["engine"] == "current")
            top, top_cpu = peak[precision]["flops_per_s"], peak[precision]["flops_per_cpu_s"]

            def fraction(e, wall=True):  # the median over rounds of each timed pass against its own peak
                return statistics.median(
                    flops / ((r["step_ms"] if wall else r["cpu_step_ms"]) / 1e3)
                    / r["peak_flops_per_s" if wall else "peak_flops_per_cpu_s"] for r in mine if r["engine"] == e)

            rows.append({"case": case, "precision": precision, "matmul_flops_per_step": flops,
                         "peak_flops_per_s": top, "peak_flops_per_cpu_s": top_cpu,
                         "paired_peaks_flops_per_s": sorted(r["peak_flops_per_s"] for r in mine),
                         **{f"{e}_fraction_of_peak": fraction(e) for e in ("previous", "current")},
                         **{f"{e}_fraction_of_peak_cpu": fraction(e, wall=False) for e in ("previous", "current")},
                         "previous_steps_per_s": 1e3 / med["previous"]["step_ms"],
                         "current_steps_per_s": 1e3 / med["current"]["step_ms"],
                         "previous_steps_per_cpu_s": 1e3 / med["previous"]["cpu_step_ms"],
                         "current_steps_per_cpu_s": 1e3 / med["current"]["cpu_step_ms"],
                         **{f"{e}_page_faults_per_step": med[e]["page_faults_per_step"]
                            for e in ("previous", "current")},
                         "ratio_wall": med["previous"]["step_ms"] / med["current"]["step_ms"],
                         "ratio_cpu": med["previous"]["cpu_step_ms"] / med["current"]["cpu_step_ms"],
                         "reproducible": all(len({(r["weights"], r["train_loss"]) for r in mine if r["engine"] == e})
                                             == 1 for e in ("previous", "current"))})
    setup["load_average_end"] = load_average()
    return {"setup": {**setup, "rounds": rounds, "warm_passes": WARM_PASSES}, "peak": peak, "cases": rows, "runs": runs}


def _faults(n) -> str:
    return "n/a" if n is None else f"{n:.0f}"


def format_engines(results: dict) -> str:
    s = results["setup"]
    lines = [f"engines: student steps/s, previous -> current ({s['rounds']} alternating fresh processes each, "
             f"median; steps 2-{s['steps'] - 1} of {s['steps']} after {1 + s.get('warm_passes', 0)} untimed passes, "
             f"{s['threads']} thread(s), batch {s['batch_size']}, "
             f"{s['device_name']}; load average {s['load_average']} -> {s['load_average_end']})"]
    for p, m in results["peak"].items():
        lines.append(f"matmul peak {p} ({m['before']['size']}^3, {s['threads']} thread(s), measured in this run, best "
                     f"of the start and the end): {m['flops_per_s'] / 1e9:.1f} GFLOP per wall s, "
                     f"{m['flops_per_cpu_s'] / 1e9:.1f} GFLOP per CPU s")
    for c in results["cases"]:
        paired = c.get("paired_peaks_flops_per_s")
        if paired:
            lines.append(f"  {c['case']}, {c['precision']}: peaks next to its timed passes "
                         f"{paired[0] / 1e9:.1f}-{paired[-1] / 1e9:.1f} GFLOP per wall s (each pass's fraction "
                         "is of its own peak)")
    lines.append(f"{'case':<22} {'prec':<5} {'per CPU s':>17} {'ratio':>6} {'per wall s':>17} {'ratio':>6} "
                 f"{'GFLOP/step':>10} {'of peak (wall)':>15} {'of peak (CPU)':>14}  {'page faults/step':>16}  "
                 "reproducible")
    for c in results["cases"]:
        lines.append(f"{c['case']:<22} {c['precision']:<5} {c['previous_steps_per_cpu_s']:>7.2f} -> "
                     f"{c['current_steps_per_cpu_s']:<7.2f} {c['ratio_cpu']:>6.3f} "
                     f"{c['previous_steps_per_s']:>7.2f} -> {c['current_steps_per_s']:<7.2f} {c['ratio_wall']:>6.3f} "
                     f"{c['matmul_flops_per_step'] / 1e9:>10.2f} "
                     f"{c['previous_fraction_of_peak']:>6.1%} -> {c['current_fraction_of_peak']:<6.1%} "
                     f"{c['previous_fraction_of_peak_cpu']:>5.1%} -> {c['current_fraction_of_peak_cpu']:<6.1%} "
                     f"{_faults(c.get('previous_page_faults_per_step')):>7} -> "
                     f"{_faults(c.get('current_page_faults_per_step')):<7}  {'yes' if c['reproducible'] else 'NO'}")
    return "\n".join(lines)
