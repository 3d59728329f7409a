"""How the report writes numbers, tables, arms and claims in words (docs/method.md, "Reports").

Formatting only: every number shown here was computed by harness.analysis; this module decides how
it reads (decimals, signs, intervals, an arm's name in words, a claim as a sentence)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.arms import family, finetune_layers

INT_COLUMN = re.compile(r"^(n|N|n_.*|seed|.*_seed|.*seeds.*|.*layers|.*epoch|module|compression_ratio|left_out)$")


def _cell(col: str, v) -> str:
    """Display form of one value: p-values to 3 decimals ("<0.001"), counts as integers, other
    numbers to 2 decimals, NaN as an em dash."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, float, np.integer, np.floating)):
        if col.endswith("_p") or col.endswith("_holm") or col.endswith("p_adj") or col == "p":
            return "<0.001" if v < 0.001 else f"{v:.3f}"
        if INT_COLUMN.match(col) and float(v).is_integer():
            return str(int(v))
        return f"{v:.2f}" if np.isfinite(v) else ("∞" if v > 0 else "-∞")
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame, columns: dict[str, str] | None = None) -> str:
    """Markdown table of df; `columns` maps column -> header (and selects/orders them)."""
    if df is None or df.empty:
        return "_(none)_\n"
    columns = columns or {c: c for c in df.columns}
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(columns[c] for c in cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_cell(c, r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines) + "\n"


def ci_column(df: pd.DataFrame, lo: str, hi: str, name: str) -> pd.DataFrame:
    """df with a text column `name`: "lo – hi" of two numeric columns (— where either is NaN)."""
    df = df.copy()
    df[name] = [f"{_cell('x', a)} – {_cell('x', b)}" if not np.isnan([a, b]).any() else "—"
                for a, b in zip(df[lo].astype(float), df[hi].astype(float))]
    return df


def fmt_p(p: float) -> str:
    return "—" if p is None or not np.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def num(x: float, d: int = 2, sign: bool = False) -> str:
    """x to d decimals with a true minus sign (and a + when sign); — for NaN, ∞ for infinities."""
    if x is None or not np.isfinite(x):
        return "—" if x is None or np.isnan(x) else ("∞" if x > 0 else "−∞")
    return (f"{x:+.{d}f}" if sign else f"{x:.{d}f}").replace("-", "−")


def rel(path: Path, report_path: Path) -> str:
    """path relative to the report's folder, as a markdown link wants it."""
    return Path(os.path.relpath(path, report_path.parent)).as_posix()


def finite(*xs) -> bool:
    try:
        return bool(np.isfinite(np.asarray(xs, float)).all())
    except (TypeError, ValueError):
        return False


def difference(r) -> str:
    """'+1.03 (−0.07 to 2.13)' for one claims row, the unit and a non-95% level spelled out."""
    if not finite(r.estimate):
        return "—"
    ratio = r.unit == "sd ratio"
    d = 0 if r.unit == "percentage points" else 2
    unit = {"points": "", "percentage points": " pp", "sd ratio": "×"}.get(r.unit, f" {r.unit}")
    ci = (f" ({num(r.ci_low, d, sign=not ratio and r.ci_low < 0)} to {num(r.ci_high, d)}"
          + ("" if r.ci_level == 0.95 else f", {r.ci_level:.0%} CI") + ")")
    if not np.isfinite([r.ci_low, r.ci_high]).any():
        ci = " (interval not bounded at this n)"
    elif not np.isfinite([r.ci_low, r.ci_high]).all():
        ci = ci.replace("—", "not bounded")
    return f"{num(r.estimate, d, sign=not ratio)}{unit}{ci}"


def render_meta(meta, indent: int = 0) -> list[str]:
    """Nested dict / list provenance as a readable nested bullet list."""
    pad, out = "  " * indent, []
    items = meta.items() if isinstance(meta, dict) else enumerate(meta)
    for k, v in items:
        key = f"**{k}**: " if isinstance(meta, dict) else ""
        if isinstance(v, dict) and v and not isinstance(meta, dict) and not any(
                isinstance(x, (list, tuple)) or isinstance(x, dict) and any(isinstance(y, (dict, list, tuple))
                                                                            for y in x.values())
                for x in v.values()):  # a list item of scalars and flat tables (an arm): one line
            out.append(f"{pad}- " + "; ".join(
                f"**{a}**: `{', '.join(f'{c}={d}' for c, d in b.items()) if isinstance(b, dict) else b}`"
                for a, b in v.items()))
        elif isinstance(v, dict) and v:
            out += [f"{pad}- {key}".rstrip()] + render_meta(v, indent + 1)
        elif isinstance(v, (list, tuple)) and v and any(isinstance(x, (dict, list)) for x in v):
            out += [f"{pad}- {key}".rstrip()] + render_meta(list(v), indent + 1)
        elif isinstance(v, (list, tuple)):
            out.append(f"{pad}- {key}{', '.join(f'`{x}`' for x in v) or '_(empty)_'}")
        elif isinstance(v, str) and "\n" in v:
            out += [f"{pad}- {key}", f"{pad}  ```", *[f"{pad}  {x}" for x in v.splitlines()], f"{pad}  ```"]
        else:
            out.append(f"{pad}- {key}`{v}`")
    return out


# ---------------------------------------------------------------- arms and claims in words

STRATEGY_WORDS = {"theseus-add": "proportional add", "theseus-binary": "binary random choice"}
TWO_STAGE_HEADS = {"predecessor": "the predecessor's head", "random": "a fresh head"}


def arm_words(arm: str, baseline_layers: float = np.nan) -> str:
    """An arm as a reader says it: "Theseus (proportional add, seed variant)", "direct fine-tuning
    of 3 layers", "two-stage extraction (the predecessor's head, head lr 1x)". finetune-L_s (a
    claim's declared baseline) reads with baseline_layers when it is known."""
    arm = str(arm)
    fam, variant = family(arm), arm.partition("/")[2]
    if arm == "finetune-L_s":
        return (f"direct fine-tuning of {baseline_layers:g} layers" if finite(baseline_layers)
                else "direct fine-tuning of the first L_s layers")
    if fam == "finetune":
        return f"direct fine-tuning of {finetune_layers(arm):g} layers"
    if fam in STRATEGY_WORDS:
        return f"Theseus ({STRATEGY_WORDS[fam]}{f', {variant} variant' if variant else ''})"
    if fam == "two-stage":
        head, _, mult = variant.partition("-")
        detail = ", ".join(x for x in (TWO_STAGE_HEADS.get(head, head), f"head lr {mult}" if mult else "") if x)
        return f"two-stage extraction ({detail})" if detail else "two-stage extraction"
    if fam == "kd":
        return f"knowledge distillation{f' ({variant})' if variant else ''}"
    return arm


# how each declared claim reads with its two arms in words; an unknown claim reads as its title
CLAIM_SENTENCES = {
    "1": "{a} beats {b}",
    "2a": "{a} fails (predictions collapse) less often than {b}",
    "2b": "{a}'s working runs spread less than {b}'s",
    "3a": "{a} is worse than {b}",
    "3b": "{a} is no better than {b} (by more than the margin)",
    "4a": "{a} falls below the fine-tuning level more often than {b}",
}


def claim_words(claim: str, a: str, b: str, title: str = "", baseline_layers: float = np.nan,
                capital: bool = True) -> str:
    """One claim comparison as a sentence, e.g. "Theseus (proportional add, seed variant) beats direct
    fine-tuning of 3 layers" (capital=False: as it reads inside a sentence)."""
    template = CLAIM_SENTENCES.get(str(claim))
    if template is None or not a or not b:
        return title or f"{a} vs {b}"
    words = template.format(a=arm_words(a, baseline_layers), b=arm_words(b, baseline_layers))
    return words[0].upper() + words[1:] if capital else words


def direction_words(unit: str) -> str:
    """What the sign of A − B means in a unit."""
    return {"points": "A − B in points of test accuracy; positive: A scores higher",
            "percentage points": "A − B in percentage points of runs; positive: A's share is higher",
            "sd ratio": "sd of A / sd of B; below 1: A spreads less"}.get(unit, f"A − B in {unit}")
