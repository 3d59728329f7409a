"""Vocabulary slicing changes no number: a short run with dropout on gives bit-identical losses, weights and
predictions with the trained word-embedding table sliced (engine "current") and whole (engine "reference")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.data.splits import Encoded
from harness.encoders.models import build_classifier, load_pretrained
from harness.training.loop import LoopSettings, Phase, fit, predict
from harness.training.vocabulary import VocabularySlice, token_ids, word_embeddings


def _encoded(n, seed, low=5, high=15):
    """Examples over token ids low..high-1 only (the tiny vocabulary has 25), between [CLS] and [SEP]."""
    g = torch.Generator().manual_seed(seed)
    ids = [torch.cat([torch.tensor([2]), torch.randint(low, high, (int(k),), generator=g), torch.tensor([3])])
           for k in torch.randint(2, 9, (n,), generator=g)]
    return Encoded(ids, torch.randint(0, 2, (n,), generator=g), np.array([len(x) for x in ids]))


def _run(tiny_model_dir, engine: str, precision: str = "fp32", weight_decay: float = 0.0):
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = build_classifier(pre, 2, 2, head="pooler")  # the pooler head's dropout too
    table = model.embeddings.embeddings.word_embeddings
    rows_seen = []

    def loss(batch):
        rows_seen.append(table.weight.shape[0])
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    train, dev, test = _encoded(48, 0), _encoded(20, 1, 5, 25), _encoded(20, 2, 5, 25)  # dev/test: other ids too
    settings = LoopSettings(batch_size=8, engine=engine, precision=precision, weight_decay=weight_decay,
                            num_classes=2)
    phases = [Phase("one", 1, [{"params": list(model.parameters()), "lr": 1e-2}], loss, model),
              Phase("two", 1, [{"params": list(model.embeddings.parameters()), "lr": 1e-2}], loss, model)]
    result = fit(phases, model, train, dev, test, settings, torch.Generator().manual_seed(3), eval_points=5)
    return {"losses": [e["train_loss"] for e in result.epochs], "curve": result.curve,
            "state": {k: v.clone() for k, v in model.state_dict().items()},
            "test": predict(model, test, settings), "rows": rows_seen, "full": table.num_embeddings}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_is_bit_identical_with_and_without_vocabulary_slicing(tiny_model_dir, precision):
    sliced, whole = _run(tiny_model_dir, "current", precision), _run(tiny_model_dir, "reference", precision)
    assert set(sliced["rows"]) == {13} and set(whole["rows"]) == {sliced["full"]}  # pad, [CLS], [SEP], ids 5..14
    assert sliced["losses"] == whole["losses"] and sliced["curve"] == whole["curve"]
    assert np.array_equal(sliced["test"], whole["test"])
    assert sliced["state"].keys() == whole["state"].keys()
    for k, v in sliced["state"].items():
        assert v.shape == whole["state"][k].shape and torch.equal(v, whole["state"][k]), k


def test_weight_decay_keeps_the_full_table(tiny_model_dir):
    run = _run(tiny_model_dir, "current", weight_decay=0.01)
    assert set(run["rows"]) == {run["full"]}


def test_a_slice_writes_its_rows_back_and_restores_the_module():
    table = torch.nn.Embedding(10, 4, padding_idx=0)
    full = table.weight
    ids = token_ids([torch.tensor([2, 7, 3]), torch.tensor([7, 5])], pad_id=0)
    assert ids.tolist() == [0, 2, 3, 5, 7]
    s = VocabularySlice(table, ids)
    before = full.detach().clone()
    s.enter()
    assert table.weight is s.compact and table.padding_idx == 0 and tuple(table.weight.shape) == (5, 4)
    out = table(torch.tensor([[7, 0, 2]]))
    torch.testing.assert_close(out, before[[7, 0, 2]][None], rtol=0, atol=0)
    with torch.no_grad():
        s.compact.add_(1.0)
    s.leave()
    assert table.weight is full and table.padding_idx == 0
    moved = torch.zeros(10, dtype=torch.bool)
    moved[ids] = True
    assert torch.equal(full[moved], before[moved] + 1.0) and torch.equal(full[~moved], before[~moved])


def test_the_word_embedding_of_every_harness_embeddings_block_is_found(tiny_model_dir):
    model = build_classifier(load_pretrained(tiny_model_dir), 2, 2)
    assert word_embeddings(model) == [model.embeddings.embeddings.word_embeddings]
