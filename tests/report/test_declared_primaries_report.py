"""A report rebuilt from a store reads the sweep's [primaries] declaration from its manifest, so the
fixed-design analysis and the sequential replay form one family per task across budgets (G = tasks)."""

from __future__ import annotations

from harness.report.pipeline import _declared_primaries
from harness.sweep.plan import load_sweep


def test_the_manifest_carries_the_declaration_into_the_report():
    reproduce = load_sweep("reproduce")
    assert _declared_primaries({"config": reproduce.source}, "reproduce") == {
        "1": 567, "3a": 567, "3b": 567, "2a": 189, "4a": 189}
    assert _declared_primaries({"config": load_sweep("decide").source}, "decide") is None
    assert _declared_primaries({}, "a store without a manifest") is None


def test_the_unit_of_a_report_is_read_from_its_tested_accuracy_comparisons():
    """Failure-rate primaries and comparisons not run carry no unit of their own: a store whose
    accuracy comparisons are task-level reads 'task' even when most rows are rates or not run."""
    import pandas as pd

    from harness.report.sections.primary import inference_unit

    rows = [("1", "supported", "task"), ("2a", "not run", "test set"), ("2b", "not testable (no such arms)", "test set"),
            ("3a", "equivalent within ±1", "task"), ("4a", "not run", "test set"), ("4a", "undecided", "test set"),
            ("4b", "not testable (no such arms)", "test set")]
    table = pd.DataFrame(rows, columns=["claim", "verdict", "inference_unit"])
    assert inference_unit(table) == "task"
    seed_only = table.assign(inference_unit="test set")
    assert inference_unit(seed_only) == "test set"
