"""The real bundled model (all-MiniLM-L6-v2) on a few dozen real rt-polarity examples (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.encoders.models import build_classifier, load_pretrained
from harness.run.runner import execute
from harness.training.config import RunConfig

pytestmark = pytest.mark.slow


@pytest.fixture
def real_config(tmp_path, monkeypatch):
    # a private cache (fresh predecessors) that links the sources `python -m harness fetch` put in the user cache
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    default_cache = Path.home() / ".cache" / "theseus-harness"
    for name in ("minilm-l6", "rt-polarity"):
        entry = next(default_cache.glob(f"{name}-*"), None)
        if entry is not None:
            (tmp_path / "cache").mkdir(exist_ok=True)
            (tmp_path / "cache" / entry.name).symlink_to(entry)
    return RunConfig(task="rt-polarity", model="minilm-l6", layers=3, train_size=48, dev_size=24, test_size=24,
                     epochs=1, budget=None, eval_points=0, threads=2)


def test_real_model_is_a_6_layer_384_bert_and_slices_exactly(real_config):
    pre = load_pretrained("minilm-l6")
    assert pre.num_layers == 6 and pre.hidden_size == 384
    assert len(pre.identity["weights_sha256"]["model.safetensors"]) == 64
    model = build_classifier(pre, 3, 2)
    for i in range(3):
        for a, b in zip(model.layers[i].state_dict().values(), pre.layers[i].state_dict().values()):
            assert torch.equal(a, b)


def test_real_finetune_and_theseus_run_and_repeat_exactly(real_config):
    a = execute(real_config, log=lambda *_: None)
    b = execute(real_config, log=lambda *_: None)
    assert a["final"] == b["final"] and a["task"]["split_sizes"] == {"train": 48, "dev": 24, "test": 24}
    theseus = execute(real_config.replace(strategy="theseus-binary", variant="seed",
                                          options={"theseus_epochs": 1, "successor_epochs": 0}),
                      log=lambda *_: None)
    assert theseus["predecessor"]["trained_now"]
    assert len(theseus["epochs"][0]["replaced_per_module"]) == 4  # embeddings + 3 layers


def test_real_english_model_takes_an_english_clue_directory_and_refuses_a_chinese_one(real_config, tmp_path):
    """CLUE's format is used for English data too: the language is read from the text."""
    import json

    from harness.data.tasks import load_task
    from harness.errors import HarnessError

    rt = load_task("rt-polarity")

    def clue(folder, texts, labels):
        folder.mkdir()
        for name, part in (("train", slice(0, 72)), ("dev", slice(72, 96))):
            (folder / f"{name}.json").write_text("".join(
                json.dumps({"sentence": t, "label": str(y)}, ensure_ascii=False) + "\n"
                for t, y in zip(texts[part], labels[part])), encoding="utf-8")
        return f"clue:{folder}"

    english = clue(tmp_path / "en", rt.texts[:96], rt.labels[:96])
    record = execute(real_config.replace(task=english, train_size=None, dev_size=None, test_size=None),
                     log=lambda *_: None)
    assert record["task"]["split_sizes"] == {"train": 63, "dev": 9, "test": 24}
    chinese = clue(tmp_path / "zh", ["股市今天大幅上涨", "球队昨晚夺得冠军", "新片周末全国上映"] * 32, [0, 1, 2] * 32)
    with pytest.raises(HarnessError, match="is Chinese but model 'minilm-l6' is English-only"):
        execute(real_config.replace(task=chinese), log=lambda *_: None)
