"""A user's runs table (`analyze`, `compare`): read it and check it row by row before any statistic.

Every problem is one HarnessError naming the file, the row (data rows counted from 1, the header
not counted) and the column: a value that is not a number, a metric outside its range, a missing
required value, the same run twice. Nothing is dropped or coerced silently.

The table: one row per run with at least `task, strategy, seed, test_accuracy`; optional columns
are checked when present (see COLUMNS); other columns pass through as pandas reads them.
Accuracy-like metrics are fractions in [0, 1] or percent in [0, 100], one scale per column.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.store.schema import FALSE, MISSING, REQUIRED, TRUE
from harness.training.diagnostics import KAPPA_FAILED, kappa_from_counts

# column -> (kind, minimum); kinds: text (non-empty where required), int, number, metric (fraction or
# percent), fraction ([0, 1] only), bool (true/false/1/0), status (ok/failed)
COLUMNS = {
    "task": ("text", None), "strategy": ("text", None), "seed": ("int", None),
    "student_seed": ("int", None), "successor_layers": ("int", 1), "predecessor_layers": ("int", 1),
    "budget": ("int", 1), "steps": ("int", 0), "best_epoch": ("int", 0), "epochs": ("int", 0),
    "test_accuracy": ("metric", None), "test_macro_f1": ("metric", None),
    "dev_accuracy": ("metric", None), "dev_macro_f1": ("metric", None),
    "max_class_share": ("fraction", None), "wall_seconds": ("number", 0),
    "degenerate": ("bool", None), "still_improving": ("bool", None), "status": ("status", None),
}
STATUSES = ("ok", "failed")


def read_runs_csv(path: Path) -> pd.DataFrame:
    """Read and check a runs CSV; returns the table with the checked columns typed (numbers as
    float, whole numbers as int64, booleans as bool, as pandas would). Raises HarnessError (one
    line) on the first problem."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"runs CSV {path} not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        header = pd.read_csv(path, nrows=1, header=None, dtype=str, keep_default_na=False)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        typed = pd.read_csv(path)  # pandas' own typing, for the columns not checked here
    except pd.errors.EmptyDataError:
        raise HarnessError(f"{path.name} is empty: a runs CSV needs a header row and one row per run") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path} as CSV: {_first_line(exc)}") from None
    names = [str(x).strip() for x in header.iloc[0]] if len(header) else []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise HarnessError(f"{path.name}: column(s) {', '.join(repeated)} appear more than once in the header")
    return check_runs(raw, path.name, typed)


def check_runs(raw: pd.DataFrame, name: str, typed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Check a table read as strings (`raw`, every cell a str) and return it typed.

    typed: the same table as pandas types it by default; its columns are kept for those not in
    COLUMNS (None: those columns stay strings)."""
    raw = raw.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise HarnessError(f"{name} lacks column(s) {', '.join(missing)}; needs at least {', '.join(REQUIRED)}")
    if raw.empty:
        raise HarnessError(f"{name} has a header but no rows (columns: {', '.join(map(str, raw.columns))})")
    if typed is not None and typed.shape != raw.shape:  # the two reads disagree: keep the strings
        typed = None
    out = typed.rename(columns=lambda c: str(c).strip()).copy() if typed is not None else raw.copy()
    out.index = raw.index
    status = _status(raw, name) if "status" in raw else pd.Series("ok", index=raw.index)
    for column, (kind, minimum) in COLUMNS.items():
        if column not in raw or column == "status":
            continue
        cells = raw[column].astype(str).str.strip()
        required = column in REQUIRED
        if kind == "text":
            out[column] = cells
            for i, v in cells.items():
                if v.lower() in MISSING:
                    raise HarnessError(f"{name}, row {i + 1}: {column} is empty")
        elif kind == "bool":
            out[column] = _booleans(cells, column, name)
        else:
            values = _numbers(cells, column, name, integer=kind == "int")
            for i, v in values.items():
                if math.isnan(v) and required and (column != "test_accuracy" or status[i] == "ok"):
                    what = " (a run with status ok needs its metric)" if column == "test_accuracy" else ""
                    raise HarnessError(f"{name}, row {i + 1}: {column} is empty{what}")
                if minimum is not None and v < minimum:
                    raise HarnessError(f"{name}, row {i + 1}: {column} {_show(cells[i])} is below {minimum}")
            if kind in ("metric", "fraction"):
                _check_scale(values, cells, column, name, percent_allowed=kind == "metric")
            # as pandas types them: whole numbers as int64 unless a cell is empty, then float64
            out[column] = values.astype("int64") if kind == "int" and values.notna().all() else values
    if "status" in raw:
        out["status"] = status
    _check_duplicates(raw, out, name)
    return out.reset_index(drop=True)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _show(cell: str) -> str:
    return repr(cell) if len(cell) <= 40 else repr(cell[:37] + "...")


def _status(raw: pd.DataFrame, name: str) -> pd.Series:
    cells = raw["status"].astype(str).str.strip().str.lower()
    for i, v in cells.items():
        if v not in STATUSES and v not in MISSING:
            raise HarnessError(f"{name}, row {i + 1}: status {_show(raw['status'][i])} is not one of "
                               f"{', '.join(STATUSES)} (or empty for ok)")
    return cells.where(~cells.isin(MISSING), "ok")


def _numbers(cells: pd.Series, column: str, name: str, integer: bool) -> pd.Series:
    """Floats (NaN where empty); anything else in a cell is an error naming its row."""
    values = []
    for i, v in cells.items():
        if v.lower() in MISSING:
            values.append(math.nan)
            continue
        try:
            x = float(v)
        except ValueError:
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(v)} is not a number") from None
        if not math.isfinite(x):
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(v)} is not a finite number")
        if integer and not x.is_integer():
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(v)} is not a whole number")
        values.append(x)
    return pd.Series(values, index=cells.index, dtype=float)


def _booleans(cells: pd.Series, column: str, name: str) -> pd.Series:
    values = []
    for i, v in cells.items():
        low = v.lower()
        if low in TRUE or low in FALSE:
            values.append(low in TRUE)
        elif low in MISSING:
            values.append(math.nan)
        else:
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(v)} is not a boolean "
                               f"(true/false/1/0, or empty if unknown)")
    series = pd.Series(values, index=cells.index, dtype=object)
    if series.isna().all():  # as pandas reads an empty column
        return series.astype(float)
    return series.astype(bool) if series.notna().all() else series


def _check_scale(values: pd.Series, cells: pd.Series, column: str, name: str, percent_allowed: bool) -> None:
    """One scale per column: fractions in [0, 1], or (metrics) percent in [0, 100]. The scale is the
    one most of the column's values fit; the first value that does not fit it is the error."""
    present = values.dropna()
    n_percent = int(((present > 1) & (present <= 100)).sum()) if percent_allowed else 0
    n_fraction = int(((present >= 0) & (present <= 1)).sum())
    percent = n_percent > n_fraction
    for i, v in present.items():
        if percent and not (v == 0 or 1 < v <= 100):
            why = ("looks like a fraction in a column of percentages" if 0 < v <= 1 else "is outside [0, 100]")
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(cells[i])} {why}; give every value "
                               f"of a column as a fraction or every value in percent")
        if not percent and not 0 <= v <= 1:
            hint = ("; give every value of a column as a fraction or every value in percent"
                    if percent_allowed and 1 < v <= 100 else "")
            raise HarnessError(f"{name}, row {i + 1}: {column} {_show(cells[i])} is outside [0, 1]{hint}")


KEY = ("task", "model", "successor_layers", "budget", "arm", "seed", "student_seed")


def _check_duplicates(raw: pd.DataFrame, out: pd.DataFrame, name: str) -> None:
    """Each (arm, seed[, student_seed]) at most once per (task, model, successor_layers[, budget]):
    a second copy would count one run twice in every statistic."""
    if "arm" in raw:
        arm = raw["arm"].astype(str).str.strip()
    else:
        variant = raw["variant"].astype(str).str.strip() if "variant" in raw else pd.Series("", index=raw.index)
        variant = variant.where(~variant.str.lower().isin(MISSING), "")
        arm = pd.Series([s if not v else f"{s}/{v}" for s, v in zip(out["strategy"], variant)], index=raw.index)
    parts = {"arm": arm}
    for column in KEY:
        if column == "arm":
            continue
        if column in out:
            col = out[column]
            parts[column] = col.map(lambda v: "" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)))
    if "student_seed" in parts:  # an empty student seed is the seed itself (normalize_runs does the same)
        parts["student_seed"] = parts["student_seed"].where(parts["student_seed"] != "", parts["seed"])
    key = pd.DataFrame({c: parts[c] for c in KEY if c in parts})
    first: dict[tuple, int] = {}
    for i, row in zip(key.index, key.itertuples(index=False, name=None)):
        if row in first:
            what = ", ".join(f"{c} {v}" for c, v in zip(key.columns, row) if v != "")
            raise HarnessError(f"{name}, rows {first[row] + 1} and {i + 1}: the same run twice ({what}); "
                               f"each (arm, seed) may appear once per task, model and successor size")
        first[row] = i


# ---------------------------------------------------------------- a long per-example CSV

EXAMPLE_COLUMNS = ("task", "arm", "seed", "example", "label", "prediction")
OPTIONAL_EXAMPLE_COLUMNS = ("model", "student_seed", "successor_layers", "predecessor_layers", "budget")


def is_examples_csv(path: Path) -> bool:
    """Whether a CSV's header holds the per-example columns (EXAMPLE_COLUMNS)."""
    try:
        header = pd.read_csv(path, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError):
        return False
    names = {str(c).strip() for c in header.columns}
    return all(c in names for c in EXAMPLE_COLUMNS)


def read_user_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A user's CSV for `analyze`: (runs, examples). A per-example CSV (is_examples_csv) gives both
    (read_examples_csv); a runs CSV gives (read_runs_csv, None)."""
    path = Path(path)
    if path.is_file() and is_examples_csv(path):
        return read_examples_csv(path)
    return read_runs_csv(path), None


def read_examples_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check a long per-example CSV: one row per (run, test example) with the columns
    task, arm, seed, example, label, prediction (and optionally model, student_seed,
    successor_layers, predecessor_layers, budget: constant within a run).

    arm: as in a runs table (`finetune-3`, `theseus-add/seed`); label and prediction: class names
    or indices (compared as text after stripping, so `1` and `1.0` differ only if written so).
    Returns (runs, examples): runs has one row per (task, model, arm, seed, student_seed[, budget,
    successor_layers]) with run_id, strategy, variant, test_accuracy (the share of its examples
    predicted right), degenerate (predictions collapsed: Cohen's kappa against the labels below
    0.2, as the harness's own runs) and the optional columns; examples has run_id, example (int
    code of the example's text), label, prediction, correct (0/1) (harness.store.examples.COLUMNS).
    Raises HarnessError (one line) on the first problem: a missing column or value, a seed that is
    not a whole number, an example twice in one run, a run whose label differs from another run's
    label for the same example."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"per-example CSV {path} not found" + (" (it is a directory)" if path.is_dir() else ""))
    name = path.name
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise HarnessError(f"{name} is empty: a per-example CSV needs a header row and one row per example") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path} as CSV: {_first_line(exc)}") from None
    raw = raw.rename(columns=lambda c: str(c).strip())
    if len(set(raw.columns)) != len(raw.columns):
        raise HarnessError(f"{name}: a column appears more than once in the header")
    missing = [c for c in EXAMPLE_COLUMNS if c not in raw.columns]
    if missing:
        raise HarnessError(f"{name} lacks column(s) {', '.join(missing)}; a per-example CSV needs "
                           f"{', '.join(EXAMPLE_COLUMNS)}")
    if raw.empty:
        raise HarnessError(f"{name} has a header but no rows")
    cells = {c: raw[c].astype(str).str.strip() for c in raw.columns}
    for c in ("task", "arm", "example", "label", "prediction", *(x for x in ("model",) if x in raw)):
        empty = cells[c].str.lower().isin(MISSING)
        if empty.any():
            raise HarnessError(f"{name}, row {int(np.flatnonzero(empty.to_numpy())[0]) + 1}: {c} is empty")
    numbers = {}
    for c in ("seed", *OPTIONAL_EXAMPLE_COLUMNS[1:]):
        if c in raw:
            numbers[c] = _numbers(cells[c], c, name, integer=True)
            if c == "seed" and numbers[c].isna().any():
                row = int(np.flatnonzero(numbers[c].isna().to_numpy())[0]) + 1
                raise HarnessError(f"{name}, row {row}: seed is empty")
    if "student_seed" in numbers:
        numbers["student_seed"] = numbers["student_seed"].fillna(numbers["seed"])
    run_cols = ["task", "model", "arm", "seed", "student_seed", "budget", "successor_layers"]
    key = pd.DataFrame({c: (numbers[c].map(lambda v: "" if pd.isna(v) else f"{v:g}") if c in numbers
                            else cells[c]) for c in run_cols if c in numbers or c in raw})
    run_id = key.apply(lambda r: "|".join(f"{c}={v}" for c, v in r.items() if v != ""), axis=1)
    dup = pd.Series(list(zip(run_id, cells["example"]))).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise HarnessError(f"{name}, row {i + 1}: example {_show(cells['example'][i])} appears twice in one run "
                           f"({run_id[i].replace('|', ', ').replace('=', ' ')})")
    example_task = cells["task"] + "\x1f" + cells["example"]
    codes, _ = pd.factorize(example_task, sort=True)
    labels = pd.DataFrame({"e": codes, "label": cells["label"]})
    first_label = labels.groupby("e")["label"].transform("first")
    clash = (first_label != labels["label"]).to_numpy()
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise HarnessError(f"{name}, row {i + 1}: example {_show(cells['example'][i])} has label "
                           f"{_show(cells['label'][i])} here and {_show(first_label[i])} in another row")
    classes = {v: k for k, v in enumerate(sorted(set(cells["label"]) | set(cells["prediction"])))}
    correct = (cells["label"] == cells["prediction"]).astype(np.int8)
    examples = pd.DataFrame({"run_id": run_id.to_numpy(), "example": codes.astype(np.int64),
                             "label": cells["label"].map(classes).to_numpy(np.int64),
                             "prediction": cells["prediction"].map(classes).to_numpy(np.int64),
                             "correct": correct.to_numpy()})
    runs = []
    for rid, rows in examples.groupby("run_id", sort=False):
        first = int(rows.index[0])
        arm = cells["arm"][first]
        strategy, _, variant = arm.partition("/")
        row = dict(run_id=rid, task=cells["task"][first], strategy=strategy, variant=variant, arm=arm,
                   test_accuracy=float(rows["correct"].mean()), degenerate=_collapsed(rows), n_test=len(rows))
        if "model" in raw:
            row["model"] = cells["model"][first]
        for c, values in numbers.items():
            v = values[rows.index]
            if v.nunique(dropna=False) > 1:
                raise HarnessError(f"{name}, row {int(v.index[v != v.iloc[0]][0]) + 1}: {c} differs within one run "
                                   f"({rid.replace('|', ', ').replace('=', ' ')})")
            row[c] = v.iloc[0]
        runs.append(row)
    runs = pd.DataFrame(runs)
    for c in numbers:
        if runs[c].notna().all():
            runs[c] = runs[c].astype("int64")
    return runs, examples.reset_index(drop=True)


def _collapsed(rows: pd.DataFrame) -> bool:
    """Predictions collapsed, as the harness flags its own runs (harness.training.diagnostics):
    Cohen's kappa against the labels below KAPPA_FAILED (a run predicting one class has kappa 0)."""
    k = max(int(rows["label"].max()), int(rows["prediction"].max())) + 1
    kappa = kappa_from_counts(float(rows["correct"].mean()), list(np.bincount(rows["prediction"], minlength=k)),
                              list(np.bincount(rows["label"], minlength=k)))
    return bool(math.isnan(kappa) or kappa < KAPPA_FAILED)
