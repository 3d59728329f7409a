"""Parameter counts of the models a report's runs trained (docs/method.md, "Reports"): embeddings,
each encoder layer and the classification head, so accuracy can be read against size. For a small
encoder the embeddings are a large share (MiniLM-L6: about half), so keeping half the layers saves far
less than half the parameters.

Counts come from the pretrained checkpoint the run records name (model.path): the tensor shapes in
its model.safetensors header (no weights are loaded), else its config.json with the BERT layout
(embeddings V*h + P*h + T*h + LayerNorm; a layer: attention 4(h^2 + h), two LayerNorms, feed-forward
2 h I + I + h). The head is what harness.encoders.models builds: "cls" a linear h -> classes,
"pooler" the pretrained pooler (h^2 + h) plus that linear."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def _from_safetensors(path: Path) -> dict | None:
    """Embedding, per-layer and pooler parameter counts from a safetensors header (shapes only)."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return None
    emb, pooler, layers = 0, 0, {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict) or "shape" not in info:
            continue
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        m = LAYER.search(name)
        if m:
            layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + count
        elif "embeddings" in name:
            emb += count
        elif "pooler" in name:
            pooler += count
    if not layers or not emb:
        return None
    return {"embeddings": emb, "layers": [layers[i] for i in sorted(layers)], "pooler": pooler}


def _from_config(path: Path) -> dict | None:
    """The same counts from a BERT-style config.json (module docstring)."""
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
        h, inter, n = int(c["hidden_size"]), int(c["intermediate_size"]), int(c["num_hidden_layers"])
        v, p, t = int(c["vocab_size"]), int(c.get("max_position_embeddings", 512)), int(c.get("type_vocab_size", 2))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    layer = 4 * (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h) + 2 * h
    return {"embeddings": (v + p + t) * h + 2 * h, "layers": [layer] * n, "pooler": h * h + h}


def encoder_parameters(model_dir: str | Path) -> dict | None:
    """{"embeddings", "layers" (one count per pretrained layer), "pooler", "hidden", "source"} of a
    pretrained checkpoint folder, or None when neither its safetensors nor its config is readable."""
    d = Path(model_dir)
    config = None
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    counts = _from_safetensors(d / "model.safetensors")
    source = f"tensor shapes in {d / 'model.safetensors'}"
    if counts is None:
        counts, source = _from_config(d / "config.json"), f"the BERT layout of {d / 'config.json'}"
    if counts is None:
        return None
    hidden = (config or {}).get("hidden_size") or (config or {}).get("d_model")
    return {**counts, "hidden": int(hidden) if hidden else None, "source": source}


def head_parameters(hidden: int, num_classes: int, head: str, pooler: int) -> int:
    """The head harness.encoders.models builds: a linear layer (cls), after the pooler (pooler)."""
    return hidden * num_classes + num_classes + (pooler if head == "pooler" else 0)


def parameter_table(records: list[dict]) -> pd.DataFrame:
    """One row per (task, model, layers) the successful records trained: parameters in total and by
    part (embeddings, encoder layers, head) and where the count comes from. Models whose checkpoint
    is not on this machine are left out (the report says so)."""
    rows, cache = {}, {}
    for r in records:
        if r.get("status") != "ok":
            continue
        model, task = r.get("model") or {}, r.get("task") or {}
        path, classes = model.get("path"), task.get("num_classes")
        head = (r.get("config") or {}).get("head", "cls")
        if not path or not classes:
            continue
        if path not in cache:
            cache[path] = encoder_parameters(path)
        enc = cache[path]
        if enc is None or not enc.get("hidden"):
            continue
        for k in {r.get("successor_layers"), r.get("predecessor_layers")} - {None}:
            k = int(k)
            key = (task.get("name"), model.get("name"), k)
            if key in rows or k > len(enc["layers"]):
                continue
            layers = sum(enc["layers"][:k])  # the first k layers (the layer choice every arm here uses)
            hd = head_parameters(enc["hidden"], int(classes), head, enc["pooler"])
            rows[key] = {"task": key[0], "model": key[1], "layers": k, "parameters": enc["embeddings"] + layers + hd,
                         "embeddings": enc["embeddings"], "encoder_layers": layers, "head": hd,
                         "source": enc["source"]}
    return pd.DataFrame(list(rows.values()),
                        columns=["task", "model", "layers", "parameters", "embeddings", "encoder_layers", "head",
                                 "source"])
