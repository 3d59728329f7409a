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


def _strip_labels(split_file):
    """The splits file as results schema 2 wrote it: no per-example test labels."""
    doc = json.loads(split_file.read_text())
    doc.pop("test_labels")
    split_file.write_text(json.dumps(doc))
    return doc


def test_a_splits_file_without_labels_is_written_again_never_reused_silently(tiny_config, tmp_path):
    """A store begun before results schema 3 keeps a splits file without test labels; a new run of the same
    data hash writes it again with them (the same indices), so its predictions can be scored per example.
    A file of that hash with other indices is refused, never overwritten."""
    from harness.store.records import import_records, split_complete

    first = execute(tiny_config.replace(strategy="finetune", layers=2), out_dir=tmp_path, log=lambda m: None)
    split_file = tmp_path / "splits" / f"{first['task']['data_hash']}.json"
    old = _strip_labels(split_file)
    assert examples_table(read_records(tmp_path), tmp_path).empty and not split_complete(split_file)
    # another store with the complete file: importing a record heals this one's
    other = tmp_path / "other"
    execute(tiny_config.replace(strategy="finetune", layers=2, seed=1), out_dir=other, log=lambda m: None)
    second = execute(tiny_config.replace(strategy="finetune", layers=2, seed=2), out_dir=tmp_path / "b",
                     log=lambda m: None)
    import_records(other, tmp_path, [r["run_id"] for r in read_records(other)])
    assert split_complete(split_file)
    assert {k: v for k, v in json.loads(split_file.read_text()).items() if k != "test_labels"} == old
    assert len(examples_table(read_records(tmp_path), tmp_path)) == 2 * first["final"]["n_test"]
    # a run writing to a store whose file lacks the labels writes them
    b_file = tmp_path / "b" / "splits" / f"{second['task']['data_hash']}.json"
    _strip_labels(b_file)
    execute(tiny_config.replace(strategy="finetune", layers=2, seed=3), out_dir=tmp_path / "b", log=lambda m: None)
    assert split_complete(b_file)
    # other indices under the same hash: refused
    doc = json.loads(b_file.read_text())
    doc.pop("test_labels")
    doc["test"] = doc["test"][::-1]
    b_file.write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match="other example indices"):
        execute(tiny_config.replace(strategy="finetune", layers=2, seed=4), out_dir=tmp_path / "b",
                log=lambda m: None)


def test_run_all_completes_a_finished_stores_splits_file_and_the_report_says_why_until_then(
        tmp_path, tiny_model_dir, tiny_task, monkeypatch):
    """A finished store whose splits file predates the labels: the report names that cause (not "N of N
    records hold predictions"); run-all, training nothing, writes the file again and the report pairs by
    example from then on."""
    from conftest import write_tiny_sweep

    from harness.report.pipeline import load_store
    from harness.report.sections.primary import unit_sentence
    from harness.store.records import split_complete
    from harness.sweep.execute import run_sweep

    monkeypatch.chdir(tmp_path)
    config = write_tiny_sweep(tmp_path / "c.toml", tiny_model_dir, tiny_task)
    quiet = lambda *a, **k: None  # noqa: E731
    assert run_sweep(config_path=config, say=quiet) == 0
    store = tmp_path / "results" / "tiny"
    (split_file,) = (store / "splits").glob("*.json")
    _strip_labels(split_file)
    loaded = load_store(store, say=quiet)
    assert loaded["examples"] is None and loaded["meta"]["predictions"]["scored"] == 0
    held = loaded["meta"]["predictions"]
    assert held["with"] == held["of"] > 0

    class NotTaskLevel:
        def claims_table(self):
            import pandas as pd
            return pd.DataFrame()

    sentence = unit_sentence(NotTaskLevel(), loaded["meta"])
    assert "lacks the test labels" in sentence and "records hold per-example" in sentence
    said = []
    assert run_sweep(config_path=config, say=said.append) == 0
    assert split_complete(split_file) and any("written again" in line for line in said)
    assert any("0 to run" in line or "already stored" in line for line in said)
    assert load_store(store, say=quiet)["examples"] is not None
