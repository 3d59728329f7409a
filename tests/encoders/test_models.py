"""First-k slicing copies exactly the pretrained layers; heads; the forward ignores padding."""

from __future__ import annotations

import pytest
import torch

from harness.encoders.models import build_classifier, layer_indices, load_pretrained
from harness.errors import HarnessError


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_first_k_copies_exactly_the_first_k_layers(tiny_model_dir):
    pre = load_pretrained(tiny_model_dir)
    model = build_classifier(pre, 2, num_classes=3)
    assert len(model.layers) == 2
    assert _same(model.layers[0], pre.layers[0]) and _same(model.layers[1], pre.layers[1])
    assert not _same(model.layers[1], pre.layers[2])
    assert _same(model.embeddings, pre.embeddings)
    # copies, not shared: training the slice must never touch the pretrained encoder
    assert model.layers[0].attention.self.query.weight.data_ptr() != pre.layers[0].attention.self.query.weight.data_ptr()


def test_every_r_choice_and_bad_k():
    assert layer_indices(12, 3, "every-r") == [3, 7, 11]
    assert layer_indices(6, 3, "first") == [0, 1, 2]
    with pytest.raises(HarnessError, match="cannot take 7 layers"):
        layer_indices(6, 7)


def test_padding_does_not_change_the_prediction(tiny_model_dir):
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = build_classifier(pre, 4, num_classes=2).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    padded = torch.tensor([[2, 10, 11, 12, 3, 0, 0]])
    a = model(ids, torch.ones_like(ids))
    b = model(padded, (padded != 0).long())
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_pooler_head_uses_the_pretrained_pooler(tiny_model_dir):
    pre = load_pretrained(tiny_model_dir)
    model = build_classifier(pre, 1, num_classes=2, head="pooler")
    assert _same(model.head.pooler, pre.pooler)


def test_unloadable_model_is_one_line():
    with pytest.raises(HarnessError, match="could not load model 'no/such-model-here'"):
        load_pretrained("no/such-model-here")


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_other_bert_family_encoders_slice_and_run(tiny_model_dir, tmp_path, family):
    """RoBERTa and ELECTRA (whose embeddings are projected to the hidden size) through the same code."""
    import shutil

    from transformers import ElectraConfig, ElectraModel, RobertaConfig, RobertaModel

    common = dict(vocab_size=30, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64, pad_token_id=0)
    model = RobertaModel(RobertaConfig(**common)) if family == "roberta" else \
        ElectraModel(ElectraConfig(**common, embedding_size=16))
    model.save_pretrained(tmp_path)
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(f"{tiny_model_dir}/{f}", tmp_path / f)
    pre = load_pretrained(str(tmp_path))
    assert pre.num_layers == 4 and pre.identity["model_type"] == family
    torch.manual_seed(0)
    clf = build_classifier(pre, 2, num_classes=3).eval()
    ids = torch.tensor([[2, 10, 11, 3, 0, 0], [2, 12, 13, 14, 15, 3]])
    logits = clf(ids, (ids != 0).long())
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits[:1], clf(ids[:1, :4], torch.ones(1, 4, dtype=torch.long)), atol=1e-5, rtol=1e-5)


def test_honest_error_for_a_folder_that_is_not_a_model(tmp_path):
    """A readable local folder is never blamed on the hub or on being offline."""
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(HarnessError) as info:
        load_pretrained(str(tmp_path))
    message = str(info.value)
    assert "has no config.json" in message and "hub" not in message and "offline" not in message


@pytest.mark.slow
def test_real_mpnet_base_12_equals_its_own_forward(tmp_path, monkeypatch):
    """The bundled 12-layer MPNet: fetched (or linked from the user cache), its harness path equals
    its own forward, and a 12 -> 3 Theseus step at rate 1 is the 3-layer successor alone."""
    from pathlib import Path

    from transformers import AutoModel

    from harness.strategies.theseus import BinaryChoice, RateSchedule, TheseusModel

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    entry = next((Path.home() / ".cache" / "theseus-harness").glob("mpnet-base-12-*"), None)
    if entry is not None:  # reuse what `python -m harness fetch` put in the user cache
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / entry.name).symlink_to(entry)
    pre = load_pretrained("mpnet-base-12")
    assert pre.num_layers == 12 and pre.hidden_size == 768 and pre.identity["adapter"] == "mpnet"
    assert pre.identity["fidelity"]["max_abs_difference"] <= pre.identity["fidelity"]["tolerance"]
    assert len(pre.identity["weights_sha256"]["model.safetensors"]) == 64
    tok = pre.tokenizer
    batch = tok(["a gripping, beautifully acted film", "dull"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert tok.pad_token_id == 1 and not bool(mask.all())
    reference = AutoModel.from_pretrained(pre.path, attn_implementation="eager").eval()
    torch.manual_seed(0)
    predecessor = build_classifier(pre, 12, 2).eval()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = predecessor.embeddings(ids, mask)
        inputs = predecessor.embeddings.layer_inputs(hidden, mask)
        for layer in predecessor.layers:
            hidden = layer(hidden, inputs.mask, position_bias=inputs.extras["position_bias"])[0]
        torch.testing.assert_close(hidden[mask.bool()], expected[mask.bool()], rtol=0, atol=1e-5)
        successor = build_classifier(pre, 3, 2)
        successor.head = predecessor.head
        mixer = BinaryChoice(4, RateSchedule(1.0), per_example=False, generator=torch.Generator().manual_seed(0))
        theseus = TheseusModel(predecessor, successor.layers, successor.embeddings, mixer).eval()
        torch.testing.assert_close(theseus(ids, mask), successor.eval()(ids, mask), rtol=0, atol=0)
