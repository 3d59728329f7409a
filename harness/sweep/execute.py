"""`run-all`: run a sweep's runs resumably and in parallel, then build its report.

The store is the single source of truth: a finished run is a record file named by the hash of
everything that determines it (harness/run/identity.py), so re-running skips it, a changed setting
gets a new key, and a killed sweep loses at most the runs that were in flight. A sweep with a
tuning stage runs it first; a sequential sweep runs look by look (docs/method.md)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from harness.analysis.sequential import examine_store
from harness.data.content import stale_data_warnings
from harness.errors import HarnessError
from harness.report.pipeline import _read_manifest, _sweep_records, build_report
from harness.sweep.plan import (Sweep, _arm_name, _check_disjoint, _predecessor_layers, evaluation_configs, expand,
                                is_predecessor, load_sweep, output_dirs, tuning_configs)
from harness.sweep.estimate import duration, eta
from harness.sweep.preflight import check_output_dirs, check_tasks, only_filter
from harness.training.config import RunConfig


def run_job(config_dict: dict, out_dir: str, sweep_name: str) -> dict:
    """Run one job in a worker; any failure becomes a 'failed' record, never a lost run."""
    import torch

    from harness.run.identity import key_of
    from harness.run.runner import execute
    from harness.store.records import write_record
    from harness.strategies import arm_label

    config = RunConfig.from_dict(config_dict)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    from harness.run.runner import stored_ok

    # a stored predecessor retrained for a missing cache (_cache_warmups): the store keeps its record
    keep = is_predecessor(config) and stored_ok(Path(out_dir), key_of(config))
    try:
        strategy, variant = arm_label(config)
        lr = float(config.option_dict.get("lr") or config.lr)  # the student's rate (a tuning trial's)
        who = (f"{strategy}{'/' + variant if variant else ''} {config.task} seed {config.seed} lr {lr:g}"
               f"{f' budget {config.budget}' if config.budget else ''}")
        record = execute(config, out_dir=None if keep else Path(out_dir), log=lambda *_: None,
                         record_fields={"sweep": sweep_name},
                         heartbeat=lambda line: print(f"  . {who}:{line[1:]}", flush=True))
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
    from harness.run.identity import key_of
    from harness.store.records import record_path

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
    from harness.run import identity
    from harness.run import predecessor as pred_cache
    from harness.run.identity import key_of
    from harness.run.runner import stored_ok
    from harness.strategies import get_strategy

    keys = {key_of(c) for c in pending}
    out: dict[str, RunConfig] = {}
    for c in pending:
        if c.predecessor_layers is None or not get_strategy(c.strategy).needs_predecessor:
            continue
        p = identity.predecessor_config(c, c.predecessor_layers)
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
                 scheduler: str | None = None, say=print, trains=None) -> list[dict]:
    """Run the pending jobs in two waves so each seed's predecessor is trained exactly once.
    trains: `--only`'s predicate (preflight.only_filter); the runs it leaves out stay pending for a
    later session. Each finished run prints one line with done/total and an ETA (the mean wall time
    of this session's runs so far x the runs left / parallel jobs), on a terminal or not."""
    from joblib import Parallel, delayed
    from joblib.parallel import get_active_backend
    from tqdm import tqdm

    pending = _pending(configs, out_dir)
    done = len(configs) - len(pending)
    later = []
    if trains is not None:
        later = [c for c in pending if not trains(c)]
        pending = [c for c in pending if trains(c)]
    say(f"{len(configs)} runs in the sweep, {done} already stored, {len(pending)} to run "
        f"({jobs} parallel job(s), backend {backend})"
        + (f"; {len(later)} left untrained by --only" if trains is not None else ""))
    results: list[dict] = []
    if not pending:
        return results
    started = time.perf_counter()
    warm = _cache_warmups(pending, out_dir)
    if warm:
        say(f"{len(warm)} stored predecessor(s) missing from the predecessor cache: retrained first, for the "
            "cache only (their records stay)")
    total = done + len(pending) + len(warm)
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
                left = total - done - len(results)
                line = (f"[{done + len(results)}/{total}] {summary['label']} seed {summary['seed']}: "
                        f"{status} ({summary['wall_seconds']:.0f}s, elapsed "
                        f"{duration(time.perf_counter() - started)}, ETA "
                        f"{eta([r['wall_seconds'] for r in results], left, jobs)})")
                (tqdm.write if not bar.disable else say)(line)
    bar.close()
    return results


def _plan_lines(sweep: Sweep, configs: list[RunConfig], out_dir: Path, task_info: dict, trains,
                stage_note: str = "") -> list[str]:
    """`--dry-run`: what the sweep would run (runs, arms, seeds, stored, to run) and how long it would take."""
    from harness.arms import order
    from harness.store.records import read_records
    from harness.sweep.estimate import REFERENCE_SOURCE, duration, estimate_seconds, seconds_per_step
    from harness.run.identity import key_of
    from harness.sweep.preflight import DATA_KEYS, arm_of

    pending = _pending(configs, out_dir)
    todo = [c for c in pending if trains is None or trains(c)]
    reusable = _reusable(sweep, todo, out_dir)
    todo = [c for c in todo if key_of(c) not in reusable]
    arms = order({arm_of(c) for c in configs})
    shape = (f"{len(sweep.tasks)} task(s) x {len(sweep.models)} model(s) x {len(sweep.successor_layers)} successor "
             f"size(s) x {len(sweep.budgets)} budget(s) x {len(arms)} arms x {len(sweep.seeds)} seeds")
    lines = [f"plan of sweep {sweep.name}: {len(configs)} runs ({shape}){stage_note}",
             f"tasks: {', '.join(sweep.tasks)}; models: {', '.join(sweep.models)}; successor layers: "
             f"{', '.join(map(str, sweep.successor_layers))}; budgets: "
             f"{', '.join('epochs' if b is None else str(b) for b in sweep.budgets)}",
             f"arms: {', '.join(arms)}",
             f"seeds: {', '.join(map(str, sweep.seeds))}",
             f"store {out_dir}: {len(configs) - len(pending)} already stored, "
             + (f"{len(reusable)} to copy from {', '.join(sweep.reuse)} (reuse: same run key, this CPU kind), "
                if sweep.reuse else "")
             + f"{len(todo)} to run"
             + (f" ({len(pending) - len(todo) - len(reusable)} left untrained by --only)" if trains is not None else "")]
    if todo:
        train_sizes = []
        for c in todo:
            settings = tuple((k, getattr(c, k)) for k in DATA_KEYS)
            info = task_info.get((c.task, settings)) or next(iter(task_info.values()))
            train_sizes.append(info["sizes"]["train"])
        measured = seconds_per_step(read_records(out_dir)) if (out_dir / "runs").is_dir() else {}
        total, own = estimate_seconds(todo, train_sizes, measured)
        source = (f"this store's own finished runs for {own} of them, else " if own else "") + REFERENCE_SOURCE
        lines.append(f"estimated time: {duration(total / sweep.jobs)} with {sweep.jobs} parallel job(s) "
                     f"({duration(total)} of runs in all), from {source}, scaled by each run's optimizer steps; "
                     "another machine, model or text length takes longer or shorter")
    lines.append("nothing trained (--dry-run)")
    return lines


def run_sweep(preset=None, config_path=None, seeds=None, jobs=None, threads=None, out=None, backend="loky",
              scheduler=None, report_dir=None, only=None, dry_run=False, allow_small_test=False,
              say=print) -> int:
    """`run-all`: load and check the sweep, its tasks and its output folders (all before any work),
    plan its runs, then train the pending ones (`only`: just these arms or families and their
    predecessors) and build the report over the whole sweep. `dry_run`: print the plan, train nothing."""
    from harness.store.records import read_records

    sweep = load_sweep(preset, config_path)
    config_name = Path(config_path).name if config_path else f"{sweep.name} (preset)"
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
    if allow_small_test:
        sweep.base["allow_small_test"] = True
    if sweep.tuning:
        _check_disjoint(sweep.tuning, sweep.seeds, f"{sweep.name} (with --seeds)")
    out_dir, report_dir = output_dirs(sweep.name, out, report_dir)
    check_output_dirs(out_dir, report_dir)
    task_info = check_tasks(sweep, config_name)
    everything = expand(sweep)  # every arm at every seed: what --only may name
    trains = only_filter(everything, only, sweep.name)
    from harness.run.identity import key_of
    from harness.store.records import atomic_write_text

    if (out_dir / "runs").is_dir():
        for line in stale_data_warnings(read_records(out_dir)):
            say(line)
    if dry_run:
        if sweep.looks:
            configs, note = expand(sweep, seeds=sweep.seeds[:sweep.looks[0]]), \
                f"; the first look's runs (at most {len(everything)} if every look continues)"
        elif sweep.tuning is not None:
            configs = list({key_of(c): c for c in tuning_configs(sweep) + everything}.values())
            note = "; the tuning stage and the shared setting (the selected rates' runs follow it)"
        else:
            configs, note = everything, ""
        for line in _plan_lines(sweep, configs, out_dir, task_info, trains, note):
            say(line)
        return 0

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
        configs, results = run_sequential(sweep, out_dir, backend, scheduler, say, write_manifest, trains)
    elif sweep.tuning is None:
        configs = everything
        write_manifest(configs)
        _reuse(sweep, configs, out_dir, say)
        results = execute_jobs(configs, out_dir, sweep.name, sweep.jobs, backend, scheduler, say, trains)
    else:  # tuning seeds (and the shared setting) first; the selected rates follow from dev accuracy
        configs = list({key_of(c): c for c in tuning_configs(sweep) + everything}.values())
        selected, missing = _selected(sweep, out_dir)
        write_manifest(configs + ([] if missing else evaluation_configs(sweep, selected)))
        _reuse(sweep, configs, out_dir, say)
        say(f"tuning stage: {len(sweep.tuning.lrs)} learning rates x every student arm on tuning seeds "
            f"{', '.join(map(str, sweep.tuning.seeds))}, and the evaluation seeds at the shared setting")
        results = execute_jobs(configs, out_dir, sweep.name, sweep.jobs, backend, scheduler, say, trains)
        selected, missing = _selected(sweep, out_dir)
        if missing:
            say(f"tuning incomplete ({missing}); the evaluation stage waits: run the sweep again")
        else:
            for r in selected.itertuples():
                say(f"selected: {r.task} {r.arm} lr {r.lr:g} (mean dev {100 * r.dev_mean:.2f} over "
                    f"{len(sweep.tuning.seeds)} tuning seeds){'  AT THE GRID EDGE' if r.at_edge else ''}")
            stage2 = evaluation_configs(sweep, selected)
            say("evaluation stage: the evaluation seeds at each arm's selected rate")
            _reuse(sweep, stage2, out_dir, say)
            results += execute_jobs(stage2, out_dir, sweep.name, sweep.jobs, backend, scheduler, say, trains)
            configs = list({key_of(c): c for c in configs + stage2}.values())
    elapsed = time.perf_counter() - started
    finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = write_manifest(configs, {"finished_at": finished, "runs_executed": len(results),
                                        "wall_seconds": elapsed})
    say(f"sweep {sweep.name}: {len(results)} run(s) executed in {elapsed:.0f}s")
    from harness.run.runner import complete_splits

    complete_splits(configs, out_dir, say)
    build_report(out_dir, report_dir=report_dir, say=say)
    unreadable: list[str] = []
    failed = [r for r in _sweep_records(out_dir, manifest["run_ids"], unreadable) if r.get("status") != "ok"]
    for r in failed:
        say(f"failed: {r['strategy']}{'/' + r['variant'] if r.get('variant') else ''} seed {r['seed']} "
            f"({r['run_id']}): {r.get('error')}")
    for name in unreadable:  # execute_jobs re-ran every unreadable record: this one is a store fault
        say(f"unreadable record: {name}")
    return 1 if failed or unreadable else 0


def here_cpu_kind() -> tuple[str, str | None]:
    """This machine's CPU kind as a record's provenance states it (harness.store.records.cpu_kind)."""
    from harness.run.runner import cpu_name, matmul_isa

    return cpu_name(), matmul_isa()


def _reusable(sweep: Sweep, configs: list[RunConfig], out_dir: Path) -> set[str]:
    """The run keys of `configs` that `_reuse` would copy in (same key, this CPU kind unless reuse_any_cpu)."""
    from harness.run.identity import key_of
    from harness.store.records import import_records

    here = None if sweep.reuse_any_cpu else here_cpu_kind()
    keys = set()
    for name in sweep.reuse or []:
        source = Path(out_dir).parent / name
        if (source / "runs").is_dir():
            keys |= set(import_records(source, out_dir, [key_of(c) for c in configs], here, dry_run=True).run_ids)
    return keys


def _reuse(sweep: Sweep, configs: list[RunConfig], out_dir: Path, say=print) -> None:
    """Copy in the records of `sweep.reuse` stores (folders beside this one) with the same run keys,
    made on this machine's CPU kind unless the sweep says `reuse_any_cpu = true` (one study, one CPU
    kind: bf16 numbers differ between kinds); says how many it copied and skipped, and why."""
    from harness.run.identity import key_of
    from harness.store.records import import_records

    here = None if sweep.reuse_any_cpu else here_cpu_kind()
    for name in sweep.reuse or []:
        source = Path(out_dir).parent / name
        if not (source / "runs").is_dir():
            say(f"reuse: no store {source}; its runs will be trained here")
            continue
        done = import_records(source, out_dir, [key_of(c) for c in configs], here)
        if done.copied:
            say(f"reuse: {done.copied} record(s) with the same run key copied from {source}"
                + ("" if here is None else f" (made on this CPU kind, {here[0]} ({here[1]}))"))
        if done.skipped:
            why = "; ".join(f"{n} {reason}" for reason, n in sorted(done.skipped.items()))
            say(f"reuse: {sum(done.skipped.values())} record(s) with the same run key in {source} not copied, "
                f"made on another CPU kind than this machine's {here[0]} ({here[1]}): {why}; they will be "
                "trained here (reuse_any_cpu = true copies them)")


def _wave(sweep: Sweep, seeds: list[int], wanted) -> list[RunConfig]:
    """The runs of `seeds` for the arms wanted(task, model, successor_layers, budget, arm name) -> bool,
    each once: the predecessor is wanted by every budget whose primaries continue, and is one run."""
    from dataclasses import replace

    from harness.run.identity import key_of

    configs = []
    for task in sweep.tasks:
        for model in sweep.models:
            lp = _predecessor_layers(sweep, model)
            for ls in sweep.successor_layers:
                for budget in sweep.budgets:
                    arms = [a for a in sweep.arms if sweep.runs(a, task, budget)
                            and wanted(task, model, ls, budget, f"finetune-{lp}" if a.get("layers") == "predecessor"
                                      else _arm_name(a, ls))]
                    if arms:
                        part = replace(sweep, tasks=[task], models=[model], successor_layers=[ls],
                                       budgets=[budget], arms=arms)
                        configs += expand(part, seeds=seeds)
    return list({key_of(c): c for c in configs}.values())


def incomplete(replays, k: int) -> bool:
    """Look k (1-based) is not complete in some group that still has an open primary: a run of it
    failed or is missing. A group whose primaries were all decided earlier stopped there on purpose."""
    from harness.analysis.sequential import OPEN

    return any(r.reached < k and any(d.verdict == OPEN for d in r.decisions) for _, r in replays)


def continuing(replays) -> dict[tuple, set[str]]:
    """The arms the next look runs: (task, model, successor_layers, budget or None) -> arm names, each
    continuing arm at its primary's budget (Replay.next_at; else its group's), with the predecessor
    where a continuing arm needs one."""
    import numpy as np

    from harness.arms import family
    from harness.strategies import get_strategy

    need: dict[tuple, set[str]] = {}
    for key, r in replays:
        for arm, at in r.next_at:
            budget = at if np.isfinite(at) else key["budget"]
            arms = need.setdefault((key["task"], key["model"], int(key["successor_layers"]),
                                    None if not np.isfinite(budget) else int(budget)), set())
            arms.add(arm)
            if family(arm) != "other" and get_strategy(family(arm)).needs_predecessor:
                arms.add(f"finetune-{int(key['predecessor_layers'])}")
    return need


def run_sequential(sweep: Sweep, out_dir: Path, backend: str, scheduler, say, write_manifest, trains=None):
    """A sequential sweep (harness.analysis.sequential): look by look, the next seeds only for the arms of the
    primaries still open, each look examined from the store alone, so a stopped sweep resumes at the
    same look. Returns (every config run so far, this session's run summaries)."""
    from harness.run.identity import key_of
    from harness.store.examples import examples_table
    from harness.store.records import read_label_counts, read_records, runs_table

    configs: list[RunConfig] = []
    results: list[dict] = []
    previous = 0
    for k, n in enumerate(sweep.looks):
        if k == 0:
            wave = expand(sweep, seeds=sweep.seeds[:n])
        else:
            ids = {key_of(c) for c in configs}
            records = [r for r in read_records(out_dir) if r["run_id"] in ids]
            runs = runs_table(records, read_label_counts(out_dir))
            # the decisions the report replays: task-level where the records hold per-example predictions
            examples = examples_table(records, out_dir)
            replays = examine_store(runs, sweep.looks, sweep.seeds, sweep.futility,
                                    examples=None if examples.empty else examples, primaries=sweep.primaries)
            if incomplete(replays, k):
                say(f"look {k} is not complete (--only left some of its runs untrained); run the sweep "
                    "without --only to examine it" if trains is not None else
                    f"look {k} is not complete (a run failed); run the sweep again to retry it")
                break
            need = continuing(replays)
            open_arms = sum(len(a) for a in need.values())
            if not open_arms:
                say(f"every primary decided by look {k} ({previous} seeds): no further seeds")
                break

            def wanted(task, model, ls, budget, arm, need=need):
                return arm in need.get((task, model, ls, budget), need.get((task, model, ls, None), set()))
            wave = _wave(sweep, sweep.seeds[previous:n], wanted)
            say(f"look {k} ({previous} seeds) examined: " + "; ".join(
                f"{t}{'' if b is None or len(sweep.budgets) < 2 else f' at {b} steps'} {', '.join(sorted(a))}"
                for (t, _, _, b), a in need.items()) + f" continue to {n} seeds")
        configs = list({key_of(c): c for c in configs + wave}.values())
        write_manifest(configs)
        _reuse(sweep, wave, out_dir, say)
        say(f"look {k + 1}: seeds {previous}..{n - 1}")
        results += execute_jobs(wave, out_dir, sweep.name, sweep.jobs, backend, scheduler, say, trains)
        previous = n
    return configs, results


def _selected(sweep: Sweep, out_dir: Path):
    """(select_settings table, what is missing as text or ""): the tuning stage read from the store."""
    from harness.analysis.tuning import select_settings
    from harness.run.identity import key_of
    from harness.store.records import read_records, runs_table

    wanted = {key_of(c) for c in tuning_configs(sweep)}
    runs = runs_table([r for r in read_records(out_dir) if r["run_id"] in wanted])
    if runs.empty:
        return None, "no tuning run stored"
    failed = int((runs["status"] != "ok").sum())
    from harness.sweep.plan import shared_lrs

    selected = select_settings(runs, sweep.tuning.lrs, sweep.tuning.seeds, declared=shared_lrs(sweep))
    expected = len(sweep.models) * len(sweep.successor_layers) * \
        sum(len(sweep.arm_budgets(a)) * len(sweep.arm_tasks(a)) for a in sweep.arms if a.get("layers") != "predecessor")
    incomplete = int((~selected["complete"]).sum()) + expected - len(selected)
    missing = []
    if len(runs) < len(wanted):
        missing.append(f"{len(wanted) - len(runs)} tuning run(s) not stored")
    if failed:
        missing.append(f"{failed} tuning run(s) failed")
    if incomplete and not missing:
        missing.append(f"{incomplete} arm(s) without every trial")
    return selected, "; ".join(missing)
