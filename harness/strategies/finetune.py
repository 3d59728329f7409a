"""`finetune` (docs/method.md, "finetune"): direct fine-tuning of the first k pretrained layers.

Modules: pretrained embeddings + pretrained layers 1..k + a fresh head. All of it trains, at one lr.
k = L_p is the predecessor itself; k = L_s is the baseline every compression method must beat.
Length: `epochs` epochs, or with a budget B exactly B optimizer steps; the linear LR decay spans
whichever it is, so it scales with the budget.
"""

from __future__ import annotations

import torch.nn.functional as F

from harness.encoders.models import build_classifier
from harness.strategies import Context, Plan, Strategy
from harness.training.loop import Phase


def build(ctx: Context) -> Plan:
    cfg = ctx.config
    model = build_classifier(ctx.pretrained, cfg.layers, ctx.num_classes, cfg.head, ctx.options["layer_choice"])

    def loss(batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    epochs = ctx.options["epochs"] or cfg.epochs
    phase = Phase("train", epochs, [{"params": list(model.parameters()), "lr": ctx.lr, "name": "all"}],
                  loss, model, steps=ctx.phase_steps([epochs])[0])
    return Plan([phase], model)


STRATEGIES = {
    "finetune": Strategy(
        name="finetune",
        description="direct fine-tuning of embeddings + the first k pretrained layers + a fresh head "
                    "(k = L_p: the predecessor; k = L_s: the baseline)",
        defaults={"layer_choice": "first", "epochs": 0, "lr": 0.0},
        choices={"layer_choice": ("first", "every-r")},
        variants={},
        build=build,
        needs_predecessor=False,
    ),
}
