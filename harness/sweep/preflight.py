"""What `run-all` checks before it plans or trains anything: each task of a sweep loaded and split
once as its runs will be (columns, classes, sizes, the test split's minimum), the output folders,
and the arms `--only` names. Every problem is one HarnessError line naming the sweep config and the
key to change, raised before a record or a manifest is written."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import HarnessError
from harness.sweep.plan import Sweep
from harness.training.config import RunConfig

# The run settings that decide what a task's data and splits are.
DATA_KEYS = ("text_column", "label_column", "train_size", "dev_size", "test_size", "split_seed", "allow_small_test")


def _data_settings(sweep: Sweep) -> list[tuple[str, dict, dict]]:
    """(where the task is named, the data settings, where each came from) of every distinct task and
    data setting the sweep's runs use: [base], overridden by an arm's `set`."""
    out, seen = [], set()
    task_place = "tasks" if "tasks" in sweep.source else "[base] task"
    tables = [("[base]", {})] + [(f"[[arms]] #{i} set", arm.get("set", {}))
                                 for i, arm in enumerate(sweep.arms, start=1)]
    for task in sweep.tasks:
        for table, override in tables:
            settings, places = {}, {}
            for key in DATA_KEYS:
                if key in override:
                    settings[key], places[key] = override[key], table
                elif key in sweep.base:
                    settings[key], places[key] = sweep.base[key], "[base]"
                else:
                    settings[key], places[key] = getattr(RunConfig, key), "default"
            ident = (task, tuple(settings.items()))
            if ident not in seen:
                seen.add(ident)
                out.append((task, settings, {**places, "task": task_place}))
    return out


def _column_key(message: str, settings: dict) -> str | None:
    """The column setting a loader's message is about (None: not a column problem)."""
    m = re.search(r"(missing column|missing text in column|missing label in column) ('[^']*'|\"[^\"]*\")", message)
    if m:
        if "text" in m.group(1):
            return "text_column"
        if "label" in m.group(1):
            return "label_column"
        return next((k for k in ("text_column", "label_column") if repr(settings[k]) == m.group(2)), None)
    if "class(es)" in message or "label set mismatch" in message:
        return "label_column"
    return None


def check_tasks(sweep: Sweep, config_name: str) -> dict[tuple, dict]:
    """Load every task of the sweep once and split it as its runs will: a missing or malformed file,
    a wrong column, fewer than two classes, sizes that do not fit and a test split under 100
    examples (unless allow_small_test) each raise one HarnessError naming the sweep config, the key
    and the data file. Returns {(task, data settings): {"n": examples, "sizes": split sizes}}."""
    from harness.data.splits import make_splits
    from harness.data.tasks import TASKS, load_task

    out = {}
    for task, settings, places in _data_settings(sweep):
        def fail(key: str, message: str) -> HarnessError:
            where = places.get(key, "default")
            value = task if key == "task" else settings.get(key)
            place = f"{where} {key} = {value!r}" if where != "default" else f"{key} (default {value!r})"
            if key == "task":
                place = f"{where} {task!r}"
            return HarnessError(f"sweep config {config_name}: {place}: {message}")

        try:
            data = load_task(task, text_column=settings["text_column"], label_column=settings["label_column"])
        except HarnessError as exc:
            user_columns = task not in TASKS and not task.startswith("clue:")
            key = (_column_key(str(exc), settings) if user_columns else None) or "task"
            raise fail(key, str(exc)) from None
        try:
            splits = make_splits(data, settings["train_size"], settings["dev_size"], settings["test_size"],
                                 settings["split_seed"], allow_small_test=bool(settings["allow_small_test"]))
        except HarnessError as exc:
            message = str(exc)
            if "test split" in message and "examples" in message:
                message += " (in a sweep config: allow_small_test = true at the top level or in [base])"
                raise fail("test_size", f"task {task}: {message}") from None
            given = [k for k in ("train_size", "dev_size", "test_size") if settings[k] is not None]
            raise fail(given[0] if given else "task", f"task {task}: {message}") from None
        out[(task, tuple(settings.items()))] = {"n": len(data.labels), "sizes": splits.sizes()}
    return out


def check_output_dirs(*dirs: Path) -> None:
    """A file where one of the sweep's folders (or a folder it writes into) must be: one error line."""
    for folder in dirs:
        folder = Path(folder)
        for path in (folder, folder / "runs", folder / "splits", folder / "tables", folder / "plots"):
            if path.exists() and not path.is_dir():
                raise HarnessError(f"output folder {folder}: {path} is a file, not a folder; "
                                   "choose another --out (or --report-dir)")
        probe = folder
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise HarnessError(f"output folder {folder} cannot be created: {probe} is a file, not a folder")


def arm_of(config: RunConfig) -> str:
    """The runs table's arm name of a run ("finetune-3", "theseus-add/seed", "kd")."""
    from harness import arms
    from harness.strategies import arm_label

    return arms.name(*arm_label(config))


def only_filter(configs: list[RunConfig], only: list[str] | None, sweep_name: str):
    """`--only`: a predicate config -> bool that keeps the runs of the named arms or families and the
    predecessor runs they start from; None when every run trains. A name that is neither an arm nor
    a family of the sweep (`configs`: its runs) is one HarnessError, before any training."""
    if not only:
        return None
    from harness.sweep.plan import is_predecessor
    from harness.strategies import get_strategy

    names = sorted({arm_of(c) for c in configs})
    families = sorted({c.strategy for c in configs})
    unknown = [o for o in only if o not in names and o not in families]
    if unknown:
        raise HarnessError(f"--only {unknown[0]}: no such arm or family in sweep {sweep_name}; its arms: "
                           f"{', '.join(names)}; families: {', '.join(families)}")
    wanted = set(only)
    chosen = [c for c in configs if arm_of(c) in wanted or c.strategy in wanted]
    needs = any(get_strategy(c.strategy).needs_predecessor for c in chosen)

    def trains(config: RunConfig) -> bool:
        return (arm_of(config) in wanted or config.strategy in wanted
                or (needs and is_predecessor(config)))
    return trains
