"""Execute one run: config -> data -> (predecessor) -> strategy plan -> shared loop -> run record."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from harness.data.splits import Splits, check_test_size, encode, make_splits
from harness.encoders.models import Classifier, Pretrained, build_classifier, load_pretrained
from harness.errors import HarnessError
from harness.run import identity
from harness.run import predecessor as pred_cache
from harness.run.identity import CODE_VERSION, RESULTS_SCHEMA, key_of
from harness.strategies import Context, arm_label, get_strategy
from harness.training.config import RunConfig
from harness.training.diagnostics import is_degenerate, max_class_share, still_improving
from harness.training.loop import LoopSettings, fit, pick_device, seed_everything

ENGLISH_ONLY_MODELS = {"minilm-l6", "mpnet-base-12"}


def say(message: str) -> None:
    print(message, flush=True)


def _task(spec: str, text_column: str, label_column: str):
    """A task's data, loaded once per process for each content of its files (a user file edited in
    place between two runs of one process is loaded again: data.content)."""
    from harness.data.content import data_content

    return _task_of(spec, text_column, label_column, data_content(spec))


@functools.lru_cache(maxsize=4)
def _task_of(spec: str, text_column: str, label_column: str, content: str | None):
    from harness.data.tasks import load_task

    return load_task(spec, text_column=text_column, label_column=label_column)


def _splits(spec, text_column, label_column, train_size, dev_size, test_size, split_seed,
            allow_small_test=False) -> Splits:
    from harness.data.content import data_content

    return _splits_of(spec, text_column, label_column, train_size, dev_size, test_size, split_seed,
                      allow_small_test, data_content(spec))


@functools.lru_cache(maxsize=8)
def _splits_of(spec, text_column, label_column, train_size, dev_size, test_size, split_seed, allow_small_test,
               content) -> Splits:
    return make_splits(_task(spec, text_column, label_column), train_size, dev_size, test_size, split_seed,
                       allow_small_test)


def complete_splits(configs, out_dir: Path, say=print) -> int:
    """Write again, with their per-example test labels, the splits files of a store whose finished runs
    predate them (a store begun before results schema 3 whose runs were re-run since: a splits file is
    written once per data hash, so the older one stayed, and the new runs' per-example predictions could
    not be scored). Only a split whose content hash is the runs' is written. -> files written."""
    from harness.run.identity import key_of
    from harness.store.records import record_path, split_complete, write_split

    out_dir, seen, written = Path(out_dir), set(), 0
    if all(split_complete(path) for path in (out_dir / "splits").glob("*.json")):
        return 0  # the usual case: no record need be read
    for config in configs:
        try:
            record = json.loads(record_path(out_dir, key_of(config)).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        data_hash = (record.get("task") or {}).get("data_hash") if isinstance(record, dict) else None
        if not data_hash or data_hash in seen or not (record.get("final") or {}).get("test_predictions"):
            continue
        seen.add(data_hash)
        if split_complete(out_dir / "splits" / f"{data_hash}.json"):
            continue
        splits = _splits(config.task, config.text_column, config.label_column, config.train_size,
                         config.dev_size, config.test_size, config.effective_split_seed, config.allow_small_test)
        if splits.data_hash == data_hash:  # else the data changed since (stale_data_warnings says so)
            write_split(out_dir, splits)
            written += 1
    if written:
        say(f"splits: {written} file(s) written again with the per-example test labels their runs' predictions "
            "need (they predated results schema 3)")
    return written


def prepare_data(config: RunConfig, pretrained: Pretrained):
    """Splits and their tokenisation, each computed once per process and reused by every run."""
    from harness.data.tasks import TASKS

    builtin = TASKS.get(config.task)
    _check_language(config, builtin.language if builtin else None)  # before any download
    task = _task(config.task, config.text_column, config.label_column)
    _check_language(config, task.language)
    splits = _splits(config.task, config.text_column, config.label_column, config.train_size,
                     config.dev_size, config.test_size, config.effective_split_seed, config.allow_small_test)
    encoded = {name: encode(pretrained.tokenizer, getattr(splits, name), config.max_length,
                            (pretrained.path, config.max_length, splits.data_hash, name))
               for name in ("train", "dev", "test")}
    _check_vocabulary(pretrained, encoded["train"], config)
    return task, splits, encoded


def _check_language(config: RunConfig, language: str | None) -> None:
    """Refuse a CJK task with a model known to be English-only. `language`: a built-in task's
    declared language, or what tasks.detect_language read from a user source's text (None: not
    determined; the tokenizer check below decides)."""
    from harness.data.tasks import LANGUAGE_NAMES

    if language in ("zh", "ja", "ko") and config.model in ENGLISH_ONLY_MODELS and not config.force:
        name = LANGUAGE_NAMES[language]
        raise HarnessError(f"task {config.task!r} is {name} but model {config.model!r} is English-only; "
                           f"pass a {name} encoder with --model (e.g. bert-base-chinese) or --force")


def _check_vocabulary(pretrained: Pretrained, train, config: RunConfig) -> None:
    """Refuse a tokenizer that maps most of the text to [UNK] (e.g. Chinese text, English vocab):
    the share of [UNK] among the text tokens ([CLS], [SEP] and the like not counted) of the first
    500 training examples."""
    tokenizer = pretrained.tokenizer
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or config.force or not train.ids:
        return
    sample = torch.cat(train.ids[:500])
    special = [i for i in getattr(tokenizer, "all_special_ids", []) if i != unk]
    if special:
        sample = sample[~torch.isin(sample, torch.tensor(special, dtype=sample.dtype))]
    share = float((sample == unk).float().mean()) if sample.numel() else 0.0
    if share > 0.3:
        raise HarnessError(f"model {config.model!r} maps {share:.0%} of {config.task!r}'s tokens to "
                           f"[UNK]: wrong language for this tokenizer (use --force to run anyway)")


def provenance(device: torch.device) -> dict:
    import numpy
    import transformers

    info = {
        "harness": CODE_VERSION, "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu": cpu_name(), "matmul_isa": matmul_isa(),
        "cpu_count": os.cpu_count(), "host": platform.node(), "git_commit": git_commit(),
        # a "-dirty" commit's uncommitted files (tracked): whether they could have changed the numbers
        **({"git_dirty_files": list(dirty)} if (dirty := git_dirty_files()) else {}),
        # $HARNESS_ENGINE: "current" (runs), "reference" (the same numbers without the bit-identical
        # speed-ups), "previous" (the engine before results schema 3: torch's own dropout; for bench only)
        "engine": LoopSettings().engine,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else platform.processor()), as provenance records it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_isa() -> str:
    """The widest matrix instruction set this CPU offers torch's bf16 and fp32 matmuls: amx (Intel AMX
    tiles), avx512_bf16, avx512, avx2, or what torch's CPU capability says. Runs that differ in it can
    differ in the last digits of every bf16 product (docs/method.md, "Runs and seeds")."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    except OSError:
        flags = []
    for flag, name in (("amx_bf16", "amx"), ("avx512_bf16", "avx512_bf16"), ("avx512f", "avx512"), ("avx2", "avx2")):
        if flag in flags:
            return name
    try:
        return str(torch.backends.cpu.get_cpu_capability()).lower()
    except Exception:  # older torch
        return platform.machine() or "unknown"


def encode_predictions(predictions) -> str:
    """A run's test predictions, compactly: base64 of one uint8 class index per test example, in the
    order of the test split's indices (`splits/<data_hash>.json`, key "test")."""
    import numpy as np

    values = np.asarray(predictions)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise HarnessError("test predictions outside 0..255 cannot be stored as one byte per example")
    return base64.b64encode(values.astype(np.uint8).tobytes()).decode("ascii")


@functools.lru_cache(maxsize=1)
def git_dirty_files(root: Path | None = None) -> list[str]:
    """The tracked files with uncommitted changes in the repository at `root` (default: the harness's own;
    none, or no git). Read once per process, as git_commit: a worker runs the code it imported when it
    started, whatever the tree holds later."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(line[3:].strip() for line in out.stdout.splitlines() if len(line) > 3) if out.returncode == 0 else []


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def loop_settings(config: RunConfig, device: torch.device, pretrained: Pretrained,
                  num_classes: int = 0) -> LoopSettings:
    """The shared loop's settings for a run's config on `device` (pad id: the tokenizer's, else 0)."""
    pad = getattr(pretrained.tokenizer, "pad_token_id", None)
    return LoopSettings(batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                        warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay,
                        group_by_length=config.group_by_length, precision=config.precision,
                        device=device, pad_id=0 if pad is None else pad, num_classes=num_classes)


def get_predecessor(config: RunConfig, predecessor_layers: int, num_classes: int, device: torch.device,
                    out_dir: Path | None, log=say) -> tuple[Classifier, dict]:
    """The fine-tuned predecessor for config.seed: from the cache, else trained now (and cached)."""
    pconfig = identity.predecessor_config(config, predecessor_layers)
    key = key_of(pconfig)
    pretrained = load_pretrained(config.model)
    model = build_classifier(pretrained, predecessor_layers, num_classes, config.head)
    try:
        meta = pred_cache.load(key, model)
    except ValueError as exc:
        log(f"warning: {exc}; retraining it")
        meta = None
    if meta is not None:
        return model.to(device), {"key": key, "trained_now": False, **meta.get("metrics", {})}
    log(f"training the predecessor (finetune-{predecessor_layers}, seed {config.seed}) once for this seed")
    # a store keeps the first record of a key: a retrain (the cache was missing, say on another
    # machine) goes to the cache only, and the student's record says which predecessor it used
    kept = out_dir is not None and stored_ok(Path(out_dir), key)
    record, model = execute(pconfig, out_dir=None if kept else out_dir, log=log, return_model=True)
    return model, {"key": key, "trained_now": True, **_metrics(record), **({"record_kept": True} if kept else {})}


def stored_ok(out_dir: Path, run_id: str) -> bool:
    """A successful record of run_id is in the store."""
    from harness.store.records import record_path

    path = record_path(out_dir, run_id)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "ok"
    except (OSError, ValueError):
        return False


def _metrics(record: dict) -> dict:
    f = record["final"]
    return {"test_accuracy": f["test_accuracy"], "dev_accuracy": f["dev_accuracy"],
            "wall_seconds": record["wall_seconds"], "run_id": record["run_id"]}


def execute(config: RunConfig, *, out_dir: Path | None = None, log=say, return_model: bool = False,
            record_fields: dict | None = None, heartbeat=None):
    """Run one configuration to completion and return its record (and optionally the evaluated model).

    With out_dir, the record (plus `record_fields`, e.g. the sweep's name) is also written there
    atomically, as runs/<run_id>.json, and the split's example indices as splits/<data_hash>.json.
    heartbeat (default: log) receives one line at every dev evaluation: steps done, dev accuracy so far.
    """
    from harness.store.records import write_record

    started = time.perf_counter()
    config = config.validated()
    strategy = get_strategy(config.strategy)
    options = strategy.resolve(config.variant, config.option_dict)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    pretrained = load_pretrained(config.model)
    predecessor_layers = config.predecessor_layers or pretrained.num_layers
    if predecessor_layers > pretrained.num_layers:
        raise HarnessError(f"predecessor layers ({predecessor_layers}) exceed the model's {pretrained.num_layers}")
    if config.strategy == "finetune" and config.layers > pretrained.num_layers:
        raise HarnessError(f"cannot fine-tune the first {config.layers} layers of a "
                           f"{pretrained.num_layers}-layer model")
    if strategy.check is not None:  # every option problem surfaces before anything is trained
        strategy.check(config, options, predecessor_layers)
    task, splits, encoded = prepare_data(config, pretrained)
    settings = loop_settings(config, device, pretrained, splits.num_classes)
    small_test = check_test_size(len(splits.test.labels), allow_small=True)
    if small_test:
        log(small_test)

    # The predecessor comes first, before the student's RNG is seeded: whether it was cached or
    # trained just now must not change the student's head init, dropout or data order.
    predecessor, predecessor_info = None, None
    if strategy.needs_predecessor:
        predecessor, predecessor_info = get_predecessor(config, predecessor_layers, splits.num_classes,
                                                        device, out_dir, log)

    seed_everything(config.student)
    steps_per_epoch = -(-len(splits.train.labels) // config.batch_size)
    ctx = Context(config=config, options=options, pretrained=pretrained, num_classes=splits.num_classes,
                  steps_per_epoch=steps_per_epoch, predecessor_layers=predecessor_layers,
                  get_predecessor=lambda: predecessor, train=encoded["train"], settings=settings)
    plan = strategy.build(ctx)
    for phase in plan.phases:
        phase.modules.to(device)
    plan.evaluated.to(device)
    data_order = torch.Generator().manual_seed(config.student)
    result = fit(plan.phases, plan.evaluated, encoded["train"], encoded["dev"], encoded["test"], settings,
                 data_order, on_epoch=lambda e: log(_epoch_line(e)), eval_points=config.eval_points,
                 on_dev=lambda d: (heartbeat or log)(_dev_line(d)))
    arm_strategy, arm_variant = arm_label(config)
    record = {
        "schema": RESULTS_SCHEMA,
        "run_id": key_of(config),
        "status": "ok",
        "error": None,
        "strategy": arm_strategy,
        "variant": arm_variant,
        "seed": config.seed,
        "student_seed": config.student,
        "predecessor_layers": predecessor_layers,
        "successor_layers": config.layers,
        "config": config.to_dict(),
        "options": options,
        "task": {"name": config.task, "source": task.source, "label_names": splits.label_names,
                 "num_classes": splits.num_classes, "split_sizes": splits.sizes(),
                 "split_seed": config.effective_split_seed, "split": config.split, "data_hash": splits.data_hash,
                 "train_tokens": encoded["train"].num_tokens},
        "model": pretrained.identity,
        "modules": plan.info.get("modules"),
        "predecessor": predecessor_info,
        "budget": config.budget,
        "epochs": result.epochs,
        "curve": result.curve,
        "best_epoch": result.best_epoch,
        "best_step": result.best_step,
        "final": {"dev_accuracy": result.dev.accuracy, "dev_macro_f1": result.dev.macro_f1,
                  "test_accuracy": result.test.accuracy, "test_macro_f1": result.test.macro_f1,
                  "n_dev": result.dev.n, "n_test": result.test.n, "steps": result.steps,
                  "test_pred_counts": result.test.pred_counts,
                  "test_predictions": encode_predictions(result.test.predictions),
                  "max_class_share": max_class_share(result.test.pred_counts),
                  "degenerate": is_degenerate(result.test.pred_counts),
                  "still_improving": still_improving(result.curve, result.steps)},
        "provenance": provenance(device),
        "wall_seconds": time.perf_counter() - started,
        **(record_fields or {}),
    }
    if out_dir is not None:
        write_record(record, Path(out_dir), splits)
    if config.strategy == "finetune" and identity.is_predecessor_run(config, predecessor_layers):
        pred_cache.save(identity.predecessor_key(config, predecessor_layers, CODE_VERSION), plan.evaluated,
                        {"config": config.to_dict(), "metrics": _metrics(record)})
    return (record, plan.evaluated) if return_model else record


def _dev_line(d: dict) -> str:
    """The heartbeat at a dev evaluation: steps done of the run's total, dev accuracy now and best."""
    return (f"  step {d['step']:,}/{d['total_steps']:,} [{d['phase']}]  dev acc {d['dev_accuracy']:.4f}  "
            f"(best {d['best_dev_accuracy']:.4f})  {d['seconds']:.0f}s")


def _epoch_line(e: dict) -> str:
    extra = ""
    if "replaced_per_module" in e:
        extra = f"  replaced {[int(round(x)) for x in e['replaced_per_module']]} of {e['steps']} steps"
    elif "mix_k" in e:
        extra = f"  k {e['mix_k']:.2f}"
    dev = "" if e.get("dev_accuracy") is None else f"  dev acc {e['dev_accuracy']:.4f}"
    return (f"  epoch {e['epoch']:>2} [{e['phase']}] {e['steps']} steps, loss {e['train_loss']:.4f}{dev}"
            f"  {e['seconds']:.1f}s{extra}")
