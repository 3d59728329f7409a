"""Sequential seeds (harness.analysis.sequential): the boundaries a look uses, looks that never depend on
results, Holm's passing of a rejected primary's level, the whole procedure's error rate, and a
sequential sweep that runs only the open primaries' arms and resumes after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_sweep

from harness.analysis import design as design_mod
from harness.analysis import sequential as seq
from harness.errors import HarnessError
from harness.sweep import execute
from harness.sweep import plan as sweep_mod

ARMS = ["finetune-6", "finetune-3", "theseus-binary/seed", "theseus-add/seed", "two-stage/predecessor-1x"]


def _group(n=20, seed=0, shift=None, failure_rate=0.0):
    rng = np.random.default_rng(seed)
    return design_mod.simulate_group(rng, design_mod.group_template(ARMS, n), "finetune-6",
                                     failure_rate=failure_rate, shift=shift)


def test_a_looks_boundaries_are_the_published_spending_boundaries_on_the_p_scale():
    """One hypothesis at 0.05, four equal looks: the Lan-DeMets O'Brien-Fleming-type z boundaries of
    the published tables (4.333, 2.963, 2.359, 2.014), read as nominal two-sided p."""
    d = seq.Design((5, 10, 15, 20))
    np.testing.assert_allclose(d.z_bounds(0.05), [4.333, 2.963, 2.359, 2.014], atol=0.01)
    np.testing.assert_allclose(d.nominal(0.05), 2 * (1 - __import__("scipy").stats.norm.cdf([4.333, 2.963, 2.359,
                                                                                             2.014])), rtol=0.05)
    # one look is the fixed test
    assert seq.Design((20,)).nominal(0.05)[0] == pytest.approx(0.05)


def test_looks_never_depend_on_results():
    """What seeds 10..19 hold cannot change anything decided at looks 1 and 2, nor which arms ran
    there: a look reads exactly its first looks[k] seeds."""
    d = seq.Design((5, 10, 15, 20), groups=2)
    g = _group(shift={"theseus-add/seed": 3.0}, seed=3)
    first = seq.replay(g, d)
    changed = g.copy()
    late = changed["seed"] >= 10
    changed.loc[late, "test_accuracy"] = np.random.default_rng(9).normal(50, 20, int(late.sum()))
    second = seq.replay(changed, d)
    for a, b in zip(first.decisions, second.decisions):
        if a.look <= 2 and a.stopped:
            assert a == b
    early = {arm: n for arm, n in first.arm_seeds.items() if n <= 10}
    assert {arm: n for arm, n in second.arm_seeds.items() if n <= 10} == early
    # the seeds of a look are fixed by the design, never by the data
    only_five = g[g["seed"] < 5]
    r = seq.replay(only_five, d)
    assert r.reached == 1 and all(x.look <= 1 for x in r.decisions)
    assert all(x.verdict == seq.OPEN for x in r.decisions if x.look == 1 and x.claim not in
               {y.claim for y in first.decisions if y.look == 1 and y.stopped})


def test_a_clear_primary_stops_at_the_first_look_and_passes_its_level_on():
    """A difference of 5 points with almost no noise is decided at 5 seeds (nominal p below the
    first boundary); the primaries still open then have alpha / G / (m - 1)."""
    d = seq.Design((5, 10, 15, 20), groups=1, futility=0.0)
    g = _group(seed=1)
    base = g["arm"] == "finetune-3"
    add = g["arm"] == "theseus-add/seed"
    g.loc[add, "test_accuracy"] = g.loc[base, "test_accuracy"].to_numpy() + 5 + 1e-3 * np.arange(int(add.sum()))
    r = seq.replay(g, d)
    one = next(x for x in r.decisions if x.claim == "1")
    assert (one.verdict, one.look, one.seeds) == ("supported", 1, 5)
    assert one.level == pytest.approx(0.05 / 5) and one.p <= one.bound
    assert one.rci_low > 0  # the repeated interval excludes 0 at the level that rejected
    others = [x for x in r.decisions if x.claim in ("3a", "3b") and x.look >= 1]
    assert others and all(x.level >= 0.05 / 4 - 1e-12 for x in others)


def test_an_open_primary_gets_its_arms_and_a_stopped_one_not():
    d = seq.Design((5, 10, 15, 20), groups=1)
    g = _group(seed=5)
    r = seq.replay(g[g["seed"] < 5], d)
    open_claims = [x for x in r.decisions if x.verdict == seq.OPEN]
    need = set(r.next_arms)
    for x in open_claims:
        assert {x.a, x.b} <= need
    for arm in need:
        assert any(arm in (x.a, x.b) for x in open_claims)


def test_last_look_leaves_undecided_with_its_repeated_interval():
    d = seq.Design((5, 10), groups=1, futility=0.0)
    r = seq.replay(_group(n=10, seed=2), d)
    verdicts = {x.claim: x for x in r.decisions}
    assert r.reached == 2
    for claim in ("1", "3a"):
        x = verdicts[claim]
        assert x.look == 2 and x.verdict in ("undecided", "equivalent within ±1")
        assert np.isfinite(x.rci_low) and x.rci_low < x.estimate < x.rci_high


@pytest.mark.parametrize("failure_rate", [0.0, 0.1])
def test_aa_of_the_sequential_procedure_at_the_decide_design(failure_rate):
    """No arm differs: the share of simulated decide studies (2 groups, looks 5/10/15/20, futility
    0.10) with any false primary verdict is at most 5% (+ 2.5 Monte Carlo s.e.)."""
    sweep = sweep_mod.load_sweep("decide")
    groups, _ = design_mod.design_of(sweep)
    d = seq.Design(tuple(sweep.looks), groups=len(groups), futility=sweep.futility)
    sims = 200
    out = design_mod.simulate_sequential(groups, d, sims, failure_rate=failure_rate, seed=11)
    se = np.sqrt(0.05 * 0.95 / sims)
    assert out["fwer"] <= 0.05 + 2.5 * se
    assert out["seeds"] < 20  # futility stops some null comparisons early


def test_design_cli_for_a_sequential_preset(tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "d.json"
    assert main(["design", "--preset", "decide", "--sims", "20", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["looks"] == [5, 10, 15, 20] and got["fixed_seeds"] == 20
    assert set(got["expected_seeds"]) == {"0", "0.5", "1", "1.5"} and set(got["power"]) == {"0.5", "1", "1.5"}
    assert got["fixed_runs"] == 2 * 5 * 20 and all(0 < v <= got["fixed_runs"] for v in got["expected_runs"].values())
    text = capsys.readouterr().out
    assert "expected seeds" in text


def test_bad_sequential_configs_are_one_line(tmp_path, tiny_model_dir, tiny_task):
    cases = [({"looks": [5, 3], "seeds": 3}, "increasing"), ({"looks": [3, 5], "seeds": 6}, "end at 5"),
             ({"futility": 0.1}, "only a sequential design"), ({"looks": [3, 5], "futility": 1.5}, r"\[0, 1\)")]
    for top, message in cases:
        cfg = write_tiny_sweep(tmp_path / "bad.toml", tiny_model_dir, tiny_task, **top)
        with pytest.raises(HarnessError, match=message):
            sweep_mod.load_sweep(config_path=cfg)


# ---------------------------------------------------------------- a sequential sweep, for real

SEQ_ARMS = ({"strategy": "finetune", "layers": "predecessor"}, {"strategy": "finetune"},
            {"strategy": "theseus-binary", "variant": "seed", "options": {"theseus_epochs": 1, "successor_epochs": 1}},
            {"strategy": "theseus-add", "variant": "seed", "options": {"theseus_epochs": 1, "successor_epochs": 1}},
            {"strategy": "two-stage", "variant": "predecessor-1x", "options": {"epochs": 1}})


def _seq_config(tmp_path: Path, model: str, task: str, jobs: int = 1) -> Path:
    return write_tiny_sweep(tmp_path / "seq.toml", model, task, name="seq", seeds=6, looks=[3, 6], futility=0.05,
                            jobs=jobs, allow_small_test=True, base={"train_size": 120, "dev_size": 40, "test_size": 40, "epochs": 2}, arms=SEQ_ARMS)


def _records(out: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    return pd.DataFrame([{"run_id": r["run_id"], "strategy": r["strategy"], "variant": r["variant"], "seed": r["seed"],
                          "acc": r["final"]["test_accuracy"]} for r in rows]).sort_values("run_id").reset_index(drop=True)


def test_a_sequential_sweep_runs_only_the_open_primaries_arms(tiny_model_dir, tiny_task, tmp_path):
    cfg = _seq_config(tmp_path, tiny_model_dir, tiny_task)
    out, lines = tmp_path / "store", []
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lines.append) == 0
    sweep = sweep_mod.load_sweep(config_path=cfg)
    first = _records(out)
    first = first[first["seed"] < 3]
    # the first look: every arm at seeds 0..2
    assert len(first) == 5 * 3
    # what the store holds after look 1 is exactly what look 1's examination asked for
    from harness.store.records import read_records, runs_table
    from harness.store.schema import normalize_runs
    runs = runs_table(read_records(out))
    look1 = seq.examine_store(runs[runs["seed"] < 3], sweep.looks, sweep.seeds, sweep.futility)
    (_, r), = look1
    need = set(r.next_arms) | ({"finetune-4"} if set(r.next_arms) - {"finetune-2"} else set())
    later = normalize_runs(runs)
    later = later[later["seed"] >= 3]
    assert set(later["arm"]) == need and len(later) == 3 * len(need)
    assert 0 < len(need) < 5  # some arms stopped with their primaries, some went on
    report = (tmp_path / "r" / "seq.md").read_text()
    assert "## Sequential verdicts" in report and "looks at 3, 6 seeds" in report.lower()
    lines.clear()
    assert execute.run_sweep(config_path=cfg, out=out, report_dir=tmp_path / "r", say=lines.append) == 0
    assert not any("to run" in x and " 0 to run" not in x for x in lines)  # resumed: nothing trained again


@pytest.mark.parametrize("kill_after", [15, 17])  # at the look boundary (look 1 complete), inside wave 2
def test_sequential_sweep_resumes_after_sigkill(tiny_model_dir, tiny_task, tmp_path, kill_after):
    cfg = _seq_config(tmp_path, tiny_model_dir, tiny_task, jobs=1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness", "run-all", "--config", str(cfg), "--report-dir", str(tmp_path / "r")]
    clean = tmp_path / "clean"
    assert subprocess.run(cmd + ["--out", str(clean)], env=env, capture_output=True).returncode == 0
    total = len(list((clean / "runs").glob("*.json")))
    assert total > kill_after, f"every primary stopped at look 1 ({total} runs): no second wave to interrupt"
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((killed / "runs").glob("*.json"))) < kill_after:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert kill_after <= len(list((killed / "runs").glob("*.json"))) < total
    assert subprocess.run(cmd + ["--out", str(killed)], env=env, capture_output=True).returncode == 0
    pd.testing.assert_frame_equal(_records(killed), _records(clean))


def test_a_group_decided_early_does_not_hold_back_the_others():
    """Two groups: one decided everything at look 1, the other is still open after look 2. The
    engine's completeness check waits only for groups with open primaries."""
    from harness.sweep.execute import incomplete

    def replay_with(reached, verdict):
        return ({}, seq.Replay([seq.Decision("1", "a vs b", "a", "b", verdict, reached, 5 * reached)], reached))
    done_early, going = replay_with(1, "supported"), replay_with(2, seq.OPEN)
    assert not incomplete([done_early, going], 2)
    assert incomplete([done_early, replay_with(1, seq.OPEN)], 2)  # an open group short of look 2
