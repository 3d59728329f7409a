"""The per-seed predecessor cache (docs/method.md, "The predecessor and its cache").

Every strategy at seed s starts from the predecessor fine-tuned with seed s. It is trained once and
stored under a key that hashes everything that determines it (task, split, model, its training
settings, seed, code version). An entry is used only if its recorded key matches and its weights'
sha256 is intact; anything else is reported and retrained, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch



def cache_root() -> Path:
    from harness.data.sources import cache_dir

    return cache_dir() / "predecessors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(key: str, into: torch.nn.Module) -> dict | None:
    """Load the cached weights for `key` into `into`; return the entry's metadata, or None when
    absent. Raises ValueError when present but corrupt or mismatched (the caller retrains)."""
    entry = cache_root() / key
    meta_path, weights = entry / "meta.json", entry / "weights.pt"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"predecessor cache entry {key}: unreadable meta.json") from None
    if meta.get("key") != key:
        raise ValueError(f"predecessor cache entry {key}: recorded key {meta.get('key')!r} does not match")
    if not weights.exists() or _sha256(weights) != meta.get("weights_sha256"):
        raise ValueError(f"predecessor cache entry {key}: weights missing or checksum mismatch")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    missing, unexpected = into.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"predecessor cache entry {key}: weights do not fit this model "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    return meta


def save(key: str, model: torch.nn.Module, meta: dict) -> Path:
    """Write an entry atomically: a temp folder renamed into place (readers never see half of it)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    weights = tmp / "weights.pt"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    (tmp / "meta.json").write_text(json.dumps({**meta, "key": key, "weights_sha256": _sha256(weights)}, indent=1))
    final = root / key
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:  # another process won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)
    return final
