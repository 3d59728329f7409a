"""bench: the FLOP model by hand, and a 2-step run on the tiny model whose figures are self-consistent.
No timing is asserted: only that every loop ran the same work and the ratios are quotients of the rows."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from harness.bench.throughput import computed_flops, format_report, forward_flops_per_token, run_bench, useful_flops


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


# ---------------------------------------------------------------- bench --profile

def test_op_families_put_each_op_under_its_family():
    """A hand-built step whose ops are known: every family present gets time, backward ops follow the
    forward op that made them, and the families add up to every op's self time."""
    from torch.profiler import profile

    from harness.bench.profile import FAMILIES, OVERHEAD, op_families

    torch.manual_seed(0)
    lin, norm = torch.nn.Linear(16, 16), torch.nn.LayerNorm(16)
    emb = torch.nn.Embedding(50, 16)
    opt = torch.optim.AdamW([*lin.parameters(), *norm.parameters(), *emb.parameters()], fused=True)
    ids, labels = torch.randint(0, 50, (4, 8)), torch.randint(0, 16, (4,))
    with profile() as prof:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = norm(emb(ids))
            q = F.dropout(F.gelu(lin(h)), 0.1).view(4, 2, 8, 8)
            a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.1).reshape(4, 8, 16)
            loss = F.cross_entropy(a[:, 0].float(), labels)
        loss.backward()
        opt.step()
    events = prof.events()
    fam = op_families(events)
    assert set(fam) == set(FAMILIES) - {OVERHEAD}
    assert sum(fam.values()) == pytest.approx(sum(e.self_cpu_time_total for e in events))
    for family in ("matmul/linear", "attention (sdpa, softmax)", "dropout + RNG", "dtype casts/copies", "layer norm",
                   "GELU", "optimizer step", "embedding", "loss"):
        assert fam[family] > 0, family
    # every bernoulli_ (F.dropout's and SDPA's own) is dropout; a linear's backward mm is matmul
    bernoulli = sum(e.self_cpu_time_total for e in events if e.name == "aten::bernoulli_")
    assert bernoulli > 0 and fam["dropout + RNG"] >= bernoulli
    backward_mm = sum(e.self_cpu_time_total for e in events if e.name == "aten::mm")
    assert fam["matmul/linear"] >= backward_mm > 0


def test_op_families_count_a_written_out_softmax_and_its_backward_as_attention():
    """The harness's attention (dropout.attention) calls torch.softmax itself, outside any SDPA op."""
    from torch.profiler import profile

    from harness.bench.profile import op_families

    x = torch.randn(4, 2, 31, 31, requires_grad=True)
    with profile() as prof:
        torch.softmax(x, -1).square().sum().backward()
    events = prof.events()
    softmax = sum(e.self_cpu_time_total for e in events if e.name in ("aten::_softmax", "aten::_softmax_backward_data"))
    assert softmax > 0 and op_families(events)["attention (sdpa, softmax)"] >= softmax


def test_profile_reports_shares_of_every_case(tiny_model_dir, tiny_task):
    from harness.bench.profile import FAMILIES, format_profile, run_profile

    results = run_profile(tiny_task, tiny_model_dir, steps=4, batch_size=8, max_length=16, lr=1e-3,
                          log=lambda *_: None)
    cases = [(c["case"], c["precision"]) for c in results["cases"]]
    assert cases == [("finetune-2", "bf16"), ("theseus 4->2", "bf16"), ("finetune-2", "fp32"), ("theseus 4->2", "fp32")]
    for c in results["cases"]:
        assert set(c["shares"]) == set(FAMILIES) and sum(c["shares"].values()) == pytest.approx(1.0)
        assert min(c["shares"].values()) >= 0 and c["step_ms"] > 0 and c["steps_per_s"] > 0
        # each step's matmul FLOPs and its fraction of the peak measured next to its timed pass
        assert c["matmul_flops_per_step"] > 0 and c["page_faults_per_step"] is not None
        assert c["fraction_of_peak"] == pytest.approx(
            c["matmul_flops_per_step"] / (c["step_ms"] / 1e3) / c["peak_flops_per_s"])
        assert c["fraction_of_peak_cpu"] == pytest.approx(
            c["matmul_flops_per_step"] / (c["cpu_step_ms"] / 1e3) / c["peak_flops_per_cpu_s"])
        assert results["peak"][c["precision"]]["flops_per_s"] >= c["peak_flops_per_s"]
    flops = {(c["case"], c["precision"]): c["matmul_flops_per_step"] for c in results["cases"]}
    assert flops[("finetune-2", "bf16")] == flops[("finetune-2", "fp32")]  # the same steps in either precision
    text = format_profile(results)
    assert "Python/framework overhead" in text and "fraction of peak (CPU)" in text
    assert "peak GFLOP/s next to it" in text
    json.dumps(results)


# ---------------------------------------------------------------- engines: bit-identical, and measured

_ENGINE_CHILD = """
import json, os, sys, torch
from harness.training.config import RunConfig
from harness.run.runner import execute
out = {"records": [], "states": [], "engines": []}
for d in json.loads(sys.stdin.read()):
    record, model = execute(RunConfig.from_dict(d), log=lambda *_: None, return_model=True)
    out["engines"].append(record["provenance"]["engine"])
    for key in ("wall_seconds", "provenance"):
        record.pop(key)
    for e in record["epochs"] + [record["predecessor"] or {}]:
        for key in [k for k in e if "seconds" in k]:
            e.pop(key)
    # where this process's cache keeps the sources (model and data paths) is no result
    out["records"].append(json.loads(json.dumps(record).replace(os.environ["HARNESS_CACHE"], "<cache>")))
    out["states"].append({k: v.clone() for k, v in model.state_dict().items()})
torch.save(out, os.environ["ENGINE_OUT"])
"""


def _runs_under(engine: str, configs: list, tmp_path, sources=None) -> dict:
    """Whole runs (predecessor trained, both Theseus phases, dev/test evaluation) in a fresh process with
    HARNESS_ENGINE=engine (keep_freed_memory holds for the rest of a process) and a cache of its own (each
    engine trains its own predecessor), linking the fetched sources of `sources` (default: this session's)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out, cache = tmp_path / f"{engine}.pt", tmp_path / f"cache-{engine}"
    cache.mkdir()
    for entry in Path(sources or os.environ["HARNESS_CACHE"]).glob("*-*"):  # sources: fetched and verified
        (cache / entry.name).symlink_to(entry.resolve())
    env = {**os.environ, "HARNESS_ENGINE": engine, "HARNESS_CACHE": str(cache), "ENGINE_OUT": str(out)}
    configs = [c.replace(allow_small_test=True) for c in configs]  # tiny test splits, on purpose
    done = subprocess.run([sys.executable, "-c", _ENGINE_CHILD], input=json.dumps([c.to_dict() for c in configs]),
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


def _differences(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _assert_identical(a: dict, b: dict) -> None:
    # losses per epoch, dev curve, test accuracy and predictions per class: every field but timings
    assert not _differences(a["records"], b["records"])
    for sa, sb in zip(a["states"], b["states"]):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_engines_give_bit_identical_runs(tiny_config, tmp_path):
    """The speed-ups of engine "current" change no number: the same configs run under "reference" (the same
    dropout, none of the speed-ups) and "current" give equal records and bit-identical weights, in fp32 and
    bf16, for direct fine-tuning and both Theseus strategies (whose frozen predecessor the bf16 casts concern)."""
    theseus = tiny_config.replace(strategy="theseus-binary", variant="seed",
                                  options={"theseus_epochs": 2, "successor_epochs": 1})
    add = tiny_config.replace(strategy="theseus-add", variant="seed", options={"theseus_epochs": 1,
                                                                                 "successor_epochs": 1})
    configs = [c.replace(precision=p) for p in ("bf16", "fp32")
               for c in (tiny_config.replace(strategy="finetune"), theseus)] + [add.replace(precision="bf16")]
    reference, current = _runs_under("reference", configs, tmp_path), _runs_under("current", configs, tmp_path)
    assert len(current["records"]) == 5 and all(r["status"] == "ok" for r in current["records"])
    assert set(reference["engines"]) == {"reference"} and set(current["engines"]) == {"current"}  # provenance
    _assert_identical(reference, current)


@pytest.mark.slow
def test_engines_give_bit_identical_runs_on_the_real_model(tmp_path):
    """The same on MiniLM-L6 and rt-polarity (6 -> 3, short runs): the real shapes and kernels."""
    from harness.training.config import RunConfig

    base = RunConfig(task="rt-polarity", model="minilm-l6", layers=3, train_size=320, dev_size=64, test_size=64,
                     epochs=1, budget=None, predecessor_epochs=1, threads=1)
    configs = [base.replace(strategy="finetune", precision="bf16"),
               base.replace(strategy="theseus-binary", variant="seed", precision="bf16",
                            options={"theseus_epochs": 1, "successor_epochs": 1}),
               base.replace(strategy="theseus-binary", variant="seed", precision="fp32",
                            options={"theseus_epochs": 1, "successor_epochs": 0})]
    from pathlib import Path

    sources = Path.home() / ".cache" / "theseus-harness"  # what `python -m harness fetch` put there
    _assert_identical(_runs_under("reference", configs, tmp_path, sources),
                      _runs_under("current", configs, tmp_path, sources))


def test_frozen_casts_give_linears_the_values_autocast_would(tmp_path):
    from harness.training.loop import FrozenCasts

    torch.manual_seed(0)
    frozen, trained = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    net = torch.nn.Sequential(frozen, torch.nn.GELU(), trained)
    for p in frozen.parameters():
        p.requires_grad_(False)
    own = {name: p for name, p in net.named_parameters()}
    casts = FrozenCasts(net, {id(p) for p in trained.parameters()}, torch.bfloat16)
    assert casts.linears == [frozen]
    x = torch.randn(4, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = net(x)
        with casts:
            assert frozen.weight.dtype == torch.bfloat16 and trained.weight.dtype == torch.float32
            cached = net(x)
    assert torch.equal(plain, cached)
    (ga,) = torch.autograd.grad(plain.float().sum(), x)
    (gb,) = torch.autograd.grad(cached.float().sum(), x)
    assert torch.equal(ga, gb)
    assert {name: p for name, p in net.named_parameters()} == own  # the very same parameters back
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():  # a frozen weight changed in place is cast again
        frozen.weight.mul_(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = net(x)
        with casts:
            assert torch.equal(net(x), plain)


def test_compare_engines_measures_both_and_checks_reproducibility(tiny_model_dir, tiny_task):
    from harness.bench.engines import compare_engines, format_engines

    results = compare_engines(tiny_task, tiny_model_dir, steps=4, batch_size=8, max_length=16, lr=1e-3,
                              precisions=("bf16",), rounds=1, log=lambda *_: None)
    assert [(c["case"], c["precision"]) for c in results["cases"]] == [("finetune-2", "bf16"), ("theseus 4->2", "bf16")]
    assert {r["engine"] for r in results["runs"]} == {"previous", "current"}
    for c in results["cases"]:
        assert c["reproducible"] and c["ratio_cpu"] > 0 and c["ratio_wall"] > 0
        assert c["ratio_cpu"] == pytest.approx(c["current_steps_per_cpu_s"] / c["previous_steps_per_cpu_s"])
    assert "reproducible" in format_engines(results)


# ---------------------------------------------------------------- prototypes (never used by runs)

def test_prototypes_run_and_report_speedups_against_their_baseline(tiny_model_dir, tiny_task):
    from harness.bench.prototypes import PROTOTYPES, STEP_PROTOTYPES, format_prototypes, run_prototypes

    results = run_prototypes(tiny_task, tiny_model_dir, steps=4, batch_size=8, max_length=16, lr=1e-3,
                             precisions=("bf16",), rounds=1, log=lambda *_: None)
    rows = {r["kind"]: r for r in results["prototypes"]}
    assert set(rows) == set(PROTOTYPES) and rows["baseline"]["speedup"] == 1.0
    assert all(r["cpu_step_ms"] > 0 for r in rows.values())
    steps = {r["kind"]: r for r in results["step_prototypes"]}
    assert set(steps) == set(STEP_PROTOTYPES) and steps["harness step"]["speedup"] == 1.0
    assert all(r["cpu_step_ms"] > 0 for r in steps.values())
    (check,) = results["eval_batches"]
    assert check["examples"] > 0 and isinstance(check["identical_predictions"], bool)
    assert "lockstep-2" in format_prototypes(results) and "fp32-softmax" in format_prototypes(results)


def test_fp32_softmax_prototype_reaches_the_harness_attention():
    """The prototype swaps the softmax the harness's attention calls, only while patched: the probabilities
    are then the fp32 softmax's rounded to bf16."""
    from unittest import mock

    from harness.bench.prototypes import _fp32_softmax
    from harness.training import dropout

    torch.manual_seed(0)
    q, k = (torch.randn(2, 2, 31, 8).bfloat16() for _ in range(2))
    eye = torch.eye(31, dtype=torch.bfloat16).expand(2, 2, 31, 31)
    sdpa = dropout.attention(torch.Generator().manual_seed(0))
    scores = torch.matmul(q, k.transpose(-2, -1)) * 8 ** -0.5
    calls = []

    def recorded(x):
        calls.append(x.dtype)
        return _fp32_softmax(x)

    # v = identity: the output is the probabilities; p = 1e-9 rounds to 0 of 65536, so nothing is dropped
    assert torch.equal(sdpa(q, k, eye, dropout_p=1e-9), torch.softmax(scores, -1))
    with mock.patch.object(dropout, "_softmax", recorded):
        patched = sdpa(q, k, eye, dropout_p=1e-9)
    assert calls == [torch.bfloat16]
    assert torch.equal(patched, torch.softmax(scores.float(), -1).bfloat16())
    sdpa(q, k, eye, dropout_p=1e-9)
    assert len(calls) == 1


def test_cheap_dropout_keeps_the_expected_share_and_scales():
    from harness.bench.prototypes import cheap_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = cheap_dropout(x, 0.1)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert cheap_dropout(x, 0.1, training=False) is x


def test_compare_engines_reports_matmul_flops_and_the_fraction_of_a_peak_measured_in_the_run(tiny_model_dir,
                                                                                              tiny_task):
    from harness.bench.common import matmul_peak
    from harness.bench.engines import compare_engines, format_engines

    results = compare_engines(tiny_task, tiny_model_dir, steps=4, batch_size=8, max_length=16, lr=1e-3,
                              precisions=("fp32",), rounds=1, log=lambda *_: None)
    peak = results["peak"]["fp32"]
    assert peak["flops_per_s"] == max(peak["before"]["best_flops_per_s"], peak["after"]["best_flops_per_s"])
    for c in results["cases"]:
        assert c["matmul_flops_per_step"] > 0
        for e in ("previous", "current"):  # one round: each engine's one timed pass, against its own peak
            (run,) = [r for r in results["runs"] if r["case"] == c["case"] and r["engine"] == e]
            assert c[f"{e}_fraction_of_peak"] == pytest.approx(
                c["matmul_flops_per_step"] * c[f"{e}_steps_per_s"] / run["peak_flops_per_s"])
            assert c[f"{e}_fraction_of_peak_cpu"] == pytest.approx(
                c["matmul_flops_per_step"] * c[f"{e}_steps_per_cpu_s"] / run["peak_flops_per_cpu_s"])
            assert c[f"{e}_page_faults_per_step"] is not None
    # the count is FlopCounterMode's: finetune-2 on the tiny BERT is at least its layers' linears, 3 x forward
    finetune = results["cases"][0]
    shapes_tokens = 8 * 2  # at least batch 8 x 2 tokens per step
    assert finetune["matmul_flops_per_step"] >= 3 * 2 * shapes_tokens * 2 * (4 * 32 * 32 + 2 * 32 * 64)
    assert "GFLOP per CPU s" in format_engines(results)
    json.dumps(results)
    small = matmul_peak("fp32", size=64, reps=2)
    assert small["best_flops_per_s"] >= small["median_flops_per_s"] > 0
