"""Figures of the budget axis. They only draw what harness.analysis.budget computed (and the runs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.plots import PlotInfo, _save  # noqa: E402

LEGEND = "mean and 95% CI per arm; dots = runs, x = degenerate (one class)"


def plot_accuracy_vs_budget(runs: pd.DataFrame, summary: pd.DataFrame, colors: dict, path: Path,
                            label: str, ax=None) -> PlotInfo:
    """Test accuracy against budget (log x) for one group: per arm the mean and its 95% t band,
    every run a faint dot (jittered along x within the arm's slot), degenerate runs drawn as x; the
    predecessor (trained at its own fixed length) as a dashed line.

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
    for i, arm in enumerate(arms):
        s = summary[summary["arm"] == arm].sort_values("budget")
        shift = 1 + 0.035 * (i - (len(arms) - 1) / 2)  # arms side by side on the log axis
        color = colors.get(arm, "grey")
        ax.plot(s["budget"] * shift, s["mean"], "-o", color=color, ms=4, lw=1.4, label=arm)
        ax.fill_between(s["budget"] * shift, s["ci_low"], s["ci_high"], color=color, alpha=0.15, lw=0)
        r = ok[ok["arm"] == arm]
        x = r["budget"].to_numpy(float) * shift * np.exp(rng.uniform(-0.01, 0.01, len(r)))
        y = r["test_accuracy"].to_numpy(float)
        deg = r["degenerate"].fillna(False).astype(bool).to_numpy() if "degenerate" in r else np.zeros(len(r), bool)
        ax.scatter(x[~deg], y[~deg], s=9, color=color, alpha=0.35, lw=0)
        ax.scatter(x[deg], y[deg], s=22, color=color, alpha=0.8, marker="x", lw=1.0)
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
    ax.margins(y=0.08)  # room above the predecessor's line for its label
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
