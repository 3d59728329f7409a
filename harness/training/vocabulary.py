"""Vocabulary slicing: while a phase trains, a trained word-embedding table holds only the rows of the token ids
the training split uses (docs/performance.md, Vocabulary slicing).

Why it changes no number: a row no training batch looks up gets a zero gradient at every step, and AdamW
with weight decay 0 leaves a parameter with zero gradient and zero moments exactly where it is; the rows
that are looked up see the same gathers, the same per-row gradient sums (in the same order: the mapping
full id -> compact index keeps the ids' order) and the same elementwise AdamW updates. What it saves: the
dense gradient, the two AdamW moments and the update of the whole table (30,522 x 384 for MiniLM) every step,
where a task uses about a third of the rows. With weight decay > 0 every row decays at every step, so the
table is never sliced then.

The full table is back in the module (with the trained rows written into it) whenever the model leaves
training: for every dev evaluation, for the best-dev copy of the weights, and when the phase ends. So
evaluation, saved predecessor weights and state dicts never see the compact table.
"""

from __future__ import annotations

import torch
from torch import nn


class VocabularySlice:
    """One nn.Embedding of a phase, sliced to the rows `ids` (sorted unique token ids) while `active`.

    compact: the trainable (len(ids), dim) parameter the optimizer updates in place of the full weight;
    lookup: full id -> compact index (-1 for ids outside the slice), applied to the embedding's input by a
    forward pre-hook; padding_idx moves to its compact index while sliced.
    """

    def __init__(self, embedding: nn.Embedding, ids: torch.Tensor):
        self.embedding, self.ids = embedding, ids
        self.full = embedding.weight
        self.lookup = torch.full((embedding.num_embeddings,), -1, dtype=torch.long, device=self.full.device)
        self.lookup[ids.to(self.full.device)] = torch.arange(len(ids), device=self.full.device)
        self.padding_idx = embedding.padding_idx
        with torch.no_grad():
            self.compact = nn.Parameter(self.full.detach()[ids.to(self.full.device)].clone(),
                                        requires_grad=self.full.requires_grad)
        self.hook = None

    @property
    def active(self) -> bool:
        return self.hook is not None

    def _remap(self, module, args):
        return (self.lookup[args[0]], *args[1:])

    def enter(self) -> None:
        """The compact table into the module. It keeps its identity (the optimizer's state stays valid) and
        its values: the full table's rows are only ever written from it, by `leave`."""
        if self.active:
            return
        self.embedding._parameters["weight"] = self.compact
        if self.padding_idx is not None:
            self.embedding.padding_idx = int(self.lookup[self.padding_idx])
        self.hook = self.embedding.register_forward_pre_hook(self._remap)

    def leave(self) -> None:
        """The trained rows written into the full table, and the full table back in the module."""
        if not self.active:
            return
        self.hook.remove()
        self.hook = None
        with torch.no_grad():
            self.full[self.ids.to(self.full.device)] = self.compact
        self.embedding._parameters["weight"] = self.full
        self.embedding.padding_idx = self.padding_idx


def token_ids(ids: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    """Sorted unique token ids of a split (its examples' ids) plus the padding id batches are filled with."""
    return torch.unique(torch.cat([torch.tensor([pad_id], dtype=torch.long), *ids]))


def word_embeddings(modules: nn.Module) -> list[nn.Embedding]:
    """The word-embedding tables in `modules`: the `word_embeddings` of every harness Embeddings block (every
    family the adapters support names it so; position and token-type tables are left whole)."""
    from harness.encoders.models import Embeddings

    found = []
    for m in modules.modules():
        if isinstance(m, Embeddings):
            table = getattr(m.embeddings, "word_embeddings", None)
            if type(table) is nn.Embedding and not table.sparse and table.max_norm is None \
                    and not table.scale_grad_by_freq and all(t is not table for t in found):
                found.append(table)
    return found


def slices_for(modules: nn.Module, trained: set[int], ids: torch.Tensor, weight_decay: float) -> list[VocabularySlice]:
    """A VocabularySlice for every trained word-embedding table of a phase, none with weight decay != 0
    (every row then moves at every step, so the full table must train)."""
    if weight_decay != 0.0:
        return []
    return [VocabularySlice(t, ids) for t in word_embeddings(modules) if id(t.weight) in trained]
