"""bench: the FLOP model by hand, and a 2-step run on the tiny model whose figures are self-consistent.
No timing is asserted: only that every loop ran the same work and the ratios are quotients of the rows."""

from __future__ import annotations

import json

import pytest

from harness.bench import computed_flops, forward_flops_per_token, format_report, run_bench, useful_flops


def test_flops_per_token_matches_a_hand_computation():
    L, h, i, s = 6, 384, 1536, 40
    per_layer = 2 * (4 * 384 * 384 + 2 * 384 * 1536) + 2 * 2 * 40 * 384  # projections + FFN + attention
    assert per_layer == 3_600_384
    assert forward_flops_per_token(L, h, i, s) == 6 * per_layer
    # a (2 x 10) batch computes 20 positions at s = 10; two examples of 3 and 10 tokens are useful work only
    assert computed_flops([(2, 10)], 1, 4, 8, training=False) == 20 * (2 * (64 + 64) + 4 * 10 * 4)
    assert computed_flops([(2, 10)], 1, 4, 8, training=True) == 3 * computed_flops([(2, 10)], 1, 4, 8, False)
    assert useful_flops([3, 10], 1, 4, 8, training=False) == 3 * (256 + 48) + 10 * (256 + 160)


@pytest.fixture
def results(tiny_model_dir, tiny_task):  # per test, so conftest's isolated cache and one thread apply
    return run_bench(tiny_task, tiny_model_dir, steps=2, batch_size=8, dev_size=40, max_length=16, lr=1e-3,
                     peak_size=128, log=lambda *_: None)


def test_every_loop_runs_the_same_examples_and_steps(results):
    rows = results["train"]
    assert set(rows) == {"harness finetune-4", "HF Trainer", "plain loop", "harness finetune-2",
                         "theseus-binary seed 4->2"}
    for row in rows.values():
        assert row["steps"] == 2 and row["examples"] == 16
        assert row["seconds"] > 0 and row["examples_per_s"] > 0 and row["tokens_per_s"] > 0
        assert 0 < row["tokens"] <= row["padded_tokens"]
    # the same examples, the same tokenizer: the same real tokens everywhere
    assert len({row["tokens"] for row in rows.values()}) == 1
    assert rows["plain loop"]["padded_tokens"] == 2 * 8 * 16
    # useful work does not depend on padding; computed work does
    useful = {rows[n]["useful_flops"] for n in ("harness finetune-4", "HF Trainer", "plain loop")}
    assert len(useful) == 1
    assert rows["plain loop"]["flops"] >= rows["harness finetune-4"]["flops"] >= useful.pop()
    assert results["eval"]["examples"] == 40 and results["eval"]["flops_per_s"] > 0
    peak = results["peak"]
    assert peak["flops_per_s"] == max(peak["before"]["best_flops_per_s"], peak["after"]["best_flops_per_s"])
    assert peak["before"]["best_flops_per_s"] >= peak["before"]["median_flops_per_s"] > 0


def test_ratios_are_quotients_of_the_reported_figures(results):
    rows, r = results["train"], results["ratios"]
    harness = rows["harness finetune-4"]
    assert r["harness / HF Trainer (examples/s)"] == harness["examples_per_s"] / rows["HF Trainer"]["examples_per_s"]
    assert r["harness / plain static loop (examples/s)"] == (harness["examples_per_s"]
                                                             / rows["plain loop"]["examples_per_s"])
    assert r["harness achieved / peak"] == harness["flops"] / harness["seconds"] / results["peak"]["flops_per_s"]
    assert r["eval achieved / peak"] == results["eval"]["flops_per_s"] / results["peak"]["flops_per_s"]
    theseus = rows["theseus-binary seed 4->2"]
    finetune_2 = rows["harness finetune-2"]
    assert r["theseus / finetune-2 (examples/s)"] == theseus["examples_per_s"] / finetune_2["examples_per_s"]
    report = format_report(results)
    assert report.index("ratios") > report.index("HF Trainer") and "theseus / finetune-4" in report
    json.dumps(results)  # --out writes exactly this


def test_the_warmup_pass_is_not_counted(results, tiny_model_dir, tiny_task):
    """The untimed pass must leave the timed rows' work exactly as a single pass reports it."""
    cold = run_bench(tiny_task, tiny_model_dir, steps=2, batch_size=8, dev_size=40, max_length=16, lr=1e-3,
                     peak_size=128, warmup=False, log=lambda *_: None)
    assert results["setup"]["warmup"] is True and cold["setup"]["warmup"] is False
    work = ("steps", "examples", "tokens", "padded_tokens", "flops", "useful_flops")
    for name, row in results["train"].items():
        assert {k: row[k] for k in work} == {k: cold["train"][name][k] for k in work}, name
    assert {k: results["eval"][k] for k in work} == {k: cold["eval"][k] for k in work}
