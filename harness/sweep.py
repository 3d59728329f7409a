"""Sweeps (placeholder until the sweep runner lands): preset listing only."""

from __future__ import annotations

from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def list_presets() -> dict[str, str]:
    out = {}
    for path in sorted(EXPERIMENTS.glob("*.toml")):
        first = path.read_text().splitlines()[0] if path.read_text() else ""
        out[path.stem] = first.lstrip("# ").strip()
    return out
