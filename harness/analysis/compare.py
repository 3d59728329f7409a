"""`python -m harness compare A B`: did a change (precision, library version, hardware, code) move
the results? Two sweeps' runs are paired arm by arm and seed by seed.

Training budgets: when either side holds more than one budget (a budget study), runs are paired
within each budget as well (a budget-less predecessor with a budget-less one), never averaged over
budgets. When each side has at most one, its runs are paired across them, as for any other change
of setting, and the report says which training lengths it compares.

Per arm, over the seeds both sides ran (runs of other seeds are counted as left out): paired
mean difference B - A with its paired t 95% CI, paired t and Wilcoxon
(Holm-adjusted over the arms of the comparison), the two stds with Brown-Forsythe, the share of
seeds whose metric is identical, and mean wall time per run on each side. Verdict per arm:
"differs" when the Holm-adjusted paired t p < alpha; "equivalent within ±m" when the 95% CI of the
difference lies inside (-m, m) points (stricter than the 90% CI of a TOST at the same alpha);
else "inconclusive at n = k".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.stats import ALPHA, MIN_N
from harness.analysis.tables import pairwise_tests
from harness.arms import order as arm_order
from harness.errors import HarnessError
from harness.store.schema import normalize_runs

GROUP = ["task", "model", "successor_layers"]


def load_runs(path: Path, say=print) -> pd.DataFrame:
    """A results directory (its run store, else its runs.csv) or a tidy runs CSV (checked row by
    row: harness.store.user_runs). Unreadable records of a store are named, never dropped silently."""
    path = Path(path)
    if path.is_dir():
        from harness.store.records import read_records, runs_table

        if (path / "runs").is_dir():
            skipped: list[str] = []
            runs = runs_table(read_records(path, skipped))
            if skipped:
                say(f"records skipped: {len(skipped)} unreadable record(s) in {path / 'runs'}: {'; '.join(skipped)}")
            if not runs.empty:
                return runs
        path = path / "runs.csv"
    if not path.exists():
        raise HarnessError(f"{path} not found: give a results directory or a runs CSV")
    from harness.store.user_runs import read_runs_csv

    return read_runs_csv(path)


def label_of(path: Path) -> str:
    path = Path(path)
    return path.parent.name if path.name == "runs.csv" else (path.name if path.is_dir() else path.stem)


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, *, label_a: str = "A", label_b: str = "B",
                 metric: str = "test_accuracy", margin: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """One row per (task, model, successor_layers, arm) present in both tables.

    diff = mean over paired seeds of (B - A) in points; diff_ci_* its 95% CI; paired_p / wilcoxon_p
    and their Holm adjustments over all rows; identical = share of paired seeds with equal metric.
    """
    if label_a == label_b:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    a, b = normalize_runs(a), normalize_runs(b)
    budgets_a, budgets_b = _budgets(a), _budgets(b)
    by_budget = len(budgets_a) > 1 or len(budgets_b) > 1
    keys = GROUP + ["budget_key"] if by_budget else GROUP
    # -1: no budget (a predecessor, or a sweep without a budget axis); matches only the same on the other side
    a, b = (t.assign(budget_key=t["budget"].fillna(-1.0)) for t in (a, b))
    rows = []
    for key, ga in a.groupby(keys, sort=True):
        gb = b[(b[keys] == pd.Series(key, index=keys)).all(axis=1)]
        for arm in arm_order(set(ga["arm"]) & set(gb["arm"])):
            side_b = gb[gb["arm"] == arm].assign(arm=f"{arm} [{label_b}]")
            side_a = ga[ga["arm"] == arm].assign(arm=f"{arm} [{label_a}]")
            # only the seeds both sides ran: means, stds and times describe what the diff compares
            seeds = set(side_a["seed"]) & set(side_b["seed"])
            left_out = int((~side_a["seed"].isin(seeds)).sum() + (~side_b["seed"].isin(seeds)).sum())
            side_a, side_b = side_a[side_a["seed"].isin(seeds)], side_b[side_b["seed"].isin(seeds)]
            both = pd.concat([side_b, side_a], ignore_index=True)
            t = pairwise_tests(both, pairs=[(f"{arm} [{label_b}]", f"{arm} [{label_a}]")], metric=metric,
                               seed=seed, aso_boot=200).iloc[0]
            pa = side_a[side_a["status"] == "ok"].groupby("seed")[metric].mean()
            pb = side_b[side_b["status"] == "ok"].groupby("seed")[metric].mean()
            common = pa.index.intersection(pb.index)
            rows.append({
                # pairwise_tests ran (B, A): its "_a" fields are B's and its "_b" fields A's
                **dict(zip(GROUP, key)), "budget": key[-1] if by_budget and key[-1] >= 0 else np.nan, "arm": arm, "n_a": t["n_b"], "n_b": t["n_a"], "n_paired": t["n_paired"],
                "left_out": left_out,
                "mean_a": t["mean_b"], "mean_b": t["mean_a"], "diff": t["paired_diff"],
                "diff_ci_low": t["diff_ci_low"], "diff_ci_high": t["diff_ci_high"],
                "paired_p": t["paired_p"], "wilcoxon_p": t["wilcoxon_p"],
                "std_a": t["std_b"], "std_b": t["std_a"], "bf_p": t["bf_p"],
                "identical": float(np.mean(pa[common].to_numpy() == pb[common].to_numpy())) if len(common) else np.nan,
                "wall_a": side_a["wall_seconds"].astype(float).mean(),
                "wall_b": side_b["wall_seconds"].astype(float).mean(),
            })
    if not rows:
        raise HarnessError("the two tables share no (task, model, successor_layers, arm): nothing to compare")
    out = pd.DataFrame(rows)
    from harness.analysis.stats import holm

    for c in ("paired_p", "wilcoxon_p"):
        out.insert(out.columns.get_loc(c) + 1, f"{c}_holm", holm(out[c].astype(float)))
    out["wall_ratio"] = out["wall_a"] / out["wall_b"]
    out["verdict"] = [_verdict(r, margin) for _, r in out.iterrows()]
    out.attrs.update(label_a=label_a, label_b=label_b, metric=metric, margin=margin, by_budget=by_budget,
                     budgets_a=budgets_a, budgets_b=budgets_b)
    return out


def _budgets(runs: pd.DataFrame) -> list[float]:
    """The distinct student budgets (optimizer steps) of a runs table; [] when it has none."""
    return sorted(runs["budget"].dropna().unique().tolist())


def _lengths(at: dict) -> str:
    """A sentence on the training lengths compared ('' when both sides have the same)."""
    if at.get("by_budget"):
        return "Runs are paired within each training budget (student optimizer steps; column *budget*)."
    a, b = at.get("budgets_a", []), at.get("budgets_b", [])
    if a == b:
        return ""
    say = (lambda x: f"{x[0]:,.0f} student optimizer steps" if x else "each arm's epochs (no budget)")
    return (f"**Training lengths differ:** A ran at {say(a)}, B at {say(b)}; the comparison measures "
            "that change together with any other.")


def _verdict(r: pd.Series, margin: float) -> str:
    if r["n_paired"] < MIN_N:
        return f"not tested (n paired = {int(r['n_paired'])} < {MIN_N})"
    if np.isfinite(r["paired_p_holm"]) and r["paired_p_holm"] < ALPHA:
        return "differs"
    lo, hi = r["diff_ci_low"], r["diff_ci_high"]
    if np.isfinite([lo, hi]).all() and -margin < lo and hi < margin:
        return f"equivalent within ±{margin:g}"
    return f"inconclusive at n = {int(r['n_paired'])}"


def render(table: pd.DataFrame, source_a: str, source_b: str) -> str:
    from harness.report.markdown import md_table

    at = table.attrs
    la, lb, metric = at["label_a"], at["label_b"], at["metric"]
    t = table.copy()
    t["ci"] = [f"{lo:+.2f} – {hi:+.2f}" if np.isfinite([lo, hi]).all() else "—"
               for lo, hi in zip(t["diff_ci_low"], t["diff_ci_high"])]
    t["identical"] = t["identical"] * 100
    total_a, total_b = (t["wall_a"] * t["n_a"]).sum(), (t["wall_b"] * t["n_b"]).sum()
    verdicts = t["verdict"].str.replace(r" at n = \d+", "", regex=True).value_counts()
    lines = [
        f"# Comparison: {lb} vs {la}", "",
        f"_Generated: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}_", "",
        f"A = `{source_a}`, B = `{source_b}`. Metric: {metric} (%), runs paired by seed within each arm; "
        f"every figure (means, stds, times) covers only the seeds both sides ran. "
        f"diff = mean of (B − A) over paired seeds, with its paired t 95% CI; paired t and Wilcoxon p "
        f"Holm-adjusted over the {len(t)} arms. Verdict: *differs* when the adjusted paired t p < {ALPHA}; "
        f"*equivalent within ±{at['margin']:g}* when the whole 95% CI lies inside ±{at['margin']:g} points; "
        f"else *inconclusive*.", "",
        "Verdicts: " + ", ".join(f"{v}: {n}" for v, n in verdicts.items()) + ". " + _wall(total_a, total_b), "",
        *(lambda line: [line, ""] if line else [])(_lengths(at)),
        md_table(t, {"task": "task", "model": "model", "successor_layers": "L_s",
                     **({"budget": "budget"} if at.get("by_budget") else {}), "arm": "arm",
                     "n_paired": "n paired", "left_out": "runs left out (unpaired seeds)",
                     "mean_a": f"mean {la}", "mean_b": f"mean {lb}",
                     "diff": f"diff {lb}−{la}", "ci": "95% CI of diff", "paired_p": "paired t p",
                     "paired_p_holm": "paired t p (Holm)", "wilcoxon_p": "Wilcoxon p",
                     "wilcoxon_p_holm": "Wilcoxon p (Holm)", "std_a": f"std {la}", "std_b": f"std {lb}",
                     "bf_p": "Brown-Forsythe p", "identical": "identical seeds (%)",
                     "wall_a": f"s/run {la}", "wall_b": f"s/run {lb}", "wall_ratio": "speed-up",
                     "verdict": "verdict"}),
    ]
    return "\n".join(lines)


def _wall(total_a: float, total_b: float) -> str:
    if not (np.isfinite([total_a, total_b]).all() and total_a > 0 and total_b > 0):
        return "Run time: not in both tables."
    return (f"Run time: {total_a:,.0f} s summed over A's runs, {total_b:,.0f} s over B's "
            f"(B is {total_a / total_b:.2f}x as fast).")


def compare(path_a: Path, path_b: Path, *, out: Path | None = None, margin: float = 1.0,
            metric: str = "test_accuracy", say=print) -> pd.DataFrame:
    if margin <= 0:
        raise HarnessError(f"margin must be > 0 points, got {margin}")
    table = compare_runs(load_runs(path_a, say), load_runs(path_b, say), label_a=label_of(path_a),
                         label_b=label_of(path_b), metric=metric, margin=margin)
    text = render(table, str(path_a), str(path_b))
    say(text)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"{table.attrs['label_b']}-vs-{table.attrs['label_a']}".replace("/", "_").replace(" ", "_")
        from harness.store.records import atomic_write_text

        atomic_write_text(out / f"{name}.md", text)
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
        say(f"written: {out / f'{name}.md'}, {out / f'{name}.csv'}")
    return table
