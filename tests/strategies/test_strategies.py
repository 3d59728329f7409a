"""The semantics of SPEC 3, pinned on a tiny random BERT."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.encoders.models import Classifier, build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.run import identity
from harness.run.runner import execute
from harness.strategies import Context, get_strategy
from harness.strategies.kd import distillation_loss
from harness.strategies.theseus import BinaryChoice, ProportionalAdd, RateSchedule, TheseusModel
from harness.training.config import RunConfig
from harness.training.loop import LoopSettings, fit

QUIET = dict(log=lambda *_: None)


def _pair(tiny_model_dir, successor_layers=2, replaceable_embeddings=False):
    """A 4-layer 'predecessor' and a successor built from other pretrained layers."""
    pre = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    predecessor = build_classifier(pre, 4, 2).eval()
    layers = torch.nn.ModuleList(copy.deepcopy(pre.layers[i]) for i in range(successor_layers))
    for p in layers.parameters():  # make the successor clearly different from the predecessor's blocks
        p.data.add_(0.05 * torch.randn_like(p))
    embeddings = copy.deepcopy(pre.embeddings) if replaceable_embeddings else None
    return predecessor, layers, embeddings


def _batch():
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 0, 0], [2, 10, 11, 12, 13, 3]])
    return ids, (ids != 0).long()


def test_rate_one_training_forward_equals_the_successor_alone(tiny_model_dir):
    predecessor, layers, embeddings = _pair(tiny_model_dir, replaceable_embeddings=True)
    mixer = BinaryChoice(3, RateSchedule(1.0), per_example=False, generator=torch.Generator().manual_seed(0))
    theseus = TheseusModel(predecessor, layers, embeddings, mixer).eval()
    successor = Classifier(embeddings, layers, predecessor.head).eval()
    ids, mask = _batch()
    torch.testing.assert_close(theseus(ids, mask), successor(ids, mask), rtol=0, atol=0)


def test_rate_near_zero_training_forward_equals_the_predecessor(tiny_model_dir):
    predecessor, layers, _ = _pair(tiny_model_dir)
    mixer = BinaryChoice(2, RateSchedule(1e-12), per_example=True, generator=torch.Generator().manual_seed(0))
    theseus = TheseusModel(predecessor, layers, None, mixer).eval()
    ids, mask = _batch()
    torch.testing.assert_close(theseus(ids, mask), predecessor(ids, mask), rtol=0, atol=0)
    assert not torch.equal(Classifier(predecessor.embeddings, layers, predecessor.head)(ids, mask),
                           predecessor(ids, mask))


def test_replacement_pattern_is_seeded_and_tracks_the_schedule():
    def draws(seed, schedule, steps=2000):
        m = BinaryChoice(3, schedule, per_example=False, generator=torch.Generator().manual_seed(seed))
        out = []
        for _ in range(steps):
            m.begin_step(8)
            out.append(m.decisions[:, 0].clone())
        return torch.stack(out).float()

    a, b, c = draws(0, RateSchedule(0.3)), draws(0, RateSchedule(0.3)), draws(1, RateSchedule(0.3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.mean().item() - 0.3) < 0.03
    linear = draws(0, RateSchedule(0.3, 0.7 / 1000))  # reaches 1 at step 1000
    assert abs(linear[:100].mean().item() - 0.335) < 0.06
    assert linear[1000:].mean().item() == 1.0


def test_per_example_draws_route_each_row_by_its_own_decisions(tiny_model_dir):
    predecessor, layers, _ = _pair(tiny_model_dir)
    successor = Classifier(predecessor.embeddings, layers, predecessor.head).eval()
    ids, mask = _batch()
    ids, mask = ids.repeat(4, 1), mask.repeat(4, 1)  # 12 rows
    for seed in range(50):  # a seed whose draws give rows that are all-successor and all-predecessor
        mixer = BinaryChoice(2, RateSchedule(0.5), per_example=True, generator=torch.Generator().manual_seed(seed))
        out = TheseusModel(predecessor, layers, None, mixer).eval()(ids, mask)
        all_succ, all_pred = mixer.decisions.all(0), (~mixer.decisions).all(0)
        if all_succ.any() and all_pred.any() and not (all_succ | all_pred).all():
            break
    torch.testing.assert_close(out[all_succ], successor(ids, mask)[all_succ], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[all_pred], predecessor(ids, mask)[all_pred], rtol=0, atol=1e-6)
    assert torch.allclose(mixer.replaced, mixer.decisions.double().mean(1))  # counts are shares of the batch


def test_proportional_add_forms_are_the_exact_formulas():
    pred, succ = torch.tensor([2.0, -4.0]), torch.tensor([6.0, 8.0])
    convex = ProportionalAdd(0.25, "convex", total_steps=10)
    convex.begin_step(1)
    torch.testing.assert_close(convex.combine(pred, succ), 0.25 * pred + 0.75 * succ)
    seed = ProportionalAdd(0.25, "seed", total_steps=10)
    seed.begin_step(1)
    torch.testing.assert_close(seed.combine(pred, succ), (0.25 * pred + 0.75 * succ) / 2)
    linear = ProportionalAdd(0.5, "convex", total_steps=4, schedule="linear")
    ks = []
    for _ in range(5):
        linear.begin_step(1)
        ks.append(linear.k)
    assert ks == [1.0, 0.75, 0.5, 0.25, 0.0]


def _context(config, options, predecessor, pretrained, steps_per_epoch=10, **extra):
    return Context(config=config, options=options, pretrained=pretrained, num_classes=2,
                   steps_per_epoch=steps_per_epoch, predecessor_layers=4, get_predecessor=lambda: predecessor,
                   **extra)


@pytest.mark.parametrize("variant", ["official", "seed"])
def test_theseus_phase_leaves_every_predecessor_parameter_bit_identical(tiny_model_dir, tiny_config, variant):
    from harness.run.runner import prepare_data

    pretrained = load_pretrained(tiny_model_dir)
    config = tiny_config.replace(strategy="theseus-binary", variant=variant)
    _, _, data = prepare_data(config, pretrained)
    torch.manual_seed(0)
    predecessor = build_classifier(pretrained, 4, 2)
    before = copy.deepcopy(predecessor.state_dict())
    strategy = get_strategy("theseus-binary")
    options = strategy.resolve(variant, {"theseus_epochs": 2, "successor_epochs": 0})
    plan = strategy.build(_context(config, options, predecessor, pretrained))
    successor_before = copy.deepcopy(plan.evaluated.layers.state_dict())
    result = fit(plan.phases, plan.evaluated, data["train"], data["dev"], data["test"], LoopSettings(batch_size=16),
                 torch.Generator().manual_seed(0))
    after = predecessor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen predecessor parameter changed"
    assert any(not torch.equal(successor_before[k], v) for k, v in plan.evaluated.layers.state_dict().items())
    assert all(p.grad is None for p in predecessor.parameters())
    counts = [e["replaced_per_module"] for e in result.epochs]
    assert len(counts[0]) == (3 if variant == "seed" else 2)  # embeddings are a module in the seed's variant
    assert all(0 <= c <= e["steps"] for e, row in zip(result.epochs, counts) for c in row)


def test_successor_phase_trains_the_head_and_evaluation_is_successor_only(tiny_model_dir, tiny_config):
    pretrained = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    predecessor = build_classifier(pretrained, 4, 2)
    strategy = get_strategy("theseus-add")
    options = strategy.resolve("convex", {"theseus_epochs": 1, "successor_epochs": 1})
    plan = strategy.build(_context(tiny_config.replace(strategy="theseus-add"), options, predecessor, pretrained))
    assert [p.name for p in plan.phases] == ["theseus", "successor"]
    trained = {id(p) for g in plan.phases[1].param_groups for p in g["params"]}
    assert all(id(p) in trained for p in predecessor.head.parameters())
    # the evaluated model is E_s, s_1..s_Ls, H: no predecessor layer is in it
    assert len(plan.evaluated.layers) == 2
    pred_layers = {id(p) for p in predecessor.layers.parameters()}
    assert not any(id(p) in pred_layers for p in plan.evaluated.parameters())


def test_two_stage_head_init_and_head_lr(tiny_model_dir, tiny_config):
    pretrained = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    predecessor = build_classifier(pretrained, 4, 2)
    strategy = get_strategy("two-stage")
    options = strategy.resolve("predecessor-5x", {"lr": 2e-4})
    plan = strategy.build(_context(tiny_config.replace(strategy="two-stage"), options, predecessor, pretrained))
    model = plan.evaluated
    assert all(torch.equal(a, b) for a, b in zip(model.head.state_dict().values(), predecessor.head.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(model.layers[1].state_dict().values(),
                                                  predecessor.layers[1].state_dict().values()))
    groups = {g["name"]: g["lr"] for g in plan.phases[0].param_groups}
    assert groups == {"body": 2e-4, "head": pytest.approx(1e-3)}
    options = strategy.resolve("random-1x", {})
    torch.manual_seed(1)
    random_head = strategy.build(_context(tiny_config, options, predecessor, pretrained)).evaluated.head
    assert not torch.equal(random_head.classifier.weight, predecessor.head.classifier.weight)


def test_kd_loss_matches_a_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[2.0, 0.0, 1.0]])
    y = torch.tensor([1])
    T, alpha = 2.0, 0.3
    p_t = torch.softmax(t / T, -1)
    p_s = torch.softmax(s / T, -1)
    kl = (p_t * (p_t.log() - p_s.log())).sum()
    ce = -torch.log_softmax(s, -1)[0, 1]
    expected = T * T * kl + alpha * ce
    torch.testing.assert_close(distillation_loss(s, t, y, T, alpha), expected)


def test_bad_strategy_options_are_one_line_errors():
    s = get_strategy("theseus-binary")
    with pytest.raises(HarnessError, match="no variant 'nope'"):
        s.resolve("nope", {})
    with pytest.raises(HarnessError, match="no option 'rate'"):
        s.resolve("seed", {"rate": "0.5"})
    with pytest.raises(HarnessError, match="draw must be one of batch, example"):
        s.resolve("seed", {"draw": "token"})
    with pytest.raises(HarnessError, match="unknown strategy 'theseus'"):
        get_strategy("theseus")


@pytest.mark.parametrize("overrides, message", [
    ({"replacement_rate": 1.5}, r"replacement rate must be in \(0, 1\]"),
    ({"replacement_rate": 0.0}, r"replacement rate must be in \(0, 1\]"),
])
def test_rate_outside_unit_interval_is_refused(tiny_config, overrides, message):
    config = tiny_config.replace(strategy="theseus-binary", variant="seed", options=overrides)
    with pytest.raises(HarnessError, match=message):
        execute(config, **QUIET)


def test_indivisible_layers_are_refused(tiny_config):
    with pytest.raises(HarnessError, match=r"predecessor layers \(4\) must be divisible by successor layers \(3\)"):
        execute(tiny_config.replace(strategy="theseus-add", layers=3), **QUIET)


def test_predecessor_is_trained_once_then_reused_and_a_corrupt_entry_is_retrained(tiny_config, tmp_path,
                                                                                 monkeypatch):
    from harness.run import predecessor as cache
    from harness.run.identity import CODE_VERSION

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    config = tiny_config.replace(strategy="theseus-binary", variant="official",
                                 options={"theseus_epochs": 1, "successor_epochs": 0})
    first = execute(config, **QUIET)
    second = execute(config, **QUIET)
    assert first["predecessor"]["trained_now"] and not second["predecessor"]["trained_now"]
    assert first["final"] == second["final"]  # cached or fresh, the student sees the same predecessor
    # the same predecessor named explicitly (as sweeps do) is the same cache entry
    assert not execute(config.replace(predecessor_layers=4), **QUIET)["predecessor"]["trained_now"]
    # the finetune-4 run *is* the predecessor: running it reuses nothing but fills the same key
    key = identity.predecessor_key(config, 4, CODE_VERSION)
    assert (cache.cache_root() / key / "weights.pt").exists()
    # a mismatched entry (its recorded key is another's) is refused and retrained
    meta_path = cache.cache_root() / key / "meta.json"
    meta_path.write_text(meta_path.read_text().replace(key, "0" * len(key)))
    third = execute(config, **QUIET)
    assert third["predecessor"]["trained_now"] and third["final"] == first["final"]
    # corrupted weights are detected by checksum
    (cache.cache_root() / key / "weights.pt").write_bytes(b"garbage")
    assert execute(config, **QUIET)["predecessor"]["trained_now"]


def test_every_strategy_runs_end_to_end(tiny_config):
    for strategy, variant in [("kd", ""), ("two-stage", "random-5x"), ("theseus-add", "seed"),
                              ("theseus-binary", "official-constant")]:
        options = {"epochs": 1} if strategy in ("kd", "two-stage") else {"theseus_epochs": 1, "successor_epochs": 1}
        record = execute(tiny_config.replace(strategy=strategy, variant=variant, options=options), **QUIET)
        assert 0 <= record["final"]["test_accuracy"] <= 1 and record["strategy"] == strategy
