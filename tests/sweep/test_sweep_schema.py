"""Sweep configs against the schema: every bad key is one `error:` line naming the file, the table
and the key, with exit status 2; generated configs either load or fail that way (hypothesis)."""

from __future__ import annotations

import dataclasses
import math
import string

import pytest
from conftest import load_sweep_text, sweep_config_error
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.sweep import execute
from harness.sweep import plan as sweep_mod
from harness.sweep.schema import TOP, run_field_types
from harness.training.config import RunConfig

GOOD = """
name = "mine"
seeds = 2
[base]
task = "rt-polarity"
epochs = 2
[[arms]]
strategy = "finetune"
layers = "predecessor"
[[arms]]
strategy = "theseus-binary"
variant = "seed"
options = { theseus_epochs = 1 }
"""




def test_the_good_config_and_every_shipped_preset_load(tmp_path):
    assert load_sweep_text(tmp_path, GOOD).name == "mine"
    for preset in sweep_mod.list_presets():
        sweep_mod.load_sweep(preset)


def test_a_wrong_type_is_one_line_and_exit_2_from_the_cli(tmp_path, capsys):
    """The issue's case: `epochs = "three"` ended in a TypeError traceback from RunConfig.validated."""
    path = tmp_path / "mine.toml"
    path.write_text(GOOD.replace("epochs = 2", 'epochs = "three"'))
    assert main(["run-all", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == 'error: sweep config mine.toml: [base] epochs: expected an integer, got "three" (a string)\n'
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, where, message", [
    (('epochs = 2', 'epochs = 0'), "[base] epochs", "epochs must be >= 1, got 0"),
    (('epochs = 2', 'epoch = 2'), "[base] epoch", "unknown key; run settings: "),
    (('epochs = 2', 'lr = "fast"'), "[base] lr", 'expected a number, got "fast" (a string)'),
    (('epochs = 2', 'lr = true'), "[base] lr", "expected a number, got true (a boolean)"),
    (('epochs = 2', 'precision = "fp16"'), "[base] precision", "precision must be fp32, bf16 or auto"),
    (('epochs = 2', 'head = 3'), "[base] head", "expected a string, got 3 (an integer)"),
    (('epochs = 2', 'split_seed = -1'), "[base] split_seed", "must be >= 0"),
    (('epochs = 2', 'budget = 0'), "[base] budget", "budget must be >= 1"),
    (('epochs = 2', 'eval_points = -2'), "[base] eval_points", "eval points must be >= 0"),
    (('epochs = 2', 'seed = 3'), "[base] seed", "is set by the sweep for every run; use seeds or seed_list"),
    (('epochs = 2', 'strategy = "kd"'), "[base] strategy", "is set by the sweep"),
    (('task = "rt-polarity"', 'task = "nope"'), "[base] task", 'unknown task "nope"'),
    (('seeds = 2', 'seeds = "2"'), "top level seeds", 'expected an integer, got "2" (a string)'),
    (('seeds = 2', 'seeds = 0'), "top level seeds", "must be >= 1"),
    (('seeds = 2', 'seedz = 2'), "top level seedz", "unknown key; sweep keys: "),
    (('seeds = 2', 'seed_list = [0, 0]'), "top level seed_list", "lists 0 more than once"),
    (('seeds = 2', 'seeds = 2\nseed_list = [1]'), "top level seed_list", "give seeds or seed_list, not both"),
    (('seeds = 2', 'budgets = [100, 0]'), "top level budgets", "item 2 is 0; every item must be >= 1"),
    (('seeds = 2', 'budgets = [100, 2.5]'), "top level budgets", "item 2 must be an integer, got 2.5"),
    (('seeds = 2', 'budgets = []'), "top level budgets", "is empty"),
    (('seeds = 2', 'successor_layers = 3'), "top level successor_layers", "expected a list, got 3"),
    (('seeds = 2', 'tasks = ["rt-polarity", "csv"]'), "top level tasks (item 2)", 'unknown task "csv"'),
    (('name = "mine"', 'name = "../mine"'), "top level name", "must be letters, digits"),
    (('name = "mine"', 'jobs = 0'), "top level jobs", "must be >= 1"),
    (('layers = "predecessor"', 'layers = "both"'), "[[arms]] #1 (finetune) layers",
     "must be one of 'successor', 'predecessor'"),
    (('layers = "predecessor"', 'layers = "predecessor"\nstrategi = "kd"'), "[[arms]] #1 (finetune) strategi",
     "unknown key; arm keys: "),
    (('variant = "seed"', 'variant = "fast"'), "[[arms]] #2 (theseus-binary) variant", "has no variant 'fast'"),
    (('theseus_epochs = 1', 'theseus_epochs = "x"'), "[[arms]] #2 (theseus-binary) options",
     "theseus_epochs must be a"),
    (('theseus_epochs = 1', 'replacement_rate = "x"'), "[[arms]] #2 (theseus-binary) options",
     "must be a float"),
    (('variant = "seed"', 'variant = "seed"\nset = { seed = 1 }'), "[[arms]] #2 (theseus-binary) set seed",
     "is set by the sweep"),
    (('variant = "seed"', 'variant = "seed"\nset = { epochs = "x" }'), "[[arms]] #2 (theseus-binary) set epochs",
     "expected an integer"),
    (('strategy = "theseus-binary"', 'strategy = "nope"'), "[[arms]] #2 (nope) strategy", "unknown strategy"),
])
def test_bad_keys_name_file_table_and_key(tmp_path, change, where, message):
    old, new = change
    assert old in GOOD
    text = sweep_config_error(tmp_path, GOOD.replace(old, new, 1))
    assert text.startswith(f"sweep config mine.toml: {where}: "), text
    assert message in text, text


def test_no_arms_and_budgets_beside_a_base_budget(tmp_path):
    assert "no [[arms]]" in sweep_config_error(tmp_path, 'name = "x"\n')
    text = sweep_config_error(tmp_path, GOOD.replace("seeds = 2", "budgets = [10]").replace("epochs = 2", "budget = 5"))
    assert "[base] budget: give budgets or [base] budget, not both" in text


def test_base_schema_follows_runconfig_fields():
    """A field added to RunConfig is in the [base] schema with its annotated type."""
    types = run_field_types()
    assert set(types) == {f.name for f in dataclasses.fields(RunConfig)}
    assert types["epochs"] is int and types["lr"] is float and types["train_size"] is int
    assert types["budget"] is int and types["eval_points"] is int and types["force"] is bool
    assert TOP["budgets"].item is int and TOP["budgets"].minimum == 1


# ---- property: every generated config loads or is one `error:` line with exit 2 ----------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    return str(v)


scalars = st.one_of(st.integers(-3, 5000), st.floats(-1, 1e4), st.sampled_from([math.nan, math.inf]), st.booleans(),
                    st.text(alphabet=string.ascii_letters + "-_:/ ", max_size=12),
                    st.sampled_from(["rt-polarity", "auto", "fp32", "cls", "seed", "finetune", "successor"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(
    ["epochs", "lr", "replacement_rate", "theseus_epochs", "bogus"]), scalars, max_size=2))


def _mostly(valid, invalid=scalars):
    """Three in four draws valid, so that configs get past the first key and reach the deep checks."""
    return st.one_of(valid, valid, valid, invalid)


_DEFAULTS = RunConfig()
VALID_RUN = {f.name: st.just(getattr(_DEFAULTS, f.name)) if getattr(_DEFAULTS, f.name) is not None
             else st.integers(1, 50) for f in dataclasses.fields(RunConfig)
             if f.name not in ("strategy", "variant", "options", "seed", "student_seed", "predecessor_lr")}
run_keys = st.sampled_from([f.name for f in dataclasses.fields(RunConfig)] + ["epoch", "bogus"])
base_tables = st.one_of(
    st.fixed_dictionaries({}, optional={k: _mostly(v) for k, v in VALID_RUN.items() if k != "precision"}),
    st.dictionaries(run_keys, scalars, max_size=3))
top_keys = st.sampled_from(sorted(TOP) + ["seedz"])
valid_tops = st.fixed_dictionaries({}, optional={
    "name": _mostly(st.sampled_from(["mine", "a.b-c_1"])),
    "seeds": _mostly(st.integers(1, 3)),
    "successor_layers": _mostly(st.lists(st.integers(1, 6), min_size=1, max_size=2, unique=True), values),
    "budgets": _mostly(st.lists(st.integers(1, 500), min_size=1, max_size=2, unique=True), values),
    "tasks": _mostly(st.lists(st.sampled_from(["rt-polarity", "trec-6", "csv:x.csv"]), min_size=1, max_size=2,
                              unique=True), values),
    "jobs": _mostly(st.integers(1, 4)),
})
top_tables = _mostly(valid_tops, st.dictionaries(top_keys, values, max_size=3))
arms = st.lists(st.fixed_dictionaries(
    {"strategy": _mostly(st.sampled_from(["finetune", "theseus-binary", "theseus-add", "two-stage", "kd"]))},
    optional={"variant": st.sampled_from(["", "seed", "convex", "official", "random-1x", "x"]),
              "layers": _mostly(st.sampled_from(["successor", "predecessor"])),
              "options": st.dictionaries(st.sampled_from(["theseus_epochs", "k", "replacement_rate", "epochs"]),
                                         _mostly(st.integers(1, 3)), max_size=2),
              "set": st.dictionaries(run_keys, scalars, max_size=2)}), min_size=1, max_size=3)


def _render(top: dict, base: dict, arm_list: list) -> str:
    lines = [f'"{k}" = {_toml_value(v)}' for k, v in top.items() if k not in ("base", "arms")]
    lines.append("[base]")
    lines += [f'"{k}" = {_toml_value(v)}' for k, v in base.items()]
    for arm in arm_list:
        lines.append("[[arms]]")
        lines += [f'"{k}" = {_toml_value(v)}' for k, v in arm.items()]
    return "\n".join(lines) + "\n"


class _Loaded(Exception):
    """Raised in place of expanding a sweep: the config passed every check."""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=top_tables, base=base_tables, arm_list=_mostly(arms, st.just([])))
def test_generated_configs_load_or_give_one_error_line(tmp_path, monkeypatch, capsys, top, base, arm_list):
    monkeypatch.setattr(execute, "expand", lambda sweep, **kw: (_ for _ in ()).throw(_Loaded()))
    path = tmp_path / "generated.toml"
    path.write_text(_render(top, base, arm_list))
    try:
        code = main(["run-all", "--config", str(path), "--out", str(tmp_path / "out")])
    except _Loaded:
        event("loaded")
        return  # loaded and validated: the sweep would start here
    err = capsys.readouterr().err
    event("refused: " + err.split(": ")[2][:40] if err.count(": ") > 2 else "refused")
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_allow_small_test_at_the_top_level_or_in_base_reaches_every_run(tmp_path):
    assert load_sweep_text(tmp_path, "allow_small_test = true\n" + GOOD).base["allow_small_test"] is True
    assert "allow_small_test" not in load_sweep_text(tmp_path, GOOD).base
    with_base = GOOD.replace("[base]\n", "[base]\nallow_small_test = true\n")
    assert load_sweep_text(tmp_path, with_base).base["allow_small_test"] is True
    assert "allow_small_test: expected true or false, got 1 (an integer)" in sweep_config_error(tmp_path, "allow_small_test = 1\n" + GOOD)
