"""`run-all`: expand a sweep config into jobs, run them (resumably, in parallel), then report.

Data flows one way: config -> jobs -> run records (results/<sweep>/runs/) -> tidy tables ->
statistics -> plots -> report. The store is the single source of truth: a finished run is a
record file named by the hash of everything that determines it, so re-running skips it, a changed
setting gets a new key, and a killed sweep loses at most the runs that were in flight.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.config import RunConfig
from harness.errors import HarnessError

# Presets ship inside the package (package data), so an installed harness finds them from any
# directory. Outputs never go here: they follow the working directory or --out (see output_dirs).
PRESETS = Path(__file__).resolve().parent / "presets"


# ------------------------------------------------------------------ config

@dataclass
class Sweep:
    name: str
    description: str
    seeds: list[int]
    student_seeds: int
    jobs: int
    threads: int
    base: dict
    tasks: list[str]
    models: list[str]
    successor_layers: list[int]
    arms: list[dict]
    budgets: list  # student optimizer steps per run; [None] = each arm's epochs (no budget axis)
    source: dict  # the config as loaded, for provenance
    tuning: "Tuning | None" = None  # a tuning stage before the evaluation seeds (None: every arm as declared)
    looks: list[int] | None = None  # a sequential design: seeds per arm at each look (harness.sequential)
    futility: float = 0.10  # its futility threshold on conditional power
    reuse: list[str] | None = None  # stores whose records with the same key are copied in before running


@dataclass(frozen=True)
class Tuning:
    """A tuning stage (README "Equal tuning budget"): every student arm tries every learning rate of
    `lrs` (the same trials for every arm) on `seeds`, which are disjoint from the evaluation seeds;
    each arm's learning rate is then the one with the best mean dev accuracy over those seeds
    (select_settings), and the evaluation seeds run each arm at it, and at the declared (shared)
    setting as the sensitivity row."""
    seeds: list[int]
    lrs: list[float]


def list_presets() -> dict[str, str]:
    out = {}
    for path in sorted(PRESETS.glob("*.toml")):
        try:
            out[path.stem] = tomllib.loads(path.read_text()).get("description", "")
        except tomllib.TOMLDecodeError:
            out[path.stem] = "(malformed TOML)"
    return out


def load_sweep(preset: str | None = None, config_path: Path | None = None) -> Sweep:
    """Read and validate a sweep config; every problem is one HarnessError line."""
    if config_path is None:
        preset = preset or "default"
        if preset not in list_presets():
            hint = f"; for a config file use --config {preset}" if preset.endswith(".toml") else ""
            raise HarnessError(f"unknown preset {preset!r}; presets: {', '.join(list_presets())}{hint}")
        config_path = PRESETS / f"{preset}.toml"
    config_path = Path(config_path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"sweep config {config_path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"sweep config {config_path} cannot be read: {str(exc).splitlines()[0]}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"sweep config {config_path} is not valid TOML: {exc}") from None
    return sweep_from_raw(raw, config_path)


def sweep_from_raw(raw: dict, config_path: Path) -> Sweep:
    """A parsed sweep config (a TOML file's, or the copy a store's sweep.json keeps), validated."""
    from harness.sweep_schema import check_sweep

    config_path = Path(config_path)
    check_sweep(raw, config_path)  # every key's type, range and allowed values (and arms'): one error line
    base = dict(raw.get("base", {}))
    looks = [int(x) for x in raw["looks"]] if "looks" in raw else None
    seeds = raw.get("seed_list") or list(range(int(raw.get("seeds", looks[-1] if looks else 5))))
    arms = raw["arms"]
    tuning = None
    if "tuning" in raw:
        tuning = Tuning(seeds=list(raw["tuning"]["seeds"]), lrs=[float(x) for x in raw["tuning"]["lrs"]])
        _check_disjoint(tuning, seeds, config_path.name)
    return Sweep(
        name=raw.get("name", config_path.stem), description=raw.get("description", ""), seeds=seeds,
        student_seeds=int(raw.get("student_seeds", 1)), jobs=int(raw.get("jobs", 1)),
        threads=int(raw.get("threads", 0)) or 0, base=base,
        tasks=list(raw.get("tasks", [base.get("task", RunConfig.task)])),
        models=list(raw.get("models", [base.get("model", RunConfig.model)])),
        successor_layers=list(raw.get("successor_layers", [base.get("layers", RunConfig.layers)])),
        arms=arms, source=raw, budgets=list(raw.get("budgets") or [_base_budget(base)]), tuning=tuning,
        looks=looks, futility=float(raw.get("futility", 0.10)), reuse=list(raw.get("reuse", [])) or None,
    )


def _base_budget(base: dict):
    """A sweep's one budget when it lists none: [base] budget, else the run default (567 student
    steps, the studied setting), unless [base] gives epochs: then its runs train that many epochs."""
    if "budget" in base:
        return base["budget"]
    return None if "epochs" in base else RunConfig.budget


def _check_disjoint(tuning: Tuning, seeds: list[int], where: str) -> None:
    """Selecting and evaluating on the same seeds inflates the winner: refuse any overlap."""
    shared = sorted(set(tuning.seeds) & set(seeds))
    if shared:
        raise HarnessError(f"sweep config {where}: [tuning] seeds {', '.join(map(str, shared))} are also "
                           f"evaluation seeds; tuning seeds must be disjoint from the evaluation seeds")


# ------------------------------------------------------------------ jobs

def _predecessor_layers(sweep: Sweep, model: str) -> int:
    if sweep.base.get("predecessor_layers"):
        return int(sweep.base["predecessor_layers"])
    from harness.models import load_pretrained

    return load_pretrained(model).num_layers


def expand(sweep: Sweep, seeds: list[int] | None = None, trials=None) -> list[RunConfig]:
    """Every (task, model, successor size, budget, arm, seed, student seed) as one RunConfig,
    deduplicated (the predecessor arm is shared by every successor size and every budget: it trains
    at its own fixed length). Predecessor runs come first, then budget by budget, smallest first, so
    a sweep stopped early holds whole budgets.

    seeds: the seeds to expand (default: the sweep's evaluation seeds). trials: a function
    (arm, task, model, successor_layers, budget) -> a list of run-field overrides, one run per item
    (default: the arm as declared); the tuning stage uses it (tuning_configs, evaluation_configs)."""
    jobs: dict[str, RunConfig] = {}
    from harness.runner import key_of

    seeds = sweep.seeds if seeds is None else seeds

    for task in sweep.tasks:
        for model in sweep.models:
            lp = _predecessor_layers(sweep, model)
            for ls in sweep.successor_layers:
                for budget, arm in ((b, a) for b in sweep.budgets for a in sweep.arms):
                    is_pred = arm.get("layers") == "predecessor"
                    changes = [{}] if is_pred or trials is None else trials(arm, task, model, ls, budget)
                    for seed, change in ((s, c) for s in seeds for c in changes):
                        # the predecessor arm has one run per seed; other arms may add student seeds
                        students = [None] if is_pred else \
                            [None] + [seed * 1000 + j for j in range(1, sweep.student_seeds)]
                        for student in students:
                            fields = {**sweep.base, **arm.get("set", {}), "task": task, "model": model,
                                      "strategy": arm["strategy"], "variant": arm.get("variant", ""),
                                      "options": arm.get("options", {}), "layers": lp if is_pred else ls,
                                      "predecessor_layers": lp, "seed": seed, "student_seed": student,
                                      "budget": None if is_pred else budget}
                            fields.update(change)
                            if sweep.threads:
                                fields["threads"] = sweep.threads
                            config = RunConfig.from_dict(fields)
                            jobs.setdefault(key_of(config), config)
    ordered = sorted(jobs.values(), key=lambda c: (not is_predecessor(c), c.budget or 0, c.seed))
    return ordered


def _arm_name(arm: dict, successor_layers: int) -> str:
    from harness.strategies import get_strategy
    from harness.tuning import arm_name

    return arm_name(arm, successor_layers, get_strategy(arm["strategy"]).default_variant)


def _declared_lr(sweep: Sweep, arm: dict) -> float:
    """The rate an arm trains at as declared: its resolved `lr` option (variant < options), else
    the run's lr ([base] < the arm's `set`)."""
    from harness.strategies import get_strategy

    option = get_strategy(arm["strategy"]).resolve(arm.get("variant", ""), arm.get("options", {}))["lr"]
    return float(option or {**sweep.base, **arm.get("set", {})}.get("lr", RunConfig.lr))


def shared_lrs(sweep: Sweep) -> dict[str, float]:
    """Each student arm's declared (shared) learning rate, by its runs-table name."""
    return {_arm_name(a, ls): _declared_lr(sweep, a)
            for a in sweep.arms if a.get("layers") != "predecessor" for ls in sweep.successor_layers}


def tuning_configs(sweep: Sweep) -> list[RunConfig]:
    """The tuning stage: every student arm at every grid rate on every tuning seed (the same trials
    for every arm), with the tuning seeds' predecessors."""
    from harness.tuning import lr_setting

    def trials(arm, task, model, ls, budget):
        return [lr_setting(arm, lr, _declared_lr(sweep, arm)) for lr in sweep.tuning.lrs]

    return expand(sweep, seeds=sweep.tuning.seeds, trials=trials)


def evaluation_configs(sweep: Sweep, selected) -> list[RunConfig]:
    """The evaluation seeds at the declared (shared) settings and at each arm's selected rate
    (selected: tuning.select_settings's table); a run at a selected rate equal to the declared one is
    the same run, listed once."""
    import pandas as pd

    from harness.tuning import lr_setting

    chosen = {(r.task, r.model, int(r.successor_layers), None if pd.isna(r.budget) else int(r.budget), r.arm): r.lr
              for r in selected.itertuples()}

    def trials(arm, task, model, ls, budget):
        lr = chosen.get((task, model, ls, budget, _arm_name(arm, ls)))
        return [] if lr is None else [lr_setting(arm, lr, _declared_lr(sweep, arm))]

    shared = expand(sweep)
    tuned = expand(sweep, trials=trials)
    from harness.runner import key_of

    return list({key_of(c): c for c in shared + tuned}.values())


def is_predecessor(config: RunConfig) -> bool:
    from harness.predecessor import is_predecessor_run

    return config.predecessor_layers is not None and is_predecessor_run(config, config.predecessor_layers)


def run_job(config_dict: dict, out_dir: str, sweep_name: str) -> dict:
    """Run one job in a worker; any failure becomes a 'failed' record, never a lost run."""
    import torch

    from harness.records import write_record
    from harness.runner import execute, key_of
    from harness.strategies import arm_label

    config = RunConfig.from_dict(config_dict)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    from harness.runner import stored_ok

    # a stored predecessor retrained for a missing cache (_cache_warmups): the store keeps its record
    keep = is_predecessor(config) and stored_ok(Path(out_dir), key_of(config))
    try:
        record = execute(config, out_dir=None if keep else Path(out_dir), log=lambda *_: None,
                         record_fields={"sweep": sweep_name})
    except Exception as exc:  # recorded, reported, and the sweep goes on
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        strategy, variant = arm_label(config)
        record = {"schema": 1, "run_id": key_of(config), "sweep": sweep_name, "status": "failed",
                  "error": f"{type(exc).__name__}: {message}", "strategy": strategy, "variant": variant,
                  "seed": config.seed, "student_seed": config.student, "config": config.to_dict(),
                  "predecessor_layers": config.predecessor_layers, "successor_layers": config.layers,
                  "epochs": [], "final": None, "wall_seconds": time.perf_counter() - started}
        write_record(record, Path(out_dir))
    final = record.get("final") or {}
    return {"run_id": record["run_id"], "status": record["status"], "error": record.get("error"),
            "label": f"{record['strategy']}{'/' + record['variant'] if record['variant'] else ''}",
            "seed": record["seed"], "test_accuracy": final.get("test_accuracy"),
            "wall_seconds": record["wall_seconds"]}


def _pending(configs: list[RunConfig], out_dir: Path) -> list[RunConfig]:
    from harness.records import record_path
    from harness.runner import key_of

    pending = []
    for c in configs:
        path = record_path(out_dir, key_of(c))
        if path.exists():
            try:
                if json.loads(path.read_text()).get("status") == "ok":
                    continue
            except (json.JSONDecodeError, OSError):
                pass
        pending.append(c)
    return pending


def _cache_warmups(pending: list[RunConfig], out_dir: Path) -> list[RunConfig]:
    """The stored predecessors that pending students need but the predecessor cache lacks (a fresh
    machine): each is retrained once, first, for the cache (its record stays), instead of by every
    student of its seed at once."""
    from harness import predecessor as pred_cache
    from harness.runner import key_of, stored_ok
    from harness.strategies import get_strategy

    keys = {key_of(c) for c in pending}
    out: dict[str, RunConfig] = {}
    for c in pending:
        if c.predecessor_layers is None or not get_strategy(c.strategy).needs_predecessor:
            continue
        p = pred_cache.predecessor_config(c, c.predecessor_layers)
        k = key_of(p)
        if k not in keys and k not in out and stored_ok(out_dir, k) and \
                not (pred_cache.cache_root() / k / "meta.json").exists():
            out[k] = p
    return list(out.values())


def _parallel_context(backend: str, scheduler: str | None):
    import contextlib

    import joblib

    if backend == "loky":
        return contextlib.nullcontext()
    if backend == "dask":
        try:
            from dask.distributed import Client
        except ImportError:
            raise HarnessError("backend 'dask' needs dask.distributed: pip install 'dask[distributed]'") from None
        client = Client(scheduler) if scheduler else Client(processes=True)
        stack = contextlib.ExitStack()
        stack.enter_context(client)
        stack.enter_context(joblib.parallel_config(backend="dask"))
        return stack
    if backend == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            raise HarnessError("backend 'ray' needs ray: pip install 'ray[default]'") from None
        ray.init(address=scheduler, ignore_reinit_error=True)
        register_ray()
        return joblib.parallel_config(backend="ray")
    raise HarnessError(f"unknown backend {backend!r}; choose loky, dask or ray")


def job_waves(pending: list[RunConfig]) -> list[list[RunConfig]]:
    """Wave 1: runs that need no predecessor, predecessors first; wave 2: the runs that reuse them.
    A predecessor is then trained exactly once, and no core idles while the last ones train. With
    budgets, wave 1 keeps only the smallest budget's runs besides the predecessors: the rest wait in
    wave 2, which keeps `pending`'s order (budget by budget), so a stopped sweep holds whole budgets
    of every arm rather than every budget of the baseline."""
    from harness.strategies import get_strategy

    smallest = min((c.budget for c in pending if c.budget is not None), default=None)
    first = [not get_strategy(c.strategy).needs_predecessor and c.budget in (None, smallest) for c in pending]
    return [[c for c, f in zip(pending, first) if f], [c for c, f in zip(pending, first) if not f]]


def execute_jobs(configs: list[RunConfig], out_dir: Path, sweep_name: str, jobs: int, backend: str = "loky",
                 scheduler: str | None = None, say=print) -> list[dict]:
    """Run the pending jobs in two waves so each seed's predecessor is trained exactly once."""
    from joblib import Parallel, delayed
    from joblib.parallel import get_active_backend
    from tqdm import tqdm

    pending = _pending(configs, out_dir)
    done = len(configs) - len(pending)
    say(f"{len(configs)} runs in the sweep, {done} already stored, {len(pending)} to run "
        f"({jobs} parallel job(s), backend {backend})")
    results: list[dict] = []
    if not pending:
        return results
    started = time.perf_counter()
    warm = _cache_warmups(pending, out_dir)
    if warm:
        say(f"{len(warm)} stored predecessor(s) missing from the predecessor cache: retrained first, for the "
            "cache only (their records stay)")
    total = len(configs) + len(warm)
    bar = tqdm(total=total, initial=done, unit="run", disable=not sys.stderr.isatty(), dynamic_ncols=True)
    waves = job_waves(warm + pending)
    with _parallel_context(backend, scheduler):
        # results as they finish where the backend can stream them (loky, dask); ray's joblib backend
        # cannot, so there every run of a wave reports when the wave ends (each record is still
        # written by its own job the moment it finishes)
        streams = getattr(get_active_backend()[0], "supports_return_generator", False)
        return_as = "generator_unordered" if streams else "list"
        for wave in waves:
            if not wave:
                continue
            parallel = Parallel(n_jobs=min(jobs, len(wave)), return_as=return_as, batch_size=1,
                                pre_dispatch="n_jobs")
            for summary in parallel(delayed(run_job)(c.to_dict(), str(out_dir), sweep_name) for c in wave):
                results.append(summary)
                bar.update(1)
                status = (f"test acc {summary['test_accuracy']:.4f}" if summary["status"] == "ok"
                          else f"FAILED: {summary['error']}")
                line = (f"[{done + len(results)}/{total}] {summary['label']} seed {summary['seed']}: "
                        f"{status} ({summary['wall_seconds']:.0f}s, elapsed {time.perf_counter() - started:.0f}s)")
                (tqdm.write if not bar.disable else say)(line)
    bar.close()
    return results


# ------------------------------------------------------------------ entry points

def run_sweep(preset=None, config_path=None, seeds=None, jobs=None, threads=None, out=None, backend="loky",
              scheduler=None, report_dir=None, limit_strategies=None, say=print) -> int:
    sweep = load_sweep(preset, config_path)
    if seeds is not None and sweep.looks:
        raise HarnessError(f"--seeds does not apply to {sweep.name}: a sequential design's seeds are its "
                           f"looks ({', '.join(map(str, sweep.looks))})")
    if seeds is not None:
        if seeds < 1:
            raise HarnessError(f"--seeds must be >= 1, got {seeds}")
        sweep.seeds = list(range(seeds))
    if threads is not None:
        sweep.threads = threads
    if jobs is not None:
        sweep.jobs = jobs
    if sweep.jobs < 1:
        raise HarnessError(f"jobs must be >= 1, got {sweep.jobs}")
    if limit_strategies:
        sweep.arms = [a for a in sweep.arms if a["strategy"] in limit_strategies or a.get("layers") == "predecessor"]
    if sweep.tuning:
        _check_disjoint(sweep.tuning, sweep.seeds, f"{sweep.name} (with --seeds)")
    out_dir, report_dir = output_dirs(sweep.name, out, report_dir)
    from harness.records import atomic_write_text
    from harness.runner import key_of

    def write_manifest(configs, session=None) -> dict:
        """sweep.json: written before any run (so `report` reads a store mid-sweep as this sweep's)
        and again at the end with this session's figures."""
        previous = _read_manifest(out_dir, say) or {}
        m = {"name": sweep.name, "description": sweep.description, "config": sweep.source,
             "seeds": sweep.seeds, "jobs": sweep.jobs, "threads": sweep.threads, "backend": backend,
             "run_ids": [key_of(c) for c in configs],
             "sessions": previous.get("sessions", []) + ([session] if session else [])}
        atomic_write_text(out_dir / "sweep.json", json.dumps(m, indent=1))
        return m

    started = time.perf_counter()
    if sweep.looks:
        configs, results = run_sequential(sweep, out_dir, backend, scheduler, say, write_manifest)
    elif sweep.tuning is None:
        configs = expand(sweep)
        write_manifest(configs)
        results = execute_jobs(configs, out_dir, sweep.name, sweep.jobs, backend, scheduler, say)
    else:  # tuning seeds (and the shared setting) first; the selected rates follow from dev accuracy
        configs = list({key_of(c): c for c in tuning_configs(sweep) + expand(sweep)}.values())
        selected, missing = _selected(sweep, out_dir)
        write_manifest(configs + ([] if missing else evaluation_configs(sweep, selected)))
        say(f"tuning stage: {len(sweep.tuning.lrs)} learning rates x every student arm on tuning seeds "
            f"{', '.join(map(str, sweep.tuning.seeds))}, and the evaluation seeds at the shared setting")
        results = execute_jobs(configs, out_dir, sweep.name, sweep.jobs, backend, scheduler, say)
        selected, missing = _selected(sweep, out_dir)
        if missing:
            say(f"tuning incomplete ({missing}); the evaluation stage waits: run the sweep again")
        else:
            for r in selected.itertuples():
                say(f"selected: {r.task} {r.arm} lr {r.lr:g} (mean dev {100 * r.dev_mean:.2f} over "
                    f"{len(sweep.tuning.seeds)} tuning seeds){'  AT THE GRID EDGE' if r.at_edge else ''}")
            stage2 = evaluation_configs(sweep, selected)
            say("evaluation stage: the evaluation seeds at each arm's selected rate")
            results += execute_jobs(stage2, out_dir, sweep.name, sweep.jobs, backend, scheduler, say)
            configs = list({key_of(c): c for c in configs + stage2}.values())
    elapsed = time.perf_counter() - started
    finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = write_manifest(configs, {"finished_at": finished, "runs_executed": len(results),
                                        "wall_seconds": elapsed})
    say(f"sweep {sweep.name}: {len(results)} run(s) executed in {elapsed:.0f}s")
    build_report(out_dir, report_dir=report_dir, say=say)
    unreadable: list[str] = []
    failed = [r for r in _sweep_records(out_dir, manifest["run_ids"], unreadable) if r.get("status") != "ok"]
    for r in failed:
        say(f"failed: {r['strategy']}{'/' + r['variant'] if r.get('variant') else ''} seed {r['seed']} "
            f"({r['run_id']}): {r.get('error')}")
    for name in unreadable:  # execute_jobs re-ran every unreadable record: this one is a store fault
        say(f"unreadable record: {name}")
    return 1 if failed or unreadable else 0


def _reuse(sweep: Sweep, configs: list[RunConfig], out_dir: Path, say=print) -> None:
    """Copy in the records of `sweep.reuse` stores (folders beside this one) with the same run keys."""
    from harness.records import import_records
    from harness.runner import key_of

    for name in sweep.reuse or []:
        source = Path(out_dir).parent / name
        if not (source / "runs").is_dir():
            say(f"reuse: no store {source}; its runs will be trained here")
            continue
        copied = import_records(source, out_dir, [key_of(c) for c in configs])
        if copied:
            say(f"reuse: {copied} record(s) with the same run key copied from {source}")


def sequential_groups(sweep: Sweep, runs) -> list[tuple[dict, "object"]]:
    """The sequential examination of a store's runs: per group (its key) the Replay (harness.sequential)."""
    from harness.analysis import group_specs
    from harness.sequential import Design, replay
    from harness.stats import normalize_runs

    if runs.empty:
        return []
    specs = group_specs(normalize_runs(runs))
    design = Design(tuple(sweep.looks), groups=len(specs), futility=sweep.futility)
    return [(dict(task=t, model=m, successor_layers=ls, predecessor_layers=lp, budget=b),
             replay(rows, design, sweep.seeds)) for t, m, ls, lp, b, rows in specs]


def _wave(sweep: Sweep, seeds: list[int], wanted) -> list[RunConfig]:
    """The runs of `seeds` for the arms wanted(task, model, successor_layers, budget, arm name) -> bool."""
    from dataclasses import replace

    configs = []
    for task in sweep.tasks:
        for model in sweep.models:
            lp = _predecessor_layers(sweep, model)
            for ls in sweep.successor_layers:
                for budget in sweep.budgets:
                    arms = [a for a in sweep.arms
                            if wanted(task, model, ls, budget, f"finetune-{lp}" if a.get("layers") == "predecessor"
                                      else _arm_name(a, ls))]
                    if arms:
                        part = replace(sweep, tasks=[task], models=[model], successor_layers=[ls],
                                       budgets=[budget], arms=arms)
                        configs += expand(part, seeds=seeds)
    return configs


def run_sequential(sweep: Sweep, out_dir: Path, backend: str, scheduler, say, write_manifest):
    """A sequential sweep (harness.sequential): look by look, the next seeds only for the arms of the
    primaries still open, each look examined from the store alone, so a stopped sweep resumes at the
    same look. Returns (every config run so far, this session's run summaries)."""
    import numpy as np

    from harness.arms import family
    from harness.records import read_records, runs_table
    from harness.runner import key_of
    from harness.strategies import get_strategy

    configs: list[RunConfig] = []
    results: list[dict] = []
    previous = 0
    for k, n in enumerate(sweep.looks):
        if k == 0:
            wave = expand(sweep, seeds=sweep.seeds[:n])
        else:
            ids = {key_of(c) for c in configs}
            runs = runs_table([r for r in read_records(out_dir) if r["run_id"] in ids])
            replays = sequential_groups(sweep, runs)
            if any(r.reached < k for _, r in replays):
                say(f"look {k} is not complete (a run failed); run the sweep again to retry it")
                break
            need = {}
            for key, r in replays:
                arms = set(r.next_arms)
                if any(get_strategy(family(a)).needs_predecessor for a in arms if family(a) != "other"):
                    arms.add(f"finetune-{int(key['predecessor_layers'])}")
                need[(key["task"], key["model"], int(key["successor_layers"]),
                      None if not np.isfinite(key["budget"]) else int(key["budget"]))] = arms
            open_arms = sum(len(a) for a in need.values())
            if not open_arms:
                say(f"every primary decided by look {k} ({previous} seeds): no further seeds")
                break

            def wanted(task, model, ls, budget, arm, need=need):
                return arm in need.get((task, model, ls, budget), need.get((task, model, ls, None), set()))
            wave = _wave(sweep, sweep.seeds[previous:n], wanted)
            say(f"look {k} ({previous} seeds) examined: " + "; ".join(
                f"{t} {', '.join(sorted(a)) or 'nothing'}" for (t, *_), a in need.items()) + f" continue to {n} seeds")
        configs = list({key_of(c): c for c in configs + wave}.values())
        write_manifest(configs)
        _reuse(sweep, wave, out_dir, say)
        say(f"look {k + 1}: seeds {previous}..{n - 1}")
        results += execute_jobs(wave, out_dir, sweep.name, sweep.jobs, backend, scheduler, say)
        previous = n
    return configs, results


def _selected(sweep: Sweep, out_dir: Path):
    """(select_settings table, what is missing as text or ""): the tuning stage read from the store."""
    from harness.records import read_records, runs_table
    from harness.runner import key_of
    from harness.tuning import select_settings

    wanted = {key_of(c) for c in tuning_configs(sweep)}
    runs = runs_table([r for r in read_records(out_dir) if r["run_id"] in wanted])
    if runs.empty:
        return None, "no tuning run stored"
    failed = int((runs["status"] != "ok").sum())
    selected = select_settings(runs, sweep.tuning.lrs, sweep.tuning.seeds)
    expected = len(sweep.tasks) * len(sweep.models) * len(sweep.successor_layers) * len(sweep.budgets) * \
        len([a for a in sweep.arms if a.get("layers") != "predecessor"])
    incomplete = int((~selected["complete"]).sum()) + expected - len(selected)
    missing = []
    if len(runs) < len(wanted):
        missing.append(f"{len(wanted) - len(runs)} tuning run(s) not stored")
    if failed:
        missing.append(f"{failed} tuning run(s) failed")
    if incomplete and not missing:
        missing.append(f"{incomplete} arm(s) without every trial")
    return selected, "; ".join(missing)


def _read_manifest(results_dir: Path, say=print) -> dict | None:
    """results_dir/sweep.json, or None when absent; a damaged one is named and treated as absent."""
    path = Path(results_dir) / "sweep.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(manifest, dict):
            return manifest
        problem = f"a JSON {type(manifest).__name__}, not an object"
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        problem = str(exc).splitlines()[0]
    say(f"warning: {path} is unreadable ({problem}); using every record in {Path(results_dir) / 'runs'}")
    return None


def _sweep_records(out_dir: Path, run_ids: list[str] | None, skipped: list[str] | None = None) -> list[dict]:
    """The records of a sweep (every record in the store when run_ids is None). Unreadable files of
    the sweep are appended to `skipped` as "<file> (<why>)"."""
    from harness.records import read_records

    unreadable: list[str] = []
    records = read_records(out_dir, unreadable)
    if run_ids is not None:
        wanted = set(run_ids)
        records = [r for r in records if r["run_id"] in wanted]
        unreadable = [u for u in unreadable if u.split(".json", 1)[0] in wanted]
    if skipped is not None:
        skipped.extend(unreadable)
    return records


def _meta(records: list[dict], manifest: dict) -> dict:
    ok = [r for r in records if r.get("status") == "ok"]
    first = ok[0] if ok else {}
    tasks = {r["task"]["name"]: {k: r["task"].get(k) for k in ("source", "split_sizes", "data_hash", "num_classes")}
             for r in ok}
    models = {r["model"]["name"]: r["model"] for r in ok}
    return {
        "sweep": manifest.get("name"), "description": manifest.get("description"),
        "produced_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": manifest.get("config"), "parallel": {k: manifest.get(k) for k in ("jobs", "threads", "backend")},
        "tasks": tasks, "models": models, "provenance": first.get("provenance", {}),
        "git_commits": sorted({r.get("provenance", {}).get("git_commit", "?") for r in ok}),
        # what ran: "auto" in the config is resolved per machine before a run's key is taken
        "precisions_run": sorted({r.get("config", {}).get("precision", "?") for r in ok}),
        "devices_run": sorted({r.get("provenance", {}).get("device", "?") for r in ok}),
        "runs": len(records), "failed": [{"run_id": r["run_id"], "strategy": r["strategy"], "seed": r["seed"],
                                          "error": r.get("error")} for r in records if r.get("status") != "ok"],
        "total_run_seconds": sum(r.get("wall_seconds") or 0 for r in records),
        "predecessor_mismatch": predecessor_mismatch(ok),
        "sweep_sessions": manifest.get("sessions", []),
    }


def predecessor_mismatch(records: list[dict]) -> list[dict]:
    """Student runs whose predecessor (by its run key) scored a different test accuracy than the
    store's record of that key: a retrain (a missing cache, another machine's numerics), not the
    predecessor the store describes. One dict per such run: run_id, arm, task, seed, the two accuracies."""
    stored = {r["run_id"]: (r.get("final") or {}).get("test_accuracy") for r in records}
    out = []
    for r in records:
        p = r.get("predecessor") or {}
        mine, theirs = p.get("test_accuracy"), stored.get(p.get("key"))
        if mine is not None and theirs is not None and abs(mine - theirs) > 1e-9:
            out.append({"run_id": r["run_id"], "arm": f"{r['strategy']}/{r.get('variant', '')}".rstrip("/"),
                        "task": r["task"]["name"], "seed": r["seed"], "predecessor_used": mine,
                        "predecessor_stored": theirs})
    return out


def output_dirs(name: str, out: Path | None = None, report_dir: Path | None = None) -> tuple[Path, Path]:
    """(results directory, report directory) of a sweep: results/<name> and report/ under the
    working directory, or with `out` everything under it (the report in out/report) unless
    `report_dir` says otherwise. Never the package's own folder: an installed harness is read-only."""
    results_dir = Path(out) if out is not None else Path.cwd() / "results" / name
    return results_dir, Path(report_dir) if report_dir else default_report_dir(results_dir, name)


def default_report_dir(results_dir: Path, name: str) -> Path:
    """The report directory of a store when none is given (`run-all` and `report` alike): report/
    under the working directory for the default store results/<name>, else results_dir/report."""
    results_dir = Path(results_dir)
    if results_dir.resolve() == (Path.cwd() / "results" / name).resolve():
        return Path.cwd() / "report"
    return results_dir / "report"


def build_report(results_dir: Path, report_dir: Path | None = None, say=print) -> Path:
    """Tables, plots and the markdown report from the store alone (no training); the report goes to
    report_dir (default: default_report_dir)."""
    from harness.records import curves_table, epochs_table, read_label_counts, replacements_table, runs_table
    from harness.report import write_outputs

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HarnessError(f"results directory {results_dir} not found")
    manifest = _read_manifest(results_dir, say) or {}
    name = str(manifest.get("name") or results_dir.name)
    run_ids = manifest.get("run_ids") if isinstance(manifest.get("run_ids"), list) else None
    skipped: list[str] = []
    records = _sweep_records(results_dir, run_ids, skipped)
    if skipped:
        say(f"records skipped: {len(skipped)} unreadable record(s) in {results_dir / 'runs'} left out of "
            f"the report: {'; '.join(skipped)}")
    if not records:
        only_csv = not (results_dir / "runs").is_dir() and (results_dir / "runs.csv").is_file()
        raise HarnessError(f"no readable run records under {results_dir / 'runs'}"
                           f"{f' ({len(skipped)} unreadable)' if skipped else ''}; "
                           + (f"this directory holds only its runs.csv: `python -m harness analyze "
                              f"{results_dir / 'runs.csv'}` analyses it, `run-all` rebuilds the store"
                              if only_csv else "run `python -m harness run-all` first"))
    report_dir = Path(report_dir) if report_dir else default_report_dir(results_dir, name)
    runs = runs_table(records, read_label_counts(results_dir))
    tuning = _tuning_view(runs, manifest.get("config"), name)
    if tuning is not None:
        runs = tuning.pop("runs")
        runs.to_csv(results_dir / "runs.csv", index=False)
        say(f"tuning: {int((runs['stage'] == 'tune').sum())} tuning run(s); the analysis uses the "
            f"{int(runs['selected'].sum())} evaluation run(s) at each arm's selected rate")
        tuning["shared_runs"] = runs[runs["shared"]].reset_index(drop=True)
        runs = runs[runs["selected"]].reset_index(drop=True)
    else:
        runs.to_csv(results_dir / "runs.csv", index=False)
    seq_view = _sequential_view(runs, manifest, name, records)
    if seq_view is not None:
        runs = seq_view.pop("runs_table")
        runs.to_csv(results_dir / "runs.csv", index=False)
    meta = {**_meta(records, {**manifest, "name": name}), **({"skipped_records": skipped} if skipped else {})}
    curves = curves_table(records)
    if not curves.empty:
        curves["dev_accuracy"] = 100 * curves["dev_accuracy"]  # percent, as the runs table's accuracies
    out = write_outputs(runs, epochs_table(records), replacements_table(records), meta,
                        results_dir=results_dir, report_path=report_dir / f"{name}.md", curves=curves,
                        tuning=tuning, sequential_view=seq_view)
    say(f"report: {out['report']}  (tables: {results_dir / 'tables'}, plots: {results_dir / 'plots'})")
    return Path(out["report"])


def _sequential_view(runs, manifest: dict, name: str, records: list[dict]) -> dict | None:
    """For a store of a sequential sweep: the decisions of every group replayed from the store
    (harness.sequential), the runs table with a `look` column (the look each run's seed entered
    at), and the figures the report states; None for any other store."""
    config = manifest.get("config")
    if not isinstance(config, dict) or "looks" not in config:
        return None
    import numpy as np

    from harness.claims import primary_family_size
    from harness.sequential import OPEN, decisions_frame

    sweep = sweep_from_raw(config, Path(f"{name} (sweep.json)"))
    replays = sequential_groups(sweep, runs)
    position = {s: i for i, s in enumerate(sweep.seeds)}
    runs = runs.copy()
    runs["look"] = [next((k + 1 for k, n in enumerate(sweep.looks) if position.get(s, np.inf) < n), np.nan)
                    for s in runs["seed"]]
    table = decisions_frame(replays)
    arms = runs.assign(arm=runs["strategy"] + "|" + runs["variant"].fillna("") + "|"
                       + runs["successor_layers"].astype(str)).groupby(["task", "model"])["arm"].nunique()
    own = [r for r in records if r.get("sweep") == name]
    return {"runs_table": runs, "decisions": table, "looks": sweep.looks, "futility": sweep.futility,
            "groups": len(replays), "family": primary_family_size(), "margin": 1.0,
            "open": int((table["verdict"] == OPEN).sum()), "runs": len(runs), "fixed_runs": int(arms.sum()) * sweep.looks[-1],
            "wall_seconds": sum(r.get("wall_seconds") or 0 for r in own), "reused": len(records) - len(own)}


def _tuning_view(runs, config: dict | None, name: str) -> dict | None:
    """For a store of a sweep with a tuning stage: runs (the runs table with stage / selected /
    shared columns), selected (select_settings), trials (trials_table), expected
    (expected_best_table), lrs and seeds; None for any other store."""
    if not isinstance(config, dict) or "tuning" not in config:
        return None
    from harness.tuning import annotate, expected_best_table, select_settings, trials_table

    sweep = sweep_from_raw(config, Path(f"{name} (sweep.json)"))
    lrs, seeds = sweep.tuning.lrs, sweep.tuning.seeds
    selected = select_settings(runs, lrs, seeds)
    trials = trials_table(runs, lrs, seeds)
    annotated = annotate(runs, selected, seeds, shared_lrs(sweep))
    students = annotated["selected"] & ~(annotated["arm"].str.startswith("finetune-")
                                         & (annotated["successor_layers"] == annotated["predecessor_layers"]))
    n_arms = len(sweep.tasks) * len(sweep.models) * len(sweep.successor_layers) * len(sweep.budgets) * \
        len([a for a in sweep.arms if a.get("layers") != "predecessor"])
    return {"runs": annotated, "selected": selected, "trials": trials, "expected": expected_best_table(trials),
            "lrs": lrs, "seeds": seeds, "complete": bool(len(selected) == n_arms and selected["complete"].all()),
            "evaluated": int((students & (annotated["status"] == "ok")).sum()),
            "to_evaluate": n_arms * len(sweep.seeds)}


def analyze_csv(csv_path: Path, out: Path | None = None, report_dir: Path | None = None, say=print) -> Path:
    """The same statistics, plots and report from a user's own tidy runs CSV (checked row by row
    first: see harness.user_runs)."""
    from harness.report import write_outputs
    from harness.user_runs import read_runs_csv

    csv_path = Path(csv_path)
    runs = read_runs_csv(csv_path)
    out = Path(out) if out else csv_path.parent / f"{csv_path.stem}-analysis"
    report_dir = Path(report_dir) if report_dir else out
    meta = {"source": str(csv_path.resolve()), "rows": len(runs),
            "produced_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    result = write_outputs(runs, None, None, meta, results_dir=out, report_path=report_dir / f"{csv_path.stem}.md")
    _print_summary(result["analysis"], say)
    say(f"report: {result['report']}  (tables: {out / 'tables'}, plots: {out / 'plots'})")
    return Path(result["report"])


def _print_summary(analysis, say) -> None:
    for group in analysis.groups:
        say(f"== {group.label}")
        v = group.variance
        for _, row in v.iterrows():
            failed = (f"  degenerate {int(row['n_degenerate'])}/{int(row['n_degenerate_known'])}"
                      if row["n_degenerate_known"] else "")
            say(f"  {row['arm']:<28} n={int(row['n']):>3}  mean {row['mean']:.3f}  "
                f"95% CI [{row['ci_low']:.3f}, {row['ci_high']:.3f}]  std {row['std']:.3f}{failed}")
        cols = ("primary_p", "welch_p", "mwu_p", "paired_p", "wilcoxon_p", "bf_p", "fisher_p")  # raw p
        for _, row in group.pairwise.iterrows():
            say(f"  {row['a']} vs {row['b']}: diff {row['diff']:+.3f} [{row['diff_ci_low']:.3f}, "
                f"{row['diff_ci_high']:.3f}]  " + "  ".join(f"{c} {row[c]:.4g}" for c in cols))
        for c in group.claims:
            say(f"  claim {c.claim} {c.comparison}: {c.verdict} (adjusted p {c.p_adj:.4g}, {c.decided_by})")

