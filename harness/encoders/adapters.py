"""One adapter per encoder family: how the harness runs a model's parts itself.

The harness never calls a Hugging Face model's own forward during training: it calls the embeddings,
then each layer, so a successor layer can run inside a predecessor's stack (docs/method.md, "Encoder adapters and the fidelity check"). Families
differ in exactly four things, and an adapter states them for one family:

  embed        how to call the embedding block (which inputs it takes: token types, the padding mask)
  layer_mask   the form of the padding mask the layers expect (boolean for SDPA, additive for eager
               attention, DeBERTa's (batch, 1, seq, seq) product mask)
  extras       what the encoder computes once per forward and hands to every layer (MPNet's relative
               position bias, DeBERTa's relative positions and normalised relative embeddings)
  call_layer   how to call one layer with those

Encoder-level parameters behind the extras (MPNet's `relative_attention_bias`, DeBERTa's
`rel_embeddings` and their LayerNorm) live in a small `shared` module that travels with the
embedding block (models.Embeddings), so every Classifier that copies the embeddings copies them too.

`models.load_pretrained` checks every adapter against the model's own forward at load time (fidelity
check); a family whose adapter does not reproduce it is refused, never run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from harness.errors import HarnessError


@dataclass
class LayerInputs:
    """What every layer of one forward needs besides the hidden states.

    mask: the padding mask in the form the layers expect (None: no padding in the batch).
    extras: keyword arguments every layer takes (empty for BERT-like families).
    """

    adapter: "Adapter"
    mask: torch.Tensor | None
    extras: dict = field(default_factory=dict)


@dataclass
class Parts:
    """A loaded model split into what the harness calls: embeddings (+ projection, + shared), layers."""

    embeddings: nn.Module
    layers: nn.ModuleList
    projection: nn.Module | None = None
    shared: nn.Module | None = None
    pooler: nn.Module | None = None


def bool_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """(batch, seq) 0/1 padding mask -> boolean (batch, 1, 1, seq) mask for SDPA, or None.

    None when the batch has no padding, which lets SDPA pick its fastest kernel.
    """
    if bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def additive_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, seq) 0/1 padding mask -> (batch, 1, 1, seq) additive mask (0 or dtype's minimum), or None.

    What eager attention adds to its scores; None when the batch has no padding (adding 0 is a no-op).
    """
    if bool(attention_mask.all()):
        return None
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


def _first(out) -> torch.Tensor:
    """A layer's hidden states: some layers return a tensor, others a tuple (hidden, attentions)."""
    return out[0] if isinstance(out, tuple) else out


class Adapter:
    """The BERT family's way (BERT, RoBERTa, XLM-R, ELECTRA): `embeddings(input_ids, token_type_ids)`,
    an optional projection (ELECTRA's embeddings_project), then `layer(hidden, attention_mask=mask)`
    with nothing else per forward. Subclasses override what their family does differently."""

    family = "bert"
    model_types: tuple[str, ...] = ("bert", "roberta", "xlm-roberta", "electra")
    attn_implementation = "sdpa"  # what the model is loaded with (eager where a family has no SDPA)

    def __init__(self, attn_implementation: str | None = None):
        self.attn_implementation = attn_implementation or type(self).attn_implementation

    def check(self, config) -> None:
        """Refuse a configuration of this family that the adapter cannot run faithfully (one line)."""

    def parts(self, model: nn.Module) -> Parts:
        return Parts(model.embeddings, model.encoder.layer, projection=getattr(model, "embeddings_project", None),
                     pooler=getattr(model, "pooler", None))

    def embed(self, embeddings: nn.Module, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        return embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def layer_mask(self, attention_mask: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor | None:
        if self.attn_implementation == "sdpa":
            return bool_padding_mask(attention_mask)
        return additive_padding_mask(attention_mask, hidden.dtype)

    def extras(self, shared: nn.Module | None, hidden: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return {}

    def call_layer(self, layer: nn.Module, hidden: torch.Tensor, inputs: LayerInputs) -> torch.Tensor:
        return _first(layer(hidden, attention_mask=inputs.mask))

    def layer_inputs(self, shared: nn.Module | None, hidden: torch.Tensor, attention_mask: torch.Tensor) -> LayerInputs:
        """Everything the layers of one forward share, computed once: hidden (batch, seq, hidden_size)
        is the embedding output (only its shape, dtype and device are used)."""
        return LayerInputs(self, self.layer_mask(attention_mask, hidden), self.extras(shared, hidden, attention_mask))


class DistilBertAdapter(Adapter):
    """DistilBERT: embeddings take no token types (it has none); layers under `transformer.layer`."""

    family = "distilbert"
    model_types = ("distilbert",)

    def parts(self, model: nn.Module) -> Parts:
        return Parts(model.embeddings, model.transformer.layer)

    def embed(self, embeddings, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        return embeddings(input_ids)


class MPNetRelativeBias(nn.Module):
    """MPNet's encoder-level relative position bias, computed once per forward for every layer.

    Holds MPNetEncoder's `relative_attention_bias` and runs MPNetEncoder's own `compute_position_bias`
    on it, so the bias is the one the model's forward computes: (batch, heads, seq, seq).
    """

    def __init__(self, relative_attention_bias: nn.Embedding):
        super().__init__()
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

        self.relative_attention_bias = relative_attention_bias
        self._encoder_cls = MPNetEncoder

    def relative_position_bucket(self, *args, **kwargs):
        return self._encoder_cls.relative_position_bucket(*args, **kwargs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._encoder_cls.compute_position_bias(self, hidden)


class MPNetAdapter(Adapter):
    """MPNet: eager attention (no SDPA in transformers), an additive padding mask, and the relative
    position bias every layer adds to its attention scores (from `MPNetRelativeBias`)."""

    family = "mpnet"
    model_types = ("mpnet",)
    attn_implementation = "eager"

    def parts(self, model: nn.Module) -> Parts:
        return Parts(model.embeddings, model.encoder.layer, shared=MPNetRelativeBias(model.encoder.relative_attention_bias),
                     pooler=getattr(model, "pooler", None))

    def embed(self, embeddings, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        return embeddings(input_ids=input_ids)

    def layer_mask(self, attention_mask, hidden):
        return additive_padding_mask(attention_mask, hidden.dtype)

    def extras(self, shared, hidden, attention_mask) -> dict:
        return {"position_bias": shared(hidden)}

    def call_layer(self, layer, hidden, inputs) -> torch.Tensor:
        return _first(layer(hidden, inputs.mask, position_bias=inputs.extras["position_bias"]))


class DebertaRelative(nn.Module):
    """DeBERTa-v2/v3's encoder-level relative attention inputs: `rel_embeddings` (+ their LayerNorm
    when `norm_rel_ebd` says "layer_norm") and the settings of the relative positions.

    Runs DebertaV2Encoder's own `get_rel_embedding`, `get_rel_pos` and `get_attention_mask`, so every
    layer receives what the model's own encoder hands it.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self._encoder_cls = type(encoder)
        self.relative_attention = encoder.relative_attention
        self.norm_rel_ebd = list(encoder.norm_rel_ebd)
        if self.relative_attention:
            self.max_relative_positions = encoder.max_relative_positions
            self.position_buckets = encoder.position_buckets
            self.rel_embeddings = encoder.rel_embeddings
        if "layer_norm" in self.norm_rel_ebd:
            self.LayerNorm = encoder.LayerNorm

    def layer_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._encoder_cls.get_attention_mask(self, attention_mask)

    def forward(self, hidden: torch.Tensor) -> dict:
        return {"relative_pos": self._encoder_cls.get_rel_pos(self, hidden),
                "rel_embeddings": self._encoder_cls.get_rel_embedding(self)}


class DebertaV2Adapter(Adapter):
    """DeBERTa-v2 and v3 (model type deberta-v2): eager attention; the embeddings take the padding mask
    (they zero padded positions); layers take a (batch, 1, seq, seq) mask, the relative positions and
    the normalised relative embeddings (from `DebertaRelative`). The v2 xlarge models' convolution
    after the first layer is refused: it is not a layer, so module replacement has no place for it."""

    family = "deberta-v2"
    model_types = ("deberta-v2",)
    attn_implementation = "eager"

    def check(self, config) -> None:
        if getattr(config, "conv_kernel_size", 0) > 0:
            raise HarnessError("deberta-v2 models with a convolution after the first layer (conv_kernel_size > 0, "
                               "the v2 xlarge/xxlarge models) are not supported: the convolution is not a layer, "
                               "so module replacement has no place for it")

    def parts(self, model: nn.Module) -> Parts:
        return Parts(model.embeddings, model.encoder.layer, shared=DebertaRelative(model.encoder))

    def embed(self, embeddings, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        return embeddings(input_ids=input_ids, token_type_ids=token_type_ids, mask=attention_mask)

    def layer_inputs(self, shared, hidden, attention_mask) -> LayerInputs:
        return LayerInputs(self, shared.layer_mask(attention_mask), shared(hidden))

    def call_layer(self, layer, hidden, inputs) -> torch.Tensor:
        return _first(layer(hidden, inputs.mask, relative_pos=inputs.extras["relative_pos"],
                            rel_embeddings=inputs.extras["rel_embeddings"]))


ADAPTERS: dict[str, type[Adapter]] = {t: cls for cls in (Adapter, DistilBertAdapter, MPNetAdapter, DebertaV2Adapter)
                                      for t in cls.model_types}

# Families refused on purpose, with the reason in one line.
REFUSED = {
    "albert": "its layers share one set of weights (one layer group applied num_hidden_layers times), so "
              "replacing a module would replace every layer at once",
}


def supported() -> str:
    return ", ".join(ADAPTERS)


def adapter_for(config, attn_implementation: str | None = None) -> Adapter:
    """The adapter for a transformers config; one-line HarnessError for a family the harness cannot run."""
    model_type = getattr(config, "model_type", "") or "unknown"
    if model_type in REFUSED:
        raise HarnessError(f"{model_type} encoders are not supported: {REFUSED[model_type]}")
    if model_type not in ADAPTERS:
        raise HarnessError(f"{model_type} encoders are not supported (no adapter for this architecture); "
                           f"supported: {supported()}")
    adapter = ADAPTERS[model_type](attn_implementation)
    adapter.check(config)
    return adapter
