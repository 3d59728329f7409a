"""Encoders, first-k slicing and classification heads.

A `Classifier` is embeddings -> a list of transformer layers -> a head, built from a BERT-family
encoder (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, MPNet, DeBERTa-v2/v3). Every strategy composes
these pieces; none of them calls the Hugging Face model's own forward, so a successor can run its
layers inside a predecessor's stack (docs/method.md, "Encoder adapters and the fidelity check"). How a family's embeddings and layers are called is
its adapter's business (harness/encoders/adapters.py); `load_pretrained` runs a model only after checking
that this path equals the model's own forward (`check_fidelity`), and records the difference.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.encoders.adapters import Adapter, LayerInputs, adapter_for
from harness.errors import HarnessError

BUNDLED_MODELS = {
    "minilm-l6": "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased English (bundled)",
    "mpnet-base-12": "all-mpnet-base-v2: MPNet, 12 layers, hidden 768, uncased English (bundled; the seed's 12 -> 6 -> 3)",
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
    """The encoder's input part, run through its family's adapter (harness/encoders/adapters.py).

    embeddings: the model's embedding block; projection: ELECTRA's embeddings_project when it has one;
    shared: the encoder-level parameters every layer needs (MPNet's relative position bias, DeBERTa's
    relative embeddings), or None. All three travel together: a Classifier that copies its embeddings
    copies the shared parameters with them.
    """

    def __init__(self, adapter: Adapter, embeddings: nn.Module, projection: nn.Module | None = None,
                 shared: nn.Module | None = None):
        super().__init__()
        self.adapter = adapter
        self.embeddings = embeddings
        self.projection = projection
        self.shared = shared

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, attention_mask (0/1), token_type_ids: (batch, seq) -> hidden states (batch, seq, hidden)."""
        hidden = self.adapter.embed(self.embeddings, input_ids, attention_mask, token_type_ids)
        return self.projection(hidden) if self.projection is not None else hidden

    def layer_inputs(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> LayerInputs:
        """The mask and per-forward extras every layer of this forward takes, computed once from
        this part's own shared parameters. hidden: the embedding output (batch, seq, hidden)."""
        return self.adapter.layer_inputs(self.shared, hidden, attention_mask)


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


def run_layer(layer: nn.Module, hidden: torch.Tensor, inputs: LayerInputs) -> torch.Tensor:
    """One transformer layer, called the way its family's adapter says (mask and extras in `inputs`)."""
    return inputs.adapter.call_layer(layer, hidden, inputs)


class Classifier(nn.Module):
    """embeddings -> layers -> head. Modules may be shared with another Classifier."""

    def __init__(self, embeddings: nn.Module, layers: list[nn.Module] | nn.ModuleList, head: nn.Module):
        super().__init__()
        self.embeddings = embeddings
        self.layers = layers if isinstance(layers, nn.ModuleList) else nn.ModuleList(layers)
        self.head = head

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """(batch, seq) inputs -> logits (batch, num_classes)."""
        hidden = self.embeddings(input_ids, attention_mask, token_type_ids)
        inputs = self.embeddings.layer_inputs(hidden, attention_mask)
        for layer in self.layers:
            hidden = run_layer(layer, hidden, inputs)
        return self.head(hidden)


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
        from harness.data import sources

        return str(sources.fetch(name))
    return name


def _offline() -> bool:
    # read now rather than at import: tests and users set these per process
    return "1" in (os.environ.get("HARNESS_OFFLINE"), os.environ.get("HF_HUB_OFFLINE"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def _source_problem(name: str, path: str) -> str | None:
    """What is wrong with `path` before transformers is asked (None: nothing found, try loading)."""
    if os.path.isdir(path):
        folder = Path(path)
        if not (folder / "config.json").is_file():
            return f"the local folder {path} has no config.json (a transformers model folder needs config.json, " \
                   "the weights and the tokenizer files)"
        return None
    if os.path.exists(path):
        return f"{path} is a file, not a model folder"
    if path.startswith(("/", "./", "../", "~")) or path.count("/") > 1:
        return f"no folder {path} exists (a hub id is NAME or OWNER/NAME)"
    return None


def _files_problem(path: str) -> str | None:
    """Missing weights or tokenizer files in a local model folder (None: both present, or not a folder)."""
    if not os.path.isdir(path):
        return None
    folder = Path(path)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        return f"the local folder {path} has a config.json but no weights (model.safetensors or pytorch_model.bin)"
    if not any((folder / f).is_file() for f in TOKENIZER_FILES) and not any(folder.glob("*.model")):
        return (f"the local folder {path} has no tokenizer files (tokenizer.json, tokenizer_config.json, "
                "vocab.txt, vocab.json or a sentencepiece .model)")
    return None


def _load_failure(name: str, path: str, what: str, exc: BaseException) -> HarnessError:
    """One line naming the part that failed to load and where it was looked for."""
    if os.path.isdir(path):
        return HarnessError(f"could not load model {name!r}: its {what} failed to load from the local folder "
                            f"{path}: {_first_line(exc)}")
    elsewhere = f"it is not bundled ({', '.join(BUNDLED_MODELS)}) and not a local folder"
    if _offline():
        return HarnessError(f"could not load model {name!r}: {elsewhere}, its {what} is not in the local hub cache, "
                            "and HARNESS_OFFLINE=1 or HF_HUB_OFFLINE=1 forbids downloading it")
    return HarnessError(f"could not load model {name!r}: {elsewhere}, and its {what} did not load from the hub: "
                        f"{_first_line(exc)}")


def _load_model(name: str, path: str, config, adapter: Adapter, kwargs: dict):
    """The encoder with its adapter, loaded with the adapter's attention implementation (eager where a
    family has no SDPA; an SDPA family transformers refuses SDPA for falls back to eager)."""
    from transformers import AutoModel

    try:
        return adapter, AutoModel.from_pretrained(path, attn_implementation=adapter.attn_implementation, **kwargs)
    except ValueError as exc:
        if adapter.attn_implementation != "sdpa" or "scaled_dot_product_attention" not in str(exc):
            raise _load_failure(name, path, "weights", exc) from None
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line saying what failed
        raise _load_failure(name, path, "weights", exc) from None
    adapter = adapter_for(config, "eager")
    try:
        return adapter, AutoModel.from_pretrained(path, attn_implementation="eager", **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _load_failure(name, path, "weights", exc) from None


# The fidelity check: sentences of different lengths, so the batch is padded; the longest one is also
# run alone (no padding: the layers get no mask at all, the path most training batches take).
PROBE_TEXTS = ("The harness runs every layer itself, so it must compute what the model computes.",
               "A short one.",
               "Padding, positions and relative attention all have to match exactly.")
FIDELITY_TOLERANCE = 1e-4  # max |difference| of the last hidden state on real tokens, fp32


def _probe_batches(tokenizer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pad = getattr(tokenizer, "pad_token_id", None)
    rows = [tokenizer(text, truncation=True, max_length=48)["input_ids"] for text in PROBE_TEXTS]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0 if pad is None else pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    longest = max(range(len(rows)), key=lambda i: len(rows[i]))
    return [(ids, mask), (ids[longest:longest + 1], mask[longest:longest + 1])]


def check_fidelity(name: str, model: nn.Module, embeddings: Embeddings, layers: nn.ModuleList, tokenizer) -> dict:
    """The harness path (embeddings, then each layer through the adapter) against the model's own
    forward, on a padded probe batch and on its longest sentence alone, in eval mode and fp32.

    Returns {"max_abs_difference", "tolerance", "probe"}; raises a one-line HarnessError naming the
    architecture and the difference when it exceeds FIDELITY_TOLERANCE (the model is then not run).
    """
    family = embeddings.adapter.family
    diffs = []
    try:
        probes = _probe_batches(tokenizer)
    except Exception as exc:  # noqa: BLE001 - a tokenizer that cannot encode plain English is a load failure
        raise HarnessError(f"model {name!r}: its tokenizer failed on a probe sentence: {_first_line(exc)}") from None
    with torch.no_grad():
        for ids, mask in probes:
            out = model(input_ids=ids, attention_mask=mask)
            reference = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            hidden = embeddings(ids, mask)
            inputs = embeddings.layer_inputs(hidden, mask)
            for layer in layers:
                hidden = run_layer(layer, hidden, inputs)
            if hidden.shape != reference.shape:
                raise HarnessError(f"model {name!r} ({family}): the harness path gives hidden states of shape "
                                   f"{tuple(hidden.shape)}, the model's own forward {tuple(reference.shape)}; "
                                   "refusing to run it")
            diffs.append((hidden - reference).abs()[mask.bool()].max().item())
    worst = float("nan") if any(math.isnan(d) for d in diffs) else max(diffs)
    if not worst <= FIDELITY_TOLERANCE:
        raise HarnessError(f"model {name!r} ({family}): running its embeddings and then each layer through the "
                           f"{family} adapter differs from the model's own forward by max |difference| {worst:.3g} "
                           f"on real tokens of a padded probe batch (tolerance {FIDELITY_TOLERANCE:g}); "
                           "refusing to run it")
    return {"max_abs_difference": worst, "tolerance": FIDELITY_TOLERANCE,
            "probe": f"{len(PROBE_TEXTS)} sentences padded to one batch, and the longest alone; eval mode, fp32"}


@functools.lru_cache(maxsize=2)
def _load_cached(name: str) -> Pretrained:
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(name)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    problem = _source_problem(name, path)
    if problem:
        raise HarnessError(f"could not load model {name!r}: {problem}")
    # offline: a hub id fails at once instead of after the hub client's retries
    kwargs = {"local_files_only": True} if _offline() else {}
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one line saying what failed, never a traceback
        raise _load_failure(name, path, "config", exc) from None
    adapter = adapter_for(config)  # an unsupported family is refused before its weights are read
    problem = _files_problem(path)
    if problem:
        raise HarnessError(f"could not load model {name!r}: {problem}")
    adapter, model = _load_model(name, path, config, adapter, kwargs)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _load_failure(name, path, "tokenizer", exc) from None
    model.eval()
    parts = adapter.parts(model)
    embeddings = Embeddings(adapter, parts.embeddings, parts.projection, parts.shared)
    fidelity = check_fidelity(name, model, embeddings, parts.layers, tokenizer)
    identity = {"name": name, "path": path, "model_type": config.model_type,
                "num_layers": config.num_hidden_layers, "hidden_size": config.hidden_size,
                "adapter": adapter.family, "attention": adapter.attn_implementation, "fidelity": fidelity}
    if os.path.isdir(path):
        identity["weights_sha256"] = _weights_identity(Path(path))
    return Pretrained(
        name=name, path=path,
        embeddings=embeddings,
        layers=parts.layers,
        pooler=parts.pooler,
        tokenizer=tokenizer,
        hidden_size=config.hidden_size,
        hidden_dropout=getattr(config, "hidden_dropout_prob", getattr(config, "dropout", 0.1)),
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
