"""Encoders, first-k slicing and classification heads.

A `Classifier` is embeddings -> a list of transformer layers -> a head, built from any BERT-family
encoder whose layers take `(hidden_states, attention_mask)` (BERT, RoBERTa, ELECTRA, MiniLM, ...).
Every strategy composes these pieces; none of them calls the Hugging Face model's own forward,
so a successor can run its layers inside a predecessor's stack (SPEC 3.2).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.errors import HarnessError

BUNDLED_MODELS = {
    "minilm-l6": "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased English (bundled)",
}
HEADS = ("cls", "pooler")


@dataclass
class Pretrained:
    """A loaded pretrained encoder, split into the parts strategies reuse.

    `layers` holds all L_p pretrained transformer layers in order; `pooler` may be None.
    """

    name: str
    path: str
    embeddings: nn.Module
    layers: nn.ModuleList
    pooler: nn.Module | None
    tokenizer: object
    hidden_size: int
    hidden_dropout: float
    identity: dict

    @property
    def num_layers(self) -> int:
        return len(self.layers)


class Embeddings(nn.Module):
    """The encoder's embedding block, plus ELECTRA's projection when it has one."""

    def __init__(self, embeddings: nn.Module, projection: nn.Module | None = None):
        super().__init__()
        self.embeddings = embeddings
        self.projection = projection

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, token_type_ids: (batch, seq) -> hidden states (batch, seq, hidden)."""
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        return self.projection(hidden) if self.projection is not None else hidden


class ClsHead(nn.Module):
    """The seed's head: a linear layer on the final hidden state of the first token."""

    def __init__(self, hidden_size: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (batch, seq, hidden) -> logits (batch, num_classes)."""
        return self.classifier(hidden[:, 0])


class PoolerHead(nn.Module):
    """Hugging Face's default: pooler (dense + tanh on the first token), dropout, linear."""

    def __init__(self, pooler: nn.Module, dropout: float, hidden_size: int, num_classes: int):
        super().__init__()
        self.pooler = pooler
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pooler(hidden)))


def layer_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """(batch, seq) 0/1 padding mask -> boolean (batch, 1, 1, seq) mask for SDPA, or None.

    None when the batch has no padding, which lets SDPA pick its fastest kernel.
    """
    if bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def run_layer(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One transformer layer; transformers < 5 returns a tuple, 5.x a tensor."""
    out = layer(hidden, attention_mask=mask)
    return out[0] if isinstance(out, tuple) else out


class Classifier(nn.Module):
    """embeddings -> layers -> head. Modules may be shared with another Classifier."""

    def __init__(self, embeddings: nn.Module, layers: list[nn.Module] | nn.ModuleList, head: nn.Module):
        super().__init__()
        self.embeddings = embeddings
        self.layers = layers if isinstance(layers, nn.ModuleList) else nn.ModuleList(layers)
        self.head = head

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """(batch, seq) inputs -> logits (batch, num_classes)."""
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = layer_attention_mask(attention_mask)
        for layer in self.layers:
            hidden = run_layer(layer, hidden, mask)
        return self.head(hidden)


def _find_layers(model: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "encoder.layers", "transformer.layer", "layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise HarnessError(f"{type(model).__name__} has no transformer layer stack this harness understands")


def _weights_identity(path: Path) -> dict:
    """sha256 of the weight files of a local model folder (the model's identity in provenance)."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    digests = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digests[f.name] = h.hexdigest()
    return digests


def resolve_model_path(name: str) -> str:
    """A bundled model name -> its cached folder; anything else is passed to transformers as is."""
    if name in BUNDLED_MODELS:
        from harness import sources

        return str(sources.fetch(name))
    return name


@functools.lru_cache(maxsize=2)
def _load_cached(name: str) -> Pretrained:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(name)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # HARNESS_OFFLINE=1 (or HF_HUB_OFFLINE=1, read now rather than at import) fails a hub id at once
    # instead of after the hub client's retries
    offline = {"local_files_only": True} if "1" in (os.environ.get("HARNESS_OFFLINE"),
                                                     os.environ.get("HF_HUB_OFFLINE")) else {}
    try:
        config = AutoConfig.from_pretrained(path, **offline)
        model = AutoModel.from_pretrained(path, attn_implementation="sdpa", **offline)
        tokenizer = AutoTokenizer.from_pretrained(path, **offline)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(
            f"could not load model {name!r}: not bundled ({', '.join(BUNDLED_MODELS)}), not a readable local "
            f"folder, and not loadable from the hub here (offline?): {first}"
        ) from None
    projection = getattr(model, "embeddings_project", None)
    identity = {"name": name, "path": path, "model_type": config.model_type,
                "num_layers": config.num_hidden_layers, "hidden_size": config.hidden_size}
    if os.path.isdir(path):
        identity["weights_sha256"] = _weights_identity(Path(path))
    model.eval()
    return Pretrained(
        name=name, path=path,
        embeddings=Embeddings(model.embeddings, projection),
        layers=_find_layers(model),
        pooler=getattr(model, "pooler", None),
        tokenizer=tokenizer,
        hidden_size=config.hidden_size,
        hidden_dropout=getattr(config, "hidden_dropout_prob", 0.1),
        identity=identity,
    )


def load_pretrained(name: str) -> Pretrained:
    """Load (once per process) a pretrained encoder. Callers deep-copy the parts they train."""
    return _load_cached(name)


def make_head(pretrained: Pretrained, kind: str, num_classes: int) -> nn.Module:
    """A fresh head; its random init is drawn from the current torch RNG (seed it first)."""
    if kind == "cls":
        return ClsHead(pretrained.hidden_size, num_classes)
    if kind == "pooler":
        if pretrained.pooler is None:
            raise HarnessError(f"model {pretrained.name!r} has no pooler; use head = 'cls'")
        return PoolerHead(copy.deepcopy(pretrained.pooler), pretrained.hidden_dropout,
                          pretrained.hidden_size, num_classes)
    raise HarnessError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")


def layer_indices(num_layers: int, k: int, choice: str = "first") -> list[int]:
    """Which pretrained layers a k-layer model starts from: the first k, or every r-th.

    "every-r" takes the last layer of each of the k blocks of r = L/k layers (0-based indices).
    """
    if not 1 <= k <= num_layers:
        raise HarnessError(f"cannot take {k} layers from a {num_layers}-layer encoder (need 1 <= k <= {num_layers})")
    if choice == "first":
        return list(range(k))
    if choice == "every-r":
        if num_layers % k:
            raise HarnessError(f"layer choice 'every-r' needs {num_layers} divisible by {k}")
        r = num_layers // k
        return [r * (i + 1) - 1 for i in range(k)]
    raise HarnessError(f"unknown layer choice {choice!r}; choose 'first' or 'every-r'")


def build_classifier(pretrained: Pretrained, k: int, num_classes: int, head: str = "cls",
                     choice: str = "first") -> Classifier:
    """Pretrained embeddings + k pretrained layers (deep copies) + a fresh head."""
    idx = layer_indices(pretrained.num_layers, k, choice)
    return Classifier(
        copy.deepcopy(pretrained.embeddings),
        [copy.deepcopy(pretrained.layers[i]) for i in idx],
        make_head(pretrained, head, num_classes),
    )


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and no optimizer state for these parameters."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def describe_identity(pretrained: Pretrained) -> str:
    return json.dumps(pretrained.identity, sort_keys=True)
