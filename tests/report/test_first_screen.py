"""A report's first screen (harness.report.sections): the generated bottom line, the primaries in words,
the unit of inference, and the pictures of the decisions (paired, looks), on fixture runs built here."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from harness.analysis.sequential import decisions_frame, examine_store
from harness.report import pipeline

ARMS = (("finetune-6", 80.0), ("finetune-3", 74.0), ("two-stage/predecessor-1x", 76.0),
        ("theseus-add/seed", 75.0), ("theseus-binary/seed", 74.5))


def fixture_runs(seeds: int = 8) -> pd.DataFrame:
    """One group, the declared primaries' arms; two-stage 2 points above finetune-3 (claim 3b
    contradicted), no run failed (2a and 4a: no information)."""
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 0.5, seeds)
    return pd.DataFrame([{"task": "t", "strategy": arm, "seed": i, "degenerate": "false",
                          "test_accuracy": base + seed_effect[i] + rng.normal(0, 0.2)}
                         for arm, base in ARMS for i in range(seeds)])


def _write(tmp_path, runs, **kw):
    return pipeline.write_outputs(runs, None, None, {"sweep": "s", "produced_at": "2025-01-01T00:00:00+00:00",
                                                     "tasks": {"t": {"split_sizes": {"test": 1000}}}},
                                  results_dir=tmp_path / "r", report_path=tmp_path / "rep" / "s.md", n_boot=200, **kw)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("fixed"), fixture_runs())


def test_the_report_opens_with_a_bottom_line_generated_from_the_claims(fixed):
    lines = fixed["report"].read_text().splitlines()
    assert lines[4] == "## Bottom line"
    bottom = lines[6]
    claims = fixed["analysis"].claims_table()
    three_b = claims[(claims["claim"] == "3b") & (claims["role"] == "primary")].iloc[0]
    assert three_b["verdict"] == "contradicted"
    # the contradicted claim, in words, with its estimate as the claims table has it
    assert "two-stage extraction (the predecessor's head, head lr 1x) is no better than direct fine-tuning " \
           "of 3 layers" in bottom and "is contradicted" in bottom
    assert f"{three_b['estimate']:+.2f} points".replace("-", "−") in bottom
    assert "no information on claim 2a " in bottom.lower() and "claim 4a" in bottom  # 4a: undecided (0/8 vs 1/8)
    assert 2 <= bottom.count(". ") + 1 <= 4


def test_the_primary_table_has_each_claim_in_words_and_its_direction(fixed):
    text = fixed["report"].read_text()
    lead = text.split("\n## Primary verdicts\n", 1)[1].split("\n## ", 1)[0]
    assert "| 1 | Theseus (proportional add, seed variant) beats direct fine-tuning of 3 layers |" in lead
    assert "positive: A scores higher" in lead and "**not adjusted**" in lead
    # a failure-rate primary with no failed run shows its counts, never an interval
    row = next(line for line in lead.splitlines() if line.startswith("| 2a |"))
    assert "no information (failed 0/8 vs 0/8)" in row and " to " not in row
    per_arm = text.split("\n## Per arm\n", 1)[1].split("\n## ", 1)[0]
    assert "| arm | in words | role | mean (%) | sd | n | failed |" in per_arm


def test_a_store_without_predictions_says_its_intervals_are_conditional_on_one_test_set(fixed):
    bottom = fixed["report"].read_text().split("\n## Primary verdicts\n", 1)[0]
    assert "**These intervals are conditional on one test set of 1,000 examples:**" in bottom
    assert "no per-example test predictions" in bottom


def test_paired_figures_are_written_per_group(fixed):
    info = next(i for i in fixed["plots"] if i.name == "paired")
    assert info.skipped is None and all(p.exists() for p in info.paths)
    assert "paired" in info.paths[0].name
    assert f"]({'../r/plots/' + info.paths[0].name})" in fixed["report"].read_text()


def test_a_sequential_study_gets_looks_figures_and_its_fixed_design_table_in_the_appendix(tmp_path):
    runs = fixture_runs(8)
    looks, seeds = [4, 8], list(range(8))
    replays = examine_store(runs, looks, seeds, 0.1)
    sweep = SimpleNamespace(looks=looks, seeds=seeds, futility=0.1)
    states = pipeline._look_states(runs, sweep, {s: i for i, s in enumerate(seeds)}, {})
    table = decisions_frame(replays)
    view = {"decisions": table, "look_states": states, "looks": looks, "futility": 0.1, "groups": len(replays),
            "family": 5, "margin": 1.0, "open": 0, "runs": len(runs), "fixed_runs": len(runs), "wall_seconds": 0.0,
            "reused": 0}
    out = _write(tmp_path, runs.assign(look=[1 if s < 4 else 2 for s in runs["seed"]]), sequential_view=view)
    text = out["report"].read_text()
    assert set(states["look"]) <= {1, 2} and len(states) >= len(table)
    info = next(i for i in out["plots"] if i.name == "looks")
    assert info.skipped is None and "looks" in info.paths[0].name and info.paths[0].exists()
    head, appendix = text.split("\n## Appendix\n", 1)
    assert "\n## Sequential verdicts\n" in head and "\n## Primary verdicts\n" not in head
    # the order a sequential report reads in: verdicts, per-seed paired differences (the decision figures),
    # per arm, then the other figures (without the decision figures again)
    order = [head.index(f"\n## {s}\n") for s in ("Sequential verdicts", "Per-seed paired differences", "Per arm",
                                                 "Figures")]
    assert order == sorted(order)
    paired = head.split("\n## Per-seed paired differences\n", 1)[1].split("\n## ", 1)[0]
    rest = head.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    assert "_paired.png" in paired and "_looks.png" in paired and "_paired.png" not in rest and "_accuracy.png" in rest
    fixed = appendix.split("### Fixed-design reading of a sequential study (not its verdicts)\n", 1)[1]
    fixed = fixed.split("\n### ", 1)[0]
    assert "| claim | primary comparison |" in fixed and "at most 0.05" not in fixed
    # a futility stop with no failed run shows counts, not an interval like [-87.57, 87.57]
    rows = [line for line in head.splitlines() if line.startswith("| 2a |") or "| 2a |" in line]
    assert rows and all("no information" in r and "[" not in r for r in rows)
