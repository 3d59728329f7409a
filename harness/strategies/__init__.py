"""Strategy registry. One file per strategy family; each defines STRATEGIES (name -> Strategy).

A strategy turns a Context (config, pretrained encoder, data sizes, the fine-tuned predecessor on
demand) into a Plan: the training phases for the shared loop and the model that is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from harness.data.splits import Encoded
from harness.encoders.models import Classifier, Pretrained
from harness.errors import HarnessError
from harness.training.config import RunConfig
from harness.training.loop import LoopSettings, Phase, stream_generator


@dataclass
class Context:
    config: RunConfig
    options: dict                       # resolved strategy options (defaults < variant < overrides)
    pretrained: Pretrained
    num_classes: int
    steps_per_epoch: int
    predecessor_layers: int             # L_p
    get_predecessor: Callable[[], Classifier]  # the fine-tuned predecessor for config.seed (a private copy)
    train: Encoded | None = None         # the tokenised training split (kd precomputes teacher logits)
    settings: LoopSettings | None = None

    def generator(self, stream: int) -> torch.Generator:
        """An RNG for one purpose (1: replacement draws; 2, DROPOUT_STREAM: the dropout `fit` draws), seeded
        by the student seed and the stream id, so it does not shift when another purpose (dropout, data
        order) draws more numbers."""
        return stream_generator(self.config.student, stream)

    @property
    def lr(self) -> float:
        return self.options.get("lr") or self.config.lr

    def phase_steps(self, epochs: list[int]) -> list[int | None]:
        """Optimizer steps per phase. Without a budget: None each (the phase runs its epochs). With
        config.budget = B: B split over the phases in proportion to their epochs (largest remainder,
        every phase with epochs > 0 gets at least one step), so every arm at one budget takes B steps
        and a Theseus phase keeps its share of the run."""
        budget = self.config.budget
        if budget is None:
            return [None] * len(epochs)
        return split_budget(budget, epochs)


def split_budget(budget: int, weights: list[int]) -> list[int]:
    """`budget` steps split in proportion to `weights` (largest remainder; sums to budget exactly)."""
    total = sum(weights)
    exact = [budget * w / total for w in weights]
    steps = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - steps[i]), i))
    for i in order[:budget - sum(steps)]:
        steps[i] += 1
    for i, w in enumerate(weights):  # a phase that exists takes at least one step
        if w > 0 and steps[i] == 0:
            donor = max(range(len(steps)), key=lambda j: steps[j])
            steps[donor] -= 1
            steps[i] = 1
    return steps


@dataclass
class Plan:
    phases: list[Phase]
    evaluated: nn.Module                 # what dev/test accuracy is measured on (the successor path)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    defaults: dict                       # every option and its default value (types come from here)
    choices: dict                        # option -> allowed values, for string options
    variants: dict                       # variant name -> option values (a reference's settings)
    build: Callable[[Context], Plan]
    needs_predecessor: bool
    default_variant: str = ""
    check: Callable[[RunConfig, dict, int], None] | None = None  # (config, options, L_p): raise on bad input

    def resolve(self, variant: str, overrides: dict) -> dict:
        """defaults < variant < overrides, each value checked against the option's type and choices."""
        variant = variant or self.default_variant
        if variant and variant not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise HarnessError(f"strategy {self.name!r} has no variant {variant!r}; variants: {known}")
        opts = dict(self.defaults)
        for source in (self.variants.get(variant, {}), overrides):
            for key, value in source.items():
                if key not in self.defaults:
                    raise HarnessError(f"strategy {self.name!r} has no option {key!r}; options: "
                                       f"{', '.join(sorted(self.defaults))}")
                opts[key] = _coerce(self.name, key, value, self.defaults[key])
        for key, allowed in self.choices.items():
            if opts[key] not in allowed:
                raise HarnessError(f"{self.name} option {key} must be one of {', '.join(map(str, allowed))}, "
                                   f"got {opts[key]!r}")
        return opts


def _coerce(strategy: str, key: str, value, default):
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise HarnessError(f"{strategy} option {key} must be a {kind.__name__}, got {value!r}") from None


def all_strategies() -> dict[str, Strategy]:
    from harness.strategies import finetune, kd, theseus, two_stage

    registry: dict[str, Strategy] = {}
    for module in (finetune, theseus, two_stage, kd):
        registry.update(module.STRATEGIES)
    return registry


def get_strategy(name: str) -> Strategy:
    registry = all_strategies()
    if name not in registry:
        raise HarnessError(f"unknown strategy {name!r}; choose one of {', '.join(registry)}")
    return registry[name]


def arm_label(config: RunConfig) -> tuple[str, str]:
    """(strategy, variant) of a run's arm as the tables name them (harness.arms.label)."""
    from harness.arms import label

    variant = config.variant if config.strategy == "finetune" else \
        config.variant or get_strategy(config.strategy).default_variant
    return label(config.strategy, variant, config.layers)
