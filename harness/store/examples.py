"""Per-example test results: one row per (run, test example), from the records' stored predictions.

A record written since results schema 3 keeps `final.test_predictions`: base64 of one uint8 predicted
class per test example, in the order of the test split's indices in the store's
`splits/<data_hash>.json` (key "test"), which also holds the test labels ("test_labels"). The example
id is the example's position in the task's pool (or its predefined test split), so the same sentence
has the same id in every run whose test split holds it, whatever the split seed. This table is what
task-level inference pairs on: seeds and test examples both random (docs/method.md, "The unit of
inference").
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError

COLUMNS = ["run_id", "example", "label", "prediction", "correct"]


def decode_predictions(text: str) -> np.ndarray:
    """The inverse of runner.encode_predictions: one class index per test example."""
    try:
        return np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8).astype(np.int64)
    except (ValueError, UnicodeEncodeError) as exc:
        raise HarnessError(f"stored test predictions are not valid base64 ({exc})") from None


def read_split_examples(store: Path) -> dict[str, dict]:
    """data_hash -> {"example": test indices, "label": test labels} for every splits file of a store
    that holds both (stores written before schema 3 keep no labels per example)."""
    out = {}
    for path in sorted((Path(store) / "splits").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        if isinstance(data, dict) and data.get("test") is not None and data.get("test_labels") is not None:
            if len(data["test"]) == len(data["test_labels"]):
                out[data.get("data_hash", path.stem)] = {"example": np.asarray(data["test"], dtype=np.int64),
                                                         "label": np.asarray(data["test_labels"], dtype=np.int64)}
    return out


def has_predictions(record: dict) -> bool:
    return bool((record.get("final") or {}).get("test_predictions"))


def examples_table(records: list[dict], store: Path) -> pd.DataFrame:
    """One row per (ok run with stored predictions, test example): COLUMNS. Runs without stored
    predictions (older records), or whose splits file lacks per-example labels, have no rows; a
    prediction string whose length differs from its split's test size is an error (a corrupt record)."""
    splits = read_split_examples(store)
    parts = []
    for record in records:
        if record.get("status") != "ok" or not has_predictions(record):
            continue
        split = splits.get((record.get("task") or {}).get("data_hash"))
        if split is None:
            continue
        pred = decode_predictions(record["final"]["test_predictions"])
        if len(pred) != len(split["example"]):
            raise HarnessError(f"run {record['run_id']}: {len(pred)} stored test predictions for a test split of "
                               f"{len(split['example'])} examples")
        parts.append(pd.DataFrame({"run_id": record["run_id"], "example": split["example"], "label": split["label"],
                                   "prediction": pred, "correct": (pred == split["label"]).astype(np.int8)}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c != "run_id" else "object") for c in COLUMNS})
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def coverage(records: list[dict]) -> tuple[int, int]:
    """(ok runs with stored predictions, ok runs): whether a store's inference can be task-level."""
    ok = [r for r in records if r.get("status") == "ok"]
    return sum(has_predictions(r) for r in ok), len(ok)
