"""The learning-rates section of a study whose rates its tuning stages chose (report/sections/rates.py):
each arm's rate as its runs trained, the stage's selection and why, and a loud flag where they differ."""

from __future__ import annotations

import pandas as pd

from harness.report.sections.rates import rates_section, rates_table


def _runs() -> pd.DataFrame:
    rows = []
    for task in ("rt-polarity", "trec-6"):
        for seed in range(3):
            rows.append(dict(task=task, model="m", successor_layers=6, predecessor_layers=6, budget=pd.NA,
                             arm="finetune-6", lr=1e-4, status="ok", seed=seed))
            rows.append(dict(task=task, model="m", successor_layers=3, predecessor_layers=6, budget=567,
                             arm="theseus-add/seed", lr=5e-5 if task == "rt-polarity" else 1e-4, status="ok", seed=seed))
            rows.append(dict(task=task, model="m", successor_layers=3, predecessor_layers=6, budget=567,
                             arm="finetune-3", lr=1e-4, status="ok", seed=seed))
    runs = pd.DataFrame(rows)
    runs["budget"] = runs["budget"].astype("Int64")
    return runs


def _selected() -> pd.DataFrame:
    base = dict(model="m", successor_layers=3, budget=567, complete=True, trials=3, dev_mean=0.8)
    return pd.DataFrame([
        dict(base, task="rt-polarity", arm="theseus-add/seed", lr=5e-5, candidate=5e-5, gain=0.6, gain_se=0.5, at_edge=True),
        dict(base, task="trec-6", arm="theseus-add/seed", lr=1e-4, candidate=1e-4, gain=float("nan"),
             gain_se=float("nan"), at_edge=False),
        dict(base, task="rt-polarity", arm="finetune-3", lr=1e-4, candidate=3e-4, gain=0.1, gain_se=0.5, at_edge=False),
        dict(base, task="trec-6", arm="finetune-3", lr=3e-4, candidate=3e-4, gain=1.5, gain_se=0.4, at_edge=False),
    ])


def test_each_arm_states_its_rate_the_selection_and_why():
    table = rates_table(_runs(), {"tune-567": _selected()}).set_index(["task", "arm"])
    assert "finetune-6" not in table.index.get_level_values("arm")  # the predecessor is not tuned
    add_rt = table.loc[("rt-polarity", "theseus-add/seed")]
    assert add_rt["lr of its runs"] == "5e-05" and add_rt["selected lr"] == "5e-05 (edge)"
    assert add_rt["why"] == "5e-05 +0.60 ± 0.50: beyond one se" and add_rt["runs at the selection"] == "yes"
    assert table.loc[("trec-6", "theseus-add/seed"), "why"] == "the best rate is the shared one"
    assert table.loc[("rt-polarity", "finetune-3"), "why"] == "0.0003 +0.10 ± 0.50: within one se, shared kept"
    # trec-6 finetune-3 was selected at 3e-4 but its runs trained at 1e-4: flagged, and the section says so
    assert table.loc[("trec-6", "finetune-3"), "runs at the selection"] == "**no**"
    text = rates_section(_runs(), {"tune-567": _selected()})
    assert "**1 arm(s) ran at another rate than their tuning stage selected**" in text
    assert "`tune-567`" in text


def test_an_arm_without_a_selection_says_so():
    table = rates_table(_runs(), {})
    assert set(table["selected by"]) == {"—"} and set(table["runs at the selection"]) == {"—"}
