"""Run configuration: every default visible in one place, validated with one-line errors.

A RunConfig determines a run completely (with the code version): its hash is the run's key in the
store, and the subset that determines the predecessor is the predecessor cache's key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class RunConfig:
    # what is compressed, on what
    task: str = "rt-polarity"
    model: str = "minilm-l6"
    strategy: str = "finetune"
    variant: str = ""                       # a named preset of strategy options ("" = strategy defaults)
    options: tuple = ()                      # strategy options overriding the variant, as sorted (key, value) pairs
    layers: int = 3                          # finetune: k; every other strategy: the successor's L_s
    predecessor_layers: int | None = None    # L_p; None = every layer of the pretrained encoder
    head: str = "cls"                        # "cls" (seed) or "pooler" (Hugging Face default)
    # randomness (docs/method.md, "Seeds and pairing"): `seed` picks the predecessor and, unless student_seed is set, the student
    seed: int = 0
    student_seed: int | None = None
    # data
    train_size: int | None = None           # None = from the data: 4,000 / 500 / 2,000 (sized for a 2-core
    dev_size: int | None = None             # CPU), or 70/10/20 of a data set too small for those
    test_size: int | None = None            # (harness.data.splits.DEFAULT_SIZES, auto_sizes)
    split_seed: int = 0
    split: str = "fixed"                     # "fixed": every seed the split of split_seed; "per-seed": seed s
                                             # draws its own split (split seed split_seed + s), so the training
                                             # and test samples vary with the seed too
    max_length: int = 128                    # the seed's value; batches are padded dynamically
    text_column: str = "text"
    label_column: str = "label"
    # optimisation (shared by every strategy; strategies may scale lr per parameter group). These four
    # defaults are DEFAULTS["studied"], the budget study's converged settings; DEFAULTS["seed"] keeps
    # the seed's (3 epochs at lr 5e-5, the defaults before). Run keys compare budget and eval_points
    # with the seed's values (LATER_DEFAULTS), so stored runs keep their keys.
    epochs: int = 3                          # the predecessor's length; a student's too when budget is None
    budget: int | None = 567                 # student optimizer steps for the whole run (every phase
                                             # together, split in the strategy's proportion); None = epochs
    eval_points: int = 10                    # dev evaluations per run, evenly spaced in steps (+ each phase's
                                             # end); 0 = after every epoch
    lr: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 128
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    group_by_length: bool = True
    # the predecessor (finetune with k = L_p) used by Theseus, two-stage and kd
    predecessor_epochs: int | None = None    # None = `epochs`
    predecessor_lr: float | None = None      # None = `lr`
    # execution (does not change results on one machine, except precision)
    precision: str = "fp32"                  # "fp32", "bf16" (autocast) or "auto" (bf16 where the hardware has it natively)
    device: str = "auto"
    threads: int | None = None
    force: bool = False                      # allow a Chinese task with an English-only model
    allow_small_test: bool = False           # run with a test split under 100 examples (refused otherwise)

    @property
    def student(self) -> int:
        return self.seed if self.student_seed is None else self.student_seed

    @property
    def effective_split_seed(self) -> int:
        """The seed of this run's train/dev/test split: split_seed, or split_seed + seed per seed."""
        return self.split_seed + self.seed if self.split == "per-seed" else self.split_seed

    @property
    def option_dict(self) -> dict:
        return dict(self.options)

    def replace(self, **changes) -> "RunConfig":
        if "options" in changes and isinstance(changes["options"], dict):
            changes["options"] = tuple(sorted(changes["options"].items()))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HarnessError(f"unknown run setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data = dict(data)
        if "options" in data:
            data["options"] = tuple(sorted(dict(data["options"]).items()))
        return cls(**data).validated()

    def validated(self) -> "RunConfig":
        def need(cond, msg):
            if not cond:
                raise HarnessError(msg)
        need(self.layers >= 1, f"layers must be >= 1, got {self.layers}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.budget is None or self.budget >= 1, f"budget must be >= 1 optimizer steps, got {self.budget}")
        need(self.eval_points >= 0, f"eval points must be >= 0, got {self.eval_points}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        need(self.max_length >= 8, f"max length must be >= 8, got {self.max_length}")
        need(0 <= self.warmup_ratio < 1, f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.precision in ("fp32", "bf16", "auto"), f"precision must be fp32, bf16 or auto, got {self.precision!r}")
        need(self.head in ("cls", "pooler"), f"head must be cls or pooler, got {self.head!r}")
        need(self.split in ("fixed", "per-seed"), f"split must be fixed or per-seed, got {self.split!r}")
        for name in ("train_size", "dev_size", "test_size"):
            v = getattr(self, name)
            need(v is None or v >= 1, f"{name.replace('_', ' ')} must be >= 1, got {v}")
        for name in ("seed", "student_seed", "split_seed"):  # numpy's generators take no negative seed
            v = getattr(self, name)
            need(v is None or v >= 0, f"{name.replace('_', ' ')} must be >= 0, got {v}")
        for name in ("predecessor_layers", "predecessor_epochs", "threads", "eval_batch_size"):
            v = getattr(self, name)
            need(v is None or v >= 1, f"{name.replace('_', ' ')} must be >= 1, got {v}")
        need(self.predecessor_lr is None or self.predecessor_lr > 0, f"predecessor lr must be > 0, got {self.predecessor_lr}")
        need(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        if self.precision == "auto":
            # resolved here, before the run key is taken: the key and the record say what ran
            from harness.training.loop import native_precision

            return self.replace(precision=native_precision(self.device))
        return self


@dataclass(frozen=True)
class Defaults:
    """A named set of defaults for the settings that decide how long and how fast a run learns."""

    name: str
    values: dict
    what: str                                # in a few words, for the run summary
    why: str                                 # where they come from, for `list`

    def summary(self) -> str:
        v = self.values
        length = (f"{v['budget']:,} student optimizer steps (the predecessor {v['epochs']} epochs)"
                  if v["budget"] is not None else f"{v['epochs']} epochs")
        dev = f"dev at {v['eval_points']} evenly spaced steps" if v["eval_points"] else "dev after every epoch"
        return f"lr {format_lr(v['lr'])}, {length}, {dev}"


def format_lr(lr: float) -> str:
    """1e-4, 5e-5, 2.5e-5: as a preset writes a learning rate."""
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


# `run` starts from the first (the dataclass defaults above) unless --defaults names another;
# `python -m harness list` shows them.
DEFAULTS = {d.name: d for d in [
    Defaults("studied", {"lr": 1e-4, "budget": 567, "eval_points": 10, "epochs": 3},
             "the budget study's converged settings",
             "report/budget.md: on rt-polarity no arm gains from 567 to 1,512 student steps, and at the "
             "seed's 3 epochs (189 steps) every binary Theseus run predicts one class"),
    Defaults("seed", {"lr": 5e-5, "budget": None, "eval_points": 0, "epochs": 3},
             "the seed's settings",
             "the harness's defaults before the budget study; a run's length shrinks with a small data set"),
]}
DEFAULT_PROFILE = "studied"


def configured(defaults: str = DEFAULT_PROFILE, **given) -> RunConfig:
    """A validated RunConfig of the settings `given`, the rest from the named defaults.

    epochs given without a budget makes the run's length epochs (budget None): a user who asks
    for 5 epochs gets 5 epochs, not the default budget.
    """
    if defaults not in DEFAULTS:
        raise HarnessError(f"unknown defaults {defaults!r}; defaults: {', '.join(DEFAULTS)}")
    values = dict(DEFAULTS[defaults].values)
    if "epochs" in given and "budget" not in given:
        values["budget"] = None
    return RunConfig(**{**values, **given}).validated()


def stable_hash(obj, length: int = 16) -> str:
    """sha256 of canonical JSON: the same settings give the same key on every machine."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# Settings that never change a run's numbers, left out of its key.
EXECUTION_ONLY = ("device", "threads", "force", "allow_small_test")
# Settings added after runs were stored: at these values a run computes what it computed before they
# existed, so they stay out of its key and stored runs keep their keys. These are the seed's values
# (DEFAULTS["seed"]), not the dataclass defaults: they must never follow a change of defaults.
LATER_DEFAULTS = {"budget": None, "eval_points": 0, "split": "fixed"}


