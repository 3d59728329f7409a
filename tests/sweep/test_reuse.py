"""`reuse`: records with the same run key copied from another store, only those made on this
machine's CPU kind unless the sweep says `reuse_any_cpu = true`, in sequential and fixed sweeps."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PREDECESSOR_AND_BASELINE, write_tiny_sweep

from harness.store.records import cpu_kind, import_records, same_cpu_kind
from harness.sweep import execute
from harness.sweep import plan as sweep_mod

HERE = ("AMD EPYC", "avx512_bf16")


def _record(store: Path, run_id: str, provenance: dict, status: str = "ok") -> None:
    (store / "runs").mkdir(parents=True, exist_ok=True)
    (store / "runs" / f"{run_id}.json").write_text(json.dumps(
        {"run_id": run_id, "status": status, "task": {"data_hash": "h"}, "provenance": provenance}))


def test_cpu_kind_from_schema_3_and_older_provenance():
    assert cpu_kind({"provenance": {"cpu": "AMD EPYC", "matmul_isa": "avx512_bf16", "device_name": "x"}}) == HERE
    assert cpu_kind({"provenance": {"device_name": "Intel(R) Xeon(R) Processor"}}) == \
        ("Intel(R) Xeon(R) Processor", None)
    assert cpu_kind({}) is None
    assert same_cpu_kind(HERE, HERE) and same_cpu_kind(("AMD EPYC", None), HERE)
    assert not same_cpu_kind(("AMD EPYC", "avx2"), HERE) and not same_cpu_kind(None, HERE)


def test_import_copies_only_this_cpu_kind_and_counts_the_rest(tmp_path):
    source, dest = tmp_path / "a", tmp_path / "b"
    (source / "splits").mkdir(parents=True)
    (source / "splits" / "h.json").write_text("{}")
    _record(source, "same", {"cpu": "AMD EPYC", "matmul_isa": "avx512_bf16"})
    _record(source, "older", {"device_name": "AMD EPYC"})
    _record(source, "intel", {"cpu": "Intel(R) Xeon(R) Processor", "matmul_isa": "amx"})
    _record(source, "intel2", {"cpu": "Intel(R) Xeon(R) Processor", "matmul_isa": "amx"})
    _record(source, "unknown", {})
    _record(source, "failed", {"cpu": "AMD EPYC", "matmul_isa": "avx512_bf16"}, status="failed")
    ids = ["same", "older", "intel", "intel2", "unknown", "failed", "absent"]
    done = import_records(source, dest, ids, HERE)
    assert done.copied == 2 and sorted(p.stem for p in (dest / "runs").glob("*.json")) == ["older", "same"]
    assert done.skipped == {"made on Intel(R) Xeon(R) Processor (amx)": 2, "made on an unknown CPU kind": 1}
    assert (dest / "splits" / "h.json").exists()
    anyway = import_records(source, tmp_path / "c", ids, None)  # reuse_any_cpu
    assert anyway.copied == 5 and not anyway.skipped
    looked = import_records(source, tmp_path / "d", ids, HERE, dry_run=True)  # what --dry-run counts
    assert looked.run_ids == ["same", "older"] and not (tmp_path / "d").exists()


def test_a_fixed_sweep_reuses_and_skips_records_of_another_cpu_kind(tiny_model_dir, tiny_task, tmp_path,
                                                                   monkeypatch):
    """`reuse` applies to a sweep without looks too: the second store trains nothing. A record of
    another CPU kind is not copied, and the sweep says how many and why."""
    monkeypatch.setattr(execute, "build_report", lambda *a, **k: None)  # the report is not what this checks
    results = tmp_path / "results"
    first = write_tiny_sweep(tmp_path / "first.toml", tiny_model_dir, tiny_task, name="first")
    assert execute.run_sweep(config_path=first, out=results / "first", say=lambda *_: None) == 0
    lines: list[str] = []
    second = write_tiny_sweep(tmp_path / "second.toml", tiny_model_dir, tiny_task, name="second", reuse=["first"])
    assert execute.run_sweep(config_path=second, out=results / "second", say=lines.append) == 0
    assert any("reuse: 2 record(s) with the same run key copied" in line for line in lines), lines
    assert any("2 already stored, 0 to run" in line for line in lines), lines

    third = write_tiny_sweep(tmp_path / "third.toml", tiny_model_dir, tiny_task, name="third", reuse=["first"])
    lines.clear()
    assert execute.run_sweep(config_path=third, out=results / "third", dry_run=True, say=lines.append) == 0
    assert any("0 already stored, 2 to copy from first (reuse: same run key, this CPU kind), 0 to run" in line
               for line in lines), lines
    assert not (results / "third").exists()

    sweep = sweep_mod.load_sweep(config_path=second)
    configs = sweep_mod.expand(sweep)
    monkeypatch.setattr(execute, "here_cpu_kind", lambda: ("Another CPU", "avx2"))
    lines.clear()
    execute._reuse(sweep, configs, results / "third", lines.append)
    assert not (results / "third" / "runs").exists()
    (line,) = lines
    assert "2 record(s) with the same run key" in line and "not copied" in line and "Another CPU (avx2)" in line
    assert "reuse_any_cpu = true copies them" in line
    sweep.reuse_any_cpu = True
    lines.clear()
    execute._reuse(sweep, configs, results / "third", lines.append)
    assert len(list((results / "third" / "runs").glob("*.json"))) == len(PREDECESSOR_AND_BASELINE)
