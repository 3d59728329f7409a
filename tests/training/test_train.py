"""The shared loop: a step trains exactly the grouped parameters; one seed gives identical runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.data.splits import Encoded
from harness.encoders.models import build_classifier, load_pretrained
from harness.run.identity import run_key
from harness.run.runner import execute
from harness.training import loop as train
from harness.training.config import RunConfig
from harness.training.loop import LoopSettings, Phase, fit, macro_f1


def _encoded(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [torch.cat([torch.tensor([2]), torch.randint(5, 25, (int(k),), generator=g), torch.tensor([3])])
           for k in torch.randint(2, 8, (n,), generator=g)]
    labels = torch.randint(0, 2, (n,), generator=g)
    return Encoded(ids, labels, np.array([len(x) for x in ids]))


def test_macro_f1_matches_a_hand_computation():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 -> 0
    assert abs(macro_f1(y_true, y_pred) - (0.5 + 0.8 + 0.0) / 3) < 1e-12


def test_one_epoch_changes_trained_params_and_leaves_frozen_ones(tiny_model_dir):
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = build_classifier(pre, 2, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = _encoded()

    def loss(batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    # train only the head and layer 1; embeddings and layer 0 must not move, nor get gradients
    groups = [{"params": list(model.head.parameters()) + list(model.layers[1].parameters()), "lr": 1e-2}]
    result = fit([Phase("train", 1, groups, loss, model)], model, data, data, data, LoopSettings(batch_size=8),
                 torch.Generator().manual_seed(0))
    after = model.state_dict()
    for k in before:
        moved = not torch.equal(before[k], after[k])
        assert moved == (k.startswith("head") or k.startswith("layers.1.")), k
    assert all(p.grad is None for p in model.embeddings.parameters())
    assert result.epochs[0]["steps"] == 4 and result.epochs[0]["tokens"] == int(data.lengths.sum())


def test_idle_steps_skip_the_update_count_in_the_schedule_and_warn_nothing(tiny_model_dir, recwarn):
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = build_classifier(pre, 2, 2)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    calls = []

    def loss(batch):  # the first step is idle (as when Theseus draws no successor module): no grad
        calls.append(1)
        logits = model(batch["input_ids"], batch["attention_mask"])
        if len(calls) == 1:
            logits = logits.detach()
        return F.cross_entropy(logits, batch["labels"])

    groups = [{"params": list(model.head.parameters()), "lr": 1e-2}]
    data = _encoded()
    result = fit([Phase("train", 1, groups, loss, model)], model, data, data, data, LoopSettings(batch_size=8),
                 torch.Generator().manual_seed(0))
    assert result.epochs[0]["idle_steps"] == 1 and result.epochs[0]["steps"] == 4
    assert any(not torch.equal(v, model.head.state_dict()[k]) for k, v in head_before.items())
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]


def test_the_fused_optimizer_is_adamw_with_decay_only_on_matrices():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))
    ref = [p.detach().clone().requires_grad_() for p in net.parameters()]
    start = net[0].weight.detach().clone()
    ours = train._optimizer([{"params": list(net.parameters()), "lr": 1e-2}],
                            LoopSettings(weight_decay=0.1))
    decay = [p for p in ref if p.ndim >= 2]
    reference = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": [p for p in ref if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=1e-2, foreach=False)
    for step in range(3):
        grads = [torch.randn_like(p) for p in ref]
        for p, q, g in zip(net.parameters(), ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        reference.step()
    for p, q in zip(net.parameters(), ref):
        assert torch.allclose(p, q, atol=1e-6), (p, q)
    assert not torch.allclose(net[0].weight, start)  # it did train


def test_same_config_and_seed_give_identical_runs(tiny_config):
    a = execute(tiny_config, log=lambda *_: None)
    b = execute(tiny_config, log=lambda *_: None)
    assert a["final"] == b["final"]
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]
    c = execute(tiny_config.replace(seed=1), log=lambda *_: None)
    assert [e["train_loss"] for e in a["epochs"]] != [e["train_loss"] for e in c["epochs"]]


def test_the_tiny_task_is_learned_and_the_record_is_complete(tiny_config):
    record = execute(tiny_config.replace(layers=4, epochs=4), log=lambda *_: None)
    assert record["final"]["test_accuracy"] > 0.8  # the task is learnable: a broken loop cannot pass
    assert record["task"]["split_sizes"] == {"train": 160, "dev": 60, "test": 60}
    assert len(record["task"]["data_hash"]) == 64
    assert record["best_epoch"] == max(record["epochs"], key=lambda e: e["dev_accuracy"])["epoch"]
    for key in ("torch", "transformers", "torch_threads", "device", "git_commit"):
        assert key in record["provenance"]


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_resolves_before_the_key_is_taken(monkeypatch, native, expected):
    monkeypatch.setattr(train, "_cpu_has_native_bf16", lambda: native)
    config = RunConfig(precision="auto", device="cpu").validated()
    assert config.precision == expected
    resolved = RunConfig(precision=expected, device="cpu").validated()
    assert run_key(config, "v") == run_key(resolved, "v")   # auto shares the stored runs of what it means
    assert RunConfig.from_dict({"precision": "auto", "device": "cpu"}).precision == expected


def test_on_dev_reports_every_dev_evaluation_as_a_heartbeat(tiny_model_dir):
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = build_classifier(pre, 2, 2)

    def loss(batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    beats = []
    data = _encoded()
    result = fit([Phase("train", 2, [{"params": list(model.parameters()), "lr": 1e-2}], loss, model)], model, data,
                 data, data, LoopSettings(batch_size=8), torch.Generator().manual_seed(0), eval_points=3,
                 on_dev=beats.append)
    assert [b["step"] for b in beats] == [p["step"] for p in result.curve] and beats[-1]["total_steps"] == 8
    assert [b["dev_accuracy"] for b in beats] == [p["dev_accuracy"] for p in result.curve]
    assert [b["best_dev_accuracy"] for b in beats] == list(np.maximum.accumulate([b["dev_accuracy"] for b in beats]))
    assert all(b["phase"] == "train" for b in beats) and beats == sorted(beats, key=lambda b: b["seconds"])
