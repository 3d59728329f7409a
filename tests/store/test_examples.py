"""Per-example test predictions: a run record keeps every test example's predicted class, and the
examples table read back from the store reproduces the run's test accuracy and class counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.run.runner import encode_predictions, execute
from harness.store.examples import decode_predictions, examples_table
from harness.store.records import read_records


def test_predictions_round_trip_and_refuse_what_a_byte_cannot_hold():
    values = np.array([0, 5, 49, 255, 1])
    assert decode_predictions(encode_predictions(values)).tolist() == values.tolist()
    with pytest.raises(HarnessError, match="0..255"):
        encode_predictions(np.array([256]))
    with pytest.raises(HarnessError, match="not valid base64"):
        decode_predictions("not base64!")


def test_a_record_keeps_its_test_predictions_and_the_table_reproduces_its_metrics(tiny_config, tmp_path):
    record = execute(tiny_config.replace(strategy="finetune", layers=2), out_dir=tmp_path, log=lambda m: None)
    table = examples_table(read_records(tmp_path), tmp_path)
    f = record["final"]
    assert len(table) == f["n_test"] == record["task"]["split_sizes"]["test"]
    assert set(table["run_id"]) == {record["run_id"]}
    assert table["correct"].mean() == pytest.approx(f["test_accuracy"], abs=1e-12)
    assert np.bincount(table["prediction"], minlength=len(f["test_pred_counts"])).tolist() == f["test_pred_counts"]
    split = json.loads((tmp_path / "splits" / f"{record['task']['data_hash']}.json").read_text())
    assert table["example"].tolist() == split["test"]           # ids are the examples' positions in the pool
    assert table["label"].tolist() == split["test_labels"]
    # a record cut short (fewer predictions than test examples) is an error, never a silent misalignment
    path = tmp_path / "runs" / f"{record['run_id']}.json"
    broken = json.loads(path.read_text())
    broken["final"]["test_predictions"] = encode_predictions(np.zeros(3, dtype=int))
    path.write_text(json.dumps(broken))
    with pytest.raises(HarnessError, match="3 stored test predictions for a test split of"):
        examples_table(read_records(tmp_path), tmp_path)


def test_records_without_predictions_have_no_rows(tiny_config, tmp_path):
    execute(tiny_config.replace(strategy="finetune", layers=2, seed=1), out_dir=tmp_path, log=lambda m: None)
    records = read_records(tmp_path)
    for r in records:
        del r["final"]["test_predictions"]
    table = examples_table(records, tmp_path)
    assert table.empty and list(table.columns) == ["run_id", "example", "label", "prediction", "correct"]
