"""A run's identity, in one place: the key of a run (a hash of every field that determines what it
computes and of the code version, `run_key` / `key_of`), the code version that enters it
(bump RESULTS_SCHEMA when a change alters what a run computes), and which run produces a run's
predecessor (`predecessor_config`, `predecessor_key`). A record is stored under its key, so a
store is resumable and a run with the same key in another store is the same run
(docs/method.md, "Runs and seeds")."""

from __future__ import annotations

from harness import __version__
from harness.data.content import data_content
from harness.training.config import EXECUTION_ONLY, LATER_DEFAULTS, RunConfig, stable_hash

# Bump RESULTS_SCHEMA when a change alters what a run computes: old store entries then get new keys.
# 2: fused AdamW on CPU too (numbers move in the last digits)
# 3: the harness's own dropout (masks from the run's generator by a path that is the same on every CPU,
#    harness/training/dropout.py), a user data file's content in the key, per-example test predictions in
#    the record, and a test split left to the data that takes every example train and dev leave
RESULTS_SCHEMA = 3
CODE_VERSION = f"{__version__}+r{RESULTS_SCHEMA}"


def key_of(config: RunConfig) -> str:
    """The run key of a configuration at this code version: the name of its record in a store."""
    return run_key(config, CODE_VERSION)


def run_key(config: RunConfig, code_version: str) -> str:
    """The hash of every setting that determines what a run computes, the code version and, for a
    user data source (csv:, jsonl:, clue:, a local hf: path), the content of its files: a file
    edited in place gives new keys, here and in the predecessor cache (harness/data/content.py).
    Built-in tasks are pinned by their archives' sha256, so their keys hold no content hash."""
    d = {k: v for k, v in config.to_dict().items()
         if k not in EXECUTION_ONLY and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    content = data_content(config.task)
    return stable_hash({"config": d, "code": code_version, **({"data_content": content} if content else {})})


def predecessor_config(config: RunConfig, predecessor_layers: int) -> RunConfig:
    """The finetune run that produces config's predecessor: k = L_p, seed = config.seed, its own
    epochs and lr (never the students' budget)."""
    return config.replace(
        strategy="finetune", variant="", options={}, layers=predecessor_layers, predecessor_layers=predecessor_layers,
        epochs=config.predecessor_epochs or config.epochs, lr=config.predecessor_lr or config.lr,
        predecessor_epochs=None, predecessor_lr=None, student_seed=None,
        budget=None,  # trained at its own fixed length, shared by every student budget of the seed
    )


def is_predecessor_run(config: RunConfig, predecessor_layers: int) -> bool:
    """A finetune run that is exactly its own predecessor (so its weights can be cached)."""
    return predecessor_config(config, predecessor_layers) == config.replace(
        predecessor_epochs=None, predecessor_lr=None, predecessor_layers=predecessor_layers)


def predecessor_key(config: RunConfig, predecessor_layers: int, code_version: str) -> str:
    return run_key(predecessor_config(config, predecessor_layers), code_version)
