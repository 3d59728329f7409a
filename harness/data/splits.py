"""Seeded stratified splits, cached tokenisation, length-grouped dynamic-padding batches.

Data flows: TaskData (texts, labels) -> Splits (train/dev/test, recorded by content hash)
-> Encoded (token ids per example, tokenised once) -> batches (padded per batch only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from harness.errors import HarnessError


@dataclass
class Split:
    texts: list[str]
    labels: list[int]
    indices: list[int]  # positions in the task's pool (or its predefined split), for the record


@dataclass
class Splits:
    train: Split
    dev: Split
    test: Split
    num_classes: int
    label_names: list[str]
    data_hash: str  # sha256 over (split, text, label) of all three splits, in order

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train.labels), "dev": len(self.dev.labels), "test": len(self.test.labels)}


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder allocation of `total` items across classes in proportion to `counts`."""
    share = counts * total / counts.sum()
    alloc = np.floor(share).astype(int)
    remainder = total - alloc.sum()
    # ties broken by class index: deterministic on every machine
    order = sorted(range(len(counts)), key=lambda c: (-(share[c] - alloc[c]), c))
    for c in order[:remainder]:
        alloc[c] += 1
    return np.minimum(alloc, counts)


def stratified_split(labels: list[int], sizes: list[int], seed: int) -> list[list[int]]:
    """Partition example indices into len(sizes) disjoint stratified parts of exactly these sizes.

    Each class is shuffled with numpy's PCG64 seeded by `seed` (identical on every machine), then
    dealt out part by part in proportion to the class frequencies. Returns sorted index lists.
    """
    labels_arr = np.asarray(labels)
    if sum(sizes) > len(labels_arr):
        raise HarnessError(f"split sizes {sizes} need {sum(sizes)} examples but the task has {len(labels_arr)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels_arr)
    remaining = {c: list(rng.permutation(np.flatnonzero(labels_arr == c))) for c in classes}
    parts = []
    for size in sizes:
        counts = np.array([len(remaining[c]) for c in classes])
        alloc = _allocate(counts, size)
        short = size - alloc.sum()  # only when a class ran out: fill from the largest remaining classes
        for ci in np.argsort(-(counts - alloc), kind="stable")[:short]:
            alloc[ci] += 1
        part = []
        for c, n in zip(classes, alloc):
            part += remaining[c][:n]
            remaining[c] = remaining[c][n:]
        parts.append(sorted(int(i) for i in part))
    return parts


def _subset(texts, labels, idx) -> Split:
    return Split([texts[i] for i in idx], [int(labels[i]) for i in idx], list(idx))


def _hash_splits(parts: dict[str, Split]) -> str:
    h = hashlib.sha256()
    for name, split in parts.items():
        for text, label in zip(split.texts, split.labels):
            h.update(json.dumps([name, text, label], ensure_ascii=False).encode())
    return h.hexdigest()


# Sizes a split gets when its size is not given (None): train and dev sized for a 2-core CPU, and the test
# split every example the two leave (at least DEFAULT_SIZES["test"]: a larger test sample shrinks the
# test-sample error of every comparison, which no number of seeds lowers; docs/method.md, "The unit of
# inference"). A data set too small for them is split in the proportions SMALL_DATA_SHARES instead (see
# auto_sizes).
DEFAULT_SIZES = {"train": 4000, "dev": 500, "test": 2000}
SMALL_DATA_SHARES = {"train": 0.7, "dev": 0.1, "test": 0.2}
# A test split smaller than this is refused unless the run allows it (RunConfig.allow_small_test): one
# example would move accuracy by more than a point, the margin every equivalence claim uses. Below
# WARN_TEST_SIZE the run summary and the report warn.
MIN_TEST_SIZE = 100
WARN_TEST_SIZE = 1000


def auto_sizes(n: int, sizes: dict[str, int | None]) -> dict[str, int]:
    """Sizes for the parts in `sizes` (names from DEFAULT_SIZES) drawn from a pool of n examples.

    A given size is kept (if the sizes do not fit, stratified_split says so). When DEFAULT_SIZES of
    the parts without a size fit beside the given ones, train and dev get theirs and the test split
    takes every example left (at least its default); else the parts without a size share what the
    given ones leave in the proportions SMALL_DATA_SHARES (the test split, else train, takes the
    rounding remainder), e.g. 70/10/20 of a data set smaller than 6,500 examples.
    """
    given = {k: v for k, v in sizes.items() if v is not None}
    auto = [k for k, v in sizes.items() if v is None]
    left = n - sum(given.values())
    rest = next((k for k in ("test", "train", "dev") if k in auto), None)  # who takes what the others leave
    if not auto or sum(DEFAULT_SIZES[k] for k in auto) <= left:  # (sizes that do not fit: stratified_split)
        out = {**given, **{k: DEFAULT_SIZES[k] for k in auto}}
        if "test" in auto:
            out["test"] = left - sum(out[k] for k in auto if k != "test")
        return out
    if left < len(auto):
        asked = ", ".join(f"{k} {v}" for k, v in given.items())
        raise HarnessError(f"split sizes {asked} leave {max(left, 0)} of the task's {n} examples for "
                           f"{'/'.join(auto)}; lower them (or leave them out: sizes are then chosen from the data)"
                           if given else f"the task has {n} example(s): too few to split into {'/'.join(auto)}")
    weight = sum(SMALL_DATA_SHARES[k] for k in auto)
    out = dict(given)
    for k in auto:  # every part gets at least one example; `rest` takes the remainder
        if k != rest:
            out[k] = max(1, int(left * SMALL_DATA_SHARES[k] / weight + 1e-9))  # (0.7 x 2700 is 1889.99...)
    others = [k for k in auto if k != rest]
    while left - sum(out[k] for k in others) < 1:  # `rest` needs one example too (tiny pools)
        out[max(others, key=lambda k: out[k])] -= 1
    out[rest] = left - sum(out[k] for k in others)
    return out


def example_points(n_test: int) -> float:
    """What one test example is worth in accuracy points."""
    return 100.0 / n_test


def check_test_size(n_test: int, allow_small: bool = False, where: str = "") -> str | None:
    """Refuse a test split under MIN_TEST_SIZE examples (HarnessError) unless allow_small; return a
    warning line for one under WARN_TEST_SIZE (else None)."""
    worth = f"one example moves test accuracy by {example_points(n_test):.2f} points"
    if n_test < MIN_TEST_SIZE and not allow_small:
        raise HarnessError(f"{where}the test split would have {n_test} examples: {worth}, more than the "
                           f"±1-point margin of an equivalence claim; use a larger data set or test size "
                           f"(at least {MIN_TEST_SIZE}), or --allow-small-test to run anyway")
    if n_test < WARN_TEST_SIZE:
        return (f"warning: {where}the test split has {n_test:,} examples ({worth}); "
                f"verdicts about the task need a larger one")
    return None


def make_splits(task, train_size: int | None, dev_size: int | None, test_size: int | None,
                split_seed: int, allow_small_test: bool = False) -> Splits:
    """Seeded stratified train/dev/test splits of a TaskData.

    A pool task is split three ways. A task with predefined train/dev (e.g. CLUE, whose test labels
    are hidden) keeps its dev set as our *test* set and carves our dev set out of its train set,
    so model selection never sees the figures we report. A size of None is chosen from the data
    (auto_sizes: DEFAULT_SIZES with the test split taking the rest, or 70/10/20 of a smaller data
    set). A test split under MIN_TEST_SIZE is refused unless allow_small_test (check_test_size).
    """
    pre = task.predefined_splits
    if pre is None:
        sizes = auto_sizes(len(task.labels), {"train": train_size, "dev": dev_size, "test": test_size})
        tr, dv, te = stratified_split(task.labels, [sizes["train"], sizes["dev"], sizes["test"]], split_seed)
        parts = {name: _subset(task.texts, task.labels, idx) for name, idx in
                 (("train", tr), ("dev", dv), ("test", te))}
    else:
        if "test" in pre:
            test_texts, test_labels = pre["test"]
            dev_pool = pre["dev"]
        else:
            test_texts, test_labels = pre["dev"]
            dev_pool = None
        train_texts, train_labels = pre["train"]
        # each predefined split is its own pool: a size not given is the default, or all it has; the
        # test split all of its pool
        test_n = test_size if test_size is not None else len(test_labels)
        if dev_pool is not None:
            dev_n = dev_size if dev_size is not None else min(DEFAULT_SIZES["dev"], len(dev_pool[1]))
            dv_idx = stratified_split(dev_pool[1], [dev_n], split_seed)[0]
            dev = _subset(dev_pool[0], dev_pool[1], dv_idx)
            train_n = train_size if train_size is not None else min(DEFAULT_SIZES["train"], len(train_labels))
            tr_idx = stratified_split(train_labels, [train_n], split_seed)[0]
        else:
            sizes = auto_sizes(len(train_labels), {"train": train_size, "dev": dev_size})
            tr_idx, dv_idx = stratified_split(train_labels, [sizes["train"], sizes["dev"]], split_seed)
            dev = _subset(train_texts, train_labels, dv_idx)
        te_idx = stratified_split(test_labels, [test_n], split_seed)[0]
        parts = {"train": _subset(train_texts, train_labels, tr_idx), "dev": dev,
                 "test": _subset(test_texts, test_labels, te_idx)}
    for name, split in parts.items():
        if not split.labels:
            raise HarnessError(f"the {name} split is empty; check the split sizes")
    check_test_size(len(parts["test"].labels), allow_small_test)
    return Splits(parts["train"], parts["dev"], parts["test"], len(task.label_names),
                  list(task.label_names), _hash_splits(parts))


# ---------------------------------------------------------------- tokenisation (once per process)

@dataclass
class Encoded:
    """One split, tokenised: ids[i] is example i's token ids (no padding), labels (n,)."""

    ids: list[torch.Tensor]
    labels: torch.Tensor
    lengths: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


_TOKEN_CACHE: dict[tuple, Encoded] = {}


def encode(tokenizer, split: Split, max_length: int, cache_key: tuple | None = None) -> Encoded:
    """Tokenise a split once; later calls with the same key (tokenizer, data hash, split, length) reuse it."""
    if cache_key is not None and cache_key in _TOKEN_CACHE:
        return _TOKEN_CACHE[cache_key]
    out = tokenizer(split.texts, truncation=True, max_length=max_length, padding=False)
    ids = [torch.tensor(x, dtype=torch.long) for x in out["input_ids"]]
    encoded = Encoded(ids, torch.tensor(split.labels, dtype=torch.long),
                      np.array([len(x) for x in ids], dtype=np.int64))
    if cache_key is not None:
        _TOKEN_CACHE[cache_key] = encoded
    return encoded


def collate(encoded: Encoded, idx, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest example (dynamic padding)."""
    seqs = [encoded.ids[i] for i in idx]
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = s
        attention_mask[row, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": encoded.labels[list(idx)], "index": torch.tensor(list(idx), dtype=torch.long)}


def train_batches(encoded: Encoded, batch_size: int, generator: torch.Generator, pad_id: int,
                  group_by_length: bool = True, group_size: int = 50):
    """One epoch of shuffled training batches, drawn from `generator` (the run's data-order RNG).

    With group_by_length, examples are shuffled, cut into groups of `group_size` batches, sorted by
    length inside each group and batched, and the batch order is shuffled again: batches hold
    similar lengths (little padding) while every epoch's composition still changes.
    """
    n = len(encoded.labels)
    order = torch.randperm(n, generator=generator).tolist()
    if group_by_length:
        span = batch_size * group_size
        batches = []
        for start in range(0, n, span):
            chunk = sorted(order[start:start + span], key=lambda i: -encoded.lengths[i])
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
        perm = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in perm]
    else:
        batches = [order[j:j + batch_size] for j in range(0, n, batch_size)]
    for idx in batches:
        yield collate(encoded, idx, pad_id)


def eval_batches(encoded: Encoded, batch_size: int, pad_id: int):
    """Batches sorted by length (least padding); `batch['index']` maps rows back to examples."""
    order = np.argsort(-encoded.lengths, kind="stable")
    for j in range(0, len(order), batch_size):
        yield collate(encoded, order[j:j + batch_size].tolist(), pad_id)
