"""harness.report.markdown end to end on fixture tables built here (with harness.report.plots and harness.analysis.stats)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis import stats
from harness.analysis.claims import CLAIMS
from harness.analysis.groups import Analysis
from harness.report import markdown as report
from harness.report import pipeline

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


META = {"sweep": "fixture", "produced_at": "2025-01-02T03:04:05+00:00", "git_commits": ["abc123-dirty"],
        "config": {"lr": 2e-5, "batch_size": 32, "strategies": ["finetune-6", "theseus-add"]},
        "versions": {"python": "3.11", "torch": "2.5.1"},
        "model": {"name": "all-MiniLM-L6-v2", "sha256": "deadbeef"},
        "failed_runs": [{"run_id": "finetune-6-s4", "error": "RuntimeError: CUDA out of memory"}]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("out")
    runs = fixture_runs()
    out = pipeline.write_outputs(runs, fixture_epochs(runs), fixture_replacements(runs), META,
                               results_dir=root / "results", report_path=root / "report" / "fixture.md",
                               n_boot=N_BOOT, seed=0, curves=fixture_curves(runs), parameters=PARAMETERS)
    return out, runs


# MiniLM-L6's counts (harness.report.parameters on its safetensors): embeddings 11,919,104, a layer 1,774,464
PARAMETERS = pd.DataFrame({"task": "rotten", "model": "minilm", "layers": [3, 6],
                           "parameters": [11_919_104 + 3 * 1_774_464 + 770, 11_919_104 + 6 * 1_774_464 + 770],
                           "embeddings": 11_919_104, "encoder_layers": [3 * 1_774_464, 6 * 1_774_464], "head": 770,
                           "source": "tensor shapes in /x/model.safetensors"})


def fixture_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Eleven dev evaluations per successful run (percent), a Theseus run's last four in its successor phase."""
    rng = np.random.default_rng(4)
    rows = [dict(run_id=r.run_id, arm=r.arm, seed=r.seed, budget=np.nan, step=57 * (i + 1), fraction=(i + 1) / 11,
                 phase="successor" if r.strategy.startswith("theseus") and i >= 7 else "theseus"
                 if r.strategy.startswith("theseus") else "finetune",
                 dev_accuracy=60 + 1.5 * i + rng.normal(0, 0.5))
            for r in runs[runs["status"] == "ok"].itertuples() for i in range(11)]
    return pd.DataFrame(rows)


def test_report_sections_and_figures(written):
    out, _ = written
    path: Path = out["report"]
    text = path.read_text()
    for h in report.SECTIONS:
        assert f"\n## {h}\n" in text, h
    for h in report.APPENDIX_SUBSECTIONS:
        assert f"\n### {h}\n" in text, h
    for claim in CLAIMS:
        assert f"*{claim.id}: {claim.title}.*" in text, claim.id
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 9
    for link in links:
        assert not Path(link).is_absolute()
        target = (path.parent / link).resolve()
        assert target.exists(), link
        assert target.with_suffix(".svg").exists()
    # the fixture has none of the declared primaries' arms (theseus-add/seed, ...): no paired figure
    assert all(i.skipped is None for i in out["plots"] if i.name != "paired"), [(i.name, i.skipped) for i in out["plots"]]
    for must in ("CUDA out of memory", "abc123-dirty", "deadbeef", "60.11", "iflytek", "Different task and model",
                 "**Dirty working tree:**", "**Provenance warning:**"):
        assert must in text, must
    index = out["index"].read_text()
    assert "[fixture.md](fixture.md)" in index and "2025-01-02T03:04:05+00:00" in index


def test_tables_full_precision(written):
    out, runs = written
    a: Analysis = out["analysis"]
    for name in report.TABLES:
        assert out["tables"][name].exists(), name
    back = pd.read_csv(out["tables"]["variance"])
    np.testing.assert_array_equal(back["mean"].to_numpy(), a.table("variance")["mean"].to_numpy())
    np.testing.assert_array_equal(back["ci_low"].to_numpy(), a.table("variance")["ci_low"].to_numpy())
    pw = pd.read_csv(out["tables"]["pairwise"])
    np.testing.assert_array_equal(pw["primary_p"].to_numpy(), a.table("pairwise")["primary_p"].to_numpy())
    assert "welch_p" not in pw  # the sensitivity checks have their own table
    sens = pd.read_csv(out["tables"]["sensitivity"])
    np.testing.assert_array_equal(sens["welch_p"].to_numpy(), a.table("pairwise")["welch_p"].to_numpy())
    r = pd.read_csv(out["tables"]["runs"])
    np.testing.assert_array_equal(r["test_accuracy"].to_numpy(), runs["test_accuracy"].to_numpy())
    claims = pd.read_csv(out["tables"]["claims"], dtype={"claim": str})
    assert set(claims["claim"]) == {c.id for c in CLAIMS}
    assert (out["tables"]["claims"].parent / "README.md").exists()


def test_fixture_statistics(written):
    a: Analysis = written[0]["analysis"]
    (g,) = a.groups
    v = g.variance.set_index("arm")
    assert v.loc["finetune-6", "n"] == 4 and v.loc["finetune-6", "n_failed"] == 1
    assert v.loc["kd", "n"] == 2 and not v.loc["kd", "tested"]
    assert v.loc["two-stage/random-1x", "std"] == 0
    assert v.loc["finetune-6", "mean"] > 80  # fractions became percent
    kd_rows = g.pairwise[(g.pairwise["a"] == "kd") | (g.pairwise["b"] == "kd")]
    assert (~kd_rows["tested"]).all() and (kd_rows["note"] == "n<3: not tested").all()


def test_claim_verdicts(written):
    a: Analysis = written[0]["analysis"]
    claims = {(c.claim, c.comparison): c for c in a.claims}
    # no degenerate column: failures unknown, the spread then taken over all runs (add sd 0.1 vs 3)
    assert claims[("2a", "theseus-add/convex vs theseus-binary/seed: share failed")].verdict == \
        "not testable (failed runs unknown)"
    spread = claims[("2b", "theseus-add/convex vs theseus-binary/seed: sd of working runs")]
    assert spread.verdict == "supported" and spread.role == "secondary"
    c1 = claims[("1", "theseus-binary/seed vs finetune-3")]
    assert c1.verdict == "undecided" and c1.role == "secondary"
    assert c1.estimate == pytest.approx(0, abs=1e-9)
    assert claims[("4b", "theseus-binary/seed: replacements, failed vs other runs")].verdict == \
        "not testable (failed runs unknown)"
    # the bottom line opens the report, the declared primaries follow in words, in one table
    text = written[0]["report"].read_text().splitlines()
    assert text.index("## Bottom line") < 6
    top = text.index("## Primary verdicts")
    assert top < 15 and any(line.startswith("| 1 | Theseus (proportional add, seed variant) beats direct "
                                            "fine-tuning of 3 layers |") for line in text[top:30])


def test_minimal_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [dict(task="iflytek", strategy=s, seed=i, test_accuracy=m + rng.normal(0, 0.5))
            for s, m in [("finetune-12", 60), ("finetune-3", 58), ("theseus-add", 59.5),
                         ("theseus-binary", 59)] for i in range(4)]
    csv = tmp_path / "user.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = pipeline.write_outputs(pd.read_csv(csv), None, None, {}, results_dir=tmp_path / "results",
                               report_path=tmp_path / "report" / "user.md", n_boot=N_BOOT)
    text = out["report"].read_text()
    for h in report.SECTIONS:
        assert f"## {h}" in text
    assert "iflytek / ?, 12 -> 3 layers" in text
    skipped = {i.name: i.skipped for i in out["plots"]}
    assert skipped["dev_curves"] == "no per-epoch data" and skipped["replacements"] == "no replacement counts"
    assert skipped["accuracy"] is None
    assert [c.verdict for c in out["analysis"].claims if c.claim == "4b"] == ["not testable (no replacement counts)"]


def test_tiny_group_and_nan(tmp_path):
    """Two seeds per arm, a NaN accuracy and a predecessor-less table: reported, never tested."""
    runs = pd.DataFrame({"task": "t", "strategy": ["finetune-6", "finetune-6", "finetune-3", "finetune-3",
                                                   "theseus-binary", "theseus-binary"],
                         "seed": [0, 1, 0, 1, 0, 1], "test_accuracy": [80, 81, 70, np.nan, 75, 75]})
    out = pipeline.write_outputs(runs, pd.DataFrame(), pd.DataFrame(), {"sweep": "tiny"},
                               results_dir=tmp_path / "r", report_path=tmp_path / "rep" / "tiny.md",
                               n_boot=N_BOOT)
    assert {c.verdict for c in out["analysis"].claims} <= {
        stats.NOT_TESTED, "not run", "not testable (no such arms)", "not testable (no replacement counts)",
        "not testable (failed runs unknown)", "not testable (< 5 working runs)",
        "not testable (no fine-tuning level: baseline n < 4)"}
    assert "not testable" in out["report"].read_text()
    only_kd = pd.DataFrame({"task": "t", "strategy": "kd", "seed": [0, 1, 2], "test_accuracy": [1, 2, 3]})
    out = pipeline.write_outputs(only_kd, None, None, None, results_dir=tmp_path / "k",
                               report_path=tmp_path / "rep" / "kd.md", n_boot=N_BOOT)
    assert "t / ?, ? -> ? layers" in out["report"].read_text()
    assert "kd.md" in (tmp_path / "rep" / "README.md").read_text()


def _md_rows(text: str, header_start: str) -> list[dict]:
    """Rows of every markdown table whose header starts with `header_start`, as dicts."""
    rows, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            names = [c.strip() for c in line.strip("|").split("|")]
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(names, [c.strip() for c in body.strip("|").split("|")])))
    return rows


def test_report_leads_with_the_claims_and_never_shows_two_adjusted_p(written):
    text = written[0]["report"].read_text()
    lead = text.split("\n## Primary verdicts\n", 1)[1].split("\n## ", 1)[0]
    assert "| claim | the claim, in words | A − B (interval) | adjusted p | verdict | n |" in lead
    assert "**not adjusted**" in lead  # the interval says it is not adjusted (the verdict's p is)
    appendix = text.split("\n## Appendix\n", 1)[1]
    assert "| claim | primary comparison |" in appendix  # the claim x group table moved there
    assert ("| claim | role | comparison | difference | adjusted p | verdict | smallest attainable adjusted p | "
            "seeds needed | n | test | note |") in appendix
    assert text.index("## Bottom line") < text.index("## Primary verdicts") < text.index("## Per arm") < \
        text.index("## Figures") < text.index("## Summary") < text.index("## Appendix") < \
        text.index("Method: each claim, its test and its primary")
    assert "∞" not in text and not re.search(r"(?<![a-z])-?inf(?![a-z])", text.lower())
    seen: dict[str, set] = {}
    for row in _md_rows(text, "| claim | role | comparison |"):
        seen.setdefault(row["comparison"], set()).add(row["adjusted p"])
    for row in _md_rows(text, "| claim | A | B |"):  # the sensitivity appendix repeats the claim's p
        seen.setdefault(f"{row['A']} vs {row['B']}", set()).add(row["claim's adjusted p (primary)"])
    assert seen and all(len(v) == 1 for v in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}


def test_analyze_a_csv_with_degenerate_runs(tmp_path, capsys):
    """`analyze` on a user CSV with a boolean `degenerate` column: per-arm failure counts with
    Clopper-Pearson intervals, Fisher's exact p between arms equal to scipy's, failure claims."""
    from scipy import stats as st

    from harness.cli import main

    rng = np.random.default_rng(3)
    rows = []
    for arm, base, k_deg in (("finetune-6", 0.80, 0), ("finetune-3", 0.74, 0), ("theseus-add", 0.75, 1),
                             ("theseus-binary", 0.70, 7)):
        for i in range(10):
            deg = i < k_deg
            rows.append({"task": "t", "strategy": arm, "seed": i, "degenerate": "true" if deg else "false",
                         "test_accuracy": 0.578 if deg else base + rng.normal(0, 0.01)})
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["analyze", str(path), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "degenerate 7/10" in out and "degenerate 1/10" in out
    var = pd.read_csv(tmp_path / "a" / "tables" / "variance.csv").set_index("arm")
    assert var.loc["theseus-binary", "n_degenerate"] == 7 and var.loc["theseus-add", "n_degenerate"] == 1
    ci = st.binomtest(7, 10).proportion_ci(method="exact")
    assert var.loc["theseus-binary", "degenerate_ci_low"] == pytest.approx(ci.low)
    sens = pd.read_csv(tmp_path / "a" / "tables" / "sensitivity.csv").set_index(["a", "b"])
    assert sens.loc[("theseus-add", "theseus-binary"), "fisher_p"] == pytest.approx(
        st.fisher_exact([[1, 9], [7, 3]]).pvalue, rel=1e-12)
    claims = pd.read_csv(tmp_path / "a" / "tables" / "claims.csv", dtype={"claim": str})
    two_a = claims[claims["claim"] == "2a"].iloc[0]  # the declared primary, on the table's bare arm names
    assert two_a["role"] == "primary" and two_a["a"] == "theseus-add" and two_a["b"] == "theseus-binary"
    assert two_a["p"] == pytest.approx(st.fisher_exact([[1, 9], [7, 3]]).pvalue, rel=1e-12)
    assert {"role", "p_adj", "verdict", "min_p_adj", "seeds_needed"} <= set(claims.columns)
    text = (tmp_path / "a" / "mine.md").read_text()
    assert "7 of 10 theseus-binary runs failed" in text


def test_budgets_are_reported_side_by_side(tmp_path):
    rng = np.random.default_rng(9)
    rows = [dict(task="t", strategy="finetune-6", seed=i, test_accuracy=80 + rng.normal()) for i in range(6)]
    for budget, shift in ((200, -2.0), (800, 2.0)):
        rows += [dict(task="t", strategy=s, seed=i, budget=budget, test_accuracy=74 + d + rng.normal(0, 0.3))
                 for s, d in (("finetune-3", 0.0), ("theseus-add", shift)) for i in range(6)]
    from harness.analysis.groups import analyze

    a = analyze(pd.DataFrame(rows), n_boot=N_BOOT)  # no figures: the layout is what is tested here
    text = report.render_report(a, [], {"sweep": "b"}, tmp_path / "rep" / "b.md")
    assert "**Where each primary verdict holds.**" in text
    assert "**Budget x arm interactions of the primary mean comparisons**" in text and "| 200 -> 800 |" in text
    paths = pipeline.write_tables(a, pd.DataFrame(rows), tmp_path / "r" / "tables")
    assert paths["verdicts_by_budget"].exists() and len(a.groups) == 2


def test_analyze_reads_contradicted_for_a_better_two_stage_and_no_information_without_failures(tmp_path):
    """`analyze` on a user table: two-stage clearly better than finetune-L_s -> claim 3b reads
    "contradicted"; no failed run anywhere -> no failure comparison reads supported, contradicted
    or not supported."""
    from harness.cli import main

    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 0.5, 8)
    rows = [{"task": "t", "strategy": arm, "seed": i, "degenerate": "false",
             "test_accuracy": base + seed_effect[i] + rng.normal(0, 0.2)}
            for arm, base in (("finetune-6", 80.0), ("finetune-3", 74.0), ("two-stage/predecessor-1x", 76.0),
                              ("theseus-add/seed", 75.0), ("theseus-binary/seed", 74.5)) for i in range(8)]
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["analyze", str(path), "--out", str(tmp_path / "a")]) == 0
    claims = pd.read_csv(tmp_path / "a" / "tables" / "claims.csv", dtype={"claim": str})
    three_b = claims[(claims["claim"] == "3b") & (claims["role"] == "primary")].iloc[0]
    assert three_b["verdict"] == "contradicted" and three_b["estimate"] > 1.5
    failures = claims[claims["claim"] == "2a"]
    assert len(failures) and (failures["verdict"] == "no information").all()
    assert not claims["verdict"].isin(["not supported"]).any()
