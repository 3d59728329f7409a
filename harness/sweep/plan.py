"""`run-all`: expand a sweep config into jobs, run them (resumably, in parallel), then report.

Data flows one way: config -> jobs -> run records (results/<sweep>/runs/) -> tidy tables ->
statistics -> plots -> report. The store is the single source of truth: a finished run is a
record file named by the hash of everything that determines it, so re-running skips it, a changed
setting gets a new key, and a killed sweep loses at most the runs that were in flight.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.training.config import RunConfig

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
    looks: list[int] | None = None  # a sequential design: seeds per arm at each look (harness.analysis.sequential)
    futility: float = 0.10  # its futility threshold on conditional power
    reuse: list[str] | None = None  # stores whose records with the same key are copied in before running
    reuse_any_cpu: bool = False  # reuse copies records made on any CPU kind (default: this machine's only)
    primaries: dict[str, int] | None = None  # claim id -> the budget its primary is tested at (None: every budget)

    def arm_budgets(self, arm: dict) -> list:
        """The budgets an arm runs at: its own `budgets` (a subset of the sweep's), else every one."""
        return [b for b in self.budgets if b in arm["budgets"]] if "budgets" in arm else list(self.budgets)

    def arm_tasks(self, arm: dict) -> list[str]:
        """The tasks an arm runs on: its own `tasks` (a subset of the sweep's), else every one. Two
        declarations of one arm on different tasks give it a rate per task (each selected on that task)."""
        return [t for t in self.tasks if t in arm["tasks"]] if "tasks" in arm else list(self.tasks)

    def runs(self, arm: dict, task: str, budget) -> bool:
        """Whether `arm` has runs on `task` at `budget` (the predecessor arm: on every task, at every budget)."""
        return budget in self.arm_budgets(arm) and task in self.arm_tasks(arm)


@dataclass(frozen=True)
class Tuning:
    """A tuning stage (docs/configuration.md, "Equal tuning budget"): every student arm tries every learning rate of
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


def copy_preset(name: str, dest: Path | None = None, force: bool = False) -> Path:
    """Copy shipped preset `name` to `dest` (default ./NAME.toml; a folder: DEST/NAME.toml) to edit as
    one's own; its sweep name becomes the file's name (when that is a valid sweep name), so its results
    go to results/<file name>, not into the preset's store. Refuses to overwrite unless `force`."""
    if name not in list_presets():
        raise HarnessError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    dest = Path(dest) if dest is not None else Path.cwd() / f"{name}.toml"
    if dest.is_dir():
        dest = dest / f"{name}.toml"
    if dest.exists() and not force:
        raise HarnessError(f"{dest} exists; choose another file name or pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise HarnessError(f"cannot write {dest}: {dest.parent} is not a folder")
    text = (PRESETS / f"{name}.toml").read_text(encoding="utf-8")
    if dest.stem != name and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dest.stem):
        head, table, rest = text.partition("\n[")  # the top-level keys come before the first table
        head = re.sub(r'^name\s*=\s*"[^"]*"', f'name = "{dest.stem}"', head, count=1, flags=re.M)
        text = head + table + rest
    try:
        dest.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return dest


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
    from harness.sweep.schema import check_sweep

    config_path = Path(config_path)
    check_sweep(raw, config_path)  # every key's type, range and allowed values (and arms'): one error line
    base = dict(raw.get("base", {}))
    if raw.get("allow_small_test"):  # top level: every run of the sweep ([base] may also say it)
        base["allow_small_test"] = True
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
        reuse_any_cpu=bool(raw.get("reuse_any_cpu", False)),
        primaries={str(k): int(v) for k, v in raw["primaries"].items()} if "primaries" in raw else None,
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
    from harness.encoders.models import load_pretrained

    return load_pretrained(model).num_layers


def expand(sweep: Sweep, seeds: list[int] | None = None, trials=None) -> list[RunConfig]:
    """Every (task, model, successor size, budget, arm, seed, student seed) as one RunConfig, an arm
    only at its own budgets where it declares them (Sweep.arm_budgets), deduplicated (the predecessor
    arm is shared by every successor size and every budget: it trains at its own fixed length), and on its
    own tasks where it declares them (Sweep.arm_tasks). Predecessor runs come first, then budget by budget,
    smallest first, so a sweep stopped early holds whole budgets.

    seeds: the seeds to expand (default: the sweep's evaluation seeds). trials: a function
    (arm, task, model, successor_layers, budget) -> a list of run-field overrides, one run per item
    (default: the arm as declared); the tuning stage uses it (tuning_configs, evaluation_configs)."""
    jobs: dict[str, RunConfig] = {}
    from harness.run.identity import key_of

    seeds = sweep.seeds if seeds is None else seeds

    for task in sweep.tasks:
        for model in sweep.models:
            lp = _predecessor_layers(sweep, model)
            for ls in sweep.successor_layers:
                for budget, arm in ((b, a) for b in sweep.budgets for a in sweep.arms if sweep.runs(a, task, b)):
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
    from harness.analysis.tuning import arm_name
    from harness.strategies import get_strategy

    return arm_name(arm, successor_layers, get_strategy(arm["strategy"]).default_variant)


def declared_lr(base: dict, arm: dict) -> float:
    """The rate an arm trains at as declared: its resolved `lr` option (variant < options), else
    the run's lr ([base] < the arm's `set`)."""
    from harness.strategies import get_strategy

    option = get_strategy(arm["strategy"]).resolve(arm.get("variant", ""), arm.get("options", {}))["lr"]
    return float(option or {**base, **arm.get("set", {})}.get("lr", RunConfig.lr))


def shared_lrs(sweep: Sweep) -> dict[str, float]:
    """Each student arm's declared (shared) learning rate, by its runs-table name."""
    return {_arm_name(a, ls): declared_lr(sweep.base, a)
            for a in sweep.arms if a.get("layers") != "predecessor" for ls in sweep.successor_layers}


def tuning_configs(sweep: Sweep) -> list[RunConfig]:
    """The tuning stage: every student arm at every grid rate on every tuning seed (the same trials
    for every arm), with the tuning seeds' predecessors."""
    from harness.analysis.tuning import lr_setting

    def trials(arm, task, model, ls, budget):
        return [lr_setting(arm, lr, declared_lr(sweep.base, arm)) for lr in sweep.tuning.lrs]

    return expand(sweep, seeds=sweep.tuning.seeds, trials=trials)


def evaluation_configs(sweep: Sweep, selected) -> list[RunConfig]:
    """The evaluation seeds at the declared (shared) settings and at each arm's selected rate
    (selected: tuning.select_settings's table); a run at a selected rate equal to the declared one is
    the same run, listed once."""
    import pandas as pd

    from harness.analysis.tuning import lr_setting

    chosen = {(r.task, r.model, int(r.successor_layers), None if pd.isna(r.budget) else int(r.budget), r.arm): r.lr
              for r in selected.itertuples()}

    def trials(arm, task, model, ls, budget):
        lr = chosen.get((task, model, ls, budget, _arm_name(arm, ls)))
        return [] if lr is None else [lr_setting(arm, lr, declared_lr(sweep.base, arm))]

    shared = expand(sweep)
    tuned = expand(sweep, trials=trials)
    from harness.run.identity import key_of

    return list({key_of(c): c for c in shared + tuned}.values())


def is_predecessor(config: RunConfig) -> bool:
    from harness.run.identity import is_predecessor_run

    return config.predecessor_layers is not None and is_predecessor_run(config, config.predecessor_layers)


# ------------------------------------------------------------------ entry points


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
