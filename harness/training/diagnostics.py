"""Per-run failure and convergence diagnostics: pure functions of what a run record stores.

collapsed        the run failed: its test predictions agree with the labels hardly better than
                 chance. Cohen's kappa, kappa = (p_o - p_e) / (1 - p_e) with p_o the accuracy and
                 p_e = sum_k (predicted share of class k) x (true share of k), is below KAPPA_FAILED:
                 "slight" agreement or less in Landis & Koch's (1977) bands, the conventional line,
                 not one tuned to a task. It needs no threshold per number of classes and catches a
                 near-collapse that a one-class share misses (trec-6, 6 classes: 28.6% accuracy with
                 92.6% of predictions in one class has kappa 0.08). On the committed runs it adds 4
                 runs to the 22 that predict one class (kappa 0.08-0.19, 84-93% in one class; the next
                 run up has kappa 0.23), and no working run comes near it (all others >= 0.33).
degenerate       the older rule, kept as the `single_class` column: the evaluated model predicts one
                 class for (nearly) every test example, the share of its most predicted class is
                 >= DEGENERATE_SHARE.
still_improving  the dev accuracy of the evaluated model was still rising when training stopped:
                 the best dev accuracy measured in the last LATE_FRACTION of the last phase's steps
                 beats the best one before it in that phase by more than MIN_GAIN. A longer budget
                 would likely help.
"""

from __future__ import annotations

import math

DEGENERATE_SHARE = 0.98
KAPPA_FAILED = 0.2  # Landis & Koch (1977): kappa <= 0.2 is "slight" agreement or less
LATE_FRACTION = 0.2
MIN_GAIN = 0.005  # half a point of dev accuracy


def max_class_share(pred_counts: list[int]) -> float:
    """Share of test examples given the most predicted class; nan without counts."""
    total = sum(pred_counts or [])
    return max(pred_counts) / total if total else math.nan


def kappa_from_counts(accuracy: float, pred_counts: list[int], true_counts: list[int]) -> float:
    """Cohen's kappa of a run's test predictions against the labels, from its accuracy and the two
    marginals (harness.analysis.inference.kappa_from_counts); NaN when undefined."""
    from harness.analysis.inference import kappa_from_counts as kappa

    if accuracy is None or len(pred_counts) > len(true_counts) and any(pred_counts[len(true_counts):]):
        return math.nan
    pred = list(pred_counts) + [0] * (len(true_counts) - len(pred_counts))
    if sum(pred) != sum(true_counts) or not 0 <= accuracy <= 1:  # counts from another split
        return math.nan
    return kappa(accuracy, pred, true_counts)


def collapsed(kappa: float) -> bool:
    """A failed run: its predictions agree with the labels no better than "slightly" (kappa below
    KAPPA_FAILED)."""
    return kappa < KAPPA_FAILED


def is_degenerate(pred_counts: list[int]) -> bool | None:
    """True when one class takes >= DEGENERATE_SHARE of the predictions; None without counts."""
    share = max_class_share(pred_counts)
    return None if math.isnan(share) else share >= DEGENERATE_SHARE


def single_class_from_metrics(accuracy: float, macro_f1: float, num_classes: int, tol: float = 1e-9) -> bool | None:
    """For records stored before predicted-class counts were kept: a model that predicts class c for
    every example has accuracy p = share of c and macro-F1 = (2p / (1 + p)) / K over the K classes
    present in test, an identity no other prediction pattern meets except by coincidence. True when
    the pair meets it; None when the metrics are missing. (Catches exact single-class runs only.)"""
    if accuracy is None or macro_f1 is None or not num_classes:
        return None
    if any(isinstance(x, float) and math.isnan(x) for x in (accuracy, macro_f1)):
        return None
    return abs(macro_f1 - 2 * accuracy / (1 + accuracy) / num_classes) < tol


def still_improving(curve: list[dict], total_steps: int) -> bool | None:
    """curve: [{"step": int, "phase": str, "dev_accuracy": float}, ...] of the evaluated model. The
    window is the run's last phase (the whole run for a one-phase arm): True when the best dev
    accuracy in the last LATE_FRACTION of that phase's steps exceeds the best earlier in the phase
    by > MIN_GAIN; None when the phase has no point on one side of that line (nothing to compare).

    Only the last phase counts because a phase change resets what is trained: a Theseus arm's
    successor is evaluated alone throughout, and when its own phase starts its accuracy jumps. Over
    the whole run that jump would mark a run whose successor phase has long levelled off as still
    improving."""
    points = [p for p in curve or [] if p.get("dev_accuracy") is not None]
    if not points:
        return None
    last_phase, start = points[-1].get("phase"), 0
    for p in points:
        if p.get("phase") != last_phase:
            start = p["step"]  # the last point of an earlier phase: where the last phase starts
    points = [p for p in points if p["step"] > start]
    cut = start + (1 - LATE_FRACTION) * (total_steps - start)
    early = [p["dev_accuracy"] for p in points if p["step"] <= cut]
    late = [p["dev_accuracy"] for p in points if p["step"] > cut]
    if not early or not late:
        return None
    return max(late) > max(early) + MIN_GAIN
