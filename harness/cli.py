"""`python -m harness COMMAND`: list, fetch, run, run-all, design, report, analyze, compare, bench.

Every user-facing failure is one line on stderr and exit status 2 (HarnessError); an
interrupted command exits 130. Nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.errors import HarnessError

# Outputs follow the working directory (or --out), never the package's own folder: an installed
# harness lives in site-packages.
DEFAULT_RUN_OUT = Path("results") / "runs"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        raise HarnessError(f"{self.prog}: {message}")


def _parse_option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise HarnessError(f"--option expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value.strip()


# The run settings a named set of defaults decides (config.DEFAULTS); their flags default to None,
# so the chosen set fills in only what the user did not give.
PROFILE_FLAGS = {"lr": "--lr", "epochs": "--epochs", "budget": "--budget", "eval_points": "--eval-points"}


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from harness.training.config import DEFAULT_PROFILE, DEFAULTS, RunConfig

    d = RunConfig()
    p.add_argument("--defaults", default=DEFAULT_PROFILE, choices=list(DEFAULTS), metavar="NAME",
                   help=f"the defaults of --lr, --epochs, --budget and --eval-points: "
                        + "; ".join(f"{x.name}: {x.summary()}" for x in DEFAULTS.values())
                        + f" (default: {DEFAULT_PROFILE})")
    p.add_argument("--task", default=d.task, help="built-in task, or clue:DIR, csv:FILE, jsonl:FILE, hf:NAME")
    p.add_argument("--model", default=d.model, help="bundled model name, local folder or hub id")
    p.add_argument("--strategy", default=d.strategy)
    p.add_argument("--variant", default=d.variant, help="a named preset of the strategy's options")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy option (repeatable), e.g. --option replacement_rate=0.7")
    p.add_argument("--layers", type=int, default=d.layers, help="finetune: k; other strategies: successor layers")
    p.add_argument("--predecessor-layers", type=int, default=None)
    p.add_argument("--head", default=d.head, choices=["cls", "pooler"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--student-seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None,
                   help="the predecessor's length; given without --budget, the student's too (no budget)")
    p.add_argument("--budget", type=int, default=None, metavar="STEPS",
                   help="student optimizer steps for the whole run (all phases)")
    p.add_argument("--eval-points", type=int, default=None, metavar="N",
                   help="dev evaluations at N evenly spaced steps; 0: after every epoch")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    p.add_argument("--train-size", type=int, default=d.train_size)
    p.add_argument("--dev-size", type=int, default=d.dev_size)
    p.add_argument("--test-size", type=int, default=d.test_size)
    p.add_argument("--split-seed", type=int, default=d.split_seed)
    p.add_argument("--text-column", default=d.text_column)
    p.add_argument("--label-column", default=d.label_column)
    p.add_argument("--predecessor-epochs", type=int, default=None)
    p.add_argument("--predecessor-lr", type=float, default=None)
    p.add_argument("--precision", default=d.precision, choices=["fp32", "bf16", "auto"],
                   help="auto: bf16 where the hardware has native bf16 (AVX-512 BF16/AMX CPUs, CUDA), else fp32")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--force", action="store_true", help="run a task/model pair that looks mismatched")
    p.add_argument("--out", type=Path, default=DEFAULT_RUN_OUT,
                   help="store directory for the run record (default: results/runs in the working directory)")


def _config_from_args(a) -> "RunConfig":
    from harness.training.config import configured

    given = {k: getattr(a, k) for k in PROFILE_FLAGS if getattr(a, k) is not None}
    return configured(
        a.defaults, task=a.task, model=a.model, strategy=a.strategy, variant=a.variant,
        options=tuple(sorted(dict(_parse_option(o) for o in a.option).items())),
        layers=a.layers, predecessor_layers=a.predecessor_layers, head=a.head, seed=a.seed,
        student_seed=a.student_seed, train_size=a.train_size, dev_size=a.dev_size, test_size=a.test_size,
        split_seed=a.split_seed, max_length=a.max_length, text_column=a.text_column,
        label_column=a.label_column, batch_size=a.batch_size, warmup_ratio=a.warmup_ratio,
        predecessor_epochs=a.predecessor_epochs, predecessor_lr=a.predecessor_lr, precision=a.precision,
        device=a.device, threads=a.threads, force=a.force, **given,
    )


def defaults_line(a) -> str:
    """The run summary's line naming the defaults used and the flags that overrode them."""
    from harness.training.config import DEFAULTS

    used = DEFAULTS[a.defaults]
    given = [flag for k, flag in PROFILE_FLAGS.items() if getattr(a, k) is not None]
    overridden = f"; given instead: {', '.join(given)}" if given else ""
    others = "".join(f"; --defaults {x.name}: {x.what}" for x in DEFAULTS.values() if x is not used)
    return f"defaults: {used.name} ({used.what}): {used.summary()}{overridden}{others}"


def cmd_list(a) -> int:
    from harness.data.tasks import SOURCE_PREFIXES, TASKS
    from harness.encoders.adapters import supported
    from harness.encoders.models import BUNDLED_MODELS
    from harness.strategies import all_strategies
    from harness.sweep.plan import list_presets

    print("tasks:")
    for t in TASKS.values():
        print(f"  {t.name:<14} {t.description}")
    for prefix, desc in SOURCE_PREFIXES.items():
        print(f"  {prefix:<14} {desc}")
    print("models:")
    for name, desc in BUNDLED_MODELS.items():
        print(f"  {name:<14} {desc}")
    print(f"  {'NAME_OR_PATH':<14} a local folder (or hub id where online) of a supported encoder family: "
          f"{supported()}")
    print("strategies:")
    for s in all_strategies().values():
        print(f"  {s.name:<14} {s.description}")
        print(f"  {'':<14} options: {', '.join(f'{k}={v}' for k, v in s.defaults.items())}")
        for vname, vopts in s.variants.items():
            mark = " (default)" if vname == s.default_variant else ""
            print(f"  {'':<14} variant {vname}{mark}: {', '.join(f'{k}={v}' for k, v in vopts.items())}")
    print("presets:")
    for name, desc in list_presets().items():
        print(f"  {name:<14} {desc}")
    from harness.training.config import DEFAULT_PROFILE, DEFAULTS

    print("defaults (run --defaults NAME):")
    for x in DEFAULTS.values():
        mark = " (default)" if x.name == DEFAULT_PROFILE else ""
        print(f"  {x.name:<14} {x.what}{mark}: {x.summary()}")
        print(f"  {'':<14} {x.why}")
    return 0


def cmd_fetch(a) -> int:
    from harness.data import sources

    for name, path in sources.fetch_all().items():
        print(f"{name:<12} {path}")
    return 0


def cmd_run(a) -> int:
    from harness.run.runner import execute

    config = _config_from_args(a)
    record = execute(config, out_dir=a.out)
    f = record["final"]
    label = record["strategy"] + (f"/{record['variant']}" if record["variant"] else "")
    print(f"{label} on {config.task} ({config.model}, {config.layers} layers, seed {config.seed}): "
          f"test acc {f['test_accuracy']:.4f}  macro-F1 {f['test_macro_f1']:.4f}  "
          f"dev acc {f['dev_accuracy']:.4f} (best epoch {record['best_epoch']})  "
          f"{record['wall_seconds']:.0f}s")
    sizes, n = record["task"]["split_sizes"], record["task"]["source"].get("n_examples")
    chosen = [k for k in ("train", "dev", "test") if getattr(config, f"{k}_size") is None]
    how = ""
    if chosen:
        from harness.data.splits import DEFAULT_SIZES

        small = any(sizes[k] < DEFAULT_SIZES[k] for k in chosen)
        how = (f" ({'/'.join(chosen)} sized for a data set of {n:,} examples; --train-size, --dev-size and "
               f"--test-size set them)" if small and n else "")
    print(f"split sizes: train {sizes['train']:,}, dev {sizes['dev']:,}, test {sizes['test']:,}{how}")
    share = f.get("max_class_share")
    flags = [f"DEGENERATE: {share:.0%} of test predictions are one class" if f.get("degenerate") else "",
             "still improving at the end (a longer --budget would likely help)" if f.get("still_improving") else ""]
    print(f"{f['steps']:,} optimizer steps, best dev at step {record['best_step']:,}"
          + "".join(f"; {x}" for x in flags if x))
    if record.get("predecessor"):
        p = record["predecessor"]
        print(f"predecessor ({'trained now' if p['trained_now'] else 'from cache'}): "
              f"test acc {p['test_accuracy']:.4f}")
    print(defaults_line(a))
    print(f"record: {Path(a.out) / 'runs' / (record['run_id'] + '.json')}")
    return 0


def cmd_run_all(a) -> int:
    from harness.sweep.execute import run_sweep

    return run_sweep(preset=a.preset, config_path=a.config, seeds=a.seeds, jobs=a.jobs, threads=a.threads,
                     out=a.out, backend=a.backend, scheduler=a.scheduler, report_dir=a.report_dir,
                     limit_strategies=a.only)


def cmd_design(a) -> int:
    from harness.analysis.design import check
    from harness.errors import HarnessError
    from harness.sweep.plan import load_sweep

    sweep = load_sweep(a.preset, a.config)
    if a.seeds is not None:
        if a.seeds < 3:
            raise HarnessError(f"--seeds must be >= 3 (fewer are never tested), got {a.seeds}")
        sweep.seeds = list(range(a.seeds))
    if a.sims < 1:
        raise HarnessError(f"--sims must be >= 1, got {a.sims}")
    if not 0 <= a.failure_rate < 1:
        raise HarnessError(f"--failure-rate must be in [0, 1), got {a.failure_rate}")
    out = check(sweep, sims=a.sims, failure_rate=a.failure_rate, seed=a.seed)
    print(f"design of {out['preset']}: {out['seeds']} seeds, {out['groups']} group(s), {len(out['arms'])} arms, "
          f"failure rate {out['failure_rate']:g}, {out['sims']} simulated studies")
    print(f"any false primary verdict with no arm differing: {out['fwer_null']:.3f} "
          f"(Monte Carlo s.e. {out['fwer_null_se']:.3f}; must be <= 0.05)")
    if "looks" in out:  # a sequential design: against a fixed design at its last look
        print(f"sequential: looks at {', '.join(map(str, out['looks']))} seeds, futility below conditional power "
              f"{out['futility']:g}; a fixed design at {out['fixed_seeds']} seeds runs {out['fixed_runs']} runs")
        for effect, seeds in out["expected_seeds"].items():
            power = out["power"].get(effect)
            head = (f"effect {effect} paired sd: power {power:.3f} (fixed: {out['fixed_power'][effect]:.3f}), "
                    if power is not None else f"effect {effect} (no difference): ")
            print(f"{head}expected seeds of claim 1's primary {seeds:.1f} of {out['fixed_seeds']}, "
                  f"expected runs {out['expected_runs'][effect]:.0f} of {out['fixed_runs']}")
    else:
        for effect, power in out["power"].items():
            print(f"power of claim 1's primary ({out['power_arm']} better by {effect} paired sd): {power:.3f} "
                  f"at {out['fixed_seeds']} seeds")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
        print(f"written: {a.out}")
    return 0


def cmd_report(a) -> int:
    from harness.report.pipeline import build_report

    build_report(Path(a.results_dir), report_dir=a.report_dir)
    return 0


def cmd_analyze(a) -> int:
    from harness.report.pipeline import analyze_csv

    analyze_csv(Path(a.csv), out=a.out, report_dir=a.report_dir)
    return 0


def cmd_compare(a) -> int:
    from harness.analysis.compare import compare

    compare(Path(a.a), Path(a.b), out=a.out, margin=a.margin, metric=a.metric)
    return 0


BENCH_STEP_MODES = ("profile", "engine", "experimental")  # one student step each, instead of throughput


def cmd_bench(a) -> int:
    import torch

    from harness.training.loop import native_precision

    log = lambda m: print(m, flush=True)  # noqa: E731
    modes = [m for m in BENCH_STEP_MODES if getattr(a, m, False)]
    if not modes:
        from harness.bench.throughput import format_report, run_bench

        if a.threads:
            torch.set_num_threads(a.threads)
        results = run_bench(a.task, a.model, steps=a.steps or 30, batch_size=a.batch_size, layers=a.layers,
                            train_size=a.train_size, precision=a.precision or "fp32", warmup=a.warmup, log=log)
        print(format_report(results))
    else:  # one student step, as the default sweep runs it: 1 thread unless --threads, both precisions unless set
        precisions = (("bf16", "fp32") if a.precision is None
                      else (native_precision("auto") if a.precision == "auto" else a.precision,))
        common = {"task": a.task, "model": a.model, "steps": a.steps or 10, "batch_size": a.batch_size,
                  "precisions": precisions, "threads": a.threads or 1, "log": log}
        results = {}
        if "profile" in modes:
            from harness.bench.profile import format_profile, run_profile

            results["profile"] = run_profile(**common)
            print(format_profile(results["profile"]))
        if "engine" in modes:
            from harness.bench.engines import compare_engines, format_engines

            results["engine"] = compare_engines(**common)
            print(format_engines(results["engine"]))
        if "experimental" in modes:
            from harness.bench.prototypes import format_prototypes, run_prototypes

            results["experimental"] = run_prototypes(**common)
            print(format_prototypes(results["experimental"]))
    if a.out is not None:
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures: {a.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="tasks, models, strategies and presets").set_defaults(func=cmd_list)
    sub.add_parser("fetch", help="download and verify every pinned source").set_defaults(func=cmd_fetch)
    r = sub.add_parser("run", help="train and evaluate one configuration")
    _add_run_args(r)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("run-all", help="run a sweep preset, then build statistics, plots and the report")
    s.add_argument("--preset", default=None,
                   help="a preset shipped with the harness (`list` shows them; default: default)")
    s.add_argument("--config", type=Path, default=None, help="a sweep config file")
    s.add_argument("--seeds", type=int, default=None, help="number of seeds (overrides the preset)")
    s.add_argument("--jobs", type=int, default=None, help="parallel runs")
    s.add_argument("--threads", type=int, default=None, help="torch threads per run")
    s.add_argument("--out", type=Path, default=None,
                   help="everything of the sweep (runs, tables, plots, report in DIR/report) goes here "
                        "(default: results/<sweep> and report/ in the working directory)")
    s.add_argument("--report-dir", type=Path, default=None, help="put the report here instead")
    s.add_argument("--backend", default="loky", help="joblib backend: loky (local), dask or ray")
    s.add_argument("--scheduler", default=None, help="dask scheduler address for --backend dask")
    s.add_argument("--only", action="append", default=None, help="run only these strategies (repeatable)")
    s.set_defaults(func=cmd_run_all)
    d = sub.add_parser("design", help="before spending compute: simulate a preset's design (error rate, power)")
    d.add_argument("--preset", default=None, help="a preset (`list` shows them; default: default)")
    d.add_argument("--config", type=Path, default=None, help="a sweep config file")
    d.add_argument("--sims", type=int, default=1000, help="simulated studies per question (default 1000)")
    d.add_argument("--seeds", type=int, default=None, help="number of seeds (overrides the preset)")
    d.add_argument("--failure-rate", type=float, default=0.0,
                   help="share of student runs whose predictions collapse, in every arm alike (default 0)")
    d.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    d.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    d.set_defaults(func=cmd_design)
    rp = sub.add_parser("report", help="rebuild tables, plots and the report from a results store")
    rp.add_argument("results_dir", nargs="?", default=str(Path("results") / "default"),
                    help="a results directory (default: results/default in the working directory)")
    rp.add_argument("--report-dir", type=Path, default=None,
                    help="default: where run-all put it (report/ for results/<sweep>, else RESULTS_DIR/report)")
    rp.set_defaults(func=cmd_report)
    an = sub.add_parser("analyze", help="tables, plots and report from your own tidy runs CSV")
    an.add_argument("csv")
    an.add_argument("--out", type=Path, default=None, help="output directory (default: next to the CSV)")
    an.add_argument("--report-dir", type=Path, default=None)
    an.set_defaults(func=cmd_analyze)
    c = sub.add_parser("compare", help="pair two sweeps' runs arm by arm and seed by seed: did a change move results?")
    c.add_argument("a", help="reference: a results directory or a runs CSV")
    c.add_argument("b", help="candidate: a results directory or a runs CSV")
    c.add_argument("--margin", type=float, default=1.0, help="equivalence margin in points (default 1.0)")
    c.add_argument("--metric", default="test_accuracy", choices=["test_accuracy", "test_macro_f1", "dev_accuracy"])
    c.add_argument("--out", type=Path, default=None, help="also write B-vs-A.md and .csv here")
    c.set_defaults(func=cmd_compare)
    b = sub.add_parser("bench", help="throughput versus HF Trainer and a plain loop, and share of matmul peak")
    b.add_argument("--steps", type=int, default=None, help="optimizer steps per loop (default 30; 10 with "
                   "--profile/--engine/--experimental)")
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--precision", default=None, choices=["fp32", "bf16", "auto"],
                   help="default fp32; bf16 and fp32 both with --profile/--engine/--experimental")
    b.add_argument("--profile", action="store_true",
                   help="instead: share of a student step's time per operator family (torch.profiler), "
                        "finetune-3 and a Theseus step, 1 thread")
    b.add_argument("--engine", action="store_true",
                   help="instead: student steps/s of engine previous vs current (alternating fresh processes), "
                        "with a bit-identity check")
    b.add_argument("--experimental", action="store_true",
                   help="instead: prototype speed-ups that change values (never used by runs), as ratios")
    b.add_argument("--task", default="rt-polarity", help="built-in task, or clue:DIR, csv:FILE, jsonl:FILE, hf:NAME")
    b.add_argument("--model", default="minilm-l6", help="bundled model name, local folder or hub id")
    b.add_argument("--layers", type=int, default=None, help="encoder layers trained (default: all)")
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--train-size", type=int, default=None,
                   help="training split drawn (default and minimum: steps x batch size; its first ones are used)")
    b.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="time each loop's first pass (one-time per-shape kernel costs included)")
    b.add_argument("--out", type=Path, default=None, help="also write every figure to this JSON file")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except HarnessError as exc:  # one line even when the message quotes a value with a line break
        print("error: " + str(exc).replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except json.JSONDecodeError as exc:  # a malformed config or record the loaders did not catch
        print(f"error: malformed JSON: {exc}", file=sys.stderr)
        return 2
