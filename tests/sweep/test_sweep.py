"""run-all: job expansion, resume without retraining, failures recorded, SIGKILL + resume, dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import PREDECESSOR_AND_BASELINE, write_tiny_sweep

from harness.errors import HarnessError
from harness.report import pipeline
from harness.sweep import execute
from harness.sweep import plan as sweep_mod

VOLATILE = ["wall_seconds", "sweep"]


THESEUS_ARMS = ({"strategy": "theseus-binary", "variant": "seed", "options": {"theseus_epochs": 1, "successor_epochs": 1}},
                {"strategy": "theseus-add", "variant": "seed", "options": {"theseus_epochs": 1, "successor_epochs": 1}})


def _write_config(tmp_path: Path, model: str, task: str, seeds: int = 2, jobs: int = 1) -> Path:
    path = write_tiny_sweep(tmp_path / "tiny.toml", model, task, description="test sweep", seeds=seeds, jobs=jobs,
                            base={"train_size": 120, "dev_size": 40, "test_size": 40, "epochs": 2},
                            arms=PREDECESSOR_AND_BASELINE + THESEUS_ARMS)
    # worker processes see the real minimum test size (conftest lowers it in this process only)
    path.write_text("allow_small_test = true\n" + path.read_text())
    return path


def _table(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "runs.csv").drop(columns=VOLATILE)
    return df.sort_values("run_id").reset_index(drop=True)


def test_expand_shares_the_predecessor_and_orders_it_first(tiny_model_dir, tiny_task, tmp_path):
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task, seeds=3)
    s = sweep_mod.load_sweep(config_path=cfg)
    s.successor_layers = [2, 1]
    jobs = sweep_mod.expand(s)
    # 3 seeds x (1 shared predecessor + 3 arms x 2 successor sizes)
    assert len(jobs) == 3 * (1 + 3 * 2)
    assert [j.strategy for j in jobs[:3]] == ["finetune"] * 3 and all(j.layers == 4 for j in jobs[:3])
    s.student_seeds = 2
    assert len(sweep_mod.expand(s)) == 3 * (1 + 3 * 2 * 2)  # factorial: predecessor runs stay one per seed


def test_bad_sweep_configs_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\nbogus = 1\n[[arms]]\nstrategy = 'finetune'\n")
    with pytest.raises(HarnessError, match="unknown key"):
        sweep_mod.load_sweep(config_path=bad)
    bad.write_text("[[arms]]\nstrategy = 'theseus-binary'\noptions = { replacement_rate = 'x' }\n")
    with pytest.raises(HarnessError, match="must be a float"):
        sweep_mod.load_sweep(config_path=bad)
    bad.write_text("name = [\n")
    with pytest.raises(HarnessError, match="not valid TOML"):
        sweep_mod.load_sweep(config_path=bad)
    with pytest.raises(HarnessError, match="unknown preset"):
        sweep_mod.load_sweep(preset="nope")


def test_sweep_runs_reports_and_resumes_without_training(tiny_model_dir, tiny_task, tmp_path):
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task)
    out, report = tmp_path / "store", tmp_path / "report"
    lines: list[str] = []
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=report, say=lines.append) == 0
    assert len(list((out / "runs").glob("*.json"))) == 8
    assert len(list((out / "splits").glob("*.json"))) == 1  # the split is recorded once for all runs
    table = _table(out)
    assert len(table) == 8 and set(table["status"]) == {"ok"}
    assert (report / "tiny.md").exists() and (out / "tables").is_dir()
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    lines.clear()
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=report, say=lines.append) == 0
    assert any("8 already stored, 0 to run" in line for line in lines)
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    # `report` rebuilds from the store alone
    (report / "tiny.md").unlink()
    pipeline.build_report(out, report_dir=report, say=lambda *_: None)
    assert (report / "tiny.md").exists()


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tiny_model_dir, tiny_task, tmp_path, monkeypatch):
    from harness.run import runner

    real = runner.execute

    def flaky(config, **kw):
        if config.strategy == "theseus-add" and config.seed == 1:
            raise FloatingPointError("simulated divergence")
        return real(config, **kw)

    monkeypatch.setattr(runner, "execute", flaky)  # jobs = 1 runs in this process
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task)
    lines: list[str] = []
    code = execute.run_sweep(config_path=cfg, out=tmp_path / "s", report_dir=tmp_path / "r", say=lines.append)
    assert code == 1
    table = _table(tmp_path / "s")
    failed = table[table.status == "failed"]
    assert len(failed) == 1 and "simulated divergence" in failed.iloc[0]["error"]
    assert (table.status == "ok").sum() == 7
    assert any(line.startswith("failed: theseus-add/seed seed 1") for line in lines)
    assert "simulated divergence" in (tmp_path / "r" / "tiny.md").read_text()


def test_sigkill_then_resume_gives_every_run_once_and_the_uninterrupted_table(tiny_model_dir, tiny_task, tmp_path):
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task, seeds=2, jobs=2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness", "run-all", "--config", str(cfg), "--report-dir", str(tmp_path / "r")]
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed_out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed_out / "runs").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-run
    proc.wait()
    partial = len(list((killed_out / "runs").glob("*.json")))
    assert 3 <= partial < 8, f"kill landed after {partial} runs"
    assert subprocess.run(cmd + ["--out", str(killed_out)], env=env, capture_output=True).returncode == 0
    clean_out = tmp_path / "clean"
    assert subprocess.run(cmd + ["--out", str(clean_out)], env=env, capture_output=True).returncode == 0
    records = list((killed_out / "runs").glob("*.json"))
    assert len(records) == 8 and len({json.loads(p.read_text())["run_id"] for p in records}) == 8
    assert not list((killed_out / "runs").glob(".*"))  # no temp file survives as a record
    pd.testing.assert_frame_equal(_table(killed_out), _table(clean_out))


def test_dask_local_cluster_gives_the_local_results(tiny_model_dir, tiny_task, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task, seeds=1, jobs=2)
    assert execute.run_sweep(config_path=cfg, out=tmp_path / "local", report_dir=tmp_path / "r",
                               say=lambda *_: None) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert execute.run_sweep(config_path=cfg, out=tmp_path / "dask", report_dir=tmp_path / "r",
                                   backend="dask", scheduler=cluster.scheduler_address,
                                   say=lambda *_: None) == 0
    pd.testing.assert_frame_equal(_table(tmp_path / "local"), _table(tmp_path / "dask"))


def test_ray_local_instance_gives_the_local_results(tiny_model_dir, tiny_task, tmp_path):
    ray = pytest.importorskip("ray")
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task, seeds=1, jobs=2)
    assert execute.run_sweep(config_path=cfg, out=tmp_path / "local", report_dir=tmp_path / "r",
                               say=lambda *_: None) == 0
    try:  # no --scheduler: ray starts a local instance, as `ray.init()` does
        assert execute.run_sweep(config_path=cfg, out=tmp_path / "ray", report_dir=tmp_path / "r",
                                   backend="ray", say=lambda *_: None) == 0
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(_table(tmp_path / "local"), _table(tmp_path / "ray"))


def test_analyze_a_users_csv(tmp_path, capsys):
    from harness.cli import main

    rows = [{"task": "t", "strategy": s, "seed": i, "test_accuracy": acc}
            for s, base in (("finetune-6", 0.85), ("finetune-3", 0.75), ("theseus-add", 0.78))
            for i, acc in enumerate(base + d for d in (0.01, -0.02, 0.0, 0.015, -0.005))]
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["analyze", str(path), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "welch_p" in out and (tmp_path / "a" / "mine.md").exists()
    path.write_text("task,seed\nt,1\n")
    assert main(["analyze", str(path)]) == 2
    assert "lacks column(s) strategy, test_accuracy" in capsys.readouterr().err


# ---- committed studies: a change of defaults (or of anything a run key hashes) must not re-key them ----

REPO = Path(__file__).resolve().parents[2]
COMMITTED_STUDIES = ["default", "budget", "seed-12", "seed-12-budget"]


@pytest.mark.parametrize("name", COMMITTED_STUDIES)
def test_every_committed_study_keeps_its_run_keys(name, monkeypatch):
    """The preset, expanded over the seeds its manifest records, names exactly the committed run
    records: a preset that relied on a default that changed (or a key that hashes something new) would
    name runs the store does not hold, and `run-all` would retrain them. Offline and fast: the model's
    layer count and what "auto" precision resolved to are taken from the records."""
    from types import SimpleNamespace

    from harness.encoders import models
    from harness.run.identity import CODE_VERSION, key_of, run_key
    from harness.training import loop as train

    store = REPO / "results" / name
    manifest = json.loads((store / "sweep.json").read_text())
    records = {p.stem: json.loads(p.read_text()) for p in (store / "runs").glob("*.json")
               if not p.name.startswith(".")}  # not a write in progress
    (precision,) = {r["config"]["precision"] for r in records.values()}
    layers = {r["config"]["model"]: r["predecessor_layers"] for r in records.values()}
    monkeypatch.setattr(train, "native_precision", lambda device="auto": precision)
    monkeypatch.setattr(models, "load_pretrained", lambda model: SimpleNamespace(num_layers=layers[model]))
    sweep = sweep_mod.load_sweep(name)
    sweep.seeds = manifest["seeds"]
    # at the code version the records were made with (a results-schema bump since re-keys every run, on
    # purpose: `run-all` then trains the preset anew instead of mixing numbers of two schemas)
    (version,) = {r["provenance"]["harness"] for r in records.values()}
    keys = [run_key(config, version) for config in sweep_mod.expand(sweep)]
    assert len(keys) == len(set(keys)) == len(records) == len(manifest["run_ids"])
    assert set(keys) == set(records) == set(manifest["run_ids"])
    if version != CODE_VERSION:
        assert not set(map(key_of, sweep_mod.expand(sweep))) & set(records)


def test_a_user_sweep_trains_the_studied_budget_unless_it_gives_epochs(tmp_path, tiny_model_dir, tiny_task):
    """[base] without a length: every student arm takes the run default (567 student steps); with
    epochs (as every shipped preset has, or a budget) that length is kept."""
    from harness.training.config import RunConfig

    plain = tmp_path / "plain.toml"
    plain.write_text(f'name = "plain"\n[base]\ntask = "{tiny_task}"\nmodel = "{tiny_model_dir}"\n'
                     '[[arms]]\nstrategy = "finetune"\n')
    sweep = sweep_mod.load_sweep(config_path=plain)
    assert sweep.budgets == [RunConfig.budget] == [567]
    by_epochs = write_tiny_sweep(tmp_path / "epochs.toml", tiny_model_dir, tiny_task)  # [base] epochs = 1
    assert sweep_mod.load_sweep(config_path=by_epochs).budgets == [None]


def test_a_stored_predecessor_missing_from_the_cache_is_retrained_once_and_its_record_kept(
        tiny_model_dir, tiny_task, tmp_path, monkeypatch):
    """A fresh machine has the store but not the predecessor cache: the predecessor is retrained
    once, before the students that need it, for the cache only; the store keeps its first record
    and the student's record says it used a retrain."""
    cfg = _write_config(tmp_path, tiny_model_dir, tiny_task, seeds=1)
    out = tmp_path / "s"
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lambda *_: None) == 0
    records = {p: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    pred_path = next(p for p, r in records.items() if r["strategy"].startswith("finetune") and r["config"]["layers"] == 4)
    pred_bytes = pred_path.read_bytes()
    student = next(p for p, r in records.items() if r["strategy"] == "theseus-add")
    student.unlink()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "fresh-cache"))
    lines: list[str] = []
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lines.append) == 0
    assert any("1 stored predecessor(s) missing from the predecessor cache" in x for x in lines)
    assert pred_path.read_bytes() == pred_bytes
    used = json.loads(student.read_text())["predecessor"]
    assert used["trained_now"] is False  # the warm-up trained it; the student loaded it from the cache
    assert used["key"] == json.loads(pred_bytes)["run_id"]


def test_predecessor_mismatch_names_students_that_used_a_different_predecessor():
    pred = {"run_id": "p0", "status": "ok", "strategy": "finetune", "variant": "", "seed": 0,
            "task": {"name": "t"}, "final": {"test_accuracy": 0.80}}
    same = {"run_id": "s0", "status": "ok", "strategy": "theseus-add", "variant": "seed", "seed": 0,
            "task": {"name": "t"}, "predecessor": {"key": "p0", "test_accuracy": 0.80}}
    other = {**same, "run_id": "s1", "predecessor": {"key": "p0", "test_accuracy": 0.81}}
    got = pipeline.predecessor_mismatch([pred, same, other])
    assert [m["run_id"] for m in got] == ["s1"] and got[0]["predecessor_stored"] == 0.80
