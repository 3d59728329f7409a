"""`python -m harness COMMAND`: list, fetch, copy-preset, run, run-all, design, report, analyze, compare, bench.

Every user-facing failure is one line on stderr and exit status 2 (HarnessError); an
interrupted command exits 130. Nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.errors import HarnessError

# Outputs follow the working directory (or --out), never the package's own folder: an installed
# harness lives in site-packages.
DEFAULT_RUN_OUT = Path("results") / "runs"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--seed 2` must not mean `--seeds 2`
        super().__init__(*args, **kwargs)

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
    from harness.training.config import DEFAULT_PROFILE, DEFAULTS, RunConfig, format_lr

    d = RunConfig()
    profile = DEFAULTS[DEFAULT_PROFILE].values
    p.add_argument("--defaults", default=DEFAULT_PROFILE, choices=list(DEFAULTS), metavar="NAME",
                   help=f"the defaults of --lr, --epochs, --budget and --eval-points: "
                        + "; ".join(f"{x.name}: {x.summary()}" for x in DEFAULTS.values()))
    p.add_argument("--task", default=d.task, help="built-in task, or clue:DIR, csv:FILE, jsonl:FILE, hf:NAME")
    p.add_argument("--model", default=d.model, help="bundled model name, local folder or hub id")
    p.add_argument("--strategy", default=d.strategy, help="finetune, theseus-binary, theseus-add, two-stage or kd "
                                                          "(`list` shows each with its options)")
    p.add_argument("--variant", default=d.variant, help="a named preset of the strategy's options "
                                                        "(default: the strategy's default variant)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy option (repeatable), e.g. --option replacement_rate=0.7 (default: none)")
    p.add_argument("--layers", type=int, default=d.layers, help="finetune: k; other strategies: successor layers")
    p.add_argument("--predecessor-layers", type=int, default=None, metavar="N",
                   help="the predecessor's layers L_p (default: every layer of the model)")
    p.add_argument("--head", default=d.head, choices=["cls", "pooler"],
                   help="classifier input: the [CLS] vector (seed) or the pooler's output")
    p.add_argument("--seed", type=int, default=d.seed, help="the run's seed (predecessor and student)")
    p.add_argument("--student-seed", type=int, default=None, metavar="N",
                   help="the student's own seed, the predecessor keeping --seed's (default: --seed)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="the predecessor's length; given without --budget, the student's too (no budget) "
                        f"(default: {profile['epochs']}, from --defaults)")
    p.add_argument("--budget", type=int, default=None, metavar="STEPS",
                   help=f"student optimizer steps for the whole run (all phases) (default: {profile['budget']}, "
                        "from --defaults; none when --epochs is given alone)")
    p.add_argument("--eval-points", type=int, default=None, metavar="N",
                   help="dev evaluations at N evenly spaced steps; 0: after every epoch "
                        f"(default: {profile['eval_points']}, from --defaults)")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {format_lr(profile['lr'])}, from --defaults)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="training batch size")
    p.add_argument("--max-length", type=int, default=d.max_length, help="tokens per example at most")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="share of steps of linear lr warm-up")
    p.add_argument("--train-size", type=int, default=d.train_size, metavar="N",
                   help="training examples (default: 4,000, or 70%% of a data set under 6,500 examples)")
    p.add_argument("--dev-size", type=int, default=d.dev_size, metavar="N",
                   help="dev examples (default: 500, or 10%% of a data set under 6,500 examples)")
    p.add_argument("--test-size", type=int, default=d.test_size, metavar="N",
                   help="test examples (default: every example train and dev leave, or 20%% of a data set under "
                        "6,500 examples; under 100 is refused unless --allow-small-test)")
    p.add_argument("--allow-small-test", action="store_true",
                   help="run with a test split under 100 examples, where one example moves accuracy by more "
                        "than a point (refused otherwise)")
    p.add_argument("--split-seed", type=int, default=d.split_seed, help="seed of the train/dev/test split")
    p.add_argument("--text-column", default=d.text_column, help="csv:, jsonl:, hf: sources: the text column")
    p.add_argument("--label-column", default=d.label_column, help="csv:, jsonl:, hf: sources: the label column")
    p.add_argument("--predecessor-epochs", type=int, default=None, metavar="N",
                   help="the predecessor's epochs (default: --epochs)")
    p.add_argument("--predecessor-lr", type=float, default=None, metavar="LR",
                   help="the predecessor's learning rate (default: --lr)")
    p.add_argument("--precision", default=d.precision, choices=["fp32", "bf16", "auto"],
                   help="auto: bf16 where the hardware has native bf16 (AVX-512 BF16/AMX CPUs, CUDA), else fp32")
    p.add_argument("--device", default=d.device, help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch threads (default: torch's choice)")
    p.add_argument("--force", action="store_true", help="run a task/model pair that looks mismatched")
    p.add_argument("--out", type=Path, default=DEFAULT_RUN_OUT, metavar="DIR",
                   help="the folder the command writes to: the run's record goes to DIR/runs "
                        "(in the working directory)")


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
        device=a.device, threads=a.threads, force=a.force, allow_small_test=a.allow_small_test, **given,
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


def check_output_dir(path: Path, what: str, subdirs: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output folder that cannot be one: a file where a folder is
    needed (the path itself, a parent, or a subfolder the command writes into), or a folder that
    cannot be written. One HarnessError line naming the path and the option."""
    path = Path(path)
    for sub in subdirs:
        inner = path / sub
        if inner.exists() and not inner.is_dir():
            raise HarnessError(f"{what} {path}: {inner} is a file, not a folder; choose another {what}")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        which = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise HarnessError(f"{what} {path} {which}, not a folder; give a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise HarnessError(f"{what} {path}: {probe} is not writable")


def check_output_file(path: Path, what: str) -> None:
    """A file the command will write: not a folder, and its folder can be one."""
    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"{what} {path} is a folder; give a file name")
    check_output_dir(path.parent, what)


def cmd_run(a) -> int:
    from harness.run.runner import execute

    check_output_dir(a.out, "--out", ("runs", "splits"))
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
                     only=a.only, dry_run=a.dry_run, allow_small_test=a.allow_small_test)


def cmd_copy_preset(a) -> int:
    from harness.sweep.plan import copy_preset

    dest = copy_preset(a.name, a.dest, force=a.force)
    print(f"copied preset {a.name} to {dest}; edit it, then: python -m harness run-all --config {dest}")
    return 0


def _json_path(a, command: str) -> Path | None:
    """--json FILE, or the older --out FILE of design and bench (--out now always names a folder)."""
    if a.json_out_alias is not None:
        print(f"note: `{command} --out FILE` is now `{command} --json FILE`", file=sys.stderr)
        return a.json or a.json_out_alias
    return a.json


def cmd_design(a) -> int:
    from harness.analysis.design import check
    from harness.errors import HarnessError
    from harness.sweep.plan import load_sweep

    json_path = _json_path(a, "design")
    if json_path is not None:
        check_output_file(json_path, "--json")
    sweep = load_sweep(a.preset, a.config)
    if a.seeds is not None:
        if a.seeds < 3:
            raise HarnessError(f"--seeds must be >= 3 (fewer are never tested), got {a.seeds}")
        sweep.seeds = list(range(a.seeds))
    if a.sims < 1:
        raise HarnessError(f"--sims must be >= 1, got {a.sims}")
    if not 0 <= a.failure_rate < 1:
        raise HarnessError(f"--failure-rate must be in [0, 1), got {a.failure_rate}")
    if a.test_size is not None and a.test_size < 1:
        raise HarnessError(f"--test-size must be >= 1, got {a.test_size}")
    if not 0 < a.disagreement < 1:
        raise HarnessError(f"--disagreement must be in (0, 1), got {a.disagreement}")
    pilot = _pilot(a.pilot) if a.pilot is not None else None
    out = check(sweep, sims=a.sims, failure_rate=a.failure_rate, seed=a.seed, test_size=a.test_size,
                disagreement=a.disagreement, pilot=pilot)
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
    from harness.analysis.design import describe_task_level

    for line in describe_task_level(out):
        print(line)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(out, indent=1))
        print(f"written: {json_path}")
    return 0


def _pilot(store: Path):
    """(runs, examples) of a pilot store with per-example predictions, for `design --pilot`."""
    from harness.errors import HarnessError
    from harness.store.examples import examples_table
    from harness.store.records import read_label_counts, read_records, runs_table

    records = read_records(store) if (Path(store) / "runs").is_dir() else []
    if not records:
        raise HarnessError(f"--pilot {store}: no run records there (a store: a folder with runs/)")
    examples = examples_table(records, store)
    if examples.empty:
        raise HarnessError(f"--pilot {store}: its records hold no per-example test predictions "
                           f"(stores written before results schema 3)")
    return runs_table(records, read_label_counts(store)), examples


def cmd_report(a) -> int:
    from harness.data.content import stale_data_warnings
    from harness.report.pipeline import build_report

    results = Path(a.results_dir)
    if results.exists() and not results.is_dir():
        raise HarnessError(f"{results} is a file, not a results directory (a folder holding runs/); "
                           f"`python -m harness analyze {results}` reads a runs CSV")
    if a.report_dir is not None:
        check_output_dir(a.report_dir, "--report-dir")
    if results.is_dir():
        from harness.store.records import read_records

        for line in stale_data_warnings(read_records(results)):
            print(line)
    build_report(results, report_dir=a.report_dir)
    return 0


def cmd_analyze(a) -> int:
    from harness.report.pipeline import analyze_csv

    for option, folder in (("--out", a.out), ("--report-dir", a.report_dir)):
        if folder is not None:
            check_output_dir(folder, option)
    analyze_csv(Path(a.csv), out=a.out, report_dir=a.report_dir)
    return 0


def cmd_compare(a) -> int:
    from harness.analysis.compare import compare

    if a.out is not None:
        check_output_dir(a.out, "--out")
    compare(Path(a.a), Path(a.b), out=a.out, margin=a.margin, metric=a.metric)
    return 0


BENCH_STEP_MODES = ("profile", "engine", "experimental")  # one student step each, instead of throughput


def cmd_bench(a) -> int:
    import torch

    from harness.training.loop import native_precision

    json_path = _json_path(a, "bench")
    if json_path is not None:
        check_output_file(json_path, "--json")
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
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures: {json_path}")
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help: argparse's "(default: X)" where the help does not state it
    already; None, False and empty defaults say nothing (the help says what happens instead)."""

    def _get_help_string(self, action):
        text = action.help or ""
        empty = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if "default:" in text or empty or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from harness import __version__
    from harness.run.identity import RESULTS_SCHEMA

    return f"theseus-harness {__version__} (results schema {RESULTS_SCHEMA})"


def _add_sweep_source(p: argparse.ArgumentParser) -> None:
    """--preset or --config, not both: a preset given beside a config file would be ignored."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default=None, metavar="NAME",
                   help="a preset shipped with the harness (`list` shows them; default: default)")
    g.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="a sweep config file (`copy-preset NAME` starts one from a preset) (default: none: the preset)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m harness", description=__doc__.splitlines()[0], formatter_class=_Formatter,
                epilog="`python -m harness COMMAND --help` lists a command's options with their defaults.")
    p.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name, help_text, func):
        c = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        c.set_defaults(func=func)
        return c

    command("list", "tasks, models, strategies and presets", cmd_list)
    command("fetch", "download and verify every pinned source", cmd_fetch)
    cp = command("copy-preset", "copy a shipped sweep preset into the working directory to edit as your own "
                 "(then: run-all --config FILE)", cmd_copy_preset)
    cp.add_argument("name", metavar="NAME", help="a preset (`list` shows them)")
    cp.add_argument("dest", nargs="?", type=Path, default=None, metavar="DEST",
                    help="the file or folder to write (default: ./NAME.toml); the sweep's name becomes the "
                         "file's name, so its results go to results/<that name>")
    cp.add_argument("--force", action="store_true", help="overwrite an existing file")
    r = command("run", "train and evaluate one configuration", cmd_run)
    _add_run_args(r)
    s = command("run-all", "run a sweep preset, then build statistics, plots and the report", cmd_run_all)
    _add_sweep_source(s)
    s.add_argument("--seeds", type=int, default=None, metavar="N", help="number of seeds (default: the preset's)")
    s.add_argument("--jobs", type=int, default=None, metavar="N", help="parallel runs (default: the preset's)")
    s.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads per run (default: the preset's)")
    s.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the folder the command writes to: the store (runs, tables, plots) and the report in "
                        "DIR/report (default: results/<sweep> and report/ in the working directory)")
    s.add_argument("--report-dir", type=Path, default=None, metavar="DIR",
                   help="put the report here instead (default: see --out)")
    s.add_argument("--backend", default="loky", choices=["loky", "dask", "ray"],
                   help="joblib backend: loky (local processes), dask or ray")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler or ray cluster address (default: a local one)")
    s.add_argument("--only", action="append", default=None, metavar="ARM",
                   help="train only this arm (e.g. theseus-add/seed, finetune-3) or family (e.g. kd), and the "
                        "predecessors it needs (repeatable); the manifest, runs.csv and report still cover the "
                        "whole sweep (default: every arm)")
    s.add_argument("--dry-run", action="store_true",
                   help="print the plan (runs, arms, seeds, estimated time) and train nothing")
    s.add_argument("--allow-small-test", action="store_true",
                   help="run tasks whose test split has under 100 examples (refused otherwise; a sweep config "
                        "may set allow_small_test = true)")
    d = command("design", "before spending compute: simulate a preset's design (error rate, power)", cmd_design)
    _add_sweep_source(d)
    d.add_argument("--sims", type=int, default=1000, metavar="N", help="simulated studies per question")
    d.add_argument("--seeds", type=int, default=None, metavar="N", help="number of seeds (default: the preset's)")
    d.add_argument("--failure-rate", type=float, default=0.0, metavar="P",
                   help="share of student runs whose predictions collapse, in every arm alike")
    d.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    d.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="test examples per seed for the task-level figures (default: the preset's test size)")
    d.add_argument("--disagreement", type=float, default=0.06, metavar="P",
                   help="share of test examples two arms disagree on, when no pilot store is given "
                        "(0.06: measured on trec-6; an upper bound of the test-sample error)")
    d.add_argument("--pilot", type=Path, default=None, metavar="STORE",
                   help="a store whose per-example predictions give the test-sample error instead (default: none)")
    d.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures to this JSON file (default: none, print only)")
    d.add_argument("--out", type=Path, dest="json_out_alias", default=None, help=argparse.SUPPRESS)
    rp = command("report", "rebuild tables, plots and the report from a results store", cmd_report)
    rp.add_argument("results_dir", nargs="?", default=str(Path("results") / "default"), metavar="RESULTS_DIR",
                    help="a results directory (in the working directory)")
    rp.add_argument("--report-dir", type=Path, default=None, metavar="DIR",
                    help="where the report goes (default: where run-all put it: report/ for results/<sweep>, "
                         "else RESULTS_DIR/report)")
    an = command("analyze", "tables, plots and report from your own tidy runs CSV", cmd_analyze)
    an.add_argument("csv", metavar="CSV", help="a runs table: one row per run (columns as results/<sweep>/runs.csv)")
    an.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="the folder the command writes to (default: next to the CSV)")
    an.add_argument("--report-dir", type=Path, default=None, metavar="DIR", help="the report's folder (default: --out)")
    c = command("compare", "pair two sweeps' runs arm by arm and seed by seed: did a change move results?",
                cmd_compare)
    c.add_argument("a", metavar="A", help="reference: a results directory or a runs CSV")
    c.add_argument("b", metavar="B", help="candidate: a results directory or a runs CSV")
    c.add_argument("--margin", type=float, default=1.0, metavar="POINTS", help="equivalence margin in points")
    c.add_argument("--metric", default="test_accuracy", choices=["test_accuracy", "test_macro_f1", "dev_accuracy"],
                   help="the figure compared")
    c.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the folder the command writes B-vs-A.md and .csv to (default: print only)")
    b = command("bench", "throughput versus HF Trainer and a plain loop, and share of matmul peak", cmd_bench)
    b.add_argument("--steps", type=int, default=None, metavar="N",
                   help="optimizer steps per loop (default: 30; 10 with --profile/--engine/--experimental)")
    b.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads (default: torch's choice; 1 with --profile/--engine/--experimental)")
    b.add_argument("--precision", default=None, choices=["fp32", "bf16", "auto"],
                   help="default: fp32; bf16 and fp32 both with --profile/--engine/--experimental")
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
    b.add_argument("--layers", type=int, default=None, metavar="N", help="encoder layers trained (default: all)")
    b.add_argument("--batch-size", type=int, default=32, metavar="N", help="training batch size")
    b.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="training split drawn (default and minimum: steps x batch size; its first ones are used)")
    b.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="time each loop's first pass (one-time per-shape kernel costs included) "
                        "(default: one untimed pass first)")
    b.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write every figure to this JSON file (default: none, print only)")
    b.add_argument("--out", type=Path, dest="json_out_alias", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # bare `python -m harness`: the commands, and a clean exit
            parser.print_help()
            return 0
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
