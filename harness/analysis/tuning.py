"""The tuning stage of a sweep: the same learning-rate trials for every arm, on tuning seeds.

A verdict reached at one shared learning rate holds at that rate only: the method under test and
the baseline may have different best rates (Dodge et al. 2019: which of two models looks better can
flip with the number of trials). A sweep with a `[tuning]` table therefore runs, before its
evaluation seeds, every student arm at every learning rate of one grid on its tuning seeds (disjoint
from the evaluation seeds: selecting and evaluating on the same seeds inflates the winner,
Bouthillier et al. 2021), selects each arm's rate from its dev accuracy over the tuning seeds by
a one-standard-error rule (the declared rate stays unless another beats it by more than the noise of
that difference: a choice inside its own noise picks noise), and runs the evaluation seeds at the selected rate; the declared (shared) setting runs on the
evaluation seeds too, as the sensitivity row.

Pure functions of a sweep's arms and of the runs table (torch-free): `lr_setting` says which run
fields carry an arm's learning rate, `effective_lr` reads it back from a run, `select_settings`
picks each arm's rate, `annotate` adds the `stage`, `selected` and `shared` columns to a runs table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUP = ["task", "model", "successor_layers", "budget", "arm"]


def arm_name(arm: dict, successor_layers: int, default_variant: str = "") -> str:
    """The runs table's name of a declared student arm ("finetune-3", "theseus-add/seed")."""
    from harness import arms

    variant = arm.get("variant", "") if arm["strategy"] == "finetune" else arm.get("variant") or default_variant
    return arms.name(*arms.label(arm["strategy"], variant, successor_layers))


def lr_setting(arm: dict, lr: float, declared: float) -> dict:
    """The run fields that train `arm` at learning rate `lr` and change nothing else.

    Every strategy has an `lr` option (0 = the run's lr) that sets its student's rate and nothing
    else: the predecessor trains at the run's lr (or `predecessor_lr`), so every trial of a seed
    starts from the same predecessor. `declared`: the arm's rate as declared (its resolved `lr`
    option, else the run's lr). At the declared rate nothing changes, so that run keeps the declared
    run's key (and a study's record at that setting is reused)."""
    if lr == declared:
        return {}
    return {"options": {**arm.get("options", {}), "lr": lr}}


def effective_lr(config: dict) -> float:
    """The learning rate a stored run trained its student at: its strategy's `lr` option when set
    (two-stage), else the run's lr (strategies.Context.lr reads it the same way)."""
    return float((config.get("options") or {}).get("lr") or config.get("lr"))


def preference(lrs, declared: float | None) -> np.ndarray:
    """The selection rule's order among rates whose dev scores tie (or whose difference is within its
    noise): the declared (shared) rate first, then the smaller rate. Rank 0 is the most preferred. Used
    by select_settings and by expected_best, so the two never break a tie differently, and never by a
    test score."""
    lrs = [float(x) for x in lrs]
    order = sorted(range(len(lrs)), key=lambda i: (declared is None or not np.isclose(lrs[i], declared), lrs[i]))
    ranks = np.empty(len(lrs), dtype=int)
    ranks[order] = np.arange(len(lrs))
    return ranks


def one_se_choice(dev_by_seed: pd.DataFrame, declared: float | None) -> tuple[float, dict]:
    """The one-standard-error rule over a (tuning seed x rate) table of dev accuracies.

    The candidate is the rate with the best mean dev (ties: `preference`). It replaces the declared
    rate only when its mean dev beats the declared rate's by more than one standard error of their
    paired difference (paired by tuning seed: the same seed shares the predecessor and the data order),
    sd(d) / sqrt(n); a difference inside its own noise keeps the declared rate. Without a declared rate
    in the table the candidate is chosen. Returns (rate, why: candidate, gain and its se in points)."""
    means = dev_by_seed.mean()
    ranks = preference(means.index, declared)
    best = max(means.max(), -np.inf)
    tied = [i for i, m in enumerate(means) if np.isclose(m, best, rtol=0, atol=1e-12)]
    candidate = float(means.index[min(tied, key=lambda i: ranks[i])])
    shared = next((float(x) for x in means.index if declared is not None and np.isclose(x, declared)), None)
    if shared is None or np.isclose(candidate, shared):
        return candidate, {"candidate": candidate, "gain": np.nan, "gain_se": np.nan}
    d = (dev_by_seed[candidate] - dev_by_seed[shared]).to_numpy(float) * 100
    gain = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else np.inf
    chosen = candidate if gain > se else shared
    return chosen, {"candidate": candidate, "gain": gain, "gain_se": se}


def select_settings(runs: pd.DataFrame, lrs: list[float], tuning_seeds: list[int],
                    declared: dict[str, float] | None = None) -> pd.DataFrame:
    """Each arm's selected learning rate from its tuning runs.

    runs: the runs table (columns task, model, successor_layers, budget, arm, seed, lr, status,
    dev_accuracy), predecessor rows and evaluation seeds included or not: only ok runs on
    `tuning_seeds` at a grid rate count. declared: arm -> its declared (shared) rate. Returns one row per
    (task, model, successor_layers, budget, arm): lr (selected by `one_se_choice`: the declared rate
    unless the best rate beats it on dev by more than one standard error of the paired difference; ties
    by `preference`, never by test), candidate (the best mean dev), gain and gain_se (candidate minus
    declared, points), dev_mean (the selected rate's mean dev), trials (grid rates with a run on every
    tuning seed), complete (every rate on every tuning seed), at_edge (the selected rate is the grid's
    smallest or largest: the grid may have been too narrow), and dev_by_lr (rate -> mean dev).
    """
    cols = GROUP + ["lr", "candidate", "gain", "gain_se", "dev_mean", "trials", "complete", "at_edge", "dev_by_lr"]
    grid = sorted(float(x) for x in lrs)
    tune = runs[runs["seed"].isin(tuning_seeds) & (runs["status"] == "ok") & runs["lr"].isin(grid)]
    tune = tune[~tune["arm"].str.fullmatch(r"finetune-(\d+)") | (tune["successor_layers"] != tune["predecessor_layers"])]
    rows = []
    for key, g in tune.groupby(GROUP, dropna=False, sort=True):
        table = g.pivot_table(index="seed", columns="lr", values="dev_accuracy", aggfunc="mean")
        full = table.loc[:, table.notna().sum() == len(tuning_seeds)].dropna()
        if full.empty:
            continue
        arm = dict(zip(GROUP, key))["arm"]
        lr, why = one_se_choice(full, (declared or {}).get(arm))
        per_lr = g.groupby("lr")["dev_accuracy"].mean()
        rows.append({**dict(zip(GROUP, key)), "lr": lr, **why, "dev_mean": float(full[lr].mean()),
                     "trials": full.shape[1], "complete": full.shape[1] == len(grid),
                     "at_edge": lr in (grid[0], grid[-1]),
                     "dev_by_lr": {float(k): float(v) for k, v in per_lr.items()}})
    return pd.DataFrame(rows, columns=cols)


def annotate(runs: pd.DataFrame, selected: pd.DataFrame, tuning_seeds: list[int],
             shared_lr: dict[str, float]) -> pd.DataFrame:
    """The runs table with `stage` ("tune" on a tuning seed, else "evaluate"), `selected` (an
    evaluation run at its arm's selected rate) and `shared` (an evaluation run at its arm's declared
    rate, `shared_lr`: arm -> rate); the predecessor's runs are both (no arm of theirs is tuned).
    One run may be both selected and shared: where tuning selects the declared rate, the two
    settings are one run."""
    out = runs.copy()
    out["stage"] = np.where(out["seed"].isin(tuning_seeds), "tune", "evaluate")
    chosen = {tuple(r[c] for c in GROUP): r["lr"] for _, r in selected.iterrows()}
    is_pred = (out["successor_layers"] == out["predecessor_layers"]) & out["arm"].str.startswith("finetune-")
    evaluate = out["stage"] == "evaluate"
    sel = [bool(p) or chosen.get(tuple(row[c] for c in GROUP)) == row["lr"]
           for p, (_, row) in zip(is_pred, out.iterrows())]
    out["selected"] = evaluate & np.array(sel, dtype=bool)
    out["shared"] = evaluate & (is_pred | np.array([shared_lr.get(a) == lr for a, lr in zip(out["arm"], out["lr"])]))
    return out


def trials_table(runs: pd.DataFrame, lrs: list[float], tuning_seeds: list[int]) -> pd.DataFrame:
    """One row per trial (task, model, successor_layers, budget, arm, lr): dev and test accuracy in
    percent (the runs table holds fractions) averaged over the tuning seeds, and n_seeds, from the ok
    tuning runs at a grid rate (the predecessor's rows left out)."""
    grid = sorted(float(x) for x in lrs)
    tune = runs[runs["seed"].isin(tuning_seeds) & (runs["status"] == "ok") & runs["lr"].isin(grid)]
    tune = tune[~(tune["arm"].str.startswith("finetune-") & (tune["successor_layers"] == tune["predecessor_layers"]))]
    out = tune.groupby(GROUP + ["lr"], dropna=False, sort=True).agg(
        dev=("dev_accuracy", "mean"), test=("test_accuracy", "mean"), n_seeds=("seed", "nunique")).reset_index()
    out[["dev", "test"]] *= 100
    return out


def expected_best(dev, test, k: int, lrs=None, declared: float | None = None) -> tuple[float, float]:
    """Expected best dev score among k trials, and the expected test score of that trial.

    dev, test: shape (N,), one score per trial (here: the mean over the tuning seeds). The
    estimator of Dodge et al. (2019, "Show your work"): k trials drawn with replacement from the N
    observed ones, so P(the best is the i-th smallest by dev) = (i/N)^k - ((i-1)/N)^k, and
    E[best dev] = sum_i P_i dev_(i), E[test at best dev] = sum_i P_i test_(i). Known bias: sampling
    with replacement repeats trials, so for k near N it underestimates the expected best of k distinct
    trials (Tang et al. 2020 discuss it and an unbiased alternative); at k = N it is not the best
    observed trial but below it. Ties in dev follow the selection rule (`preference` of the trials'
    rates `lrs` and the `declared` one: the preferred trial ranks last among its ties, so it is the one
    kept), never the test score; without `lrs`, ties keep their given order."""
    dev, test = np.asarray(dev, float), np.asarray(test, float)
    n = len(dev)
    if n == 0 or k < 1:
        return np.nan, np.nan
    rank = preference(lrs, declared) if lrs is not None else np.arange(n)[::-1]
    order = np.lexsort((-rank, dev))
    i = np.arange(1, n + 1)
    p = (i / n) ** k - ((i - 1) / n) ** k
    return float(p @ dev[order]), float(p @ test[order])


def expected_best_table(trials: pd.DataFrame, declared: dict[str, float] | None = None) -> pd.DataFrame:
    """expected_best for k = 1..N trials, per (task, model, successor_layers, budget, arm):
    columns GROUP + k, expected_dev, expected_test, N. declared: arm -> its declared rate (ties)."""
    rows = []
    for key, g in trials.groupby(GROUP, dropna=False, sort=True):
        arm = dict(zip(GROUP, key))["arm"]
        for k in range(1, len(g) + 1):
            d, t = expected_best(g["dev"], g["test"], k, g["lr"].to_numpy(), (declared or {}).get(arm))
            rows.append({**dict(zip(GROUP, key)), "k": k, "expected_dev": d, "expected_test": t, "N": len(g)})
    return pd.DataFrame(rows, columns=GROUP + ["k", "expected_dev", "expected_test", "N"])
