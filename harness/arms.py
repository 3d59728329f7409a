"""Arms: one vocabulary for naming, parsing, grouping and ordering them (torch-free).

An arm is what a table row belongs to: a strategy with its variant, written "strategy/variant"
("theseus-add/seed", "two-stage/predecessor-1x"), or the strategy alone when it has no variant
("kd"). Direct fine-tuning carries its number of layers instead of a variant ("finetune-3"), so
that the predecessor (k = L_p) and the baseline (k = L_s) are two arms.

A strategy's family is its name (finetune-k belongs to "finetune"). A new strategy adds its family
to FAMILIES, in the order tables and figures list it; any name not there is "other".
"""

from __future__ import annotations

import re

import numpy as np

# families in table order: the candidates first, the direct fine-tuning references last
FAMILIES = ("theseus-add", "theseus-binary", "two-stage", "kd", "other", "finetune")
THESEUS = ("theseus-binary", "theseus-add")
_FINETUNE = re.compile(r"finetune-(\d+)")


def label(strategy: str, variant: str, layers: int) -> tuple[str, str]:
    """(strategy, variant) as the tables name a run's arm: finetune carries its k ("finetune-3");
    variant is the resolved one (the strategy's default variant where the run named none)."""
    return (f"finetune-{layers}", variant) if strategy == "finetune" else (strategy, variant)


def name(strategy: str, variant: str = "") -> str:
    """The arm's name from its table strategy and variant: "theseus-add/seed", "kd", "finetune-3"."""
    return f"{strategy}/{variant}" if variant else strategy


def family(arm: str) -> str:
    """The strategy family of an arm or strategy name: one of FAMILIES ("other" when unknown)."""
    s = str(arm).split("/")[0]
    if _FINETUNE.fullmatch(s):
        return "finetune"
    return s if s in FAMILIES else "other"


def finetune_layers(arm: str) -> float:
    """k of a `finetune-k` arm, NaN for any other arm."""
    m = _FINETUNE.fullmatch(str(arm).split("/")[0])
    return float(m.group(1)) if m else np.nan


def order(arms) -> list[str]:
    """Canonical order: by family (FAMILIES), finetune-k by k, then by name. Pairs are formed in
    this order, so `a` is the candidate and `b` the reference."""
    rank = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(set(arms), key=lambda a: (rank[family(a)], np.nan_to_num(finetune_layers(a)), a))
