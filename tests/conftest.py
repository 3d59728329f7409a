"""Shared fixtures: a tiny random BERT (built from a config, saved as a local model folder, loaded
through the same code path as the real one) and a tiny learnable sentiment task as a CSV file."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

WORDS = ["good", "great", "fine", "nice", "superb", "bad", "awful", "poor", "dull", "boring",
         "the", "movie", "film", "was", "plot", "acting", "really", "very", "quite", "story"]
POSITIVE, NEGATIVE = WORDS[:5], WORDS[5:10]
FILLER = WORDS[10:]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache (predecessors, sources) unless a test sets its own."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _tiny_test_splits_allowed(request, monkeypatch):
    """The tests train on tiny data sets whose test splits lie far under splits.MIN_TEST_SIZE, so in-process
    runs here accept any test size; tests of the refusal itself are marked `min_test_size` and see the real
    limit (subprocess runs always do: pass --allow-small-test there)."""
    if "min_test_size" not in request.keywords:
        monkeypatch.setattr("harness.data.splits.MIN_TEST_SIZE", 1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 4-layer, hidden-32 random BERT and a word-level vocabulary, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    return str(folder)


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 3 else "neg"  # 2:1 imbalance, to see stratification work
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory):
    """csv:FILE spec of a 300-example learnable sentiment task."""
    path = tmp_path_factory.mktemp("task") / "tiny.csv"
    texts, labels = make_texts(300)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
    return f"csv:{path}"


@pytest.fixture
def tiny_config(tiny_model_dir, tiny_task):
    from harness.training.config import RunConfig

    # epochs, not the default budget; dev after every epoch (the seed's defaults)
    return RunConfig(task=tiny_task, model=tiny_model_dir, layers=2, train_size=160, dev_size=60,
                     test_size=60, epochs=2, budget=None, eval_points=0, lr=3e-3, batch_size=16, max_length=16,
                     threads=1)


# Tiny sweep configs (TOML) for the tests that run or load a whole sweep.
PREDECESSOR_AND_BASELINE = ({"strategy": "finetune", "layers": "predecessor"}, {"strategy": "finetune"})


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def write_tiny_sweep(path, model: str, task: str, *, arms=PREDECESSOR_AND_BASELINE, base: dict | None = None,
                     **top) -> Path:
    """A sweep config of tiny sizes over the tiny model and task, written to `path`: `top` holds the
    top-level keys (name "tiny", 1 seed, 1 thread, successor size 2 unless given), `base` overrides
    the [base] sizes, `arms` is a sequence of arm tables (dicts)."""
    top = {"name": "tiny", "seeds": 1, "threads": 1, "successor_layers": [2], **top}
    base = {"task": task, "model": model, "train_size": 80, "dev_size": 30, "test_size": 30, "max_length": 16,
            "batch_size": 16, "epochs": 1, "eval_points": 0, "lr": 3e-3, **(base or {})}
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()] + ["", "[base]"]
    lines += [f"{k} = {_toml(v)}" for k, v in base.items()]
    for arm in arms:
        lines += ["", "[[arms]]"] + [f"{k} = {_toml(v)}" for k, v in arm.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def load_sweep_text(tmp_path, text: str):
    """A sweep config's TOML text written to tmp_path/mine.toml and loaded (checked) as a user's sweep."""
    from harness.sweep import plan

    path = tmp_path / "mine.toml"
    path.write_text(text)
    return plan.load_sweep(config_path=path)


def sweep_config_error(tmp_path, text: str) -> str:
    """The one-line error a bad sweep config text gives (asserted to be one line naming mine.toml)."""
    from harness.errors import HarnessError

    with pytest.raises(HarnessError) as info:
        load_sweep_text(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message and message.startswith("sweep config mine.toml: "), message
    return message
