"""The report's figures (docs/method.md, "Reports"). They only draw what harness.analysis.stats and harness.analysis.claims computed (held
by an analysis.Group); nothing is estimated here.

Every plot function takes one Group, the arm -> colour mapping and a path (the suffix is
replaced: each figure is written as .png and .svg) and returns a PlotInfo; a figure without data
is skipped with the reason in PlotInfo.skipped, never an exception.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.analysis.groups import Analysis, Group  # noqa: E402
from harness.analysis.stats import ASO_THRESHOLD, MIN_SPREAD_N  # noqa: E402
from harness.arms import THESEUS, family  # noqa: E402
from harness.arms import order as arm_order  # noqa: E402

ACC = "test accuracy (%)"
TITLE_SIZE = 10


@dataclass
class PlotInfo:
    """name: the figure's kind (a key of PLOTS); group: the group label; paths: files written;
    skipped: why none was."""
    name: str
    group: str
    paths: list[Path] = field(default_factory=list)
    skipped: str | None = None


def arm_colors(arms) -> dict[str, tuple]:
    """Fixed colour per arm, from the sorted arm names, identical in every figure."""
    arms = sorted(set(arms))
    cmap = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20")
    return {a: cmap(i % cmap.N) for i, a in enumerate(arms)}


def slug(text: str) -> str:
    """File-name-safe form of a group label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _save(fig, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".svg")]
    fig.savefig(out[0], dpi=130, bbox_inches="tight")
    fig.savefig(out[1], bbox_inches="tight")
    plt.close(fig)
    return out


def _tested(v: pd.DataFrame) -> pd.DataFrame:
    return v[v["n"] > 0]


def _label(row) -> str:
    return f"{row['arm']} (n={int(row['n'])}{'' if row['n'] >= 3 else ', not tested'})"


def plot_accuracy(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Test accuracy per arm, every run a dot (degenerate runs, predicting one class, as a cross)
    over a box; the predecessor mean +- std as a shaded band, the finetune-L_s mean dashed and the
    fine-tuning level (baseline mean - 2 sd) dotted."""
    info = PlotInfo("accuracy", group.label)
    v = _tested(group.variance)
    if v.empty:
        info.skipped = "no successful runs"
        return info
    ok = group.runs[group.runs["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(1.2 * len(v) + 2.5, 4.4))
    jitter = np.random.default_rng(0)
    for i, row in enumerate(v.itertuples()):
        r = ok[ok["arm"] == row.arm].dropna(subset=["test_accuracy"])
        x = r["test_accuracy"].to_numpy(float)
        deg = r["degenerate"].fillna(False).to_numpy(bool)
        ax.boxplot([x], positions=[i], widths=0.5, showfliers=False,
                   medianprops=dict(color="black"), boxprops=dict(color=colors[row.arm]))
        xs = i + jitter.uniform(-0.15, 0.15, len(x))
        ax.scatter(xs[~deg], x[~deg], s=18, color=colors[row.arm], alpha=0.85, zorder=3)
        ax.scatter(xs[deg], x[deg], s=30, marker="x", color="black", alpha=0.85, zorder=4,
                   label="degenerate run (one class)" if deg.any() and not any(
                       t.get_label().startswith("degenerate") for t in ax.collections[:-1]) else None)
    for role, kw in (("predecessor", dict(color="grey", alpha=0.2)), ("baseline", {})):
        r = v[v["role"] == role]
        if r.empty:
            continue
        r = r.iloc[0]
        if role == "predecessor":
            ax.axhspan(r["mean"] - np.nan_to_num(r["std"]), r["mean"] + np.nan_to_num(r["std"]),
                       label=f"predecessor {r['arm']}: mean ± std (n={r['n']})", **kw)
        else:
            ax.axhline(r["mean"], ls="--", color=colors[r["arm"]], lw=1,
                       label=f"baseline {r['arm']}: mean (n={r['n']})")
    if np.isfinite(group.level):
        ax.axhline(group.level, ls=":", color="black", lw=1,
                   label=f"fine-tuning level {group.level:.2f} (baseline mean − 2 sd)")
    ax.set_xticks(range(len(v)), [_label(r) for _, r in v.iterrows()], rotation=30, ha="right")
    ax.set_ylabel(ACC)
    ax.set_title(f"Test accuracy per arm, every seed a dot\n{group.label}", fontsize=TITLE_SIZE)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    info.paths = _save(fig, path)
    return info


def plot_profile(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Performance profile (rliable style): for each accuracy tau, the share of an arm's runs at
    or above tau; a curve to the right is better, a step shows a cluster of runs."""
    info = PlotInfo("profile", group.label)
    pr = group.profile
    if pr.empty:
        info.skipped = "no successful runs"
        return info
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for arm in arm_order(pr["arm"]):
        e = pr[pr["arm"] == arm]
        ax.step(e["threshold"], e["share"], where="post", color=colors[arm], lw=1.6,
                label=f"{arm} (n={int(e['n'].iloc[0])})")
    if np.isfinite(group.level):
        ax.axvline(group.level, ls=":", color="black", lw=1, label="fine-tuning level")
    ax.set_xlabel(f"{ACC} tau")
    ax.set_ylabel("share of runs with accuracy ≥ tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profile over runs\n{group.label}", fontsize=TITLE_SIZE)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    info.paths = _save(fig, path)
    return info


VERDICT_COLORS = {"supported": "tab:green", "contradicted": "tab:red", "equivalent": "tab:blue"}


def _verdict_color(verdict: str) -> str:
    return VERDICT_COLORS.get(verdict.split(" within")[0], "tab:grey")


def plot_claims(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Forest plot of the claims: every tested comparison's estimate with its interval, one panel
    per unit (points, percentage points, sd ratio on a log axis, ...), coloured by verdict; the
    no-difference line, and the +-margin band for equivalence claims."""
    info = PlotInfo("claims", group.label)
    c = group.claims_table()
    c = c[np.isfinite(c["estimate"].astype(float))] if not c.empty else c
    if c.empty:
        info.skipped = "no tested claim comparison"
        return info
    units = list(dict.fromkeys(c["unit"]))
    heights = [len(c[c["unit"] == u]) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(8.5, 0.32 * sum(heights) + 1.3 * len(units) + 0.6),
                             gridspec_kw=dict(height_ratios=[h + 1.5 for h in heights]), squeeze=False)
    for ax, unit in zip(axes[:, 0], units):
        d = c[c["unit"] == unit].iloc[::-1]
        ratio = unit == "sd ratio"
        for i, r in enumerate(d.itertuples()):
            lo, hi = r.ci_low, r.ci_high
            col = _verdict_color(r.verdict)
            if np.isfinite([lo, hi]).all():
                ax.plot([lo, hi], [i, i], color=col, lw=2)
            ax.plot(r.estimate, i, "o", color=col)
            if np.isfinite(r.margin):
                ax.fill_betweenx([i - 0.4, i + 0.4], -r.margin, r.margin, color="tab:blue", alpha=0.12, lw=0)
        ax.axvline(1.0 if ratio else 0.0, color="black", lw=0.8)
        if ratio:
            _ratio_axis(ax)
        ax.set_yticks(range(len(d)), [f"{r.claim}: {r.comparison} (n={r.n}, {r.ci_level:.0%} CI)"
                                      for r in d.itertuples()], fontsize=7)
        ax.set_xlabel({"points": "difference in test accuracy (points)",
                       "percentage points": "difference in rate (percentage points)"}.get(unit, unit), fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color=v, marker="o", lw=2) for v in (*VERDICT_COLORS.values(), "tab:grey")]
    fig.legend(handles, [*VERDICT_COLORS, "undecided / other"], loc="lower center", ncol=4, fontsize=7,
               bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"Claims: estimate and interval per comparison (shaded: equivalence margin)\n{group.label}",
                 fontsize=TITLE_SIZE)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    info.paths = _save(fig, path)
    return info


def plot_stability(group: Group, colors: dict, path: Path) -> PlotInfo:
    """The stability claim as two questions: per arm, the share of degenerate runs with its
    Clopper-Pearson interval (left), and the sd of the non-degenerate runs with its chi-square
    interval (right; "not estimable" below MIN_SPREAD_N such runs)."""
    info = PlotInfo("stability", group.label)
    v = _tested(group.variance)
    if v.empty:
        info.skipped = "no successful runs"
        return info
    v = v.iloc[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(v) + 1.8), sharey=True)
    for i, row in enumerate(v.itertuples()):
        if row.n_degenerate_known:
            rate, lo, hi = row.degenerate_rate, row.degenerate_ci_low, row.degenerate_ci_high
            left.errorbar(100 * rate, i, xerr=[[100 * (rate - lo)], [100 * (hi - rate)]], fmt="o",
                          color=colors[row.arm], capsize=4)
            left.text(101, i, f"{int(row.n_degenerate)}/{int(row.n_degenerate_known)}", va="center", fontsize=7)
        else:
            left.text(50, i, "unknown", va="center", ha="center", fontsize=7, color="grey")
        if row.n_degenerate_known and row.n_nondegenerate >= MIN_SPREAD_N:
            sd, lo, hi = row.std_nondegenerate, row.std_nondegenerate_ci_low, row.std_nondegenerate_ci_high
            right.errorbar(sd, i, xerr=[[sd - lo], [hi - sd]], fmt="o", color=colors[row.arm], capsize=4)
        else:
            right.text(0.02, i, f"not estimable ({int(row.n_nondegenerate)} non-degenerate runs)"
                       if row.n_degenerate_known else "degenerate runs unknown", va="center", fontsize=7,
                       color="grey", transform=right.get_yaxis_transform())
    left.set_yticks(range(len(v)), [_label(r) for _, r in v.iterrows()])
    left.set_xlim(-3, 112)
    left.set_xlabel("degenerate runs (%), 95% Clopper-Pearson")
    right.set_xlabel("sd of non-degenerate runs (points), 95% chi-square")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Stability: failures and spread of the working runs\n{group.label}", fontsize=TITLE_SIZE)
    fig.tight_layout()
    info.paths = _save(fig, path)
    return info


def _interval_plot(group, colors, path, name, col, lo, hi, xlabel, title) -> PlotInfo:
    info = PlotInfo(name, group.label)
    v = _tested(group.variance).dropna(subset=[col])
    if v.empty:
        info.skipped = f"no arm with a finite {col}"
        return info
    v = v.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(v) + 1.6))
    for i, row in enumerate(v.itertuples()):
        c, l, h = getattr(row, col), getattr(row, lo), getattr(row, hi)
        err = None if not np.isfinite([l, h]).all() else [[c - l], [h - c]]
        ax.errorbar(c, i, xerr=err, fmt="o", color=colors[row.arm], capsize=4)
    for role, ls in (("predecessor", ":"), ("baseline", "--")):
        r = v[v["role"] == role]
        if not r.empty and np.isfinite(r[col].iloc[0]):
            ax.axvline(r[col].iloc[0], ls=ls, color="grey", lw=1, label=f"{role} {r['arm'].iloc[0]}")
    ax.set_yticks(range(len(v)), [_label(r) for _, r in v.iterrows()])
    ax.set_xlabel(xlabel)
    ax.set_title(f"{title}\n{group.label}", fontsize=TITLE_SIZE)
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    info.paths = _save(fig, path)
    return info


def plot_forest(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Forest plot: mean test accuracy per arm with its 95% t interval (n in the labels)."""
    return _interval_plot(group, colors, path, "forest", "mean", "ci_low", "ci_high", ACC,
                          "Mean test accuracy per arm with 95% t interval")


def plot_significance(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Pairwise matrix (exploratory, every pair): raw p of the primary test (paired t, else Welch;
    a claim's comparisons carry their adjusted p in the claims table only) and ASO eps_min of the
    row arm over the column arm, each cell annotated; "n<3" where not tested."""
    info = PlotInfo("significance", group.label)
    t = group.pairwise
    if t.empty:
        info.skipped = "fewer than two arms"
        return info
    arms = arm_order(pd.concat([t["a"], t["b"]]))
    k = {a: i for i, a in enumerate(arms)}
    p, eps = np.full((len(arms),) * 2, np.nan), np.full((len(arms),) * 2, np.nan)
    untested = np.zeros_like(p, bool)
    for r in t.itertuples():
        i, j = k[r.a], k[r.b]
        p[i, j] = p[j, i] = r.primary_p
        eps[i, j], eps[j, i] = r.aso_eps_min, r.aso_eps_min_ba
        untested[i, j] = untested[j, i] = not r.tested
    size = 0.75 * len(arms) + 2.5
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size), layout="constrained")
    fmt_p = lambda x: f"{x:.3f}" if x >= 0.001 else "<.001"  # noqa: E731
    panels = [(axes[0], -np.log10(np.clip(p, 1e-4, 1)), p, "viridis", (0, 4), fmt_p,
               "raw p, paired t (else Welch): exploratory,\nno multiplicity adjustment", "-log10 p (colour)"),
              (axes[1], eps, eps, "RdBu_r", (0, 1), lambda x: f"{x:.2f}",
               f"ASO eps_min of row over column\n(< {ASO_THRESHOLD:g}: row almost stochastically better)", "eps_min")]
    for ax, color, val, cmap, (lo, hi), fmt, title, cbar in panels:
        im = ax.imshow(color, cmap=cmap, vmin=lo, vmax=hi)
        for i in range(len(arms)):
            for j in range(len(arms)):
                if i == j:
                    continue
                txt = "n<3" if untested[i, j] else fmt(val[i, j]) if np.isfinite(val[i, j]) else "n/a"
                rgb = im.cmap(im.norm(color[i, j]))[:3] if np.isfinite(color[i, j]) else (1, 1, 1)
                dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 0.5
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(arms)), arms, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(arms)), arms, fontsize=8)
        ax.set_title(title, fontsize=TITLE_SIZE)
        fig.colorbar(im, ax=ax, shrink=0.7, label=cbar)
    n = ", ".join(f"{a} {int(m)}" for a, m in zip(group.variance["arm"], group.variance["n"]))
    fig.suptitle(f"Pairwise comparisons, {group.label}\nn: {n}", fontsize=TITLE_SIZE - 1)
    info.paths = _save(fig, path)
    return info


def _with_arms(table: pd.DataFrame, group: Group) -> pd.DataFrame:
    """Attach arm / seed of the group's runs to an epochs or replacements table by run_id."""
    keep = group.runs[["run_id", "arm", "seed"]].assign(
        degenerate=group.runs["degenerate"].astype(object).where(group.runs["degenerate"].notna(), None))
    return table.drop(columns=[c for c in ("arm", "seed", "degenerate") if c in table]).merge(keep, on="run_id")


def plot_dev_curves(group: Group, colors: dict, path: Path, curves: pd.DataFrame | None = None) -> PlotInfo:
    """Dev accuracy of the evaluated model at every stored evaluation (records' `curve`), one panel
    per arm: each seed a thin line, the mean over seeds a thick one, the start of a successor phase a
    labelled dashed line. Runs without stored curves fall back to the per-epoch successor-only dev
    accuracy of the epochs table."""
    info = PlotInfo("dev_curves", group.label)
    c = None
    if curves is not None and not curves.empty and {"run_id", "step", "dev_accuracy"} <= set(curves.columns):
        c = curves[curves["run_id"].isin(set(group.runs["run_id"]))].dropna(subset=["dev_accuracy"])
        c = c.drop(columns=[x for x in ("arm", "seed") if x in c]).merge(group.runs[["run_id", "arm", "seed"]],
                                                                         on="run_id")
        x_col, x_label = "step", "optimizer step"
    if c is None or c.empty:
        ep = group.epochs
        if ep.empty or not {"run_id", "epoch", "dev_accuracy"} <= set(ep.columns):
            info.skipped = "no per-epoch data"
            return info
        c = _with_arms(ep, group).dropna(subset=["dev_accuracy"])
        x_col, x_label = "epoch", "epoch"
        if c.empty:
            info.skipped = "no per-epoch data"
            return info
    arms = arm_order(c["arm"])
    cols = min(4, len(arms))
    rows = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.2 * rows + 0.6), sharey=True, squeeze=False)
    for ax in axes.flat[len(arms):]:
        ax.set_visible(False)
    for ax, arm in zip(axes.flat, arms):
        e = c[c["arm"] == arm].sort_values(x_col)
        for i, (_, r) in enumerate(e.groupby("run_id")):
            ax.plot(r[x_col], r["dev_accuracy"], lw=0.7, alpha=0.45, color=colors.get(arm, "grey"),
                    marker="." if len(r) < 4 else None, label="one seed's run" if i == 0 else None)
        m = e.groupby(x_col)["dev_accuracy"].agg(["mean", "size"])
        m = m[m["size"] >= max(1, e["run_id"].nunique() // 2)]  # points most runs share
        ax.plot(m.index, m["mean"], lw=2.4, color=colors.get(arm, "grey"), label="mean over seeds")
        if "phase" in e and e["phase"].nunique() > 1:
            first = e.groupby("phase")[x_col].min().sort_values()
            for phase, x in first.iloc[1:].items():
                ax.axvline(x, ls="--", lw=0.9, color="grey", label=f"{phase} phase begins")
        n_points = int(e.groupby("run_id").size().median())
        ax.set_title(f"{arm}\n{e['run_id'].nunique()} seeds, {n_points} evaluations each", fontsize=TITLE_SIZE - 1)
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for row in axes:
        row[0].set_ylabel("dev accuracy (%)")
    fig.suptitle(f"Dev accuracy during training (every stored evaluation), {group.label}", fontsize=TITLE_SIZE)
    fig.tight_layout()
    info.paths = _save(fig, path)
    return info


def plot_replacements(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Replacements per module per epoch for theseus-binary arms (rows) and modules (columns):
    one line per run, degenerate runs (predicting one class on test) in red, runs whose flag is
    unknown dashed."""
    info = PlotInfo("replacements", group.label)
    rep = group.replacements
    if rep.empty or not {"run_id", "module", "epoch", "replaced"} <= set(rep.columns):
        info.skipped = "no replacement counts"
        return info
    rep = _with_arms(rep, group)
    rep = rep[rep["arm"].map(family) == "theseus-binary"]
    if rep.empty:
        info.skipped = "no replacement counts for theseus-binary arms"
        return info
    arms, modules = arm_order(rep["arm"]), sorted(rep["module"].unique())
    fig, axes = plt.subplots(len(arms), len(modules), squeeze=False, sharex=True, sharey=True,
                             figsize=(2.6 * len(modules) + 1, 2.4 * len(arms) + 0.8))
    for i, arm in enumerate(arms):
        for j, mod in enumerate(modules):
            ax = axes[i][j]
            d = rep[(rep["arm"] == arm) & (rep["module"] == mod)]
            if d.empty:  # e.g. the embeddings are not a replaceable module in this variant
                ax.text(0.5, 0.5, "not replaceable", ha="center", va="center", fontsize=8,
                        color="grey", transform=ax.transAxes)
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            for _, r in d.groupby("run_id"):
                r, deg = r.sort_values("epoch"), r["degenerate"].iloc[0]
                ax.plot(r["epoch"], r["replaced"], color="tab:red" if deg else "grey",
                        lw=1.6 if deg else 0.9, alpha=0.8, ls="--" if deg is None else "-")
            name = "embeddings" if mod == 0 else f"module {mod}"
            ax.set_title(f"{arm}: {name}" if j == 0 else name, fontsize=8)
            ax.grid(alpha=0.3)
            if i == len(arms) - 1:
                ax.set_xlabel("epoch")
        d = rep[rep["arm"] == arm]
        n, c = d["run_id"].nunique(), (d.drop_duplicates("run_id")["degenerate"] == True).sum()  # noqa: E712
        axes[i][0].set_ylabel(f"replacements per epoch\n(n={n}, {int(c)} degenerate)", fontsize=8)
    handles = [plt.Line2D([], [], color="tab:red", lw=1.6), plt.Line2D([], [], color="grey", lw=0.9)]
    fig.legend(handles, ["degenerate run (predicts one class)", "other run"], loc="lower center",
               ncol=2, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Successor-module replacements per epoch, {group.label}", fontsize=TITLE_SIZE)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    info.paths = _save(fig, path)
    return info


def plot_expected_max(group: Group, colors: dict, path: Path) -> PlotInfo:
    """Expected test accuracy of the best-by-dev run among n seeds (Dodge et al. 2019) +- its sd,
    per arm; dotted, the optimistic expected max of test accuracy itself (selecting by test)."""
    info = PlotInfo("expected_max", group.label)
    em = group.expected_max
    if em.empty:
        info.skipped = "no successful runs"
        return info
    fig, ax = plt.subplots(figsize=(8.5, 4.4))
    for arm in arm_order(em["arm"]):
        e = em[em["arm"] == arm]
        ax.plot(e["n_seeds"], e["expected_max"], marker="o", ms=3, color=colors[arm],
                label=f"{arm} (N={int(e['N'].iloc[0])})")
        ax.fill_between(e["n_seeds"], e["expected_max"] - e["expected_max_std"],
                        e["expected_max"] + e["expected_max_std"], color=colors[arm], alpha=0.12)
        ax.plot(e["n_seeds"], e["expected_max_test"], ls=":", lw=1, color=colors[arm])
    by = set(em["selected_by"])
    ax.set_xlabel("number of seeds n")
    ax.set_ylabel(f"expected {ACC} of the kept run")
    ax.set_title(f"Expected test accuracy of the best-by-{'dev' if by == {'dev'} else 'dev (else test)'} run "
                 f"among n seeds\n(dotted: best by test, optimistic)\n{group.label}", fontsize=TITLE_SIZE)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    info.paths = _save(fig, path)
    return info


PLOTS = {"accuracy": plot_accuracy, "profile": plot_profile, "claims": plot_claims,
         "stability": plot_stability, "forest": plot_forest, "significance": plot_significance,
         "replacements": plot_replacements, "expected_max": plot_expected_max}


def plot_expected_best(expected: pd.DataFrame, colors: dict, path: Path) -> PlotInfo:
    """Expected best dev accuracy (solid) and the expected test accuracy of that trial (dashed)
    against the number of trials k, one line per arm, one panel per task (tuning.expected_best_table)."""
    info = PlotInfo("tuning_expected_best", "")
    if expected.empty:
        info.skipped = "no tuning trials"
        return info
    tasks = sorted(expected["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = expected[expected["task"] == task]
        for arm, g in t.groupby("arm", sort=True):
            ax.plot(g["k"], g["expected_dev"], "-o", color=colors.get(arm), label=arm, ms=3)
            ax.plot(g["k"], g["expected_test"], "--", color=colors.get(arm), lw=1)
        ax.set_title(f"{task}: expected best of k trials", fontsize=9)
        ax.set_xlabel("trials k (learning rates)")
        ax.set_ylabel("accuracy (%): dev solid, test at best dev dashed", fontsize=7)
        ax.set_xticks(sorted(t["k"].unique()))
    axes[0][-1].legend(fontsize=6, loc="lower right")
    info.paths = _save(fig, Path(path))
    return info


def plot_all(analysis: Analysis, plots_dir: Path, curves: pd.DataFrame | None = None,
             parameters: pd.DataFrame | None = None, sequential: dict | None = None) -> list[PlotInfo]:
    """Every figure of every group under plots_dir as <group-slug>_<name>.png/.svg: the PLOTS, the
    dev curves from the stored curves, accuracy against parameters, the per-seed paired differences of
    the primaries (with a sequential study's repeated intervals), and a sequential study's looks."""
    colors = arm_colors(analysis.runs["arm"])
    out = []
    for g in analysis.groups:
        base = Path(plots_dir) / slug(g.label)
        out += [fn(g, colors, base.with_name(f"{base.name}_{name}")) for name, fn in PLOTS.items()]
        out.append(plot_dev_curves(g, colors, base.with_name(f"{base.name}_dev_curves"), curves))
        out.append(plot_parameters(g, colors, base.with_name(f"{base.name}_accuracy_vs_parameters"), parameters))
        decisions = looks = None
        if sequential is not None:
            decisions = _of_group(sequential.get("decisions"), g)
            looks = _of_group(sequential.get("look_states"), g)
        out.append(plot_paired(g, colors, base.with_name(f"{base.name}_paired"), decisions))
        if sequential is not None:
            out.append(plot_looks(g, base.with_name(f"{base.name}_looks"), looks, decisions))
    return out


# ---------------------------------------------------------------- pictures of the decisions

RATIO_TICKS = (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


def _ratio_axis(ax) -> None:
    """A log axis for sd ratios with a few plain labels (×0.5, ×1, ×2, ...) and no minor labels, so
    labels never overlap whatever the range."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [t for t in RATIO_TICKS if lo <= t <= hi] or [1]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"×{t:g}" for t in ticks]))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _of_group(table: pd.DataFrame | None, group: Group) -> pd.DataFrame | None:
    """The rows of a per-group table (a sequential decisions or looks frame) that belong to group."""
    if table is None or table.empty:
        return None
    keep = np.ones(len(table), bool)
    for col, val in (("task", group.task), ("model", group.model), ("successor_layers", group.successor_layers),
                     ("budget", group.budget)):
        if col in table:
            v = table[col]
            keep &= (v.isna() if isinstance(val, float) and np.isnan(val) else v == val).to_numpy()
    return table[keep]


def _primaries(group: Group, units=("points",)) -> pd.DataFrame:
    c = group.claims_table()
    return c[(c["role"] == "primary") & c["unit"].isin(units)] if not c.empty else c


def paired_differences(group: Group, a: str, b: str, max_look: float = np.inf) -> pd.DataFrame:
    """Per seed both arms ran successfully: seed and A − B in test accuracy (points); with a `look`
    column in the runs (a sequential study), only the seeds of looks up to max_look."""
    r = group.runs[(group.runs["status"] == "ok") & group.runs["test_accuracy"].notna()]
    if "look" in r and np.isfinite(max_look):
        r = r[r["look"] <= max_look]
    x = r[r["arm"] == a].groupby("seed")["test_accuracy"].mean()
    y = r[r["arm"] == b].groupby("seed")["test_accuracy"].mean()
    both = x.index.intersection(y.index)
    return pd.DataFrame({"seed": both, "difference": (x[both] - y[both]).to_numpy()})


def plot_paired(group: Group, colors: dict, path: Path, decisions: pd.DataFrame | None = None) -> PlotInfo:
    """Per primary mean comparison (claims 1, 3a, 3b), the seed-paired differences A − B (one dot per
    seed) with the interval its verdict read: the fixed design's interval (95%, 3b 90%, not adjusted;
    beside it the seed-only "this test set" interval when the claims table has one), or for a sequential
    study the repeated interval at the stopping look, over the seeds of the looks up to it."""
    info = PlotInfo("paired", group.label)
    prim = _primaries(group)
    prim = prim[np.isfinite(prim["estimate"].astype(float))] if len(prim) else prim
    if prim.empty:
        info.skipped = "no primary mean comparison was tested"
        return info
    dec = {} if decisions is None else {r.claim: r for r in decisions.itertuples()}
    fig, axes = plt.subplots(len(prim), 1, figsize=(8, 1.7 * len(prim) + 0.9), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, r in zip(axes[:, 0], prim.itertuples()):
        d = dec.get(r.claim)
        seq = d is not None and d.look and np.isfinite(d.rci_low)
        diffs = paired_differences(group, r.a, r.b, d.look if seq else np.inf)
        y = rng.uniform(0.55, 0.95, len(diffs))
        ax.scatter(diffs["difference"], y, s=16, color=colors.get(r.a, "tab:blue"), alpha=0.8, zorder=3,
                   label=f"one seed: {r.a} − {r.b} ({len(diffs)} seeds)")
        est, lo, hi = (d.estimate, d.rci_low, d.rci_high) if seq else (r.estimate, r.ci_low, r.ci_high)
        label = (f"repeated interval at look {d.look} ({d.seeds} seeds): {d.verdict}" if seq else
                 f"{r.ci_level:.0%} interval, not adjusted: {r.verdict} (adjusted p {r.p_adj:.3g})")
        col = _verdict_color(d.verdict if seq else r.verdict)
        if np.isfinite([lo, hi]).all():
            ax.plot([lo, hi], [0.25, 0.25], color=col, lw=3, solid_capstyle="butt", label=label)
        ax.plot(est, 0.25, "o", color=col, ms=7)
        lo2, hi2 = getattr(r, "ci_low_seed_only", np.nan), getattr(r, "ci_high_seed_only", np.nan)
        if not seq and np.isfinite([lo2, hi2]).all() and (lo2, hi2) != (lo, hi):
            ax.plot([lo2, hi2], [0.1, 0.1], color="grey", lw=1.5, label="this test set only (seed-only interval)")
        ax.axvline(0, color="black", lw=0.8)
        if np.isfinite(r.margin) and r.margin:
            ax.axvspan(-r.margin, r.margin, color="tab:blue", alpha=0.08, lw=0,
                       label=f"±{r.margin:g} point equivalence margin")
        ax.set_yticks([])
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"claim {r.claim}: {r.a} − {r.b}", fontsize=TITLE_SIZE - 1, loc="left")
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("A − B, test accuracy (points); positive: A higher")
    fig.suptitle(f"Primary comparisons: per-seed paired differences and the verdict's interval\n{group.label}",
                 fontsize=TITLE_SIZE)
    fig.tight_layout()
    info.paths = _save(fig, path)
    return info


def plot_looks(group: Group, path: Path, looks: pd.DataFrame | None, decisions: pd.DataFrame | None) -> PlotInfo:
    """A sequential study's primaries look by look: top, the estimate A − B and its repeated interval
    at each look it was examined (an interval clear of 0 is a crossing; an arrow marks an interval cut
    at the panel's edge); bottom, the test's p against the boundary it had to reach (log scale).
    looks: one row per (claim, look) examined (pipeline's look_states); decisions: the final ones."""
    info = PlotInfo("looks", group.label)
    if looks is None or looks.empty:
        info.skipped = "no sequential looks"
        return info
    claims = list(dict.fromkeys(looks["claim"]))
    final = {} if decisions is None else {r.claim: r for r in decisions.itertuples()}
    fig, axes = plt.subplots(2, len(claims), figsize=(3.3 * len(claims) + 0.6, 6.2), squeeze=False,
                             gridspec_kw=dict(height_ratios=[3, 2]))
    for j, claim in enumerate(claims):
        top, bottom = axes[0, j], axes[1, j]
        t = looks[looks["claim"] == claim].sort_values("look")
        f = final.get(claim)
        unit = t["unit"].iloc[0] if "unit" in t else "points"
        no_info = f is not None and ("no failures or only failures" in str(f.note) or f.verdict == "no information")
        x = t["seeds"].to_numpy(float)
        est = t["estimate"].to_numpy(float)
        lo, hi = t["rci_low"].to_numpy(float), t["rci_high"].to_numpy(float)
        finite_est = est[np.isfinite(est)]
        width = np.nanmax(np.abs(np.r_[hi[1:] - est[1:], est[1:] - lo[1:]])) if len(t) > 1 and \
            np.isfinite(np.r_[hi[1:], lo[1:]]).any() else 3.0
        half = max(2.0, 1.5 * float(np.nan_to_num(width, nan=3.0)), 1.5 * np.max(np.abs(finite_est), initial=0))
        ylo, yhi = -half, half
        if no_info:
            top.text(0.5, 0.5, "no information\n" + textwrap.fill(str(f.note).split(";")[0], 28), ha="center", va="center",
                     fontsize=8, transform=top.transAxes, color="grey")
        else:
            for xi, e, l, h in zip(x, est, lo, hi):
                if np.isfinite([l, h]).all():
                    top.plot([xi, xi], [max(l, ylo), min(h, yhi)], color="tab:blue", lw=2)
                    for end, edge, mark in ((l, ylo, "v"), (h, yhi, "^")):
                        if (end < edge) if mark == "v" else (end > edge):
                            top.plot(xi, edge, mark, color="tab:blue", ms=6)
                top.plot(xi, e, "o", color="black", ms=5)
            top.set_ylim(ylo, yhi)
        top.axhline(0, color="black", lw=0.8)
        if unit == "points":
            top.axhspan(-1, 1, color="tab:blue", alpha=0.08, lw=0)
        verdict = f.verdict if f is not None else "open"
        top.set_title(f"claim {claim}\n{verdict}" + (f" at look {f.look}" if f is not None and f.look else ""),
                      fontsize=8, color=_verdict_color(verdict))
        top.set_xticks(x)
        top.grid(alpha=0.3)
        p, bound = t["p"].to_numpy(float), t["bound"].to_numpy(float)
        ok = np.isfinite(p) & (p > 0)
        bottom.plot(x[ok], p[ok], "o-", color="black", ms=4, label="p of the test")
        okb = np.isfinite(bound) & (bound > 0)
        bottom.plot(x[okb], bound[okb], "s--", color="tab:red", ms=4, label="boundary (p needed)")
        bottom.set_yscale("log")
        bottom.set_xticks(x)
        bottom.set_xlabel("seeds per arm at the look")
        bottom.grid(alpha=0.3)
    axes[0, 0].set_ylabel("A − B and repeated interval\n(points or pp; shaded ±1)")
    axes[1, 0].set_ylabel("p (log scale)")
    axes[1, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Sequential looks: estimate and repeated interval at each look, against the boundary\n"
                 f"{group.label}", fontsize=TITLE_SIZE)
    fig.tight_layout()
    info.paths = _save(fig, path)
    return info


def plot_parameters(group: Group, colors: dict, path: Path, parameters: pd.DataFrame | None) -> PlotInfo:
    """Mean test accuracy (95% t interval) per arm against its parameter count (embeddings + the
    layers it keeps + head; harness.report.parameters), arms of one size side by side, and per size
    how much of it the embeddings are."""
    info = PlotInfo("accuracy_vs_parameters", group.label)
    if parameters is None or parameters.empty:
        info.skipped = "no parameter counts (the model checkpoint the records name is not on this machine)"
        return info
    p = parameters[(parameters["task"] == group.task) & (parameters["model"] == group.model)].set_index("layers")
    v = _tested(group.variance)
    rows = []
    for r in v.itertuples():
        k = group.predecessor_layers if r.role == "predecessor" else group.successor_layers
        if np.isfinite(k) and int(k) in p.index:
            rows.append((r, int(k)))
    if not rows:
        info.skipped = "no arm with a parameter count"
        return info
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    sizes = sorted({k for _, k in rows})
    span = (p.loc[sizes, "parameters"].max() - p.loc[sizes, "parameters"].min()) / 1e6 or 1.0
    for k in sizes:
        at = [r for r, kk in rows if kk == k]
        x0 = p.loc[k, "parameters"] / 1e6
        for i, r in enumerate(at):
            x = x0 + span * 0.012 * (i - (len(at) - 1) / 2)
            err = [[r.mean - r.ci_low], [r.ci_high - r.mean]] if np.isfinite([r.ci_low, r.ci_high]).all() else None
            ax.errorbar(x, r.mean, yerr=err, fmt="o", color=colors.get(r.arm, "grey"), capsize=3, ms=5,
                        label=f"{r.arm} (n={int(r.n)})")
        e = p.loc[k]
        ax.annotate(f"{k} layers: {e['parameters'] / 1e6:.1f}M\n(embeddings {100 * e['embeddings'] / e['parameters']:.0f}%)",
                    (x0, 0), xycoords=("data", "axes fraction"), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=7, color="dimgrey")
    if len(sizes) > 1:
        small, big = p.loc[sizes[0], "parameters"], p.loc[sizes[-1], "parameters"]
        ax.set_title(f"Test accuracy against parameters: {sizes[-1]} -> {sizes[0]} layers keeps "
                     f"{100 * small / big:.0f}% of the parameters\n{group.label}", fontsize=TITLE_SIZE)
    else:
        ax.set_title(f"Test accuracy against parameters\n{group.label}", fontsize=TITLE_SIZE)
    ax.set_xlabel(f"parameters (millions; embeddings + layers kept + head), from {Path(p['source'].iloc[0].split(' in ')[-1].split(' of ')[-1]).name}")
    ax.set_ylabel(f"mean {ACC}, 95% t interval")
    ax.margins(x=0.15, y=0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    info.paths = _save(fig, path)
    return info
