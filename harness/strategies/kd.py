"""`kd` (docs/method.md, "kd"): Hinton logit distillation, the Theseus paper's baseline.

Student: pretrained embeddings + the first L_s pretrained layers + a fresh head, all trained.
Teacher: the fine-tuned predecessor, frozen, in eval mode. Its logits are deterministic, so they
are computed once per training example instead of once per step.
loss = T^2 * KL(softmax(teacher / T) || softmax(student / T)) + alpha * CE(student, labels)
Length: `epochs` epochs, or with a budget B exactly B optimizer steps (LR decay over those steps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.data.splits import eval_batches
from harness.encoders.models import build_classifier
from harness.strategies import Context, Plan, Strategy
from harness.training.loop import Phase, autocast


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """(batch, classes) logits, (batch,) labels -> scalar loss (batch mean)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                  log_target=True, reduction="batchmean")
    return t * t * kl + alpha * F.cross_entropy(student_logits, labels)


def teacher_logits(teacher, train, settings) -> torch.Tensor:
    """Teacher logits for every training example, in data order: (n_train, classes), float32."""
    teacher.eval()
    out = None
    with torch.inference_mode(), autocast(settings.device, settings.precision):
        for batch in eval_batches(train, settings.eval_batch_size, settings.pad_id):
            logits = teacher(batch["input_ids"].to(settings.device),
                             batch["attention_mask"].to(settings.device)).float()
            if out is None:
                out = torch.empty(len(train.labels), logits.shape[-1], device=settings.device)
            out[batch["index"].to(settings.device)] = logits
    return out


def build(ctx: Context) -> Plan:
    cfg, opts = ctx.config, ctx.options
    soft = teacher_logits(ctx.get_predecessor(), ctx.train, ctx.settings)
    student = build_classifier(ctx.pretrained, cfg.layers, ctx.num_classes, cfg.head, opts["layer_choice"])

    def loss(batch):
        logits = student(batch["input_ids"], batch["attention_mask"])
        return distillation_loss(logits.float(), soft[batch["index"]], batch["labels"],
                                 opts["temperature"], opts["alpha"])

    epochs = opts["epochs"] or cfg.epochs
    phase = Phase("train", epochs, [{"params": list(student.parameters()), "lr": ctx.lr, "name": "all"}],
                  loss, student, steps=ctx.phase_steps([epochs])[0])
    return Plan([phase], student)


STRATEGIES = {
    "kd": Strategy(
        name="kd",
        description="Hinton logit distillation from the fine-tuned predecessor into the first L_s "
                    "pretrained layers: T^2 * KL at temperature T + alpha * CE",
        defaults={"temperature": 2.0, "alpha": 0.5, "layer_choice": "first", "epochs": 0, "lr": 0.0},
        choices={"layer_choice": ("first", "every-r")},
        variants={},
        build=build,
        needs_predecessor=True,
    ),
}
