"""The figures section: per group the pictures of the decisions first (per-seed paired differences
of the primaries with the verdict's interval; a sequential study's looks against their boundaries),
then accuracy per arm, accuracy against parameters and the dev curves; the rest is linked from the
appendix."""

from __future__ import annotations

from pathlib import Path

from harness.analysis.groups import Analysis, Group
from harness.report.format import rel

DECISION_FIGURES = {"paired": "primary comparisons: per-seed paired differences A − B with the verdict's interval",
                    "looks": "sequential looks: estimate and repeated interval at each look, against the boundary"}
SUMMARY_FIGURES = {"accuracy": "test accuracy per arm, every run a dot (crosses: failed runs)",
                   "accuracy_vs_parameters": "mean test accuracy against parameter count (embeddings + layers + head)",
                   "dev_curves": "dev accuracy at every stored evaluation, per arm (thin: one seed; thick: mean)",
                   "profile": "performance profile: share of runs at or above each accuracy",
                   "claims": "claims: every comparison's estimate and interval (fixed design, not adjusted)",
                   "stability": "failures per arm and spread of the working runs"}
MORE_FIGURES = {"forest": "mean and 95% t interval per arm",
                "significance": "pairwise raw p (exploratory) and ASO eps_min",
                "replacements": "replacements per module per epoch (red: failed runs)",
                "expected_max": "expected test accuracy of the best-by-dev run among n seeds"}


def figure(infos: dict, group: Group, name: str, report_path: Path, caption: str) -> str:
    info = infos.get((group.label, name))
    if info is None or info.skipped:
        return f"_{caption}: not drawn ({info.skipped if info else 'not requested'})._\n"
    return f"![{caption}]({rel(info.paths[0], report_path)})\n"


def figures_section(a: Analysis, infos: dict, report_path: Path, sequential: bool = False,
                    which: str = "all") -> str:
    """Per group its figures: `which` "all", "decisions" (the pictures of the decisions only: a
    sequential report shows them in their own section beside its verdicts) or "summary" (the rest)."""
    out = []
    many = len(a.groups) > 2
    for g in a.groups:
        if len(a.groups) > 1:
            out.append(f"### {g.label}\n")
        names = dict(DECISION_FIGURES) if which != "summary" else {}
        if not sequential:
            names.pop("looks", None)
        if which != "decisions":
            names.update(SUMMARY_FIGURES if not many else {"accuracy": SUMMARY_FIGURES["accuracy"]})
        if sequential:  # its claims figure shows fixed-n intervals: the appendix links it, labelled
            names.pop("claims", None)
        out += [figure(infos, g, name, report_path, cap) for name, cap in names.items()
                if (g.label, name) in infos or name in DECISION_FIGURES]
    return "\n".join(out)
