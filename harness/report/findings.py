"""The findings page (report/README.md): what the committed studies say about the seed's claims, read
from every results store under one folder, nothing written by hand (docs/method.md, "Reports").

It opens with one table: each primary claim in words x task, the verdict of the reproduce study (its
sequential, task-level decision) with its estimate and interval, and where the claim holds in the other
studies (by budget, at the shared vs the selected learning rate, including the reproduce study's own
tuning stages, with a 12-layer predecessor). While the
reproduce study is absent or incomplete the verdict column says so, with its progress in records, and
shows instead the most decisive earlier verdict, labelled with its study and, when its records keep no
per-example predictions, the caveat that it is conditional on the one test set the runs were scored on.

Then the reconciliation: where two studies' verdict words differ, which setting differs between them and
the setting x arm interaction test paired by seed (harness.analysis.inference.paired_interaction for mean
differences; for the failure-rate claims an exact sign test on the per-seed contrasts), Holm over the
page's tests. Where no setting differs the difference is the number of seeds (power), and the page says
how many each needed. Verdict words alone are never compared. Last, the list of reports with dates.

Every store is analysed in memory from its records (harness.report.pipeline.load_store and
harness.analysis), so a stale tables/ CSV cannot reach the page. A store's reading is cached (in the
harness cache, `findings/`) under the hash of its files' content and of the harness's own source, so a
changed record, split or line of code reads the store afresh and an unchanged one costs a hash."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from harness.analysis import inference, stats
from harness.analysis.claims import PRIMARY_CLAIMS
from harness.analysis.groups import Analysis, analyze
from harness.report.format import claim_words, finite, md_table, num
from harness.report.sections.bottom_line import _kind
from harness.report.sections.sequential import no_information

REPRODUCE = ("reproduce-tune-567", "reproduce-tune-189", "reproduce")  # the reproduce study's stores, in order
VERDICT_STORE = "reproduce"  # the store whose sequential decisions are the study's verdicts
KIND_RANK = {"supported": 3, "contradicted": 3, "equivalent": 3, "undecided": 2, "no information": 1, "other": 0}
# run settings that are not a setting of the comparison: the seed, where and how it ran
NOT_SETTINGS = {"seed", "student_seed", "force", "threads", "device", "eval_batch_size"}
ALPHA = stats.ALPHA


@dataclass
class Cell:
    """One study's primary verdict on one claim, task and setting: study (its store), setting (what
    tells it apart within its study: "189 steps", "selected rate", "12 -> 6 layers"; "" for none),
    verdict and its kind (bottom_line._kind), estimate and interval (interval: its words), seeds per
    arm, seeds_needed (undecided fixed designs), runs (the group's rows of arms a and b, on the seeds
    the verdict read), settings (run setting -> values, per arm), conditional (no per-example
    predictions: conditional on the one test set), test_sizes."""
    study: str
    setting: str
    task: str
    claim: str
    a: str
    b: str
    verdict: str
    kind: str
    estimate: float
    ci_low: float
    ci_high: float
    interval: str
    unit: str
    p_adj: float
    seeds: int
    model: str
    predecessor_layers: float
    successor_layers: float
    budget: float
    rate: str = ""
    seeds_needed: float = np.nan
    sequential: str = ""
    runs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    settings: dict = field(default_factory=dict, repr=False)
    hardware: tuple = ()
    conditional: bool = True
    test_sizes: tuple = ()

    @property
    def label(self) -> str:
        return f"{self.study}{f', {self.setting}' if self.setting else ''}"


@dataclass
class Study:
    """One store: name, report date (of its committed report, if any), its cells, progress (records
    present, records listed in its manifest), complete, and why it could not be read (problem)."""
    name: str
    cells: list[Cell] = field(default_factory=list)
    present: int = 0
    listed: int = 0
    complete: bool = False
    problem: str = ""
    sequential: bool = False
    recorded: bool = True  # run records with their settings (False: a runs table only)


# ---------------------------------------------------------------- reading the stores

def _hardware(record: dict) -> str:
    p = record.get("provenance") or {}
    return str(p.get("cpu") or p.get("device_name") or "?")


def _settings(records: dict, run_ids, runs: pd.DataFrame, roles: dict) -> dict:
    """Run setting -> sorted values over the runs' records (config, and the engine of their
    provenance); per arm where it is the arm's own ("lr of A": the rate its student trained at).
    roles: arm -> "A" / "B", the comparison's sides, so that two groups with other baselines compare."""
    from harness.analysis.tuning import effective_lr

    out: dict[str, set] = {}
    rows = runs[runs["run_id"].isin(set(run_ids))]
    for _, r in rows.iterrows():
        record = records.get(r["run_id"]) or {}
        cfg = record.get("config") or {}
        role = roles.get(r["arm"], r["arm"])
        for k, v in cfg.items():
            if k in NOT_SETTINGS or k == "lr":
                continue
            if k == "options" and isinstance(v, dict):
                for ok, ov in v.items():
                    if ok != "lr":
                        out.setdefault(f"{ok} of {role}", set()).add(repr(ov))
                continue
            out.setdefault(k, set()).add(repr(v) if not isinstance(v, float) or not v.is_integer() else repr(int(v)))
        if cfg.get("lr") is not None:
            out.setdefault(f"lr of {role}", set()).add(f"{effective_lr(cfg):g}")
        engine = (record.get("provenance") or {}).get("engine")
        if engine:
            out.setdefault("engine", set()).add(engine)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _conditional(unit, inference_unit) -> bool:
    """An accuracy difference read with the training seed as the only randomness (no per-example
    predictions): conditional on the one test set. A failure-rate claim counts runs, and is not."""
    return unit != "percentage points" and str(inference_unit or "test set") != "task"


def _cell_runs(g_runs: pd.DataFrame, a: str, b: str, seeds: set | None = None) -> pd.DataFrame:
    r = g_runs[g_runs["arm"].isin([a, b]) & (g_runs["status"] == "ok")]
    return r[r["seed"].isin(seeds)] if seeds is not None else r


def _fixed_cells(study: str, a: Analysis, records: dict, setting_of, meta: dict, rate: str = "") -> list[Cell]:
    """One cell per primary claim and group of a fixed-design analysis."""
    out = []
    for g in a.groups:
        t = g.claims_table()
        for r in t[t["role"] == "primary"].itertuples():
            if r.verdict == "not run" or not r.b:
                continue
            runs = _cell_runs(g.runs, r.a, r.b)
            level = f"{r.ci_level:.0%} CI" if finite(r.ci_level) else "CI"
            out.append(Cell(study, setting_of(g), g.task, str(r.claim), r.a, r.b, str(r.verdict), _kind(r.verdict),
                            r.estimate, r.ci_low, r.ci_high, level, r.unit, r.p_adj,
                            int(r.n_paired or max(r.n_a, r.n_b)), g.model, g.predecessor_layers, g.successor_layers,
                            g.budget, rate, r.seeds_needed, runs=runs,
                            settings=_settings(records, runs["run_id"], runs, {r.a: "A", r.b: "B"}),
                            hardware=tuple(sorted({_hardware(records[i]) for i in runs["run_id"] if i in records})),
                            conditional=_conditional(r.unit, getattr(r, "inference_unit", "test set")),
                            test_sizes=tuple(meta.get("test_examples", {}).get(g.task, ()))))
    return out


def _sequential_cells(study: str, a: Analysis, seq: dict, records: dict, setting_of, meta: dict) -> list[Cell]:
    """One cell per sequential decision: the study's verdicts, on the seeds of its stopping look."""
    out = []
    runs_all = a.runs
    groups = {(g.task, g.model, g.successor_layers, g.budget if finite(g.budget) else np.nan): g for g in a.groups}
    for r in seq["decisions"].itertuples():
        if r.verdict in ("not run", "open") or not r.b:
            continue
        key = (r.task, r.model, r.successor_layers, r.budget if finite(r.budget) else np.nan)
        g = next((v for k, v in groups.items() if k[:3] == key[:3] and (k[3] == key[3] or not
                                                                        (finite(k[3]) or finite(key[3])))), None)
        if g is None:
            continue
        look = int(r.look or 0)
        seeds = set(runs_all.loc[runs_all["look"] <= look, "seed"].dropna()) if "look" in runs_all and look else None
        runs = _cell_runs(g.runs, r.a, r.b, seeds)
        verdict = "no information" if no_information(r) else str(r.verdict)
        cov = getattr(r, "rci_coverage", np.nan)
        interval = (f"repeated CI, {100 * cov:.4g}% simultaneous" if finite(cov) and cov > 0 else "repeated CI")
        out.append(Cell(study, setting_of(g), r.task, str(r.claim), r.a, r.b, verdict, _kind(verdict), r.estimate,
                        r.rci_low, r.rci_high, interval, r.unit, r.p, int(r.seeds or 0), r.model,
                        g.predecessor_layers, r.successor_layers, g.budget, sequential=f"look {look}",
                        runs=runs, settings=_settings(records, runs["run_id"], runs, {r.a: "A", r.b: "B"}),
                        hardware=tuple(sorted({_hardware(records[i]) for i in runs["run_id"] if i in records})),
                        conditional=_conditional(r.unit, getattr(r, "inference_unit", "")),
                        test_sizes=tuple(meta.get("test_examples", {}).get(r.task, ()))))
    return out


def _setting_namer(a: Analysis):
    """Group -> the words that tell it apart from the study's other groups (budget, layers)."""
    vary_b = len({g.budget for g in a.groups if finite(g.budget)}) > 1
    vary_l = len({(g.predecessor_layers, g.successor_layers) for g in a.groups}) > 1

    def name(g) -> str:
        parts = []
        if vary_l:
            parts.append(f"{g.predecessor_layers:g} -> {g.successor_layers:g} layers")
        if vary_b and finite(g.budget):
            parts.append(f"{g.budget:,.0f} steps")
        return ", ".join(parts)
    return name


def read_study(store: Path, n_boot: int = 2000) -> Study:
    """One store read and analysed in memory (module docstring). n_boot only reaches the secondary
    spread tests: no primary is a permutation test. A store that cannot be read comes back with
    its problem and no cells."""
    from harness.errors import HarnessError
    from harness.report.pipeline import load_store

    store = Path(store)
    study = Study(store.name)
    quiet = lambda *_: None  # noqa: E731
    try:
        if (store / "runs").is_dir():
            s = load_store(store, quiet, look_states=False)
            records = {r["run_id"]: r for r in s["records"]}
            study.name, meta = s["name"], s["meta"]
            listed = s["manifest"].get("run_ids")
            study.present = len(s["records"])
            study.listed = len(listed) if isinstance(listed, list) else study.present
            a = analyze(s["runs"], n_boot=n_boot, examples=s["examples"])
        else:
            from harness.store.user_runs import read_user_csv

            runs, examples = read_user_csv(store / "runs.csv")
            records, meta = {}, {}
            study.recorded = False
            study.present = study.listed = len(runs)
            s = {"sequential": None, "tuning": None}
            a = analyze(runs, n_boot=n_boot, examples=examples)
    except (HarnessError, ValueError, KeyError, OSError) as exc:
        study.problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return study
    name = _setting_namer(a)
    tuning = s["tuning"]
    if s["sequential"] is not None:
        study.sequential = True
        study.cells = _sequential_cells(study.name, a, s["sequential"], records, name, meta)
        study.complete = study.present >= study.listed and int(s["sequential"]["open"]) == 0
    elif tuning is not None:
        shared = analyze(tuning["shared_runs"], n_boot=n_boot, examples=s["examples"])
        both = lambda g, rate: ", ".join(x for x in (name(g), rate) if x)  # noqa: E731
        study.cells = (_fixed_cells(study.name, a, records, lambda g: both(g, "selected rate"), meta, "selected")
                       + _fixed_cells(study.name, shared, records, lambda g: both(g, "shared rate"), meta, "shared"))
        study.complete = study.present >= study.listed and bool(tuning.get("complete"))
    else:
        study.cells = _fixed_cells(study.name, a, records, name, meta)
        study.complete = study.present >= study.listed
    return study


def read_studies(results_root: Path) -> list[Study]:
    """Every store under results_root: a folder with run records (runs/) or a runs table (runs.csv),
    each read through the cache (cached_study)."""
    root = Path(results_root)
    if not root.is_dir():
        return []
    stores = sorted(p for p in root.iterdir() if p.is_dir() and ((p / "runs").is_dir() or (p / "runs.csv").is_file()))
    return [cached_study(p) for p in stores]


_SOURCE_HASH: list[str] = []


def source_hash() -> str:
    """The hash of the harness package's own source (every .py file) and of the versions of the libraries
    its statistics and its cached readings rest on: a reading made by other code is never reused."""
    if not _SOURCE_HASH:
        import scipy

        h = hashlib.sha256(f"pandas {pd.__version__} numpy {np.__version__} scipy {scipy.__version__}".encode())
        package = Path(__file__).resolve().parents[1]
        for path in sorted(package.rglob("*.py")):
            h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
        _SOURCE_HASH.append(h.hexdigest())
    return _SOURCE_HASH[0]


def store_key(store: Path) -> str:
    """The hash of everything read_study reads of a store (its records, splits, manifest, runs table;
    names and content) and of the harness's source."""
    store = Path(store)
    h = hashlib.sha256(source_hash().encode() + store.name.encode())
    files = [store / "sweep.json", store / "runs.csv"] + sorted((store / "runs").glob("*.json")) \
        + sorted((store / "splits").glob("*.json"))
    for path in files:
        if path.is_file():
            h.update(str(path.relative_to(store)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def cached_study(store: Path) -> Study:
    """read_study through the cache: the stored reading of a store whose key (store_key) is unchanged,
    else read afresh and stored. A cache that cannot be read or written is passed by."""
    from harness.data.sources import cache_dir

    path = cache_dir() / "findings" / f"{store_key(store)}.pkl"
    try:
        study = pickle.loads(path.read_bytes())
        if isinstance(study, Study):
            return study
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    study = read_study(store)
    if not study.problem:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(study))
            tmp.replace(path)
        except OSError:
            pass
    return study


# ---------------------------------------------------------------- the claims table

def _short(c: Cell, with_interval: bool = True) -> str:
    """"supported, +0.91 points (0.07 to 1.74, repeated CI)" / "no information (0/5 vs 0/5)"."""
    word = c.verdict.split(" (")[0].split(" at n")[0]
    if c.kind == "no information" or not finite(c.estimate):
        return word
    pp = c.unit == "percentage points"
    est = f"{num(c.estimate, 0 if pp else 2, sign=True)} {'pp' if pp else 'points' if c.unit == 'points' else c.unit}"
    if with_interval and finite(c.ci_low, c.ci_high):
        d = 0 if pp else 2
        est += f" ({num(c.ci_low, d)} to {num(c.ci_high, d)}, {c.interval})"
    return f"{word}, {est}"


def _main_setting(studies: list[Study]) -> tuple[str, float, float]:
    """(model, predecessor layers, successor layers) of the reproduce study's stores, else the most
    common among the studies' cells."""
    cells = [c for s in studies if s.name in REPRODUCE for c in s.cells] or [c for s in studies for c in s.cells]
    if not cells:
        return "", np.nan, np.nan
    keys = pd.Series([(c.model, c.predecessor_layers, c.successor_layers) for c in cells])
    return keys.value_counts().index[0]


def _rank(c: Cell) -> tuple:
    return (KIND_RANK[c.kind], c.seeds, -(c.p_adj if finite(c.p_adj) else 1.0))


def _differs(c: Cell, main: tuple) -> bool:
    return (c.model, c.predecessor_layers, c.successor_layers) != main


def reproduce_progress(studies: list[Study]) -> tuple[bool, str]:
    """(complete, words): the reproduce study's state from its stores."""
    by = {s.name: s for s in studies}
    present = [by[n] for n in REPRODUCE if n in by]
    missing = [n for n in REPRODUCE if n not in by]
    done = not missing and all(s.complete for s in present)
    k, n = sum(s.present for s in present), sum(s.listed for s in present)
    words = f"reproduce study in progress: {k:,} of {n:,} records" + (
        f" ({', '.join(f'{s.name} {s.present} of {s.listed}' for s in present)})" if present else "")
    if missing:
        words += f"; not started: {', '.join(missing)}"
    return done, words


def claims_table(studies: list[Study]) -> tuple[pd.DataFrame, dict, str]:
    """The findings table (module docstring) as display rows, the reference cell of each (claim, task)
    (the verdict the reconciliation reads the others against) and the sentence on the reproduce study."""
    done, progress = reproduce_progress(studies)
    main = _main_setting(studies)
    earlier = [s for s in studies if s.name not in REPRODUCE and s.cells and s.recorded]
    # the reproduce study's tuning stages say where a claim holds by learning rate (shared vs selected)
    tuning_stages = [s for s in studies if s.name in REPRODUCE and s.name != VERDICT_STORE and s.cells and s.recorded]
    verdict_study = next((s for s in studies if s.name == VERDICT_STORE), None) if done else None
    claims = [c.id for c in PRIMARY_CLAIMS]
    pool = [c for s in earlier for c in s.cells]
    tasks = sorted({c.task for c in pool + (verdict_study.cells if verdict_study else []) if not _differs(c, main)})
    rows, ref = [], {}
    for claim in claims:
        for task in tasks:
            if verdict_study is not None:
                own = [c for c in verdict_study.cells if c.claim == claim and c.task == task]
                best = max(own, key=_rank) if own else None
                text = (f"{_short(best)} [{best.sequential}, {best.seeds} seeds]" if best else "not run")
            else:
                here = [c for c in pool if c.claim == claim and c.task == task and not _differs(c, main)]
                best = max(here, key=_rank) if here else None
                text = (f"{_short(best)} [{best.label}, {best.seeds} seeds"
                        + (f", stopped at {best.sequential}" if best.sequential else "")
                        + (f"; conditional on one {_sizes(best)}-example test set" if best.conditional else "")
                        + "]" if best else "no earlier study ran it")
            if best is not None:
                ref[(claim, task)] = best
            anchor = best or next((c for c in pool if c.claim == claim), None)
            words = claim_words(claim, anchor.a, anchor.b, baseline_layers=anchor.successor_layers) if anchor else claim
            rows.append({"claim": f"{claim}: {words}", "task": task, "verdict": text,
                         **_where_columns(earlier + tuning_stages, claim, task, main)})
    table = pd.DataFrame(rows)
    if verdict_study is None:  # the column says what it holds
        table = table.rename(columns={"verdict": f"verdict ({progress}; meanwhile the most decisive earlier study)"})
    return table, ref, progress


def _sizes(c: Cell) -> str:
    return "/".join(f"{n:,}" for n in c.test_sizes) or "fixed"


def _where_columns(studies: list[Study], claim: str, task: str, main: tuple) -> dict:
    """Where the claim holds in the other studies: by budget (studies with several budgets at the
    main model), by learning-rate regime (tuning studies: shared vs selected rate), and with another
    predecessor (studies of another model or layer count). Each: per setting the verdict word and
    A − B, then the study."""
    out = {"by budget": [], "shared vs selected rate": [], "another predecessor": []}
    for s in studies:
        cells = [c for c in s.cells if c.claim == claim and c.task == task]
        if not cells:
            continue
        other = sorted((c for c in cells if _differs(c, main)), key=lambda c: (-c.successor_layers, c.budget))
        if other:
            budgets = len({c.budget for c in other if finite(c.budget)}) > 1
            out["another predecessor"].append("; ".join(
                f"{c.predecessor_layers:g} -> {c.successor_layers:g}{f' at {c.budget:,.0f}' if budgets and finite(c.budget) else ''}: "
                f"{_short(c, False)}" for c in other) + f" ({s.name}, {other[0].model})")
        elif any(c.rate for c in cells):
            out["shared vs selected rate"].append("; ".join(
                f"{c.rate}{f' at {c.budget:,.0f}' if finite(c.budget) else ''}: {_short(c, False)}"
                for c in sorted(cells, key=lambda c: (c.budget, c.rate != "shared"))) + f" ({s.name})")
        elif len({c.budget for c in cells if finite(c.budget)}) > 1:
            out["by budget"].append("; ".join(
                f"{c.budget:,.0f}: {_short(c, False)}" for c in sorted(cells, key=lambda c: c.budget)) + f" ({s.name})")
    return {k: " / ".join(v) or "—" for k, v in out.items()}


# ---------------------------------------------------------------- the reconciliation

@dataclass
class Edge:
    """Two cells of one claim and task whose verdict words differ, the settings that differ between
    them, and the setting x arm interaction test paired by seed (estimate, interval, p, n seeds;
    test: its name); p_adj: Holm over the page's tests."""
    one: Cell
    two: Cell
    differs: list[str]
    hardware: str
    test: str = ""
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p: float = np.nan
    n: int = 0
    identical: bool = False
    p_adj: float = np.nan


FIRST = ("model", "predecessor_layers", "layers", "budget", "epochs", "lr of A", "lr of B", "precision", "engine",
         "train_size", "dev_size", "test_size")
FLAG = {"2a": "degenerate", "4a": "below_level"}  # what a failure-rate claim counts per run


def _flag(c: Cell) -> str:
    return FLAG.get(c.claim, "degenerate")


def per_seed(c: Cell) -> pd.Series:
    """A − B per seed: test accuracy (points), or the difference of the counted flag (a failure-rate
    claim: 1 failed / below the level, 0 not) between the two arms' runs of that seed."""
    r = c.runs
    if c.unit == "percentage points":
        col = _flag(c)
        if col not in r:
            return pd.Series(dtype=float)
        v = r.assign(v=pd.to_numeric(r[col].astype("Float64"), errors="coerce"))
    else:
        v = r.assign(v=pd.to_numeric(r["test_accuracy"], errors="coerce"))
    m = v.dropna(subset=["v"]).groupby(["arm", "seed"])["v"].mean()
    if c.a not in m.index.get_level_values(0) or c.b not in m.index.get_level_values(0):
        return pd.Series(dtype=float)
    return (m.loc[c.a] - m.loc[c.b]).dropna()


def _same_runs(one: Cell, two: Cell, seeds) -> bool:
    """Both arms scored exactly the same test accuracy at every common seed in the two cells: the same
    runs reported twice (a store reusing another's records by run key)."""
    def acc(c: Cell) -> pd.Series:
        r = c.runs[c.runs["seed"].isin(seeds)]
        return r.groupby(["arm", "seed"])["test_accuracy"].mean().sort_index()
    x, y = acc(one), acc(two)
    return len(x) == len(y) == 2 * len(seeds) and x.index.equals(y.index) and bool(np.all(x.to_numpy() == y.to_numpy()))


def _test(edge: Edge) -> None:
    """The setting x arm interaction paired by seed (module docstring), in place."""
    d1, d2 = per_seed(edge.one), per_seed(edge.two)
    seeds = sorted(set(d1.index) & set(d2.index))
    x, y = d1.loc[seeds].to_numpy(float), d2.loc[seeds].to_numpy(float)
    edge.n = len(seeds)
    edge.identical = bool(len(seeds)) and _same_runs(edge.one, edge.two, seeds)
    if edge.one.unit == "percentage points":
        e = x - y
        k, m = int((e > 0).sum()), int((e != 0).sum())
        edge.test = "sign test on the per-seed contrasts"
        edge.estimate = float(100 * e.mean()) if len(e) else np.nan
        edge.p = float(st.binomtest(k, m).pvalue) if m else (1.0 if len(e) else np.nan)
        return
    r = inference.paired_interaction(x, y)
    edge.test = "paired t on the per-seed contrasts"
    edge.estimate, edge.ci_low, edge.ci_high, edge.p = r.estimate, r.ci_low, r.ci_high, r.p


def _differences(one: Cell, two: Cell) -> list[str]:
    """The run settings whose values differ between the two cells ("budget 189 vs 567"), the ones
    that most change a run first; a setting only one side's records carry (an older schema's) is
    unknown for the other, so not counted as a difference."""
    order = {k: i for i, k in enumerate(FIRST)}
    out = []
    for k in sorted(set(one.settings) & set(two.settings), key=lambda k: (order.get(k, len(order)), k)):
        v1, v2 = one.settings[k], two.settings[k]
        if v1 != v2:
            out.append(f"{k} {'/'.join(v1)} vs {'/'.join(v2)}")
    return out


def edges(studies: list[Study], ref: dict) -> list[Edge]:
    """The pairs of cells the reconciliation reads (module docstring): each study's cell nearest the
    reference (fewest differing settings) against the reference, and each other cell of a study
    against that nearest cell; only where the verdict words differ, and only verdicts that say
    something about the arms (not "not testable" / "not run"). Holm over the edges whose test
    compares different runs is applied by `reconciliation`, once per distinct test."""
    out = []
    for (claim, task), r in ref.items():
        for s in studies:
            cells = [c for c in s.cells if c.claim == claim and c.task == task and c.kind != "other"]
            if not cells or not s.recorded:
                continue
            base = min(cells, key=lambda c: (len(_differences(c, r)), -c.seeds))
            pairs = [] if base is r else [(base, r)]
            pairs += [(c, base) for c in cells if c is not base and c is not r]
            for one, two in pairs:
                if one.kind == two.kind:
                    continue
                hw = "" if one.hardware == two.hardware else \
                    f"CPU kinds {' + '.join(one.hardware) or '?'} vs {' + '.join(two.hardware) or '?'}"
                e = Edge(one, two, _differences(one, two), hw)
                _test(e)
                out.append(e)
    return out


def _p(p: float) -> str:
    return "—" if not finite(p) else ("< 0.001" if p < 0.001 else f"= {p:.3f}")


def _need(c: Cell) -> str:
    if finite(c.seeds_needed) and c.kind == "undecided":
        return f", about {int(c.seeds_needed)} would decide it at its observed effect"
    return ""


def _one_side(cells: list[Cell]) -> str:
    """"undecided, +1.34 points in default, budget at 567 steps (5 seeds, about 11 would decide it ...)"."""
    c = cells[0]
    where = ", ".join(x.label for x in cells)
    return f"{_short(c, False)} in {where} ({c.seeds} seeds{_need(c)})"


def edge_sentence(group: list[Edge], n_tests: int) -> str:
    """One reconciliation sentence for edges that share their reference cell, their verdicts and
    their runs (the same runs reported by several studies): the two verdicts, what differs, the
    interaction test and its reading (module docstring)."""
    e = group[0]
    one, two = [x.one for x in group], e.two
    head = f"{two.task}: {_one_side(one)} vs {_one_side([two])}."
    unit = "pp" if two.unit == "percentage points" else "points"
    if e.n == 0:
        test = "No common seed to pair: the interaction is not tested."
    elif e.identical:
        test = (f"On their {e.n} common seeds they are the same runs (interaction {num(0.0, 2, sign=True)} {unit}, "
                f"{e.test}, p {_p(e.p)}: nothing differs but the seeds added).")
    else:
        ci = f" ({num(e.ci_low)} to {num(e.ci_high)})" if finite(e.ci_low, e.ci_high) else ""
        test = (f"Setting x arm interaction paired by seed on {e.n} common seeds: {num(e.estimate, 2, sign=True)} "
                f"{unit}{ci}, {e.test}, p {_p(e.p)}; Holm over the {n_tests} interaction tests of this page: "
                f"p {_p(e.p_adj)}.")
    settings = list(e.differs)
    shown = "; ".join(settings[:4]) + ("; …" if len(settings) > 4 else "")
    if e.identical:  # the same runs on the common seeds: only the added seeds can make the difference
        few = min(one + [two], key=lambda c: c.seeds)
        many = max(one + [two], key=lambda c: c.seeds)
        why = (f"Not a setting but the number of seeds (power) made the difference, {few.seeds} against "
               f"{many.seeds}{f' ({e.hardware}: the added seeds ran on another CPU kind)' if e.hardware else ''}.")
    elif not settings:
        few = min(one + [two], key=lambda c: c.seeds)
        many = max(one + [two], key=lambda c: c.seeds)
        why = (f"Same settings{f' ({e.hardware})' if e.hardware else ''}: not a setting but the number of seeds "
               f"(power) made the difference, {few.seeds} against {many.seeds}.")
    elif finite(e.p_adj) and e.p_adj < ALPHA:
        why = f"What differs: {shown}{f'; {e.hardware}' if e.hardware else ''}. The interaction is significant: this setting changes the comparison."
    else:
        why = (f"What differs: {shown}{f'; {e.hardware}' if e.hardware else ''}. No evidence that it changes the "
               "comparison (interaction not significant): the words differ within the noise.")
    return f"{head} {why} {test}"


def reconciliation(studies: list[Study], ref: dict) -> list[str]:
    """The reconciliation as markdown lines, grouped by claim; edges that report the same runs
    against the same reference share one sentence."""
    es = edges(studies, ref)
    by_claim: dict = {}
    for e in es:  # one test per distinct (reference, verdict, per-seed contrasts, differences)
        key = (id(e.two), e.one.kind, e.identical, tuple(e.differs) if not e.identical else (),
               tuple(per_seed(e.one).round(9).items()), e.hardware if e.identical else "")
        by_claim.setdefault(e.one.claim, {}).setdefault(key, []).append(e)
    tested = [g for gs in by_claim.values() for g in gs.values() if finite(g[0].p) and not g[0].identical]
    for g, p in zip(tested, stats.holm(np.array([g[0].p for g in tested], float)) if tested else []):
        for e in g:
            e.p_adj = float(p)
    lines = []
    for claim in [c.id for c in PRIMARY_CLAIMS]:
        groups = by_claim.get(claim)
        if not groups:
            continue
        r = next(iter(groups.values()))[0].two
        lines.append(f"- **Claim {claim}** ({claim_words(claim, r.a, r.b, baseline_layers=r.successor_layers, capital=False)}):")
        lines += [f"  - {edge_sentence(g, len(tested))}" for g in groups.values()]
    return lines


# ---------------------------------------------------------------- the page

def report_list(report_dir: Path) -> list[str]:
    """One line per *.md report in report_dir (README.md aside): link, title, date."""
    rows = []
    for p in sorted(Path(report_dir).glob("*.md")):
        if p.name == "README.md":
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        title = re.search(r"^# (.+)$", text, re.M)
        date = re.search(r"^_Generated: (.+?)_$", text, re.M)
        when = date.group(1) if date else datetime.fromtimestamp(
            p.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        rows.append(f"| [{p.name}]({p.name}) | {title.group(1) if title else p.stem} | {when} |")
    return ["| report | title | date |", "| --- | --- | --- |", *rows]


def findings_page(results_root: Path, report_dir: Path) -> str:
    """The findings page as markdown (module docstring)."""
    studies = read_studies(results_root)
    usable = [s for s in studies if s.cells]
    produced = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = ["# Findings\n",
             f"_Generated: {produced}, from the stores under `{Path(results_root).name}/` "
             f"({', '.join(s.name for s in studies) or 'none'})_\n"]
    if not usable:
        parts += ["No store under this folder holds a claim's runs yet.\n"]
    else:
        table, ref, progress = claims_table(usable + [s for s in studies if s.name in REPRODUCE and not s.cells])
        parts += [md_table(table), _table_notes(studies, progress, ref)]
        lines = reconciliation(usable, ref)
        parts += ["## Why the reports' words differ\n",
                  ("Where two studies' verdicts on a claim differ, the settings that differ between them and the "
                   "setting x arm interaction paired by seed: each seed's A − B in one study against the same "
                   "seed's in the other (a paired t on the contrasts for differences of accuracy, an exact sign "
                   "test for the failure-rate claims), Holm over this page's tests. A verdict reads against the "
                   "table's verdict, and a study's other settings against its own nearest one.\n"),
                  "\n".join(lines) + "\n" if lines else "_No two studies' verdicts differ._\n"]
    unrecorded = [s.name for s in studies if s.cells and not s.recorded]
    if unrecorded:
        parts.append(f"Not reconciled: {', '.join(unrecorded)} (a runs table without its runs' settings; "
                     "their words are in their own reports below).\n")
    unreadable = [s for s in studies if s.problem]
    if unreadable:
        parts.append("Stores left out (unreadable): " + "; ".join(f"{s.name} ({s.problem})" for s in unreadable) + "\n")
    parts += ["## Reports\n", "\n".join(report_list(report_dir)) + "\n"]
    return "\n".join(parts)


def _table_notes(studies: list[Study], progress: str, ref: dict) -> str:
    done, _ = reproduce_progress(studies)
    notes = []
    if not done:
        notes.append(f"*Verdict*: {progress}; until it is complete each cell shows the most decisive earlier "
                     "verdict (decided first, then the most seeds), with its study and setting.")
    if any(c.conditional for c in ref.values()):
        notes.append("Accuracy differences from records without per-example predictions are conditional on the one "
                     "test set the runs were scored on (seeds random, test examples fixed).")
    notes.append("Interval: 95% CI unless named (3b: 90%, its one-sided test; a sequential verdict: the repeated "
                 "interval its decision read). Where it holds: each study's verdict word and A − B per setting.")
    return "\n".join(notes) + "\n"


def write_findings(results_root: Path, report_dir: Path) -> Path:
    """Write report_dir/README.md: the findings page of the stores under results_root."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "README.md"
    path.write_text(findings_page(results_root, report_dir), encoding="utf-8")
    return path
