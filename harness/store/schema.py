"""The runs table's schema: the required columns, the one boolean parser, and `normalize_runs`,
which fills a runs table's optional columns and derives each row's arm (harness/arms.py). The
store's own table (harness/store/records.py) and a user's CSV (harness/store/user_runs.py) both
end here before any statistic reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.arms import finetune_layers
from harness.errors import HarnessError

REQUIRED = ("task", "strategy", "seed", "test_accuracy")


PERCENT_COLUMNS = ("test_accuracy", "test_macro_f1", "dev_accuracy", "dev_macro_f1")


def to_percent(frame: pd.DataFrame, columns) -> pd.DataFrame:
    for c in columns:
        if c in frame and len(frame):
            v = pd.to_numeric(frame[c], errors="coerce")
            finite = v[np.isfinite(v)]
            frame[c] = v * 100 if len(finite) and finite.between(0, 1).all() else v
    return frame


TRUE = {"true", "1", "1.0", "yes"}


FALSE = {"false", "0", "0.0", "no"}


MISSING = {"", "na", "nan", "null", "none", "n/a", "<na>"}  # empty cells, as pandas and R write them


def as_boolean(values: pd.Series, column: str = "degenerate") -> pd.Series:
    """A column of booleans as pandas' nullable "boolean" dtype: True/False (also 1/0, "true"/
    "false", "yes"/"no"), <NA> where missing (unknown). Raises HarnessError on any other value."""
    def one(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        s = str(v).strip().lower()
        if s in TRUE:
            return True
        if s in FALSE:
            return False
        if s in MISSING:
            return pd.NA
        raise HarnessError(f"{column} must be true/false (or empty for unknown), got {v!r}")
    return pd.Series([one(v) for v in values], index=values.index, dtype="boolean")


def normalize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill the optional columns of a runs table (docs/method.md, "The runs table") and derive `arm`.

    Input: one row per run with at least task, strategy, seed, test_accuracy.
    Output: a copy with every column of the store's runs table; successor_layers comes from a
    `finetune-k` name, else from the single finetune-k (k < predecessor) of its (task, model);
    predecessor_layers defaults to the largest k among finetune-k arms. Accuracy columns given as
    fractions become percent. `degenerate` (the run predicts one class on test) becomes a nullable
    boolean, <NA> where unknown (a missing column: unknown for every run; failed runs: <NA>).
    `budget` (student optimizer steps) is numeric, NaN where the run had none. Raises
    HarnessError on a missing required column or a degenerate value that is not a boolean.
    """
    missing = [c for c in REQUIRED if c not in runs.columns]
    if missing:
        raise HarnessError(f"runs table lacks required column(s) {', '.join(missing)}; "
                           f"need at least {', '.join(REQUIRED)}")
    r = runs.copy().reset_index(drop=True)
    defaults = {"model": "?", "variant": "", "status": "ok", "error": "", "sweep": "",
                "run_id": [f"run-{i}" for i in range(len(r))]}
    for col, val in defaults.items():
        if col not in r:
            r[col] = val
    for col in ("model", "variant", "error", "sweep", "status", "task", "strategy"):
        r[col] = r[col].fillna(defaults.get(col, "")).astype(str)
    r["status"] = r["status"].replace("", "ok")
    r["seed"] = pd.to_numeric(r["seed"], errors="coerce").astype("Int64")
    if "student_seed" not in r:
        r["student_seed"] = r["seed"]
    r["student_seed"] = pd.to_numeric(r["student_seed"], errors="coerce").fillna(r["seed"]).astype("Int64")
    derived = pd.Series([s if v == "" else f"{s}/{v}" for s, v in zip(r["strategy"], r["variant"])])
    r["arm"] = r["arm"].fillna(derived).astype(str) if "arm" in r else derived
    for col in ("successor_layers", "predecessor_layers"):
        r[col] = pd.to_numeric(r[col], errors="coerce") if col in r else np.nan
    k = r["strategy"].map(finetune_layers)
    for (task, model), idx in r.groupby(["task", "model"]).groups.items():
        lp = r.loc[idx, "predecessor_layers"].max()
        if not np.isfinite(lp):
            lp = k[idx].max()
        r.loc[idx, "predecessor_layers"] = r.loc[idx, "predecessor_layers"].fillna(lp)
        ls = r.loc[idx, "successor_layers"].fillna(k[idx])
        small = sorted({x for x in k[idx].dropna() if not np.isfinite(lp) or x < lp})
        if ls.isna().any() and len(small) == 1:
            ls = ls.fillna(small[0])
        elif ls.isna().any() and len(small) > 1:
            raise HarnessError(f"cannot infer successor_layers for {task}/{model} (finetune sizes "
                               f"{small or 'none'}); add a successor_layers column")
        r.loc[idx, "successor_layers"] = ls
    for col in ("test_macro_f1", "dev_accuracy", "dev_macro_f1", "best_epoch", "wall_seconds"):
        if col not in r:
            r[col] = np.nan
    r["budget"] = pd.to_numeric(r["budget"], errors="coerce").astype(float) if "budget" in r else np.nan
    r["degenerate"] = (as_boolean(r["degenerate"]) if "degenerate" in r
                       else pd.Series(pd.NA, index=r.index, dtype="boolean"))
    r.loc[r["status"] != "ok", "degenerate"] = pd.NA
    return to_percent(r, PERCENT_COLUMNS)
