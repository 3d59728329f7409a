"""run-all before it trains: --only (arms or families, training only), --dry-run's plan and estimate,
the progress line's ETA, and a store trained on a data file that has since changed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import make_texts, write_tiny_sweep

from harness.cli import main
from harness.sweep import estimate
from harness.training.config import RunConfig

ARMS = ({"strategy": "finetune", "layers": "predecessor"}, {"strategy": "finetune"}, {"strategy": "kd"})


def _main(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _csv(path: Path, n: int, seed: int = 0) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(*make_texts(n, seed))])
    return path


def test_only_trains_the_named_arm_and_its_predecessor_and_the_sweep_stays_whole(capsys, tmp_path, tiny_model_dir):
    data = _csv(tmp_path / "mine.csv", 300)
    config = write_tiny_sweep(tmp_path / "mine.toml", tiny_model_dir, f"csv:{data}", arms=ARMS)
    store = tmp_path / "s"
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", store, "--only", "kd")
    assert code == 0, err
    assert "3 runs in the sweep, 0 already stored, 2 to run (1 parallel job(s), backend loky); " \
           "1 left untrained by --only" in out
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert len(progress) == 2 and all(", ETA " in line for line in progress), progress
    assert progress[-1].endswith("ETA done)"), progress
    records = [json.loads(p.read_text()) for p in (store / "runs").glob("*.json")]
    assert sorted(r["strategy"] for r in records) == ["finetune-4", "kd"]
    manifest = json.loads((store / "sweep.json").read_text())
    assert len(manifest["run_ids"]) == 3, "the manifest still names every run of the sweep"
    # by arm name: the baseline alone (it needs no predecessor); then nothing is left
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", store, "--only", "finetune-2")
    assert code == 0, err
    assert "3 runs in the sweep, 2 already stored, 1 to run" in out
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", store, "--dry-run")
    assert code == 0 and "3 already stored, 0 to run" in out
    # the data file edited in place: the store says so, and every run is planned anew
    _csv(data, 300, seed=1)
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", store, "--dry-run")
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "3 stored run(s) of csv:" in warnings[0] and "were trained on other data" \
        in warnings[0], out
    assert "0 already stored, 3 to run" in out
    code, out, err = _main(capsys, "report", store, "--report-dir", tmp_path / "r")
    assert code == 0, err
    assert sum(line.startswith("warning: 3 stored run(s)") for line in out.splitlines()) == 1


def test_dry_run_prints_the_plan_and_an_estimate_and_writes_nothing(capsys, tmp_path, tiny_model_dir, tiny_task):
    config = write_tiny_sweep(tmp_path / "c.toml", tiny_model_dir, tiny_task, arms=ARMS, seeds=3)
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", tmp_path / "s", "--dry-run",
                           "--only", "finetune")
    assert code == 0, err
    assert "plan of sweep tiny: 9 runs (1 task(s) x 1 model(s) x 1 successor size(s) x 1 budget(s) x 3 arms x " \
           "3 seeds)" in out
    assert "arms: kd, finetune-2, finetune-4" in out and "seeds: 0, 1, 2" in out
    assert "0 already stored, 6 to run (3 left untrained by --only)" in out
    assert "estimated time: " in out and "the default study's measured seconds per optimizer step" in out
    assert out.rstrip().endswith("nothing trained (--dry-run)")
    assert not (tmp_path / "s").exists()


def test_planned_steps_and_the_estimate_follow_the_runs_length():
    budget = RunConfig(strategy="kd", budget=100, predecessor_layers=6, precision="bf16")
    epochs = RunConfig(strategy="theseus-binary", variant="seed", budget=None, batch_size=32, predecessor_layers=6,
                       options=(("successor_epochs", 1), ("theseus_epochs", 2)))
    predecessor = RunConfig(strategy="finetune", layers=6, predecessor_layers=6, budget=None, epochs=3,
                            precision="bf16")
    assert estimate.planned_steps(budget, 1000) == 100
    assert estimate.planned_steps(epochs, 320) == 3 * 10
    assert estimate.planned_steps(predecessor, 320) == 3 * 10
    total, own = estimate.estimate_seconds([budget, predecessor], [1000, 320], {})
    ref = estimate.REFERENCE_SECONDS_PER_STEP
    assert own == 0 and abs(total - (100 * ref["kd"] + 30 * ref["finetune-6"])) < 1e-9
    total, own = estimate.estimate_seconds([budget], [1000], {"kd": 1.0})
    assert own == 1 and total == 100.0
    total, _ = estimate.estimate_seconds([budget.replace(precision="fp32")], [1000], {})
    assert abs(total - 100 * ref["kd"] * estimate.FP32_FACTOR) < 1e-9


def test_seconds_per_step_reads_the_stores_finished_runs():
    records = [{"status": "ok", "strategy": "kd", "variant": "", "wall_seconds": 20.0, "final": {"steps": 10}},
               {"status": "ok", "strategy": "kd", "variant": "", "wall_seconds": 40.0, "final": {"steps": 10}},
               {"status": "failed", "strategy": "kd", "variant": "", "wall_seconds": 1.0, "final": None},
               {"status": "ok", "strategy": "theseus-add", "variant": "seed", "wall_seconds": 5.0,
                "final": {"steps": 10}}]
    assert estimate.seconds_per_step(records) == {"kd": 3.0, "theseus-add/seed": 0.5}


def test_eta_and_durations():
    assert estimate.eta([10.0, 30.0], left=6, jobs=2) == "60 s"
    assert estimate.eta([], left=3, jobs=1) == "?"
    assert estimate.eta([5.0], left=0, jobs=1) == "done"
    assert estimate.duration(600) == "10.0 min" and estimate.duration(3 * 3600) == "3.0 h"


def test_the_reference_figures_are_the_committed_default_studys(request):
    """REFERENCE_SECONDS_PER_STEP is what results/default's records measured (where the repository has them):
    the records of the sweep its manifest names."""
    import json

    store = Path(request.config.rootpath) / "results" / "default"
    from harness.store.records import read_records

    records = read_records(store) if (store / "runs").is_dir() else []
    if (store / "sweep.json").is_file():
        wanted = set(json.loads((store / "sweep.json").read_text())["run_ids"])
        records = [r for r in records if r["run_id"] in wanted]
    if not records:
        pytest.skip("no committed results/default here (an installed copy)")
    measured = estimate.seconds_per_step(records)
    assert measured.keys() == estimate.REFERENCE_SECONDS_PER_STEP.keys()
    for arm, value in estimate.REFERENCE_SECONDS_PER_STEP.items():
        assert abs(measured[arm] - value) < 0.0005, arm
