"""The run store: one JSON record per run, written atomically, and the tidy tables built from it.

Layout of a store directory:
  runs/<run_id>.json        one record per run (the single source of truth)
  splits/<data_hash>.json   the example indices of each split and the test labels, written once per data hash
                            (again when an older one lacks the labels: write_split)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.tuning import effective_lr
from harness.arms import name as arm_name
from harness.errors import HarnessError
from harness.training.diagnostics import (collapsed, is_degenerate, kappa_from_counts, max_class_share,
                                          single_class_from_metrics, still_improving)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(obj):
    """JSON has no NaN: store non-finite floats as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}.json"


def _read_split(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def split_complete(path: Path) -> bool:
    """A store's splits file that holds the per-example test labels (written since results schema 3);
    False for an older one, which lacks them, or an unreadable one."""
    data = _read_split(path)
    return data is not None and data.get("test_labels") is not None


def write_split(out_dir: Path, splits) -> None:
    """The store's splits/<data_hash>.json for `splits` (a data.splits.Splits): written when absent, and
    rewritten when an older one lacks the per-example test labels, which per-example inference needs
    (stores begun before results schema 3). The data hash covers the split's content, so an existing file
    of that hash holds the same example indices; one that does not is refused, never overwritten."""
    path = Path(out_dir) / "splits" / f"{splits.data_hash}.json"
    old = _read_split(path) if path.exists() else None  # unreadable: written again from the split itself
    if old is not None and old.get("test_labels") is not None:
        return
    doc = {"data_hash": splits.data_hash, "label_names": splits.label_names,
           **{name: getattr(splits, name).indices for name in ("train", "dev", "test")},
           "test_label_counts": label_counts(splits.test.labels, splits.num_classes),
           "test_labels": list(splits.test.labels)}
    if old is not None and any(old.get(k) is not None and [int(i) for i in old[k]] != [int(i) for i in doc[k]]
                               for k in ("train", "dev", "test")):
        raise HarnessError(f"{path} holds other example indices than this run's split of the same data hash; "
                           "the store's splits file was edited or belongs to another store: move it away")
    atomic_write_text(path, json.dumps(doc))


def write_record(record: dict, out_dir: Path, splits=None) -> Path:
    out_dir = Path(out_dir)
    if splits is not None:
        write_split(out_dir, splits)
    path = record_path(out_dir, record["run_id"])
    atomic_write_text(path, json.dumps(_clean(record), indent=1, ensure_ascii=False))
    return path


def cpu_kind(record: dict) -> tuple[str, str | None] | None:
    """The CPU kind a record was made on: (CPU name, matmul instruction set) from its provenance
    (`cpu`, `matmul_isa`: results schema 3), or (`device_name`, None) for an older record; None when
    its provenance says neither. bf16 products can differ in their last digits between kinds
    (docs/method.md, "Runs and seeds"), so one study keeps to one."""
    prov = record.get("provenance") or {}
    name = prov.get("cpu") or prov.get("device_name")
    return None if not name else (str(name), prov.get("matmul_isa"))


def same_cpu_kind(kind: tuple[str, str | None] | None, here: tuple[str, str | None]) -> bool:
    """A record's CPU kind is this machine's: the same name and, where the record states it, the same
    matmul instruction set."""
    return kind is not None and kind[0] == here[0] and (kind[1] is None or kind[1] == here[1])


@dataclass
class Imported:
    """What import_records did: records copied, and records of the wanted keys left in the source,
    counted by the reason (e.g. "made on Intel Xeon (amx)")."""
    copied: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)  # the keys copied (or, with dry_run, that would be)


def import_records(source: Path, out_dir: Path, run_ids, here: tuple[str, str | None] | None = None,
                   dry_run: bool = False) -> Imported:
    """Copy the successful records of `run_ids` that `source` (another store) holds and this one
    lacks, with their splits files; a run key is the hash of everything that determines the run, so
    a record under the same key is the same run. here: this machine's CPU kind (name, matmul
    instruction set): only records made on that kind are copied (cpu_kind, same_cpu_kind), the others
    counted in `skipped` by their kind; None copies records of any kind. dry_run: count, copy nothing."""
    source, out_dir, done = Path(source), Path(out_dir), Imported()
    for run_id in run_ids:
        src, dst = record_path(source, run_id), record_path(out_dir, run_id)
        if dst.exists() or not src.exists():
            continue
        try:
            record = json.loads(src.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            continue
        if record.get("status") != "ok" or record.get("run_id") != run_id:
            continue
        kind = cpu_kind(record)
        if here is not None and not same_cpu_kind(kind, here):
            why = ("made on an unknown CPU kind" if kind is None else
                   f"made on {kind[0]}" + (f" ({kind[1]})" if kind[1] else ""))
            done.skipped[why] = done.skipped.get(why, 0) + 1
            continue
        done.copied += 1
        done.run_ids.append(run_id)
        if dry_run:
            continue
        data_hash = (record.get("task") or {}).get("data_hash")
        split_src = source / "splits" / f"{data_hash}.json"
        split_dst = out_dir / "splits" / f"{data_hash}.json"
        if data_hash and split_src.exists() and (not split_dst.exists() or (split_complete(split_src)
                                                                           and not split_complete(split_dst))):
            atomic_write_text(split_dst, split_src.read_text(encoding="utf-8"))
        atomic_write_text(dst, src.read_text(encoding="utf-8"))
    return done


def label_counts(labels, num_classes: int) -> list[int]:
    """Examples per class (index = class id), shape (num_classes,)."""
    counts = [0] * max(num_classes, max(labels, default=-1) + 1)
    for y in labels:
        counts[y] += 1
    return counts


def read_label_counts(out_dir: Path) -> dict[str, list[int]]:
    """data_hash -> the test split's examples per class, from the store's splits files (those that
    hold them): what a run's chance-corrected agreement (diagnostics.collapsed) needs."""
    out = {}
    for path in sorted((Path(out_dir) / "splits").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        if isinstance(data, dict) and data.get("test_label_counts"):
            out[data.get("data_hash", path.stem)] = data["test_label_counts"]
    return out


def read_records(out_dir: Path, skipped: list[str] | None = None) -> list[dict]:
    """Every complete record of a store. A file that is not one (atomic writes never leave one; a
    disk fault, a copy cut short or a hand edit can) is left out and, when `skipped` is given,
    appended to it as "<file name> (<why>)" so that callers can say so: nothing is lost silently."""
    records = []
    for path in sorted((Path(out_dir) / "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            problem = _record_problem(record)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = f"not valid JSON: {str(exc).splitlines()[0]}"
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror or exc}"
        if problem is None:
            records.append(record)
        elif skipped is not None:
            skipped.append(f"{path.name} ({problem})")
    return records


def _record_problem(record) -> str | None:
    """Why a parsed JSON value is not a usable run record, or None if it is one."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record"
    missing = [k for k in ("run_id", "status", "strategy", "seed", "config") if k not in record]
    if missing:
        return f"no {', '.join(missing)}"
    if record["status"] == "ok":
        final, task, model = record.get("final"), record.get("task"), record.get("model")
        if not isinstance(final, dict) or "test_accuracy" not in final:
            return "status ok but no final metrics"
        if not isinstance(task, dict) or "name" not in task or not isinstance(model, dict) or "name" not in model:
            return "status ok but no task or model identity"
    return None


def dev_curve(record: dict) -> list[dict]:
    """The evaluated model's dev accuracy by global step: the stored curve, or for records made
    before curves were stored, the per-epoch evaluations at their cumulative step counts."""
    if record.get("curve"):
        return record["curve"]
    curve, step = [], 0
    for e in record.get("epochs") or []:
        step += e.get("steps") or 0
        if e.get("dev_accuracy") is not None:
            curve.append({"step": step, "phase": e.get("phase"), "epoch": e.get("epoch"),
                          "dev_accuracy": e["dev_accuracy"], "dev_macro_f1": e.get("dev_macro_f1")})
    return curve


def run_diagnostics(record: dict, label_counts: dict[str, list[int]] | None = None) -> dict:
    """budget, steps, max_class_share, single_class, kappa, degenerate and still_improving of one
    record (see harness.training.diagnostics). degenerate (a failed run) is the collapse rule, Cohen's kappa
    of the test predictions against the labels below diagnostics.KAPPA_FAILED, where the record's
    predicted-class counts and its test split's label counts (`label_counts`: data_hash -> counts)
    are known; else the single-class rule (>= 98% of predictions in one class, or for records
    without counts exact single-class predictions, from accuracy and macro-F1). single_class keeps
    that older flag as its own column."""
    final = record.get("final") or {}
    if not final:
        return {"budget": record.get("budget"), "steps": None, "max_class_share": None, "single_class": None,
                "kappa": None, "degenerate": None, "still_improving": None}
    curve = dev_curve(record)
    steps = final.get("steps") or (curve[-1]["step"] if curve else None)
    counts = final.get("test_pred_counts")
    if counts:
        share, single = max_class_share(counts), is_degenerate(counts)
    else:
        share = None
        single = single_class_from_metrics(final.get("test_accuracy"), final.get("test_macro_f1"),
                                           (record.get("task") or {}).get("num_classes"))
    truth = (label_counts or {}).get((record.get("task") or {}).get("data_hash"))
    kappa = kappa_from_counts(final.get("test_accuracy"), counts, truth) if counts and truth else None
    return {"budget": record.get("budget", (record.get("config") or {}).get("budget")), "steps": steps,
            "max_class_share": share, "single_class": single, "kappa": kappa,
            "degenerate": collapsed(kappa) if kappa is not None and math.isfinite(kappa) else single,
            "still_improving": still_improving(curve, steps) if steps else None}


def runs_table(records: list[dict], label_counts: dict[str, list[int]] | None = None) -> pd.DataFrame:
    """One row per run: the tidy table every statistic consumes. label_counts: data_hash -> the
    test split's examples per class (read_label_counts), for the collapse rule."""
    rows = []
    for r in records:
        cfg, final = r.get("config", {}), r.get("final") or {}
        rows.append({
            "run_id": r["run_id"], "sweep": r.get("sweep", ""), "task": cfg.get("task"), "model": cfg.get("model"),
            "predecessor_layers": r.get("predecessor_layers"), "successor_layers": r.get("successor_layers"),
            "strategy": r.get("strategy"), "variant": r.get("variant") or "",
            "arm": arm_name(r.get("strategy"), r.get("variant") or ""),
            "seed": r.get("seed"), "student_seed": r.get("student_seed"),
            "status": r.get("status"), "error": r.get("error") or "",
            "test_accuracy": final.get("test_accuracy"), "test_macro_f1": final.get("test_macro_f1"),
            "dev_accuracy": final.get("dev_accuracy"), "dev_macro_f1": final.get("dev_macro_f1"),
            "best_epoch": r.get("best_epoch"), "epochs": len(r.get("epochs") or []),
            "wall_seconds": r.get("wall_seconds"), "precision": cfg.get("precision"),
            "lr": effective_lr(cfg) if cfg.get("lr") is not None else None,
            **run_diagnostics(r, label_counts),
        })
    df = pd.DataFrame(rows)
    if not df.empty:
        df["budget"] = df["budget"].astype("Int64")  # empty where the run had no budget (epochs)
        df = df.sort_values(["task", "model", "successor_layers", "budget", "arm", "seed", "student_seed"],
                            kind="stable").reset_index(drop=True)
    return df


def curves_table(records: list[dict]) -> pd.DataFrame:
    """One row per (run, dev evaluation): the evaluated model's dev accuracy by step and by the
    fraction of the run's steps, so runs of different budgets line up."""
    rows = []
    for r in records:
        curve = dev_curve(r)
        total = (r.get("final") or {}).get("steps") or (curve[-1]["step"] if curve else 0)
        for p in curve:
            rows.append({"run_id": r["run_id"], "arm": arm_name(r.get("strategy"), r.get("variant") or ""),
                         "seed": r.get("seed"), "budget": r.get("budget"), "step": p["step"],
                         "fraction": p["step"] / total if total else None, "phase": p.get("phase"),
                         "dev_accuracy": p.get("dev_accuracy")})
    return pd.DataFrame(rows)


def epochs_table(records: list[dict]) -> pd.DataFrame:
    """One row per (run, epoch): per-epoch loss, successor-only dev metrics, realised replacement rate."""
    rows = []
    for r in records:
        cfg = r.get("config", {})
        for e in r.get("epochs") or []:
            rows.append({
                "run_id": r["run_id"], "task": cfg.get("task"), "model": cfg.get("model"),
                "successor_layers": r.get("successor_layers"), "strategy": r.get("strategy"),
                "variant": r.get("variant") or "", "arm": arm_name(r.get("strategy"), r.get("variant") or ""),
                "seed": r.get("seed"), "phase": e.get("phase"), "epoch": e.get("epoch"),
                "train_loss": e.get("train_loss"), "dev_accuracy": e.get("dev_accuracy"),
                "dev_macro_f1": e.get("dev_macro_f1"), "replacement_rate": e.get("replacement_rate", float("nan")),
                "seconds": e.get("seconds"),
            })
    return pd.DataFrame(rows)


def replacements_table(records: list[dict]) -> pd.DataFrame:
    """Long table of binary-choice replacements: (run, epoch, module) -> steps the successor module ran.

    module 0 is the embeddings when they are replaceable; layers are 1..L_s.
    """
    rows = []
    for r in records:
        modules = r.get("modules") or []
        for e in r.get("epochs") or []:
            counts = e.get("replaced_per_module")
            if counts is None:
                continue
            for name, replaced in zip(modules, counts):
                module = 0 if name == "embeddings" else int(name.split()[-1])
                rows.append({"run_id": r["run_id"], "arm": arm_name(r.get("strategy"), r.get("variant") or ""),
                             "seed": r.get("seed"), "successor_layers": r.get("successor_layers"),
                             "epoch": e.get("epoch"), "module": module, "replaced": replaced,
                             "steps": e.get("steps")})
    return pd.DataFrame(rows)
