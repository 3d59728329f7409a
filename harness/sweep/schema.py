"""The sweep config schema: every key of a sweep TOML with its type, range and allowed values.

[base] and an arm's `set` table hold RunConfig fields: each key's type comes from the field's
annotation and its range from RunConfig.validated() run on that key alone, so a field added to
RunConfig is covered the moment it exists. Top-level and arm keys are declared in TOP and ARM.
Every problem is one HarnessError naming the file, the table and the key; an unknown key is
refused, never ignored (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.training.config import RunConfig


@dataclass(frozen=True)
class Key:
    """One key: its TOML type, for a list the type of its items, and the allowed values."""

    type: type
    minimum: int | None = None
    item: type | None = None         # lists: the type of every item (minimum applies to items)
    choices: tuple | None = None
    pattern: str | None = None       # strings: a regular expression the whole value must match
    what: str = ""                   # the rule in words, for the message


TOP = {
    "name": Key(str, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]*",
                what="letters, digits, '.', '_' and '-' (it names results/<name> and report/<name>.md)"),
    "description": Key(str),
    "seeds": Key(int, minimum=1, what="the number of seeds 0..seeds-1"),
    "seed_list": Key(list, item=int, minimum=0),
    "student_seeds": Key(int, minimum=1),
    "jobs": Key(int, minimum=1),
    "threads": Key(int, minimum=0, what="torch threads per run; 0 = torch's default"),
    "base": Key(dict),
    "tasks": Key(list, item=str),
    "models": Key(list, item=str),
    "successor_layers": Key(list, item=int, minimum=1),
    "budgets": Key(list, item=int, minimum=1, what="student optimizer steps per run"),
    "arms": Key(list, item=dict),
    "tuning": Key(dict, what="a tuning stage: seeds (disjoint from the evaluation seeds) and lrs"),
    "looks": Key(list, item=int, minimum=3, what="a sequential design: the seeds per arm at each look, increasing"),
    "futility": Key(float, what="a sequential design's futility threshold on conditional power, in [0, 1)"),
    "allow_small_test": Key(bool, what="run tasks whose test split has under 100 examples (refused otherwise)"),
    "reuse": Key(list, item=str, what="stores (folders of results/) whose records with the same run key are "
                                      "copied in before running"),
    "reuse_any_cpu": Key(bool, what="reuse copies records made on any CPU kind (default: only this machine's)"),
    "primaries": Key(dict, what="claim id -> the student budget its primary is tested at: one family per "
                                "task, model and successor size"),
}
TUNING = {
    "seeds": Key(list, item=int, minimum=0, what="tuning seeds, disjoint from the evaluation seeds"),
    "lrs": Key(list, item=float, what="the learning-rate grid every student arm tries"),
}
ARM = {
    "strategy": Key(str),
    "variant": Key(str),
    "options": Key(dict),
    "layers": Key(str, choices=("successor", "predecessor")),
    "set": Key(dict),
    "budgets": Key(list, item=int, minimum=1, what="the sweep's budgets this arm runs at (default: every one)"),
    "tasks": Key(list, item=str, what="the sweep's tasks this arm runs on (default: every one)"),
}
# Set for every job by the sweep itself (from arms, seeds, tasks, ...): a value in [base] or in an
# arm's `set` would be overridden without a word, so it is refused with the place it belongs.
SET_BY_SWEEP = {"strategy": "an arm's strategy", "variant": "an arm's variant", "options": "an arm's options",
                "seed": "seeds or seed_list", "student_seed": "student_seeds"}
SET_BY_SWEEP_IN_ARM = {**SET_BY_SWEEP, "task": "tasks or [base] task", "model": "models or [base] model",
                       "layers": "successor_layers, or the arm's layers = \"predecessor\"",
                       "predecessor_layers": "[base] predecessor_layers", "budget": "budgets or [base] budget"}


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table",
            list: "a list", tuple: "a table"}.get(t, t.__name__)


def _describe(value) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"  # as TOML spells it
    else:
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table",
            list: "a list"}.get(type(value), type(value).__name__)
    return f"{text} ({kind})"


def _is(value, t: type) -> bool:
    """TOML value `value` has type `t`; an integer is a number, a boolean is not an integer."""
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is tuple:
        return isinstance(value, dict)
    return isinstance(value, t)


def run_field_types() -> dict[str, type]:
    """RunConfig field -> the one TOML type it takes (None is not expressible in TOML: a field
    typed `int | None` takes an integer; leaving the key out gives the default)."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for field in dataclasses.fields(RunConfig):
        hint = hints[field.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = float if float in args else args[0]
        out[field.name] = typing.get_origin(hint) or hint
    return out


class _Where:
    def __init__(self, path: Path):
        self.file = Path(path).name

    def error(self, table: str, key: str | None, message: str) -> HarnessError:
        place = f"{table} {key}" if key else table
        return HarnessError(f"sweep config {self.file}: {place}: {message}")


def _check_value(value, spec: Key, where: _Where, table: str, key: str) -> None:
    if not _is(value, spec.type):
        raise where.error(table, key, f"expected {_type_name(spec.type)}, got {_describe(value)}")
    if spec.type is list:
        if not value:
            raise where.error(table, key, "is empty; give at least one value or leave the key out")
        for i, item in enumerate(value, start=1):
            if not _is(item, spec.item):
                raise where.error(table, key, f"item {i} must be {_type_name(spec.item)}, got {_describe(item)}")
            if spec.minimum is not None and item < spec.minimum:
                raise where.error(table, key, f"item {i} is {item}; every item must be >= {spec.minimum}")
            if spec.item is str and not item.strip():
                raise where.error(table, key, f"item {i} is an empty string")
        if spec.item is not dict:
            repeated = sorted({repr(x) for x in value if value.count(x) > 1})
            if repeated:
                raise where.error(table, key, f"lists {', '.join(repeated)} more than once")
        return
    if spec.minimum is not None and value < spec.minimum:
        rule = f" ({spec.what})" if spec.what else ""
        raise where.error(table, key, f"must be >= {spec.minimum}{rule}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise where.error(table, key, f"must be one of {', '.join(map(repr, spec.choices))}, got {_describe(value)}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        raise where.error(table, key, f"must be {spec.what or 'of the form ' + spec.pattern}, got {_describe(value)}")


def _unknown(table_value: dict, known, where: _Where, table: str, hint: str) -> None:
    unknown = sorted(set(table_value) - set(known))
    if unknown:
        also = f" (also: {', '.join(unknown[1:])})" if unknown[1:] else ""
        raise where.error(table, unknown[0], f"unknown key{also}; {hint}: {', '.join(sorted(known))}")


def _check_run_fields(fields: dict, where: _Where, table: str, refused: dict[str, str]) -> None:
    """[base] or an arm's `set`: known RunConfig fields of the right type and range, one by one."""
    kinds = run_field_types()
    for key, value in fields.items():
        if key in refused:
            raise where.error(table, key, f"is set by the sweep for every run; use {refused[key]}")
        if key not in kinds:
            known = sorted(k for k in kinds if k not in refused)
            raise where.error(table, key, f"unknown key; run settings: {', '.join(known)}")
        if not _is(value, kinds[key]):
            raise where.error(table, key, f"expected {_type_name(kinds[key])}, got {_describe(value)}")
        if isinstance(value, str) and not value.strip():
            raise where.error(table, key, "is an empty string")
        if isinstance(value, float) and not math.isfinite(value):
            raise where.error(table, key, f"must be a finite number, got {value}")
        if key == "task":
            _check_task(value, where, table, key)
        if key == "options":
            continue
        try:  # the range and allowed values of RunConfig itself, this key alone
            RunConfig(**{key: value}).validated()
        except HarnessError as exc:
            raise where.error(table, key, str(exc)) from None


def _check_task(spec: str, where: _Where, table: str, key: str) -> None:
    """A built-in task name or a source spec (its files are read when the first run starts)."""
    from harness.data.tasks import SOURCE_PREFIXES, TASKS

    kind, colon, arg = spec.partition(":")
    if spec not in TASKS and not (colon and arg and kind in {p.split(":")[0] for p in SOURCE_PREFIXES}):
        raise where.error(table, key, f"unknown task {_describe(spec)}; built-in tasks: {', '.join(TASKS)}; "
                                      f"or a source: {', '.join(SOURCE_PREFIXES)}")


def _check_tuning(tuning: dict, where: _Where) -> None:
    _unknown(tuning, TUNING, where, "[tuning]", "tuning keys")
    for key, spec in TUNING.items():
        if key not in tuning:
            raise where.error("[tuning]", key, f"missing; a tuning stage needs {spec.what}")
        _check_value(tuning[key], spec, where, "[tuning]", key)
    for i, lr in enumerate(tuning["lrs"], start=1):
        if not (math.isfinite(lr) and lr > 0):
            raise where.error("[tuning]", "lrs", f"item {i} is {lr}; every learning rate must be > 0")


def _check_sequential(raw: dict, where: "_Where") -> None:
    """looks increase and end at the number of evaluation seeds; futility needs looks; a sequential
    design has no tuning stage (its rates would be chosen before the first look, a separate study)."""
    if "futility" in raw:
        if "looks" not in raw:
            raise where.error("top level", "futility", "only a sequential design (looks = [...]) has a futility rule")
        if not 0 <= raw["futility"] < 1:
            raise where.error("top level", "futility", f"is {raw['futility']}; it must be in [0, 1)")
    if "looks" not in raw:
        return
    looks = raw["looks"]
    if not looks or any(b <= a for a, b in zip(looks, looks[1:])):
        raise where.error("top level", "looks", f"is {looks}; looks must be a non-empty increasing list of seeds")
    n = len(raw["seed_list"]) if "seed_list" in raw else raw.get("seeds")
    if n is not None and n != looks[-1]:
        raise where.error("top level", "looks", f"end at {looks[-1]} seeds but the sweep has {n}; "
                                                "the last look is the number of evaluation seeds")
    if "tuning" in raw:
        raise where.error("top level", "looks", "a sequential design cannot have a [tuning] stage; "
                                                "tune in a separate sweep and set the rates in the arms")


def _sweep_tasks(raw: dict) -> list[str]:
    return list(raw.get("tasks", [raw.get("base", {}).get("task", RunConfig.task)]))


def _check_arm_budgets(raw: dict, where: _Where) -> None:
    """An arm's `budgets` picks from the sweep's `budgets` and its `tasks` from the sweep's tasks (the
    predecessor has neither: it trains at its own length and serves every task's students), and no arm
    runs twice on one task at one budget (declarations of one arm split its budgets or tasks, e.g. to give
    each its own learning rate). With a [tuning] stage every declaration of an arm declares the same rate:
    the one-SE rule keeps an arm's one declared rate unless another beats it."""
    from harness.strategies import get_strategy
    from harness.sweep.plan import declared_lr

    arms = raw["arms"]
    if not any("budgets" in arm or "tasks" in arm for arm in arms):
        return
    tasks = _sweep_tasks(raw)
    seen: dict[tuple, int] = {}
    rates: dict[tuple, tuple[int, float]] = {}
    for number, arm in enumerate(arms, start=1):
        table = f"[[arms]] #{number} ({arm['strategy']})"
        for key in ("budgets", "tasks"):
            if key in arm and arm.get("layers") == "predecessor":
                raise where.error(table, key, "the predecessor trains at its own length (epochs) and serves every "
                                              f"task's students at every budget; it takes no {key}")
        if "budgets" in arm:
            if "budgets" not in raw:
                raise where.error(table, "budgets", "picks from the sweep's budgets; give budgets = [...] at the "
                                                    "top level")
            for i, b in enumerate(arm["budgets"], start=1):
                if b not in raw["budgets"]:
                    raise where.error(table, "budgets", f"item {i} is {b}, not one of the sweep's budgets "
                                                        f"({', '.join(map(str, raw['budgets']))})")
        for i, t in enumerate(arm.get("tasks", []), start=1):
            if t not in tasks:
                raise where.error(table, "tasks", f"item {i} is {t!r}, not one of the sweep's tasks ({', '.join(tasks)})")
        if arm.get("layers") == "predecessor":
            continue
        variant = arm.get("variant") or get_strategy(arm["strategy"]).default_variant
        name = f"{arm['strategy']}{'/' + variant if variant else ''}"
        for t in arm.get("tasks", tasks):
            for b in arm.get("budgets", raw.get("budgets", [None])):
                other = seen.setdefault((arm["strategy"], variant, t, b), number)
                if other != number:
                    at = f" at {b} steps" if b is not None else ""
                    raise where.error(table, "tasks" if "tasks" in arm else "budgets",
                                      f"arm #{other} already runs {name} on {t}{at}; give each declaration of an "
                                      "arm its own budgets or tasks")
        if "tuning" in raw:
            lr = declared_lr(raw.get("base", {}), arm)
            other, first = rates.setdefault((arm["strategy"], variant), (number, lr))
            if lr != first:
                raise where.error(table, "options", f"declares lr {lr:g} but arm #{other} declares {name} at {first:g}; "
                                                    "a tuning stage keeps one declared rate per arm")


def _check_primaries(raw: dict, where: _Where) -> None:
    """`primaries`: every declared primary claim (claims.PRIMARY_CLAIMS) at one of the sweep's budgets,
    its arms running there (docs/method.md, "Multiplicity": the family is fixed by the declaration)."""
    from harness.analysis.claims import BASELINE, PRIMARY_CLAIMS
    from harness.analysis.tuning import arm_name
    from harness.strategies import get_strategy

    declared = raw["primaries"]
    ids = [c.id for c in PRIMARY_CLAIMS]
    if "budgets" not in raw:
        raise where.error("top level", "primaries", "declares budgets per primary; give budgets = [...] too")
    _unknown(declared, ids, where, "[primaries]", "claims with a primary")
    missing = [i for i in ids if i not in declared]
    if missing:
        raise where.error("[primaries]", missing[0], f"missing; the family is every declared primary "
                                                     f"({', '.join(ids)}), each at one budget")
    for claim in PRIMARY_CLAIMS:
        b = declared[claim.id]
        if not _is(b, int):
            raise where.error("[primaries]", claim.id, f"expected an integer (student steps), got {_describe(b)}")
        if b not in raw["budgets"]:
            raise where.error("[primaries]", claim.id, f"is {b}, not one of the sweep's budgets "
                                                       f"({', '.join(map(str, raw['budgets']))})")
        for ls, task in ((ls, t) for ls in raw.get("successor_layers", [RunConfig.layers]) for t in _sweep_tasks(raw)):
            running = {arm_name(a, ls, get_strategy(a["strategy"]).default_variant) for a in raw["arms"]
                       if a.get("layers") != "predecessor" and b in a.get("budgets", raw["budgets"])
                       and task in a.get("tasks", [task])}
            for name in (claim.primary.a, claim.primary.b):
                name = f"finetune-{ls}" if name == BASELINE else name
                if name and name not in running:
                    raise where.error("[primaries]", claim.id, f"is tested at {b} steps, where its arm {name} "
                                                               f"does not run on {task} (an arm's budgets and tasks)")


def check_sweep(raw: dict, path: Path) -> None:
    """Validate a parsed sweep config against the schema; raise one HarnessError line on the first
    problem. Checks each key alone, then the cross-key rules (RunConfig of [base], arm options)."""
    from harness.strategies import get_strategy

    where = _Where(path)
    _unknown(raw, TOP, where, "top level", "sweep keys")
    for key, value in raw.items():
        _check_value(value, TOP[key], where, "top level", key)
    if "seeds" in raw and "seed_list" in raw:
        raise where.error("top level", "seed_list", "give seeds or seed_list, not both")
    if "tuning" in raw:
        _check_tuning(raw["tuning"], where)
    _check_sequential(raw, where)
    for number, task in enumerate(raw.get("tasks", []), start=1):
        _check_task(task, where, "top level", f"tasks (item {number})")
    base = raw.get("base", {})
    _check_run_fields(base, where, "[base]", SET_BY_SWEEP)
    if "budgets" in raw and "budget" in base:
        raise where.error("[base]", "budget", "give budgets or [base] budget, not both")
    try:
        RunConfig.from_dict(dict(base))
    except HarnessError as exc:
        raise where.error("[base]", None, str(exc)) from None
    arms = raw.get("arms")
    if not arms:
        raise where.error("top level", "arms", "no [[arms]]: a sweep needs at least one arm")
    for number, arm in enumerate(arms, start=1):
        table = f"[[arms]] #{number}" + (f" ({arm['strategy']})" if isinstance(arm.get("strategy"), str) else "")
        _unknown(arm, ARM, where, table, "arm keys")
        if "strategy" not in arm:
            raise where.error(table, "strategy", "missing; every arm names its strategy")
        for key, value in arm.items():
            _check_value(value, ARM[key], where, table, key)
        _check_run_fields(arm.get("set", {}), where, f"{table} set", SET_BY_SWEEP_IN_ARM)
        for key, check in (("strategy", lambda: get_strategy(arm["strategy"])),
                           ("variant", lambda: get_strategy(arm["strategy"]).resolve(arm.get("variant", ""), {})),
                           ("options", lambda: get_strategy(arm["strategy"]).resolve(arm.get("variant", ""),
                                                                                     arm.get("options", {})))):
            try:
                check()
            except HarnessError as exc:
                raise where.error(table, key, str(exc)) from None
    _check_arm_budgets(raw, where)
    if "primaries" in raw:
        _check_primaries(raw, where)
    if "reuse_any_cpu" in raw and "reuse" not in raw:
        raise where.error("top level", "reuse_any_cpu", "applies to reuse = [...], which this sweep does not give")
