"""The markdown report (docs/method.md, "Reports"): assembles the sections of harness.report.sections
into one page. It computes nothing of its own; every number comes from harness.analysis.

Order: the first screen says what was found, in words: the bottom line (2-4 generated sentences and
what the intervals are about), the primary verdicts with each claim in words (a sequential study: its
sequential verdicts, then the variance decomposition and the per-seed paired differences before the
per-arm table), where the runs come from several CPU kinds a warning naming each primary whose
paired seeds mix them with the hardware x arm table, the per-arm table and, where the analysis gives one, the variance decomposition
of each primary and, for a study whose rates its tuning stages chose, each arm's rate and why. Then the figures (the pictures of the decisions first), the tuning and budget
sections, the summary per group, the seed's reference numbers, and the appendix: how to read the
tables, the method (each claim's test and primary), a sequential study's design and its fixed-design
reading (labelled), every comparison, everything per arm and pairwise. Failed runs and provenance close
it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from harness.analysis.budget import has_budget_axis
from harness.analysis.groups import Analysis
from harness.analysis.stats import ALPHA, LEVEL_SDS
from harness.report.format import md_table, render_meta  # noqa: F401  (md_table: harness.analysis.compare)
from harness.report.sections.appendix import APPENDIX_SUBSECTIONS, appendix, claims_method_section, reference_section
from harness.report.sections.appendix import claims_display  # noqa: F401
from harness.report.sections.bottom_line import bottom_line_section
from harness.report.sections.budget import budget_section, budget_table  # noqa: F401
from harness.report.sections.figures import figures_section
from harness.report.sections.hardware import hardware_section
from harness.report.sections.primary import (decomposition_section, fixed_design_section, per_arm_section,
                                             primary_section, primary_verdicts, unit_sentence)  # noqa: F401
from harness.report.sections.sequential import design_prose, sequential_section
from harness.report.sections.summary import dirty_commits, dirty_details, summary
from harness.report.sections.tuning import tuning_section

SECTIONS = ("Bottom line", "Primary verdicts", "Per arm", "Figures", "Summary", "Reference numbers from the seed",
            "Appendix", "Failed runs", "Provenance")
SEQUENTIAL_SECTIONS = ("Bottom line", "Sequential verdicts", "Per-seed paired differences", "Per arm", "Figures",
                       "Appendix")
METHOD = "Method: each claim, its test and its primary"
FIXED_DESIGN = "Fixed-design reading of a sequential study (not its verdicts)"
TABLES = ("claims", "variance", "pairwise", "sensitivity", "expected_max", "profile", "power",
          "variance_components", "runs")
__all__ = ["APPENDIX_SUBSECTIONS", "SECTIONS", "TABLES", "md_table", "render_meta", "render_report"]


def render_report(a: Analysis, infos: list, meta: dict, report_path: Path, tuning: dict | None = None,
                  sequential_view: dict | None = None, rates: str | None = None) -> str:
    """The whole markdown report as a string (figures linked relative to report_path); rates: the
    learning-rates section of a study whose rates were chosen by its tuning stages (sections/rates.py)."""
    meta = meta or {}
    by = {(i.group, i.name): i for i in infos}
    seq = sequential_view
    title = meta.get("title") or f"BERT-of-Theseus reproducibility report: {meta.get('sweep', 'runs')}"
    produced = meta.get("produced_at") or datetime.now(timezone.utc).isoformat(timespec="seconds")
    dirty = dirty_commits(meta)
    lead = (["## Sequential verdicts\n", sequential_section(seq, len(a.groups))] if seq else
            ["## Primary verdicts\n", primary_section(a)])
    decomposition = decomposition_section(a, seq["decisions"] if seq else None)
    hardware = hardware_section(a, seq)  # several CPU kinds: the warning beside the verdicts
    parts = [f"# {title}\n", f"_Generated: {produced}_\n",
             "## Bottom line\n", bottom_line_section(a, seq, unit_sentence(a, meta)),
             *lead,
             *(["## Hardware\n", hardware] if hardware else []),
             *(["## Per arm\n", per_arm_section(a)] if not seq else []),
             *(["## Variance decomposition\n", decomposition] if decomposition else []),
             *(["## Per-seed paired differences\n",
                figures_section(a, by, report_path, sequential=True, which="decisions"),
                "## Per arm\n", per_arm_section(a)] if seq else []),
             *(["## Learning rates\n", rates] if rates else []),
             "## Figures\n", figures_section(a, by, report_path, sequential=seq is not None,
                                              which="summary" if seq else "all"),
             *(["## Tuning\n", tuning_section(a, tuning, infos, report_path)] if tuning else []),
             *(["## Training budget\n", budget_section(a, infos, report_path, sequential=seq is not None)] if has_budget_axis(a.runs) else []),
             "## Summary\n", summary(a, meta),
             "## Reference numbers from the seed\n", reference_section(a),
             "## Appendix\n",
             f"### {METHOD}\n", claims_method_section(a, by, report_path, level="####"),
             *([f"### Sequential design\n", design_prose(seq), f"### {FIXED_DESIGN}\n",
                fixed_design_section(a, sequential=True)] if seq else []),
             *([] if seq else ["### Primary verdicts as a claim x group table\n", fixed_design_section(a)]),
             appendix(a, by, report_path),
             "## Failed runs\n", md_table(a.failed) if len(a.failed) else "_No failed runs._\n",
             *([f"Records skipped (unreadable, left out of every figure): {'; '.join(meta['skipped_records'])}\n"]
               if meta.get("skipped_records") else []),
             "## Provenance\n",
             *([f"**Dirty working tree:** the runs carry git commit(s) {', '.join(f'`{c}`' for c in dirty)}: "
                "they were made from uncommitted changes, so that commit alone does not reproduce them. "
                + dirty_details(meta) + "\n"]
               if dirty else []),
             f"Statistics: permutation tests with {a.n_boot} resamples (exact when there are fewer splits), "
             f"ASO with 1000 bootstrap resamples, seed {a.seed}; alpha {ALPHA}, Holm within each claim's family; "
             f"equivalence margin ±{a.margin:g} point(s); fine-tuning level = baseline mean − {LEVEL_SDS:g} sd.\n",
             "\n".join(render_meta(meta)) + "\n"]
    return "\n".join(parts)
