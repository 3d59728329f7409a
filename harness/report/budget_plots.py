"""Figures of the budget axis. They only draw what harness.analysis.budget computed (and the runs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.plots import PlotInfo, _save  # noqa: E402

LEGEND = "mean and 95% CI per arm; dots = runs; collapsed runs (one class) as ▼ at the floor with their count"
FLOOR_PAD = 0.08  # share of the working runs' range left below the lowest working run (the floor row)


def working_range(runs: pd.DataFrame) -> tuple[float, float] | None:
    """(low, high) of test accuracy over the runs that did not collapse (degenerate false or
    unknown) and the runs without a budget (the predecessor's line): the range the y axis shows, so
    a collapsed run at the majority-class rate does not squeeze the working runs into a sliver.
    None when no such run has a finite accuracy."""
    ok = runs[runs["status"] == "ok"]
    deg = ok["degenerate"].fillna(False).astype(bool) if "degenerate" in ok else pd.Series(False, index=ok.index)
    y = pd.to_numeric(ok.loc[~deg, "test_accuracy"], errors="coerce").dropna().to_numpy(float)
    if not len(y):
        return None
    return float(y.min()), float(y.max())


def plot_accuracy_vs_budget(runs: pd.DataFrame, summary: pd.DataFrame, colors: dict, path: Path,
                            label: str, ax=None) -> PlotInfo:
    """Test accuracy against budget (log x) for one group: per arm the mean and its 95% t band,
    every run a faint dot (jittered along x within the arm's slot); the predecessor (trained at its
    own fixed length) as a dashed line. The y axis spans the working runs (working_range); collapsed
    (degenerate) runs are drawn as ▼ on a floor row at the bottom of the axis with their count per arm
    and budget; a budget where every run of an arm collapsed has no mean point, and a mean pulled
    below the floor by them leaves the axis downwards.

    runs: the group's tidy runs (one task, model, successor size; accuracy in percent, as
    harness.analysis.stats.normalize_runs gives it); summary: budget.budget_summary of the same runs. With
    `ax` the panel is drawn there and nothing is saved.
    """
    info = PlotInfo("accuracy_vs_budget", label)
    if summary.empty:
        info.skipped = "no runs with a budget"
        return info
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
    arms = list(dict.fromkeys(summary["arm"]))
    ok = runs[(runs["status"] == "ok") & runs["budget"].notna()]
    rng = np.random.default_rng(0)
    span = working_range(runs)
    lo, hi = span if span else (float(np.nanmin(summary["mean"])), float(np.nanmax(summary["mean"])))
    pad = FLOOR_PAD * max(hi - lo, 1.0)
    floor = lo - pad  # the row of collapsed runs, below every working run
    collapsed = 0
    for i, arm in enumerate(arms):
        s = summary[summary["arm"] == arm].sort_values("budget")
        s = s[~((s["n"] > 0) & (s["degenerate"] >= s["n"]))]  # every run collapsed: the floor's count says it
        shift = 1 + 0.035 * (i - (len(arms) - 1) / 2)  # arms side by side on the log axis
        color = colors.get(arm, "grey")
        ax.plot(s["budget"] * shift, s["mean"], "-o", color=color, ms=4, lw=1.4, label=arm)
        ax.fill_between(s["budget"] * shift, s["ci_low"], s["ci_high"], color=color, alpha=0.15, lw=0)
        r = ok[ok["arm"] == arm]
        x = r["budget"].to_numpy(float) * shift * np.exp(rng.uniform(-0.01, 0.01, len(r)))
        y = r["test_accuracy"].to_numpy(float)
        deg = r["degenerate"].fillna(False).astype(bool).to_numpy() if "degenerate" in r else np.zeros(len(r), bool)
        ax.scatter(x[~deg], y[~deg], s=9, color=color, alpha=0.35, lw=0)
        collapsed += int(deg.sum())
        for b in sorted(set(r["budget"].to_numpy(float)[deg])):  # collapsed: one marker and a count per budget
            k = int(((r["budget"].to_numpy(float) == b) & deg).sum())
            ax.scatter([b * shift], [floor], s=30, color=color, marker="v", lw=0, clip_on=False, zorder=3)
            ax.annotate(f"{k}", (b * shift, floor), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=6, color=color)
    fixed = runs[(runs["status"] == "ok") & runs["budget"].isna()]  # the predecessor: its own length
    for arm, acc in fixed.groupby("arm")["test_accuracy"]:
        ax.axhline(acc.mean(), color="black", ls="--", lw=0.9, alpha=0.7)
        ax.annotate(f"{arm} (own length), mean {acc.mean():.1f}", (0.01, acc.mean()),
                    xycoords=("axes fraction", "data"), textcoords="offset points", xytext=(0, 3), fontsize=7)
    budgets = sorted(summary["budget"].unique())
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([f"{b:,}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("budget (student optimizer steps, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{label}: {LEGEND}" if own else label, fontsize=9)
    ax.set_ylim(floor - pad / 2, hi + 1.5 * pad)  # room above the predecessor's line for its label
    if collapsed:
        ax.axhline(floor + pad / 2, color="grey", lw=0.5, ls=":")
        ax.annotate("collapsed runs (count)", (0.99, floor), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=6, color="grey", textcoords="offset points", xytext=(0, 4))
    ax.grid(alpha=0.3)
    if own:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
        info.paths = _save(fig, Path(path))
    return info


def plot_budget_panels(panels: list[tuple[str, pd.DataFrame, pd.DataFrame]], colors: dict, path: Path) -> PlotInfo:
    """The accuracy-against-budget figure of several groups (e.g. tasks) side by side.
    panels: [(label, runs, summary), ...]."""
    info = PlotInfo("accuracy_vs_budget_panels", ", ".join(p[0] for p in panels))
    panels = [p for p in panels if not p[2].empty]
    if not panels:
        info.skipped = "no runs with a budget"
        return info
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), squeeze=False)
    for ax, (label, runs, summary) in zip(axes[0], panels):
        plot_accuracy_vs_budget(runs, summary, colors, path, label, ax=ax)
    fig.suptitle(f"Test accuracy against training budget: {LEGEND}", fontsize=10)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="lower center", ncol=min(len(handles), 4))
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(handles) - 1) // 4), 1, 0.96))
    info.paths = _save(fig, Path(path))
    return info


def plot_dev_curves_by_fraction(curves: pd.DataFrame, colors: dict, path: Path, label: str) -> PlotInfo:
    """Dev accuracy (%) of the evaluated model against the fraction of the run's steps, one panel
    per budget, the mean curve per arm (runs of one arm share their evaluation points).
    curves: records.curves_table rows of the group's runs, dev_accuracy in percent."""
    info = PlotInfo("dev_curves_by_budget", label)
    c = curves.dropna(subset=["budget", "fraction", "dev_accuracy"]) if not curves.empty else curves
    if c.empty:
        info.skipped = "no dev curves with a budget"
        return info
    budgets = sorted(c["budget"].unique())
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.6), sharey=True, squeeze=False)
    for ax, b in zip(axes[0], budgets):
        cb = c[c["budget"] == b]
        for arm, g in cb.groupby("arm", sort=True):
            m = g.groupby(g["fraction"].round(3))["dev_accuracy"].mean()
            ax.plot(m.index, m.to_numpy(), "-", color=colors.get(arm, "grey"), lw=1.2, label=arm)
        ax.set_title(f"{int(b):,} steps", fontsize=9)
        ax.set_xlabel("fraction of the run's steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev accuracy (%)")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Dev accuracy of the evaluated model during training, mean over seeds, {label}", fontsize=10)
    info.paths = _save(fig, Path(path))
    return info
