"""harness.arms: one vocabulary for arm names, families and order, used by every module."""

from __future__ import annotations

import math

from harness import arms
from harness.analysis import tables
from harness.strategies import arm_label
from harness.training.config import RunConfig


def test_names_families_and_order():
    assert arms.name(*arms.label("finetune", "", 3)) == "finetune-3"
    assert arms.name(*arms.label("theseus-add", "seed", 3)) == "theseus-add/seed"
    assert arms.name("kd") == "kd"
    assert [arms.family(a) for a in ("finetune-12", "theseus-binary/official", "two-stage/random-1x", "kd", "x/y")] \
        == ["finetune", "theseus-binary", "two-stage", "kd", "other"]
    assert arms.finetune_layers("finetune-6") == 6 and math.isnan(arms.finetune_layers("kd"))
    assert arms.order(["finetune-6", "kd", "finetune-3", "theseus-binary/seed", "theseus-add/seed", "new/x"]) == \
        ["theseus-add/seed", "theseus-binary/seed", "kd", "new/x", "finetune-3", "finetune-6"]


def test_every_module_uses_the_one_vocabulary():
    """A run's arm (runner, sweep), the runs table (records) and the tables (tables, claims) agree."""
    assert arm_label(RunConfig(strategy="finetune", layers=3)) == ("finetune-3", "")
    assert arm_label(RunConfig(strategy="two-stage", layers=3)) == ("two-stage", "random-1x")  # default variant
    assert tables.family is arms.family and tables.arm_order is arms.order
