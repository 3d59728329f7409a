"""The report pipeline: a results store (`report`) or a runs CSV (`analyze`) -> the runs table ->
analysis (harness/analysis) -> tables, figures and the markdown report (docs/method.md, "Reports").

Data flows one way: records -> tidy tables -> statistics -> plots -> report; nothing here trains."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.budget import GROUP as BUDGET_GROUP
from harness.analysis.budget import budget_summary, has_budget_axis
from harness.analysis.groups import Analysis, analyze
from harness.analysis.sequential import examine_store
from harness.analysis.tables import SENSITIVITY_COLUMNS
from harness.errors import HarnessError
from harness.report import budget_plots, plots
from harness.report.markdown import render_report
from harness.report.parameters import parameter_table
from harness.report.sections.hardware import hardware_kind
from harness.sweep.plan import default_report_dir, shared_lrs, sweep_from_raw


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
    from harness.store.records import read_records

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
        "git_dirty": dirty_summary(ok),
        # what ran: "auto" in the config is resolved per machine before a run's key is taken
        "precisions_run": sorted({r.get("config", {}).get("precision", "?") for r in ok}),
        "devices_run": sorted({r.get("provenance", {}).get("device", "?") for r in ok}),
        # the CPU kind of each successful run (bf16 numbers differ between kinds: sections/hardware.py)
        "cpu_kinds": dict(sorted(Counter(hardware_kind(r) or "?" for r in ok).items())),
        # what the intervals can be about: the test-set size of each task, and whether the records keep
        # per-example predictions (without them the inference is conditional on the one test set)
        "test_examples": {t: sorted({int((r.get("final") or {}).get("n_test") or 0) for r in ok
                                     if r["task"]["name"] == t} - {0}) for t in tasks},
        "predictions": {"with": sum(1 for r in ok if (r.get("final") or {}).get("test_predictions")), "of": len(ok)},
        "runs": len(records), "failed": [{"run_id": r["run_id"], "strategy": r["strategy"], "seed": r["seed"],
                                          "error": r.get("error")} for r in records if r.get("status") != "ok"],
        "total_run_seconds": sum(r.get("wall_seconds") or 0 for r in records),
        "predecessor_mismatch": predecessor_mismatch(ok),
        "sweep_sessions": manifest.get("sessions", []),
    }


def dirty_summary(records: list[dict]) -> dict:
    """Runs made from a dirty working tree: how many (runs), the uncommitted files their records list with
    the runs per file (files), and how many records predate that list (unlisted)."""
    dirty = [r for r in records if str((r.get("provenance") or {}).get("git_commit", "")).endswith("-dirty")]
    files: Counter = Counter()
    for r in dirty:
        files.update(r["provenance"].get("git_dirty_files") or [])
    return {"runs": len(dirty), "of": len(records), "files": dict(sorted(files.items())),
            "unlisted": sum(1 for r in dirty if not r["provenance"].get("git_dirty_files"))}


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


def load_store(results_dir: Path, say=print, look_states: bool = True) -> dict:
    """A results store read for analysis, nothing written: the records of its sweep, the runs table
    the analysis uses (a tuning study: the evaluation runs at each arm's selected rate), the tuning
    and sequential views where the sweep has them, the per-example results (None without them) and
    the report's provenance (_meta). build_report writes from it; harness.report.findings reads every
    store through it. look_states: replay every look of a sequential study (the report's looks
    figure; the findings need only the decisions).

    Returns {"name", "manifest", "records", "skipped", "runs", "runs_csv" (the table runs.csv keeps),
    "tuning", "sequential", "examples", "meta"}."""
    from harness.store.records import read_label_counts, runs_table

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
    runs = runs_table(records, read_label_counts(results_dir))
    kind = {r["run_id"]: hardware_kind(r) for r in records}  # the CPU kind each run came from
    runs["hardware"] = runs["run_id"].map(kind).fillna("")
    runs_csv = runs
    tuning = _tuning_view(runs, manifest.get("config"), name)
    if tuning is not None:
        runs_csv = runs = tuning.pop("runs")
        say(f"tuning: {int((runs['stage'] == 'tune').sum())} tuning run(s); the analysis uses the "
            f"{int(runs['selected'].sum())} evaluation run(s) at each arm's selected rate")
        tuning["shared_runs"] = runs[runs["shared"]].reset_index(drop=True)
        runs = runs[runs["selected"]].reset_index(drop=True)
    from harness.store.examples import examples_table

    examples = examples_table(records, results_dir)  # no rows: records without per-example predictions
    examples = examples if not examples.empty else None
    seq_view = _sequential_view(runs, manifest, name, records, examples, look_states=look_states)
    if seq_view is not None:
        runs_csv = runs = seq_view.pop("runs_table")
    meta = {**_meta(records, {**manifest, "name": name}), **({"skipped_records": skipped} if skipped else {})}
    if isinstance(meta.get("predictions"), dict):  # the runs whose predictions could be scored per example
        meta["predictions"]["scored"] = 0 if examples is None else int(examples["run_id"].nunique())
    return {"name": name, "manifest": manifest, "records": records, "skipped": skipped, "runs": runs,
            "runs_csv": runs_csv, "tuning": tuning, "sequential": seq_view, "examples": examples, "meta": meta}


def build_report(results_dir: Path, report_dir: Path | None = None, say=print) -> Path:
    """Tables, plots and the markdown report from the store alone (no training); the report goes to
    report_dir (default: default_report_dir), and the findings page of every store beside it
    (harness.report.findings) to report_dir/README.md."""
    from harness.store.records import curves_table, epochs_table, replacements_table

    store = load_store(results_dir, say)
    results_dir, name, records = Path(results_dir), store["name"], store["records"]
    report_dir = Path(report_dir) if report_dir else default_report_dir(results_dir, name)
    store["runs_csv"].to_csv(results_dir / "runs.csv", index=False)
    curves = curves_table(records)
    if not curves.empty:
        curves["dev_accuracy"] = 100 * curves["dev_accuracy"]  # percent, as the runs table's accuracies
    out = write_outputs(store["runs"], epochs_table(records), replacements_table(records), store["meta"],
                        results_dir=results_dir, report_path=report_dir / f"{name}.md", curves=curves,
                        tuning=store["tuning"], sequential_view=store["sequential"],
                        parameters=parameter_table(records), examples=store["examples"],
                        results_root=results_dir.parent, primaries=_declared_primaries(store["manifest"], name),
                        rates=_rates(store, results_dir.parent, say))
    say(f"report: {out['report']}  (tables: {results_dir / 'tables'}, plots: {results_dir / 'plots'})")
    return Path(out["report"])


def _rates(store: dict, results_root: Path, say=print) -> str | None:
    """The learning-rates section of a store whose sweep reuses tuning stages (sections/rates.py); None
    for any other store."""
    from harness.report.sections.rates import rates_section, tuning_selections

    config = store["manifest"].get("config")
    if not isinstance(config, dict) or not config.get("reuse") or "tuning" in config:
        return None
    selections = tuning_selections(config, results_root, say)
    return rates_section(store["runs"], selections) if selections else None


def _declared_primaries(manifest: dict, name: str) -> dict | None:
    """The sweep's [primaries] declaration (claim -> budget), read from its manifest; None without one."""
    config = manifest.get("config")
    if not isinstance(config, dict) or "primaries" not in config:
        return None
    return sweep_from_raw(config, Path(f"{name} (sweep.json)")).primaries or None


def _sequential_view(runs, manifest: dict, name: str, records: list[dict],
                     examples: pd.DataFrame | None = None, look_states: bool = True) -> dict | None:
    """For a store of a sequential sweep: the decisions of every group replayed from the store
    (harness.analysis.sequential), the runs table with a `look` column (the look each run's seed entered
    at), and the figures the report states; None for any other store."""
    config = manifest.get("config")
    if not isinstance(config, dict) or "looks" not in config:
        return None

    from harness.analysis.claims import primary_family_size
    from harness.analysis.sequential import OPEN, decisions_frame

    sweep = sweep_from_raw(config, Path(f"{name} (sweep.json)"))
    # per-example results make the looks task-level; without them the call is the seed-only one
    ex = {} if examples is None else {"examples": examples}
    if sweep.primaries:  # primaries declared per budget: one family per task across budgets
        ex = {**ex, "primaries": sweep.primaries}
    replays = examine_store(runs, sweep.looks, sweep.seeds, sweep.futility, **ex)
    position = {s: i for i, s in enumerate(sweep.seeds)}
    runs = runs.copy()
    runs["look"] = [next((k + 1 for k, n in enumerate(sweep.looks) if position.get(s, np.inf) < n), np.nan)
                    for s in runs["seed"]]
    table = decisions_frame(replays)
    look_states = _look_states(runs, sweep, position, ex) if look_states else pd.DataFrame()
    arms = runs.assign(arm=runs["strategy"] + "|" + runs["variant"].fillna("") + "|"
                       + runs["successor_layers"].astype(str) + "|"
                       + runs["budget"].map(lambda b: "none" if pd.isna(b) else str(int(b)))
                       ).groupby(["task", "model"])["arm"].nunique()  # (arm, budget) pairs
    own = [r for r in records if r.get("sweep") == name]
    return {"runs_table": runs, "decisions": table, "look_states": look_states, "looks": sweep.looks, "futility": sweep.futility,
            "groups": len(replays), "family": primary_family_size(), "margin": 1.0,
            "open": int((table["verdict"] == OPEN).sum()), "runs": len(runs), "fixed_runs": int(arms.sum()) * sweep.looks[-1],
            "wall_seconds": sum(r.get("wall_seconds") or 0 for r in own), "reused": len(records) - len(own)}


def _look_states(runs, sweep, position: dict, ex: dict) -> pd.DataFrame:
    """Every primary at every look it was examined: the replay of the runs of the first k looks'
    seeds (what the study knew at look k), keeping the decisions taken at look k: group key, claim,
    look, seeds, verdict (open while not stopped), estimate, rci_low / rci_high, p, bound, unit."""
    from harness.analysis.sequential import decisions_frame

    frames = []
    for k, n in enumerate(sweep.looks):
        known = runs[[position.get(s, np.inf) < n for s in runs["seed"]]]
        table = decisions_frame(examine_store(known, sweep.looks, sweep.seeds, sweep.futility, **ex))
        frames.append(table[table["look"] == k + 1])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tuning_view(runs, config: dict | None, name: str) -> dict | None:
    """For a store of a sweep with a tuning stage: runs (the runs table with stage / selected /
    shared columns), selected (select_settings), trials (trials_table), expected
    (expected_best_table), lrs and seeds; None for any other store."""
    if not isinstance(config, dict) or "tuning" not in config:
        return None
    from harness.analysis.tuning import annotate, expected_best_table, select_settings, trials_table

    sweep = sweep_from_raw(config, Path(f"{name} (sweep.json)"))
    lrs, seeds = sweep.tuning.lrs, sweep.tuning.seeds
    declared = shared_lrs(sweep)
    selected = select_settings(runs, lrs, seeds, declared=declared)  # the one-SE rule against the declared rate
    trials = trials_table(runs, lrs, seeds)
    annotated = annotate(runs, selected, seeds, declared)
    students = annotated["selected"] & ~(annotated["arm"].str.startswith("finetune-")
                                         & (annotated["successor_layers"] == annotated["predecessor_layers"]))
    n_arms = len(sweep.models) * len(sweep.successor_layers) * \
        sum(len(sweep.arm_budgets(a)) * len(sweep.arm_tasks(a)) for a in sweep.arms if a.get("layers") != "predecessor")
    return {"runs": annotated, "selected": selected, "trials": trials, "expected": expected_best_table(trials, declared),
            "lrs": lrs, "seeds": seeds, "complete": bool(len(selected) == n_arms and selected["complete"].all()),
            "evaluated": int((students & (annotated["status"] == "ok")).sum()),
            "to_evaluate": n_arms * len(sweep.seeds)}


def analyze_csv(csv_path: Path, out: Path | None = None, report_dir: Path | None = None, say=print) -> Path:
    """The same statistics, plots and report from a user's own CSV (checked row by row first: see
    harness.store.user_runs): a runs table (one row per run; seed-only inference), or a long
    per-example table (task, arm, seed, example, label, prediction; task-level inference)."""
    from harness.store.user_runs import read_user_csv

    csv_path = Path(csv_path)
    runs, examples = read_user_csv(csv_path)
    out = Path(out) if out else csv_path.parent / f"{csv_path.stem}-analysis"
    report_dir = Path(report_dir) if report_dir else out
    meta = {"source": str(csv_path.resolve()), "rows": len(runs),
            "produced_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    result = write_outputs(runs, None, None, meta, results_dir=out, report_path=report_dir / f"{csv_path.stem}.md",
                           examples=examples)
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


TABLES_README = """# Tables

Generated from the runs table by `harness.analysis.groups` (full precision; one row per group key first).

- `claims.csv`: one row per claim comparison: estimate, interval (ci_level), raw p, p_adj (Holm
  within the claim's family), verdict, n, seeds_for_power, decided_by (the primary test).
- `variance.csv`: one row per arm: mean, std, t interval of the mean, chi-square interval of the
  std, degenerate counts with Clopper-Pearson intervals, the spread of the non-degenerate runs,
  runs below the fine-tuning level, gaps to the predecessor and the baseline.
- `pairwise.csv`: every pair of arms, the primary test only (paired t, else Welch; raw p);
  `claim` / `claim_p_adj` where the pair is one of a claim's comparisons.
- `sensitivity.csv`: every pair of arms, the sensitivity checks, raw p-values, used for no
  verdict: Welch, Mann-Whitney U, paired t, Wilcoxon, ASO eps_min (a_better: eps_min < 0.2),
  Hedges' g, P(A > B), std ratio with Brown-Forsythe and Levene, degenerate counts with Fisher.
- `expected_max.csv`: expected test accuracy of the best-by-dev run among n seeds (Dodge et al.),
  and expected_max_test, the optimistic max of test accuracy.
- `profile.csv`: share of runs at or above each accuracy threshold (performance profile).
- `power.csv`: seeds for 80% power under the primary test against finetune-L_s.
- `variance_components.csv`: predecessor vs student seed variance (factorial sweeps).
- `verdicts_by_budget.csv` (sweeps with several budgets): every claim verdict per budget.
- `sequential.csv` (sequential designs): per group and primary the stopping look, verdict,
  estimate, repeated interval (rci_low, rci_high at nominal level rci_p), p and its boundary.
- `sequential_looks.csv` (sequential designs): every primary at every look it was examined
  (estimate, repeated interval, p, boundary), replayed from the runs of the seeds known then.
- `parameters.csv` (stores): parameters per task, model and layer count: embeddings, the layers
  kept, the head, and where the count comes from.
- `runs.csv`: the input runs table.
"""


def write_tables(a: Analysis, runs: pd.DataFrame, tables_dir: Path) -> dict[str, Path]:
    """Every table as CSV at full precision (and tables/README.md describing them); returns
    name -> path."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    comps = a.table("components")
    pw = a.table("pairwise")
    front = [c for c in pw.columns if c not in SENSITIVITY_COLUMNS]
    keys = [c for c in pw.columns if c in ("task", "model", "predecessor_layers", "successor_layers",
                                           "budget", "a", "b")]
    frames = {"claims": a.claims_table(), "variance": a.table("variance"),
              "pairwise": pw[front] if not pw.empty else pw,
              "sensitivity": pw[keys + [c for c in SENSITIVITY_COLUMNS if c in pw]] if not pw.empty else pw,
              "expected_max": a.table("expected_max"), "profile": a.table("profile"), "power": a.table("power"),
              "variance_components": comps if not comps.empty else pd.DataFrame(
                  columns=["task", "model", "predecessor_layers", "successor_layers", "arm", "design",
                           "var_predecessor", "var_student", "var_residual", "share_predecessor"]),
              "variance_decomposition": a.table("variance_decomposition"),
              "runs": runs}
    by_budget = a.verdicts_by_budget()
    if not by_budget.empty:
        frames["verdicts_by_budget"] = by_budget
    paths = {}
    for name, df in frames.items():
        paths[name] = tables_dir / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    (tables_dir / "README.md").write_text(TABLES_README, encoding="utf-8")
    return paths


def write_outputs(runs: pd.DataFrame, epochs: pd.DataFrame | None, replacements: pd.DataFrame | None,
                  meta: dict | None, *, results_dir: Path, report_path: Path, n_boot: int = 10_000,
                  seed: int = 0, margin: float = 1.0, curves: pd.DataFrame | None = None,
                  tuning: dict | None = None, sequential_view: dict | None = None,
                  parameters: pd.DataFrame | None = None, examples: pd.DataFrame | None = None,
                  results_root: Path | None = None, primaries: dict | None = None, rates: str | None = None) -> dict:
    """Analyse, then write results_dir/tables/*.csv, results_dir/plots/*.png|svg, the report at
    report_path and the index README.md beside it. n_boot: permutation resamples; margin: the
    equivalence margin (points) of claim 3b; curves: the stored dev curves (records.curves_table,
    percent); parameters: parameter counts per model size (harness.report.parameters); examples: the
    per-example results (harness.store.examples.examples_table; None: seed-only inference);
    results_root: the folder of the stores (a store's parent): the index beside the report is then
    the findings page of every store there (harness.report.findings), else the list of reports;
    primaries: claim -> budget, a sweep's declared primaries (one family per task across budgets);
    rates: the learning-rates section (sections/rates.py) of a study whose rates its tuning stages chose.

    Returns {"analysis", "tables": name -> path, "plots": [PlotInfo], "report", "index"}.
    """
    results_dir, report_path = Path(results_dir), Path(report_path)
    declared = {"primaries": primaries} if primaries else {}
    a = analyze(runs, epochs, replacements, n_boot=n_boot, seed=seed, margin=margin, examples=examples, **declared)
    tables = write_tables(a, runs, results_dir / "tables")
    infos = plots.plot_all(a, results_dir / "plots", curves=curves, parameters=parameters,
                           sequential=sequential_view)
    if parameters is not None and not parameters.empty:
        tables["parameters"] = results_dir / "tables" / "parameters.csv"
        parameters.to_csv(tables["parameters"], index=False)
    if has_budget_axis(a.runs):
        infos += _budget_outputs(a, curves, results_dir)
    if tuning is not None:  # the same statistics at the shared rate: the sensitivity row of every verdict
        tuning = {**tuning, "shared": analyze(tuning["shared_runs"], None, None, n_boot=n_boot, seed=seed,
                                              margin=margin, examples=examples)}
        for key in ("selected", "trials", "expected"):
            tables[f"tuning_{key}"] = results_dir / "tables" / f"tuning_{key}.csv"
            tuning[key].drop(columns=[c for c in ("dev_by_lr",) if c in tuning[key]]).to_csv(
                tables[f"tuning_{key}"], index=False)
        infos.append(plots.plot_expected_best(tuning["expected"], plots.arm_colors(tuning["trials"]["arm"]),
                                              results_dir / "plots" / "tuning_expected_best"))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    if sequential_view is not None:
        tables["sequential"] = results_dir / "tables" / "sequential.csv"
        sequential_view["decisions"].to_csv(tables["sequential"], index=False)
        if not sequential_view.get("look_states", pd.DataFrame()).empty:
            tables["sequential_looks"] = results_dir / "tables" / "sequential_looks.csv"
            sequential_view["look_states"].to_csv(tables["sequential_looks"], index=False)
    report_path.write_text(render_report(a, infos, meta or {}, report_path, tuning, sequential_view, rates),
                           encoding="utf-8")
    return {"analysis": a, "tables": tables, "plots": infos, "report": report_path,
            "index": update_index(report_path.parent, results_root)}


def _budget_outputs(a: Analysis, curves: pd.DataFrame | None, results_dir: Path) -> list:
    """tables/budget_summary.csv, the accuracy-against-budget figure (groups side by side) and per
    group the dev curves by fraction of the run, when the runs hold several budgets."""
    summary = budget_summary(a.runs)
    summary.to_csv(results_dir / "tables" / "budget_summary.csv", index=False)
    colors = plots.arm_colors(a.runs["arm"])
    panels = []
    for key, g in summary.groupby(BUDGET_GROUP, sort=False):
        r = a.runs
        in_group = (r["task"] == key[0]) & (r["model"] == key[1]) & (  # + the predecessor (no budget)
            (r["successor_layers"] == key[2]) | r["budget"].isna())
        panels.append((f"{key[0]} / {key[1]}, {key[2]:g} layers", a.runs[in_group], g))
    infos = [budget_plots.plot_budget_panels(panels, colors, results_dir / "plots" / "accuracy_vs_budget")]
    if curves is not None and not curves.empty:
        for label, runs, _ in panels:
            c = curves[curves["run_id"].isin(runs["run_id"])]
            infos.append(budget_plots.plot_dev_curves_by_fraction(
                c, colors, results_dir / "plots" / f"{plots.slug(label)}_dev_curves_by_budget", label))
    return infos


def update_index(report_dir: Path, results_root: Path | None = None) -> Path:
    """Write report_dir/README.md. With results_root (the folder of the results stores, e.g. results/):
    the findings page of every store there (harness.report.findings: the claims table, the
    reconciliation of the studies' words, the list of reports). Without it (a user's CSV analysis):
    one line per *.md report there, with its title and date."""
    from harness.report.findings import report_list, write_findings

    report_dir = Path(report_dir)
    if results_root is not None:
        return write_findings(results_root, report_dir)
    index = report_dir / "README.md"
    index.write_text("# Reports\n\nGenerated from the results store, one line per report.\n\n"
                     + "\n".join(report_list(report_dir)) + "\n", encoding="utf-8")
    return index
