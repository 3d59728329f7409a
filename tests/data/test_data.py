"""Splits are stratified, exact in size, disjoint and reproducible; batches pad dynamically."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from harness.data.splits import (DEFAULT_SIZES, Encoded, auto_sizes, check_test_size, collate, make_splits,
                                 stratified_split, train_batches)
from harness.data.tasks import TaskData
from harness.errors import HarnessError


def _task(n=600, predefined=None):
    labels = [i % 3 for i in range(n)]  # classes 0,1,2 equally, then made unequal below
    labels = [0 if i % 5 == 0 else lab for i, lab in enumerate(labels)]
    return TaskData(name="t", texts=[f"text {i}" for i in range(n)], labels=labels,
                    label_names=["a", "b", "c"], language="en", predefined_splits=predefined, source={})


def test_stratified_split_sizes_disjoint_and_proportional():
    task = _task()
    parts = stratified_split(task.labels, [300, 100, 150], seed=3)
    assert [len(p) for p in parts] == [300, 100, 150]
    assert not set(parts[0]) & set(parts[1]) and not set(parts[0]) & set(parts[2]) and not set(parts[1]) & set(parts[2])
    overall = Counter(task.labels)
    for part in parts:
        counts = Counter(task.labels[i] for i in part)
        for c, total in overall.items():  # each class within one example of its exact proportional share
            assert abs(counts[c] - total * len(part) / len(task.labels)) <= 1


def test_split_is_reproducible_and_seed_dependent():
    task = _task()
    a = make_splits(task, 300, 100, 150, split_seed=0)
    b = make_splits(task, 300, 100, 150, split_seed=0)
    c = make_splits(task, 300, 100, 150, split_seed=1)
    assert a.train.indices == b.train.indices and a.data_hash == b.data_hash
    assert a.train.indices != c.train.indices and a.data_hash != c.data_hash
    assert a.sizes() == {"train": 300, "dev": 100, "test": 150}


def test_split_too_large_is_refused():
    with pytest.raises(HarnessError, match="need 700 examples"):
        make_splits(_task(), 500, 100, 100, split_seed=0)


def test_predefined_dev_becomes_test_and_dev_is_carved_from_train():
    train = ([f"tr {i}" for i in range(100)], [i % 2 for i in range(100)])
    dev = ([f"dv {i}" for i in range(40)], [i % 2 for i in range(40)])
    task = TaskData("clue", train[0] + dev[0], train[1] + dev[1], ["0", "1"], "zh",
                    {"train": train, "dev": dev}, {})
    s = make_splits(task, None, 20, None, split_seed=0)
    assert s.sizes() == {"train": 80, "dev": 20, "test": 40}
    assert all(t.startswith("dv") for t in s.test.texts)
    assert all(t.startswith("tr") for t in s.train.texts + s.dev.texts)


def _encoded(lengths):
    ids = [torch.arange(1, n + 1) for n in lengths]
    return Encoded(ids, torch.zeros(len(lengths), dtype=torch.long), np.array(lengths))


def test_collate_pads_to_the_longest_in_the_batch_only():
    batch = collate(_encoded([3, 5, 2]), [0, 2], pad_id=0)
    assert batch["input_ids"].shape == (2, 3)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_length_grouped_epoch_covers_every_example_once_and_is_seeded():
    data = _encoded(list(np.random.default_rng(0).integers(1, 30, size=200)))
    epoch = lambda seed: [b["index"].tolist() for b in train_batches(data, 16, torch.Generator().manual_seed(seed), 0)]
    a, b, c = epoch(1), epoch(1), epoch(2)
    assert a == b and a != c
    assert sorted(i for batch in a for i in batch) == list(range(200))
    grouped_padding = sum(len(batch) * max(data.lengths[batch]) for batch in a)
    plain = [b["index"].tolist() for b in train_batches(data, 16, torch.Generator().manual_seed(1), 0, False)]
    plain_padding = sum(len(batch) * max(data.lengths[batch]) for batch in plain)
    assert grouped_padding < plain_padding


# ---- sizes chosen from the data (RunConfig sizes of None) ------------------------------------

def test_sizes_left_to_the_data_are_the_defaults_when_they_fit_and_test_takes_the_rest():
    s = make_splits(_task(n=6600), None, None, None, split_seed=0)
    assert s.sizes() == {"train": DEFAULT_SIZES["train"], "dev": DEFAULT_SIZES["dev"], "test": 2100}
    # given train and dev: the test split is every example they leave
    s = make_splits(_task(n=6600), 2000, 500, None, split_seed=0)
    assert s.sizes() == {"train": 2000, "dev": 500, "test": 4100}
    assert len(set(s.train.indices) | set(s.dev.indices) | set(s.test.indices)) == 6600


@pytest.mark.min_test_size
def test_a_test_split_under_100_examples_is_refused_unless_allowed():
    with pytest.raises(HarnessError, match=r"the test split would have 8 examples: one example moves test "
                                           r"accuracy by 12\.50 points.*--allow-small-test"):
        make_splits(_task(n=40), None, None, None, split_seed=0)
    assert make_splits(_task(n=40), None, None, None, split_seed=0, allow_small_test=True).sizes()["test"] == 8
    assert check_test_size(100) is not None and "1.00 points" in check_test_size(100)  # warned, not refused
    assert check_test_size(1000) is None


def test_a_per_seed_split_moves_with_the_seed_and_a_fixed_one_does_not():
    from harness.training.config import RunConfig

    fixed, per_seed = RunConfig(seed=3, split_seed=1), RunConfig(seed=3, split_seed=1, split="per-seed")
    assert fixed.effective_split_seed == 1 and per_seed.effective_split_seed == 4
    a = make_splits(_task(n=600), 300, 100, None, split_seed=per_seed.effective_split_seed)
    b = make_splits(_task(n=600), 300, 100, None, split_seed=per_seed.replace(seed=4).effective_split_seed)
    assert a.test.indices != b.test.indices and a.sizes() == b.sizes()


def test_a_small_data_set_is_split_70_10_20():
    s = make_splits(_task(n=2700), None, None, None, split_seed=0)
    assert s.sizes() == {"train": 1890, "dev": 270, "test": 540}
    # a given size is kept, the others share the rest in proportion; the test split takes the remainder
    s = make_splits(_task(n=2700), 2000, None, None, split_seed=0)
    assert s.sizes() == {"train": 2000, "dev": 233, "test": 467}
    assert auto_sizes(3, {"train": None, "dev": None, "test": None}) == {"train": 1, "dev": 1, "test": 1}
    # given train and test, dev alone is left to the data: the given sizes stay
    assert auto_sizes(300, {"train": 32, "dev": None, "test": 1}) == {"train": 32, "dev": 267, "test": 1}


def test_given_sizes_that_do_not_fit_are_still_one_clear_error():
    with pytest.raises(HarnessError, match=r"split sizes \[4000, 500, 2000\] need 6500 examples but the task has 2700"):
        make_splits(_task(n=2700), 4000, 500, 2000, split_seed=0)
    with pytest.raises(HarnessError, match="split sizes train 4000 leave 0 of the task's 2700 examples for dev/test"):
        make_splits(_task(n=2700), 4000, None, None, split_seed=0)
    with pytest.raises(HarnessError, match="the task has 2 example"):
        auto_sizes(2, {"train": None, "dev": None, "test": None})


def test_predefined_splits_left_to_the_data_take_what_each_has():
    train = ([f"tr {i}" for i in range(800)], [i % 2 for i in range(800)])
    dev = ([f"dv {i}" for i in range(300)], [i % 2 for i in range(300)])
    task = TaskData("clue", train[0] + dev[0], train[1] + dev[1], ["0", "1"], None, {"train": train, "dev": dev}, {})
    s = make_splits(task, None, None, None, split_seed=0)
    assert s.sizes() == {"train": 700, "dev": 100, "test": 300}  # CLUE dev is our test
