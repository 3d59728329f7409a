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
