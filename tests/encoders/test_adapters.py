"""Every supported encoder family through its adapter, on tiny random models saved by transformers:
the harness path equals the model's own forward, rate-1 Theseus equals the successor alone, one
training step runs; unsupported families and a broken adapter are refused in one line."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import WORDS

from harness.cli import main
from harness.encoders import adapters
from harness.encoders.models import FIDELITY_TOLERANCE, Classifier, _load_cached, build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.run.runner import execute
from harness.strategies.theseus import BinaryChoice, ProportionalAdd, RateSchedule, TheseusModel
from harness.training.config import RunConfig

FAMILIES = ["bert", "roberta", "xlm-roberta", "electra", "distilbert", "mpnet", "deberta-v2"]
COMMON = dict(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
              intermediate_size=64, max_position_embeddings=64)
QUIET = dict(log=lambda *_: None)


def _tokenizer(family: str):
    """A word-level tokenizer over the test words; MPNet's pads with id 1, as its embeddings assume."""
    from transformers import BertTokenizer, MPNetTokenizer

    if family == "mpnet":
        vocab = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"] + WORDS
        return MPNetTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)


def make_model(family: str, **overrides) -> torch.nn.Module:
    """A tiny random encoder of one family, with the parts that make families differ switched on."""
    import transformers as tf

    torch.manual_seed(0)
    if family == "distilbert":
        kw = dict(vocab_size=COMMON["vocab_size"], dim=32, n_layers=4, n_heads=2, hidden_dim=64,
                  max_position_embeddings=64, pad_token_id=0)
        return tf.DistilBertModel(tf.DistilBertConfig(**{**kw, **overrides}))
    if family == "mpnet":
        model = tf.MPNetModel(tf.MPNetConfig(**{**COMMON, "pad_token_id": 1, **overrides}))
        # a bias large enough that running the layers without it changes the output well past the tolerance
        torch.nn.init.normal_(model.encoder.relative_attention_bias.weight, std=1.0)
        return model
    if family == "deberta-v2":  # the v3 layout: relative attention, log buckets, normalised rel embeddings
        kw = dict(COMMON, relative_attention=True, position_buckets=8, max_relative_positions=16,
                  norm_rel_ebd="layer_norm", pos_att_type=["p2c", "c2p"], share_att_key=True,
                  position_biased_input=False, type_vocab_size=0, pad_token_id=0)
        return tf.DebertaV2Model(tf.DebertaV2Config(**{**kw, **overrides}))
    if family == "electra":
        return tf.ElectraModel(tf.ElectraConfig(**COMMON, embedding_size=16, pad_token_id=0, **overrides))
    if family == "albert":
        return tf.AlbertModel(tf.AlbertConfig(**COMMON, embedding_size=16, pad_token_id=0, **overrides))
    classes = {"bert": (tf.BertModel, tf.BertConfig), "roberta": (tf.RobertaModel, tf.RobertaConfig),
               "xlm-roberta": (tf.XLMRobertaModel, tf.XLMRobertaConfig)}
    model_cls, config_cls = classes[family]
    return model_cls(config_cls(**COMMON, pad_token_id=0, **overrides))


def save_family(folder, family: str, **overrides) -> str:
    model = make_model(family, **overrides)
    model.save_pretrained(folder)
    _tokenizer(family).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    return {family: save_family(tmp_path_factory.mktemp(f"tiny-{family}"), family) for family in FAMILIES}


def _padded_batch(family: str, seed: int = 1):
    """Three sentences of different lengths, padded with the tokenizer's pad id."""
    gen = torch.Generator().manual_seed(seed)
    tok = _tokenizer(family)
    rows = []
    for length in (9, 4, 6):
        words = [WORDS[int(i)] for i in torch.randint(len(WORDS), (length,), generator=gen)]
        rows.append(tok(" ".join(words))["input_ids"])
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


class _Hidden(torch.nn.Module):
    def forward(self, hidden):
        return hidden


@pytest.mark.parametrize("family", FAMILIES)
def test_harness_path_equals_the_models_own_forward(family_dirs, family):
    from transformers import AutoModel

    pre = load_pretrained(family_dirs[family])
    fidelity = pre.identity["fidelity"]
    assert pre.identity["adapter"] == adapters.ADAPTERS[family].family
    assert 0 <= fidelity["max_abs_difference"] <= FIDELITY_TOLERANCE
    # independently of the load-time check: the whole body as a Classifier, on another padded batch
    reference = AutoModel.from_pretrained(family_dirs[family], attn_implementation="eager").eval()
    body = Classifier(pre.embeddings, pre.layers, _Hidden()).eval()
    ids, mask = _padded_batch(family)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = body(ids, mask)
        real = mask.bool()
        torch.testing.assert_close(ours[real], expected[real], rtol=0, atol=1e-5)
        # and a 2-layer slice equals the model's own forward with 2 layers
        sliced = Classifier(pre.embeddings, pre.layers[:2], _Hidden()).eval()
        reference.config.num_hidden_layers = 2
        stack = reference.transformer.layer if family == "distilbert" else reference.encoder.layer
        del stack[2:]
        torch.testing.assert_close(sliced(ids, mask)[real], reference(input_ids=ids, attention_mask=mask)
                                   .last_hidden_state[real], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_dropout_of_a_training_forward_is_the_harnesss(family_dirs, family, monkeypatch):
    """In a training forward (pooler head where the family has one), hidden and attention-probability dropout
    both go through harness/training/dropout.py and none through torch's RNG; the generator alone decides the
    masks; in eval mode nothing is dropped (the fidelity check's path, unchanged)."""
    from harness.training import dropout as harness_dropout_module
    from harness.training.dropout import DropoutAudit, harness_dropout

    pre = load_pretrained(family_dirs[family])
    torch.manual_seed(0)
    model = build_classifier(pre, 2, 2, head="pooler" if pre.pooler is not None else "cls")
    ids, mask = _padded_batch(family)
    shapes = []
    own = harness_dropout_module.dropout

    def recorded(x, p, *args, **kwargs):
        shapes.append(tuple(x.shape))
        return own(x, p, *args, **kwargs)

    monkeypatch.setattr(harness_dropout_module, "dropout", recorded)
    outs = []
    for seed in (1, 1, 2):
        with DropoutAudit() as seen, harness_dropout(torch.Generator().manual_seed(seed)):
            outs.append(model.train()(ids, mask))
        seen.check(family)
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    batch, width = ids.shape
    heads = COMMON["num_attention_heads"]
    assert (batch, heads, width, width) in shapes  # attention probabilities
    assert (batch, width, 32) in shapes  # hidden states
    with torch.no_grad(), harness_dropout(torch.Generator().manual_seed(1)):
        evaluated = model.eval()(ids, mask)
    torch.testing.assert_close(evaluated, model.eval()(ids, mask), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_encoder_level_parameters_travel_with_the_embeddings(family_dirs, family):
    pre = load_pretrained(family_dirs[family])
    clf = build_classifier(pre, 2, num_classes=2)
    shared = dict(clf.embeddings.shared.named_parameters())
    assert shared, "the relative attention parameters belong to the embeddings part"
    assert all(k.startswith("embeddings.shared.") for k in clf.state_dict() if "rel" in k)
    original = dict(pre.embeddings.shared.named_parameters())
    for key, p in shared.items():  # a copy, equal to the pretrained one
        assert torch.equal(p, original[key]) and p.data_ptr() != original[key].data_ptr()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("replaceable_embeddings", [False, True])
def test_rate_one_theseus_equals_the_successor_alone(family_dirs, family, replaceable_embeddings):
    pre = load_pretrained(family_dirs[family])
    torch.manual_seed(0)
    predecessor = build_classifier(pre, 4, 2).eval()
    layers = torch.nn.ModuleList(copy.deepcopy(pre.layers[i]) for i in range(2))
    embeddings = copy.deepcopy(pre.embeddings) if replaceable_embeddings else None
    perturbed = list(layers.parameters()) + (list(embeddings.parameters()) if embeddings is not None else [])
    for p in perturbed:  # E_s's shared parameters too: using E_p's instead would show
        p.data.add_(0.2 * torch.randn_like(p))
    successor = Classifier(embeddings if embeddings is not None else predecessor.embeddings, layers,
                           predecessor.head).eval()
    ids, mask = _padded_batch(family)
    modules = 2 + replaceable_embeddings
    binary = BinaryChoice(modules, RateSchedule(1.0), per_example=False, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = successor(ids, mask)
        torch.testing.assert_close(TheseusModel(predecessor, layers, embeddings, binary).eval()(ids, mask),
                                   expected, rtol=0, atol=0)
        assert not torch.allclose(predecessor(ids, mask), expected)
        # proportional add at k = 0 in the convex form is the successor alone as well
        add = ProportionalAdd(0.0, "convex", total_steps=1)
        torch.testing.assert_close(TheseusModel(predecessor, layers, embeddings, add).eval()(ids, mask),
                                   expected, rtol=0, atol=0)


@pytest.fixture
def family_run(tiny_task, tmp_path):
    def config(model_dir, **kw):
        return RunConfig(task=tiny_task, model=model_dir, **{
            "layers": 2, "train_size": 32, "dev_size": 16, "test_size": 16, "epochs": 1, "budget": None, "lr": 3e-3,
            "batch_size": 16, "max_length": 16, "threads": 1, **kw})
    return config


@pytest.mark.parametrize("family", FAMILIES)
def test_one_finetune_step_runs_and_records_the_fidelity(family_dirs, family_run, family):
    record = execute(family_run(family_dirs[family]), **QUIET)
    assert record["status"] == "ok" and record["final"]["steps"] == 2
    assert record["model"]["model_type"] == family
    assert record["model"]["fidelity"]["max_abs_difference"] <= FIDELITY_TOLERANCE


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_theseus_kd_and_two_stage_run_on_families_with_per_forward_extras(family_dirs, family_run, family):
    model = family_dirs[family]
    runs = [("theseus-binary", "seed"), ("theseus-add", "convex"), ("kd", ""), ("two-stage", "predecessor-1x")]
    for strategy, variant in runs:
        options = {"theseus_epochs": 1, "successor_epochs": 1} if strategy.startswith("theseus") else {"epochs": 1}
        record = execute(family_run(model, strategy=strategy, variant=variant, options=options), **QUIET)
        assert record["status"] == "ok" and record["successor_layers"] == 2, (strategy, record)


def test_cli_runs_distilbert_and_mpnet_with_the_fidelity_in_the_record(capsys, family_dirs, tiny_task, tmp_path):
    for family in ("distilbert", "mpnet"):
        out = tmp_path / family
        code = main(["run", "--task", tiny_task, "--model", family_dirs[family], "--strategy", "finetune",
                     "--layers", "2", "--train-size", "32", "--dev-size", "16", "--test-size", "16",
                     "--epochs", "1", "--max-length", "16", "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 0 and "Traceback" not in captured.err, captured.err
        (record_file,) = (out / "runs").glob("*.json")
        model = json.loads(record_file.read_text())["model"]
        assert model["model_type"] == family and model["fidelity"]["max_abs_difference"] <= FIDELITY_TOLERANCE


def _refused(capsys, tiny_task, model_dir) -> str:
    code = main(["run", "--task", tiny_task, "--model", model_dir, "--layers", "2", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_albert_is_refused_in_one_line(capsys, tmp_path, tiny_task):
    err = _refused(capsys, tiny_task, save_family(tmp_path / "albert", "albert"))
    assert "albert encoders are not supported" in err and "share" in err


def test_deberta_with_a_convolution_is_refused_in_one_line(capsys, tmp_path, tiny_task):
    err = _refused(capsys, tiny_task, save_family(tmp_path / "conv", "deberta-v2", conv_kernel_size=3))
    assert "conv_kernel_size" in err


class _NoPositionBias(adapters.MPNetAdapter):
    """Calls MPNet's layers without the encoder's relative position bias: a silently different model."""

    def extras(self, shared, hidden, attention_mask):
        return {"position_bias": None}


def test_a_broken_adapter_is_caught_by_the_fidelity_check(capsys, monkeypatch, tmp_path, tiny_task):
    model_dir = save_family(tmp_path / "mpnet", "mpnet")
    monkeypatch.setitem(adapters.ADAPTERS, "mpnet", _NoPositionBias)
    _load_cached.cache_clear()
    err = _refused(capsys, tiny_task, model_dir)
    assert "(mpnet)" in err and "differs from the model's own forward by max |difference|" in err
    difference = float(err.split("max |difference| ")[1].split()[0])
    assert difference > 100 * FIDELITY_TOLERANCE
    _load_cached.cache_clear()


def test_unknown_architecture_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=40, n_positions=32)).save_pretrained(tmp_path)
    with pytest.raises(HarnessError, match=r"gpt2 encoders are not supported \(no adapter.*supported: bert, roberta"):
        load_pretrained(str(tmp_path))


@pytest.mark.parametrize("setup, message", [
    ("missing", "no folder"),
    ("empty", "has no config.json"),
    ("no-weights", "has a config.json but no weights"),
    ("no-tokenizer", "has no tokenizer files"),
    ("hub-id", "HF_HUB_OFFLINE=1 forbids downloading it"),
])
def test_load_errors_say_what_failed(tmp_path, family_dirs, setup, message):
    import shutil

    folder = tmp_path / "model"
    if setup in ("empty", "no-weights", "no-tokenizer"):
        folder.mkdir()
    if setup in ("no-weights", "no-tokenizer"):
        shutil.copy(f"{family_dirs['mpnet']}/config.json", folder)
    if setup == "no-tokenizer":
        shutil.copy(f"{family_dirs['mpnet']}/model.safetensors", folder)
    name = {"missing": str(tmp_path / "nope" / "model"), "hub-id": "someone/no-such-model"}.get(setup, str(folder))
    with pytest.raises(HarnessError) as info:
        load_pretrained(name)
    text = str(info.value)
    assert message in text and "\n" not in text and "offline?" not in text, text
