"""`theseus-binary` and `theseus-add` (docs/method.md, "theseus-binary and theseus-add"): successor modules trained inside
the frozen fine-tuned predecessor.

Modules. P = fine-tuned predecessor: embeddings E_p, layers p_1..p_Lp, head H; all frozen during
the Theseus phase. S = successor: layers s_1..s_Ls (and embeddings E_s when the embeddings are a
replaceable module, as in the seed). r = L_p / L_s; module i of P is the block p_{r(i-1)+1}..p_{ri}.

One Theseus training step: hidden = embeddings(x) (E_p, or E_p/E_s mixed); then for each module i,
hidden = mix_i(block_i(hidden), s_i(hidden)); logits = H(hidden[:, 0]); cross-entropy.
  binary choice: mix_i picks s_i with probability rho_t (one draw per module per step, or per example)
  proportional add: mix_i = k * pred + (1 - k) * succ ("convex"), or that sum / 2 ("seed", the seed's code)
Evaluation always runs the successor path only: E (E_s or E_p), s_1..s_Ls, H.
An optional successor phase then trains S (+ E_s) and H alone.
Length: theseus_epochs + successor_epochs epochs, or with a budget B exactly B optimizer steps split
between the two phases in the proportion of those epochs (2 + 1 -> 2/3 and 1/3 of B). Everything
that depends on training length scales with it: the curriculum's "rate 1 at fraction f" counts
Theseus-phase steps, a linear k schedule spans the Theseus phase, each phase's LR decay its own steps.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from harness.encoders.models import Classifier, layer_indices, run_layer
from harness.errors import HarnessError
from harness.strategies import Context, Plan, Strategy
from harness.training.loop import Phase


class RateSchedule:
    """rho_t = min(1, base + slope * t) at training step t (slope 0: constant)."""

    def __init__(self, base: float, slope: float = 0.0):
        self.base, self.slope = base, slope

    def __call__(self, step: int) -> float:
        return min(1.0, self.base + self.slope * step)


class BinaryChoice:
    """Binary random choice: before each step, draw for every module whether S's module runs.

    Draws come from the run's own generator (not the dropout RNG), so the replacement pattern is a
    function of the seed and the schedule alone. Counts per module are kept for the diagnostics.
    """

    def __init__(self, num_modules: int, schedule: RateSchedule, per_example: bool, generator: torch.Generator):
        self.schedule, self.per_example, self.generator = schedule, per_example, generator
        self.step = 0
        self.decisions: torch.Tensor | None = None
        self.replaced = torch.zeros(num_modules, dtype=torch.float64)
        self.steps = 0
        self.scheduled = 0.0

    def begin_step(self, batch_size: int) -> None:
        rate = self.schedule(self.step)
        shape = (len(self.replaced), batch_size) if self.per_example else (len(self.replaced), 1)
        self.decisions = torch.rand(shape, generator=self.generator) < rate
        self.replaced += self.decisions.double().mean(dim=1)
        self.steps += 1
        self.scheduled += rate
        self.step += 1

    def mix(self, module: int, predecessor_fn, successor_fn) -> torch.Tensor:
        use = self.decisions[module]
        if bool(use.all()):
            return successor_fn()
        if not bool(use.any()):
            return predecessor_fn()
        succ, pred = successor_fn(), predecessor_fn()
        return torch.where(use.to(succ.device)[:, None, None], succ, pred)

    def epoch_diagnostics(self) -> dict:
        out = {"replaced_per_module": [float(x) for x in self.replaced],
               "replacement_rate": float(self.replaced.sum() / max(1, self.steps * len(self.replaced))),
               "scheduled_rate": self.scheduled / max(1, self.steps)}
        self.replaced.zero_()
        self.steps, self.scheduled = 0, 0.0
        return out


class ProportionalAdd:
    """Deterministic mixing k * pred + (1 - k) * succ; the "seed" form halves that at every module.

    k may follow a schedule (linear from 1 to 0 over the Theseus phase), an extension of the seed.
    """

    def __init__(self, k: float, form: str, total_steps: int, schedule: str = "constant"):
        self.k0, self.form, self.total, self.schedule = k, form, max(1, total_steps), schedule
        self.step = 0
        self.k = k
        self.k_sum, self.steps = 0.0, 0

    def begin_step(self, batch_size: int) -> None:
        self.k = max(0.0, 1.0 - self.step / self.total) if self.schedule == "linear" else self.k0
        self.k_sum += self.k
        self.steps += 1
        self.step += 1

    def combine(self, pred: torch.Tensor, succ: torch.Tensor) -> torch.Tensor:
        mixed = self.k * pred + (1.0 - self.k) * succ
        return mixed / 2 if self.form == "seed" else mixed

    def mix(self, module: int, predecessor_fn, successor_fn) -> torch.Tensor:
        return self.combine(predecessor_fn(), successor_fn())

    def epoch_diagnostics(self) -> dict:
        out = {"mix_k": self.k_sum / max(1, self.steps)}
        self.k_sum, self.steps = 0.0, 0
        return out


class TheseusModel(nn.Module):
    """The Theseus training forward: predecessor blocks and successor modules mixed per module.

    Encoder-level parameters that every layer needs (MPNet's relative attention bias, DeBERTa's
    relative embeddings + LayerNorm) travel with an embeddings part (models.Embeddings). The
    predecessor's blocks always use E_p's frozen copy. The successor's layers use E_s's own copy when
    the embeddings are a replaceable module (the seed: it is trained with E_s), else E_p's frozen copy
    (official: E_p shared), exactly as the successor alone computes at evaluation.
    """

    def __init__(self, predecessor: Classifier, successor_layers: nn.ModuleList,
                 successor_embeddings: nn.Module | None, mixer):
        super().__init__()
        if len(predecessor.layers) % len(successor_layers):
            raise HarnessError(f"predecessor layers ({len(predecessor.layers)}) must be divisible by "
                               f"successor layers ({len(successor_layers)})")
        self.predecessor = predecessor
        self.successor_layers = successor_layers
        self.successor_embeddings = successor_embeddings
        self.mixer = mixer
        self.ratio = len(predecessor.layers) // len(successor_layers)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """(batch, seq) -> logits (batch, classes), through the predecessor's frozen head H."""
        P, E_s = self.predecessor, self.successor_embeddings
        self.mixer.begin_step(input_ids.shape[0])
        if E_s is None:
            hidden = P.embeddings(input_ids, attention_mask, token_type_ids)
            offset = 0
        else:
            hidden = self.mixer.mix(0, lambda: P.embeddings(input_ids, attention_mask, token_type_ids),
                                    lambda: E_s(input_ids, attention_mask, token_type_ids))
            offset = 1
        # The mask and per-forward extras (MPNet's position bias, DeBERTa's relative embeddings) come
        # from the part whose encoder-level parameters the layers were trained with: E_p's frozen copy
        # for the predecessor blocks; E_s's own copy for the successor's layers when the embeddings are
        # replaceable (trained with them), else E_p's. That is what the successor computes alone at
        # evaluation, so a rate-1 step equals the successor alone.
        pred_inputs = P.embeddings.layer_inputs(hidden, attention_mask)
        succ_inputs = pred_inputs if E_s is None else E_s.layer_inputs(hidden, attention_mask)
        for i, layer in enumerate(self.successor_layers):
            block = P.layers[self.ratio * i: self.ratio * (i + 1)]

            def predecessor_fn(h=hidden, block=block):
                for p_layer in block:
                    h = run_layer(p_layer, h, pred_inputs)
                return h

            hidden = self.mixer.mix(offset + i, predecessor_fn,
                                    lambda h=hidden, s=layer: run_layer(s, h, succ_inputs))
        return P.head(hidden)


def _build_successor(ctx: Context, predecessor: Classifier) -> tuple[nn.ModuleList, nn.Module | None]:
    """S's layers, and E_s when the embeddings are replaceable (a copy of the source's embeddings part,
    with its encoder-level parameters: MPNet's relative bias, DeBERTa's relative embeddings)."""
    cfg, opts = ctx.config, ctx.options
    if opts["successor_init"] == "predecessor":  # official: copies of the fine-tuned P's layers
        source_layers, source_embeddings = predecessor.layers, predecessor.embeddings
    else:  # seed: the pretrained layers (and pretrained embeddings)
        source_layers, source_embeddings = ctx.pretrained.layers, ctx.pretrained.embeddings
    idx = layer_indices(ctx.predecessor_layers, cfg.layers, opts["layer_choice"])
    layers = nn.ModuleList(copy.deepcopy(source_layers[i]) for i in idx)
    embeddings = copy.deepcopy(source_embeddings) if opts["replace_embeddings"] else None
    return layers, embeddings


def check(config, opts: dict, predecessor_layers: int) -> None:
    """Every option problem, found before anything is trained."""
    if config.layers >= predecessor_layers:
        raise HarnessError(f"successor layers ({config.layers}) must be fewer than predecessor layers "
                           f"({predecessor_layers})")
    if predecessor_layers % config.layers:
        raise HarnessError(f"predecessor layers ({predecessor_layers}) must be divisible by successor "
                           f"layers ({config.layers})")
    if opts["theseus_epochs"] < 1:
        raise HarnessError(f"theseus_epochs must be >= 1, got {opts['theseus_epochs']}")
    if opts["successor_epochs"] < 0:
        raise HarnessError(f"successor_epochs must be >= 0, got {opts['successor_epochs']}")
    if "replacement_rate" in opts:
        if not 0 < opts["replacement_rate"] <= 1:
            raise HarnessError(f"replacement rate must be in (0, 1], got {opts['replacement_rate']}")
        if opts["schedule"] == "linear" and not 0 < opts["schedule_base"] <= 1:
            raise HarnessError(f"schedule base rate must be in (0, 1], got {opts['schedule_base']}")
        if not 0 <= opts["reach_one_at"] <= 1:
            raise HarnessError(f"reach_one_at must be a fraction of training in [0, 1], got {opts['reach_one_at']}")
    if "k" in opts and not 0 <= opts["k"] < 1:
        raise HarnessError(f"proportional-add k must be in [0, 1) (k = 1 never trains the successor), "
                           f"got {opts['k']}")


def _plan(ctx: Context, mixer_for) -> Plan:
    """The phases both Theseus strategies share; `mixer_for(num_modules, theseus_steps)` makes the mixer."""
    cfg, opts = ctx.config, ctx.options
    predecessor = ctx.get_predecessor()
    layers, embeddings = _build_successor(ctx, predecessor)
    num_modules = len(layers) + (embeddings is not None)
    theseus_steps, successor_steps = ctx.phase_steps([opts["theseus_epochs"], opts["successor_epochs"]])
    mixer = mixer_for(num_modules, theseus_steps if theseus_steps is not None
                      else opts["theseus_epochs"] * ctx.steps_per_epoch)
    theseus = TheseusModel(predecessor, layers, embeddings, mixer)
    successor = Classifier(embeddings if embeddings is not None else predecessor.embeddings, layers, predecessor.head)

    def theseus_loss(batch):
        return F.cross_entropy(theseus(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def successor_loss(batch):
        return F.cross_entropy(successor(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    trained = list(layers.parameters()) + (list(embeddings.parameters()) if embeddings is not None else [])
    phases = [Phase("theseus", opts["theseus_epochs"], [{"params": trained, "lr": ctx.lr, "name": "successor"}],
                    theseus_loss, theseus, mixer.epoch_diagnostics, steps=theseus_steps)]
    if opts["successor_epochs"]:
        phases.append(Phase("successor", opts["successor_epochs"],
                            [{"params": trained + list(predecessor.head.parameters()), "lr": ctx.lr,
                              "name": "successor+head"}], successor_loss, successor, steps=successor_steps))
    modules = (["embeddings"] if embeddings is not None else []) + [f"layer {i + 1}" for i in range(len(layers))]
    return Plan(phases, successor, {"modules": modules, "theseus_model": theseus})


def build_binary(ctx: Context) -> Plan:
    opts = ctx.options
    rate, base = opts["replacement_rate"], opts["schedule_base"]

    def mixer_for(num_modules, theseus_steps):
        if opts["schedule"] == "constant":
            schedule = RateSchedule(rate)
        elif opts["reach_one_at"] > 0:  # "reaches 1 at fraction f of training": scales with run length
            schedule = RateSchedule(base, (1 - base) / max(1.0, opts["reach_one_at"] * theseus_steps))
        else:
            schedule = RateSchedule(base, opts["schedule_slope"])
        return BinaryChoice(num_modules, schedule, opts["draw"] == "example", ctx.generator(stream=1))

    return _plan(ctx, mixer_for)


def build_add(ctx: Context) -> Plan:
    opts = ctx.options

    def mixer_for(num_modules, theseus_steps):
        return ProportionalAdd(opts["k"], opts["form"], theseus_steps, opts["k_schedule"])

    return _plan(ctx, mixer_for)


_COMMON = {"replace_embeddings": False, "successor_init": "predecessor", "layer_choice": "first",
           "theseus_epochs": 10, "successor_epochs": 5, "lr": 0.0}
_COMMON_CHOICES = {"successor_init": ("pretrained", "predecessor"), "layer_choice": ("first", "every-r")}
# The seed's code: embeddings are a replaceable module, successor from the pretrained model, 10 + 5 epochs.
_SEED = {"replace_embeddings": True, "successor_init": "pretrained", "theseus_epochs": 10, "successor_epochs": 5}

STRATEGIES = {
    "theseus-binary": Strategy(
        name="theseus-binary",
        description="BERT-of-Theseus: per step, each successor module replaces its predecessor block "
                    "with probability rho (constant or linear curriculum); successor-only evaluation",
        defaults={**_COMMON, "replacement_rate": 0.5, "schedule": "constant", "schedule_base": 0.3,
                  "schedule_slope": 0.0006, "reach_one_at": 0.0, "draw": "batch"},
        choices={**_COMMON_CHOICES, "schedule": ("constant", "linear"), "draw": ("batch", "example")},
        variants={
            # seed: rho 0.5 per batch, replaceable embeddings, pretrained init, 10 Theseus + 5 successor epochs
            "seed": {**_SEED, "replacement_rate": 0.5, "schedule": "constant", "draw": "batch"},
            # official: linear curriculum from 0.3 (k = 0.0006/step in the GLUE example reaches 1 at about
            # 2/3 of training: expressed as a fraction so it scales), shared frozen E_p, init from fine-tuned P
            "official": {"replace_embeddings": False, "successor_init": "predecessor", "schedule": "linear",
                         "schedule_base": 0.3, "reach_one_at": 0.66, "draw": "batch",
                         "theseus_epochs": 10, "successor_epochs": 0},
            # official constant-rate mode: rho 0.5, then rate 1 (the successor alone) for the last steps
            "official-constant": {"replace_embeddings": False, "successor_init": "predecessor",
                                  "schedule": "constant", "replacement_rate": 0.5, "draw": "batch",
                                  "theseus_epochs": 10, "successor_epochs": 5},
        },
        build=build_binary,
        check=check,
        needs_predecessor=True,
        default_variant="seed",
    ),
    "theseus-add": Strategy(
        name="theseus-add",
        description="proportional add (the seed's proposal): every module outputs k*pred + (1-k)*succ "
                    "(convex) or that / 2 (seed's code); successor-only evaluation",
        defaults={**_COMMON, "k": 0.5, "form": "convex", "k_schedule": "constant"},
        choices={**_COMMON_CHOICES, "form": ("convex", "seed"), "k_schedule": ("constant", "linear")},
        variants={
            "convex": {**_SEED, "k": 0.5, "form": "convex"},
            "seed": {**_SEED, "k": 0.5, "form": "seed"},
        },
        build=build_add,
        check=check,
        needs_predecessor=True,
        default_variant="convex",
    ),
}
