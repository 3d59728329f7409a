"""The run store: an unreadable record is never lost silently: `report` builds from the readable
ones and names the others on stdout and in the report; `run-all` re-runs them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_tiny_sweep

from harness.cli import main
from harness.store.records import read_records
from harness.sweep import execute


def _sweep(tmp_path: Path, model: str, task: str) -> Path:
    return write_tiny_sweep(tmp_path / "tiny.toml", model, task, seeds=2)


def test_read_records_names_every_file_it_cannot_use(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    good = {"run_id": "a", "status": "failed", "strategy": "kd", "seed": 0, "config": {}, "error": "x"}
    (runs / "a.json").write_text(json.dumps(good))
    (runs / "b.json").write_text(json.dumps(good)[:20])
    (runs / "c.json").write_text("[1, 2]")
    (runs / "d.json").write_text(json.dumps({"run_id": "d", "status": "ok", "strategy": "kd", "seed": 0,
                                             "config": {}, "final": None}))
    (runs / "e.json").write_bytes(b"\xff\xfe\x00garbage")
    (runs / "f.json").write_text(json.dumps({"run_id": "f"}))
    skipped: list[str] = []
    records = read_records(tmp_path, skipped)
    assert [r["run_id"] for r in records] == ["a"]
    assert [s.split(" ")[0] for s in skipped] == ["b.json", "c.json", "d.json", "e.json", "f.json"]
    assert "not valid JSON" in skipped[0] and "not a record" in skipped[1]
    assert "no final metrics" in skipped[2] and "no status, strategy, seed, config" in skipped[4]
    assert read_records(tmp_path) == records  # without a list to fill, the same records


def test_report_on_a_store_with_a_truncated_record(tiny_model_dir, tiny_task, tmp_path, capsys):
    """The issue's case: one record cut after 200 bytes; `report` said nothing about it."""
    config = _sweep(tmp_path, tiny_model_dir, tiny_task)
    store, reports = tmp_path / "store", tmp_path / "reports"
    assert execute.run_sweep(config_path=config, out=store, report_dir=reports, say=lambda *_: None) == 0
    records = sorted((store / "runs").glob("*.json"))
    assert len(records) == 4
    # the store's own runs.csv passes the checks a user's table gets, unchanged
    import pandas as pd

    from harness.store.user_runs import read_runs_csv

    pd.testing.assert_frame_equal(read_runs_csv(store / "runs.csv"), pd.read_csv(store / "runs.csv"))
    victim = records[1]
    victim.write_bytes(victim.read_bytes()[:200])
    capsys.readouterr()

    assert main(["report", str(store), "--report-dir", str(reports)]) == 0
    out = capsys.readouterr().out
    assert f"records skipped: 1 unreadable record(s) in {store / 'runs'}" in out and victim.name in out
    report = (reports / "tiny.md").read_text()
    assert "Records skipped (unreadable, left out of every figure):" in report and victim.name in report
    assert len((store / "runs.csv").read_text().strip().splitlines()) == 1 + 3

    assert main(["compare", str(store), str(store)]) == 0
    assert f"records skipped: 1 unreadable record(s) in {store / 'runs'}: {victim.name}" in capsys.readouterr().out

    # run-all re-runs the damaged record, and the report is whole again
    lines: list[str] = []
    assert execute.run_sweep(config_path=config, out=store, report_dir=reports, say=lines.append) == 0
    assert any("3 already stored, 1 to run" in line for line in lines)
    assert not any(line.startswith("records skipped") for line in lines)
    assert json.loads(victim.read_text())["status"] == "ok"
    assert "Records skipped" not in (reports / "tiny.md").read_text()


def test_a_store_with_only_unreadable_records_is_one_error_line(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x.json").write_text("{")
    assert main(["report", str(tmp_path), "--report-dir", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "x.json (not valid JSON" in captured.out
    assert captured.err.startswith("error: no readable run records") and "(1 unreadable)" in captured.err
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: results directory {tmp_path / 'missing'} not found\n"


def test_a_damaged_manifest_is_named_and_the_store_still_reports(tiny_model_dir, tiny_task, tmp_path, capsys):
    config = _sweep(tmp_path, tiny_model_dir, tiny_task)
    store = tmp_path / "store"
    assert execute.run_sweep(config_path=config, out=store, report_dir=tmp_path / "r",
                               say=lambda *_: None) == 0
    (store / "sweep.json").write_text('{"name": "ti')
    capsys.readouterr()
    assert main(["report", str(store), "--report-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"warning: {store / 'sweep.json'} is unreadable" in out
    assert (tmp_path / "r" / "store.md").exists()  # named after the directory without a manifest
