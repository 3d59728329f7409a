"""harness.report end to end on fixture tables built here (with harness.plots and harness.stats)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import report, stats

N_BOOT = 1000


def fixture_runs() -> pd.DataFrame:
    """Runs of one group (6 -> 3 layers), accuracy as fractions like the store's:
    theseus-add/convex has a much smaller std than theseus-binary/seed (8 seeds each);
    theseus-binary/seed is a permutation of finetune-3 (equal means); two-stage/random-1x has
    zero variance; kd has n = 2; one finetune-6 run failed."""
    rng = np.random.default_rng(7)
    ft3 = rng.normal(76, 3, 8)
    arms = {"finetune-6": rng.normal(83, 0.5, 5), "finetune-3": ft3,
            "theseus-binary/seed": rng.permutation(ft3), "theseus-add/convex": rng.normal(78, 0.1, 8),
            "two-stage/random-1x": np.full(5, 76.0), "kd": rng.normal(77, 0.8, 2)}
    rows = []
    for arm, vals in arms.items():
        strategy, _, variant = arm.partition("/")
        for seed, acc in enumerate(vals):
            rows.append(dict(
                run_id=f"{arm}-s{seed}", sweep="fixture", task="rotten", model="minilm",
                predecessor_layers=6, successor_layers=6 if arm == "finetune-6" else 3,
                strategy=strategy, variant=variant, arm=arm, seed=seed, student_seed=seed,
                status="ok", error="", test_accuracy=acc / 100, test_macro_f1=(acc - 0.5) / 100,
                dev_accuracy=(acc + 1) / 100, dev_macro_f1=acc / 100, best_epoch=3, wall_seconds=60.0))
    runs = pd.DataFrame(rows)
    failed = runs["run_id"] == "finetune-6-s4"
    runs.loc[failed, ["status", "error", "test_accuracy", "test_macro_f1", "dev_accuracy"]] = \
        ["failed", "RuntimeError: CUDA out of memory", np.nan, np.nan, np.nan]
    return runs


def fixture_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [dict(run_id=r.run_id, task=r.task, model=r.model, successor_layers=r.successor_layers,
                 strategy=r.strategy, variant=r.variant, arm=r.arm, seed=r.seed,
                 phase="theseus" if e <= 3 else "successor", epoch=e, train_loss=1 / e,
                 dev_accuracy=0.65 + 0.03 * e + rng.normal(0, 0.01), dev_macro_f1=0.6,
                 replacement_rate=0.5 if r.strategy == "theseus-binary" else np.nan, seconds=10.0)
            for r in runs.itertuples() if r.strategy.startswith("theseus") for e in range(1, 6)]
    return pd.DataFrame(rows)


def fixture_replacements(runs: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = [dict(run_id=r.run_id, arm=r.arm, seed=r.seed, successor_layers=3, epoch=e, module=m,
                 replaced=int(rng.binomial(120, 0.5)), steps=120)
            for r in runs.itertuples() if r.strategy == "theseus-binary"
            for e in range(1, 4) for m in range(4)]
    return pd.DataFrame(rows)


META = {"sweep": "fixture", "produced_at": "2025-01-02T03:04:05+00:00", "git_commit": "abc123",
        "config": {"lr": 2e-5, "batch_size": 32, "strategies": ["finetune-6", "theseus-add"]},
        "versions": {"python": "3.11", "torch": "2.5.1"},
        "model": {"name": "all-MiniLM-L6-v2", "sha256": "deadbeef"},
        "failed_runs": [{"run_id": "finetune-6-s4", "error": "RuntimeError: CUDA out of memory"}]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("out")
    runs = fixture_runs()
    out = report.write_outputs(runs, fixture_epochs(runs), fixture_replacements(runs), META,
                               results_dir=root / "results", report_path=root / "report" / "fixture.md",
                               n_boot=N_BOOT, seed=0)
    return out, runs


def test_report_sections_and_figures(written):
    out, _ = written
    path: Path = out["report"]
    text = path.read_text()
    for h in report.SECTIONS:
        assert f"\n## {h}\n" in text, h
    for h in report.GROUP_SUBSECTIONS:
        assert f"\n#### {h}\n" in text, h
    for title in report.CLAIM_TITLES.values():
        assert f"\n### {title}\n" in text, title
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 7
    for link in links:
        assert not Path(link).is_absolute()
        target = (path.parent / link).resolve()
        assert target.exists(), link
        assert target.with_suffix(".svg").exists()
    assert all(i.skipped is None for i in out["plots"]), [(i.name, i.skipped) for i in out["plots"]]
    for must in ("CUDA out of memory", "abc123", "deadbeef", "60.11", "iflytek", "Different task and model"):
        assert must in text, must
    index = out["index"].read_text()
    assert "[fixture.md](fixture.md)" in index and "2025-01-02T03:04:05+00:00" in index


def test_tables_full_precision(written):
    out, runs = written
    a: stats.Analysis = out["analysis"]
    for name in report.TABLES:
        assert out["tables"][name].exists(), name
    back = pd.read_csv(out["tables"]["variance"])
    np.testing.assert_array_equal(back["mean"].to_numpy(), a.table("variance")["mean"].to_numpy())
    np.testing.assert_array_equal(back["ci_low"].to_numpy(), a.table("variance")["ci_low"].to_numpy())
    pw = pd.read_csv(out["tables"]["pairwise"])
    np.testing.assert_array_equal(pw["welch_p"].to_numpy(), a.table("pairwise")["welch_p"].to_numpy())
    r = pd.read_csv(out["tables"]["runs"])
    np.testing.assert_array_equal(r["test_accuracy"].to_numpy(), runs["test_accuracy"].to_numpy())
    claims = pd.read_csv(out["tables"]["claims"])
    assert set(claims["claim"]) == {1, 2, 3, 4}


def test_fixture_statistics(written):
    a: stats.Analysis = written[0]["analysis"]
    (g,) = a.groups
    v = g.variance.set_index("arm")
    assert v.loc["finetune-6", "n"] == 4 and v.loc["finetune-6", "n_failed"] == 1
    assert v.loc["kd", "n"] == 2 and not v.loc["kd", "tested"]
    assert v.loc["two-stage/random-1x", "std"] == 0
    assert v.loc["finetune-6", "mean"] > 80  # fractions became percent
    kd_rows = g.pairwise[(g.pairwise["a"] == "kd") | (g.pairwise["b"] == "kd")]
    assert (~kd_rows["tested"]).all() and (kd_rows["note"] == "n<3: not tested").all()


def test_claim_verdicts(written):
    a: stats.Analysis = written[0]["analysis"]
    claims = {c.number: c for c in a.claims}
    assert claims[2].verdict == "supported"  # add std 0.1 vs binary std 3 over 8 seeds
    c1 = claims[1].table.set_index("a")
    assert c1.loc["theseus-binary/seed", "verdict"] in ("not supported", "inconclusive at n = 8")
    assert c1.loc["theseus-binary/seed", "diff"] == pytest.approx(0, abs=1e-9)
    assert claims[4].table.set_index("arm").loc["theseus-binary/seed", "n_with_replacements"] == 8


def test_minimal_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [dict(task="iflytek", strategy=s, seed=i, test_accuracy=m + rng.normal(0, 0.5))
            for s, m in [("finetune-12", 60), ("finetune-3", 58), ("theseus-add", 59.5),
                         ("theseus-binary", 59)] for i in range(4)]
    csv = tmp_path / "user.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = report.write_outputs(pd.read_csv(csv), None, None, {}, results_dir=tmp_path / "results",
                               report_path=tmp_path / "report" / "user.md", n_boot=N_BOOT)
    text = out["report"].read_text()
    for h in report.SECTIONS:
        assert f"## {h}" in text
    assert "iflytek / ?, 12 -> 3 layers" in text
    skipped = {i.name: i.skipped for i in out["plots"]}
    assert skipped["dev_curves"] == "no per-epoch data" and skipped["replacements"] == "no replacement counts"
    assert skipped["accuracy"] is None
    assert [c.verdict for c in out["analysis"].claims if c.number == 4] == ["not tested (no replacement counts)"]


def test_tiny_group_and_nan(tmp_path):
    """Two seeds per arm, a NaN accuracy and a predecessor-less table: reported, never tested."""
    runs = pd.DataFrame({"task": "t", "strategy": ["finetune-6", "finetune-6", "finetune-3", "finetune-3",
                                                   "theseus-binary", "theseus-binary"],
                         "seed": [0, 1, 0, 1, 0, 1], "test_accuracy": [80, 81, 70, np.nan, 75, 75]})
    out = report.write_outputs(runs, pd.DataFrame(), pd.DataFrame(), {"sweep": "tiny"},
                               results_dir=tmp_path / "r", report_path=tmp_path / "rep" / "tiny.md",
                               n_boot=N_BOOT)
    assert {c.verdict for c in out["analysis"].claims} <= {
        stats.NOT_TESTED, "not tested (no such arms)", "not tested (no replacement counts)"}
    assert "not tested" in out["report"].read_text()
    only_kd = pd.DataFrame({"task": "t", "strategy": "kd", "seed": [0, 1, 2], "test_accuracy": [1, 2, 3]})
    out = report.write_outputs(only_kd, None, None, None, results_dir=tmp_path / "k",
                               report_path=tmp_path / "rep" / "kd.md", n_boot=N_BOOT)
    assert "t / ?, ? -> ? layers" in out["report"].read_text()
    assert "kd.md" in (tmp_path / "rep" / "README.md").read_text()
