"""`two-stage` (docs/method.md, "two-stage"): extraction without Theseus.

After the predecessor P is fine-tuned: model = E_p + the first L_s layers *of the fine-tuned P*
+ a head (fresh, or a copy of P's head H). Everything trains; the head's lr is base lr x multiplier.
Length: `epochs` epochs, or with a budget B exactly B optimizer steps (LR decay over those steps);
the predecessor's own training is not counted (it is shared by every arm of the seed).
"""

from __future__ import annotations

import copy

import torch.nn.functional as F

from harness.encoders.models import Classifier, layer_indices, make_head
from harness.strategies import Context, Plan, Strategy
from harness.training.loop import Phase


def build(ctx: Context) -> Plan:
    cfg, opts = ctx.config, ctx.options
    predecessor = ctx.get_predecessor()
    idx = layer_indices(ctx.predecessor_layers, cfg.layers, opts["layer_choice"])
    head = copy.deepcopy(predecessor.head) if opts["head_init"] == "predecessor" else \
        make_head(ctx.pretrained, cfg.head, ctx.num_classes)
    model = Classifier(copy.deepcopy(predecessor.embeddings),
                       [copy.deepcopy(predecessor.layers[i]) for i in idx], head)

    def loss(batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    body = list(model.embeddings.parameters()) + list(model.layers.parameters())
    groups = [{"params": body, "lr": ctx.lr, "name": "body"},
              {"params": list(model.head.parameters()), "lr": ctx.lr * opts["head_lr_multiplier"], "name": "head"}]
    epochs = opts["epochs"] or cfg.epochs
    return Plan([Phase("train", epochs, groups, loss, model, steps=ctx.phase_steps([epochs])[0])], model)


_SEED = {"lr": 1e-5, "epochs": 10}  # the seed's two-stage settings
STRATEGIES = {
    "two-stage": Strategy(
        name="two-stage",
        description="fine-tuned predecessor's embeddings + first L_s layers + head (random or P's), "
                    "head lr = lr x multiplier; seed grid {random, predecessor} x {1x, 5x}, lr 1e-5, 10 epochs",
        defaults={"head_init": "random", "head_lr_multiplier": 1.0, "layer_choice": "first", "epochs": 0, "lr": 0.0},
        choices={"head_init": ("random", "predecessor"), "layer_choice": ("first", "every-r")},
        variants={
            "random-1x": {**_SEED, "head_init": "random", "head_lr_multiplier": 1.0},
            "random-5x": {**_SEED, "head_init": "random", "head_lr_multiplier": 5.0},
            "predecessor-1x": {**_SEED, "head_init": "predecessor", "head_lr_multiplier": 1.0},
            "predecessor-5x": {**_SEED, "head_init": "predecessor", "head_lr_multiplier": 5.0},
        },
        build=build,
        needs_predecessor=True,
        default_variant="random-1x",
    ),
}
