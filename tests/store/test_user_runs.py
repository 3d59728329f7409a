"""A user's runs table (`analyze`, `compare`): every problem is one `error:` line naming the row,
with exit status 2; nothing is dropped silently; generated tables load or fail that way (hypothesis)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import HarnessError
from harness.store.user_runs import read_runs_csv

HEADER = "task,strategy,seed,test_accuracy"
ROWS = ["t,finetune-6,0,0.85", "t,finetune-6,1,0.84", "t,finetune-3,0,0.75", "t,finetune-3,1,0.77",
        "t,theseus-add,0,0.78", "t,theseus-add,1,0.79"]


def _csv(tmp_path, lines, name="mine.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(tmp_path, lines) -> str:
    with pytest.raises(HarnessError) as info:
        read_runs_csv(_csv(tmp_path, lines))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_non_numeric_metric_is_one_line_naming_the_row_and_exit_2(tmp_path, capsys):
    """The issue's case: `abc` in test_accuracy dropped the row without a word (n = 1 for its arm)."""
    rows = list(ROWS)
    rows[3] = "t,finetune-3,1,abc"
    path = _csv(tmp_path, [HEADER, *rows])
    assert main(["analyze", str(path), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err == "error: mine.csv, row 4: test_accuracy 'abc' is not a number\n"
    assert not (tmp_path / "a").exists()
    assert main(["compare", str(path), str(_csv(tmp_path, [HEADER, *ROWS], "b.csv"))]) == 2
    assert "mine.csv, row 4: test_accuracy 'abc' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize("header, row, message", [
    (HEADER, "t,finetune-3,1,1.5", "row 4: test_accuracy '1.5' is outside [0, 1]"),
    (HEADER, "t,finetune-3,1,-0.2", "row 4: test_accuracy '-0.2' is outside [0, 1]"),
    (HEADER, "t,finetune-3,1,77", "row 4: test_accuracy '77' is outside [0, 1]; give every value"),
    (HEADER, "t,finetune-3,1,inf", "row 4: test_accuracy 'inf' is not a finite number"),
    (HEADER, "t,finetune-3,1,", "row 4: test_accuracy is empty (a run with status ok needs its metric)"),
    (HEADER, "t,finetune-3,1.5,0.7", "row 4: seed '1.5' is not a whole number"),
    (HEADER, "t,finetune-3,,0.7", "row 4: seed is empty"),
    (HEADER, ",finetune-3,1,0.7", "row 4: task is empty"),
    (HEADER, "t,finetune-3,0,0.7", "rows 3 and 4: the same run twice (task t, arm finetune-3, seed 0)"),
])
def test_bad_rows(tmp_path, header, row, message):
    rows = list(ROWS)
    rows[3] = row
    assert message in _error(tmp_path, [header, *rows])


def test_percent_columns_and_a_fraction_among_them(tmp_path):
    rows = [r.rsplit(",", 1)[0] + f",{float(r.rsplit(',', 1)[1]) * 100:g}" for r in ROWS]
    runs = read_runs_csv(_csv(tmp_path, [HEADER, *rows]))
    assert runs["test_accuracy"].max() == 85
    rows[2] = "t,finetune-3,0,0.75"
    assert "row 3: test_accuracy '0.75' looks like a fraction in a column of percentages" in \
        _error(tmp_path, [HEADER, *rows])
    rows[2] = "t,finetune-3,0,175"
    assert "row 3: test_accuracy '175' is outside [0, 100]" in _error(tmp_path, [HEADER, *rows])


def test_missing_columns_empty_tables_and_repeated_columns(tmp_path):
    assert "lacks column(s) strategy, test_accuracy" in _error(tmp_path, ["task,seed", "t,1"])
    assert "has a header but no rows" in _error(tmp_path, [HEADER])
    assert "is empty" in _error(tmp_path, [""])
    assert "seed appear more than once" in _error(tmp_path, [HEADER + ",seed", "t,finetune-3,0,0.7,1"])


def test_optional_columns_are_checked(tmp_path):
    head = HEADER + ",status,successor_layers,student_seed,wall_seconds,max_class_share"
    good = [r + ",ok,3,,12.5,0.6" for r in ROWS]
    assert len(read_runs_csv(_csv(tmp_path, [head, *good]))) == 6
    for bad, message in [(",crashed,3,,1,0.5", "status 'crashed' is not one of ok, failed"),
                         (",ok,0,,1,0.5", "successor_layers '0' is below 1"),
                         (",ok,3,x,1,0.5", "student_seed 'x' is not a number"),
                         (",ok,3,,-1,0.5", "wall_seconds '-1' is below 0"),
                         (",ok,3,,1,60", "max_class_share '60' is outside [0, 1]")]:
        rows = list(good)
        rows[1] = ROWS[1] + bad
        assert f"row 2: {message}" in _error(tmp_path, [head, *rows])


def test_a_failed_run_may_lack_its_metric_and_stays_in_the_table(tmp_path):
    rows = [r + ",ok" for r in ROWS] + ["t,finetune-3,2,,failed"]
    runs = read_runs_csv(_csv(tmp_path, [HEADER + ",status", *rows]))
    assert len(runs) == 7 and runs["status"].tolist()[-1] == "failed" and np.isnan(runs["test_accuracy"].iloc[-1])


def test_the_same_seed_is_not_a_duplicate_across_groups(tmp_path):
    head = HEADER + ",successor_layers,budget,student_seed"
    rows = ["t,theseus-add,0,0.7,3,100,0", "t,theseus-add,0,0.7,2,100,0", "t,theseus-add,0,0.7,3,200,0",
            "t,theseus-add,0,0.7,3,100,1", "u,theseus-add,0,0.7,3,100,0"]
    assert len(read_runs_csv(_csv(tmp_path, [head, *rows]))) == 5
    message = _error(tmp_path, [head, *rows, "t,theseus-add,0,0.71,3,100,0"])
    assert "rows 1 and 6: the same run twice" in message and "budget 100" in message
    # an empty student seed is the seed itself
    assert "rows 1 and 2" in _error(tmp_path, [head, "t,kd,0,0.7,3,100,0", "t,kd,0,0.7,3,100,"])


def test_degenerate_column_accepts_booleans(tmp_path):
    for values in (["true", "false"], ["1", "0"], ["True", "FALSE"]):
        rows = [r + "," + values[i % 2] for i, r in enumerate(ROWS)]
        runs = read_runs_csv(_csv(tmp_path, [HEADER + ",degenerate", *rows]))
        assert runs["degenerate"].tolist() == [True, False] * 3 and runs["degenerate"].dtype == bool
    rows = [r + ",maybe" for r in ROWS]
    assert "row 1: degenerate 'maybe' is not a boolean" in _error(tmp_path, [HEADER + ",degenerate", *rows])


def test_a_valid_table_reads_as_pandas_reads_it():
    """The checks change nothing in a valid table: the store's own runs.csv comes back as is."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "results" / "default" / "runs.csv"
    if not path.exists():
        pytest.skip("the committed example results are not in this checkout")
    pd.testing.assert_frame_equal(read_runs_csv(path), pd.read_csv(path))


def test_analyze_a_valid_table_still_works(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, *ROWS, "t,finetune-6,2,0.86", "t,finetune-3,2,0.74", "t,theseus-add,2,0.8"])
    assert main(["analyze", str(path), "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "mine.md").exists()


# ---- property: every generated table loads or is one `error:` line with exit 2 -----------------

JUNK = st.one_of(st.sampled_from(["", "abc", "nan", "inf", "-1", "1.5", "75", "2.0", "NA", " ", "maybe",
                                   "crashed", "x,y", "\"q\"\"", "0", "1e309"]),
                 st.text(max_size=6), st.floats(-2, 200).map(lambda x: f"{x:.3f}"))
VALID_CELLS = {
    "task": st.sampled_from(["t", "u"]), "strategy": st.sampled_from(["finetune-3", "finetune-6", "theseus-add", "kd"]),
    "test_accuracy": st.floats(0, 1).map(lambda x: f"{x:.4f}"), "status": st.sampled_from(["ok", "ok", "failed", ""]),
    "successor_layers": st.sampled_from(["3", "3", ""]), "student_seed": st.sampled_from(["", "0", "7"]),
    "degenerate": st.sampled_from(["true", "false", "0", "1", "", "False"]), "budget": st.sampled_from(["100", "200"]),
    "variant": st.sampled_from(["", "seed"]), "dev_accuracy": st.floats(0, 1).map(lambda x: f"{x:.3f}"),
    "wall_seconds": st.floats(0, 100).map(lambda x: f"{x:.1f}"), "extra": st.text(max_size=5),
}


@st.composite
def tables(draw) -> list[list[str]]:
    """A valid runs table (seeds distinct per row), then up to two cells or one column damaged."""
    required = ["task", "strategy", "seed", "test_accuracy"]
    if draw(st.integers(0, 9)) == 0:
        required.remove(draw(st.sampled_from(required)))
    optional = draw(st.lists(st.sampled_from(sorted(VALID_CELLS.keys() - set(required))), max_size=4, unique=True))
    columns = draw(st.permutations(required + optional))
    rows = []
    for i in range(draw(st.integers(0, 6))):
        rows.append([str(i) if c == "seed" else draw(VALID_CELLS[c]) for c in columns])
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(columns) - 1))
        rows[r][c] = draw(JUNK)
    if rows and draw(st.integers(0, 9)) == 0:  # a duplicated run
        rows.append(list(rows[0]))
    return [list(columns), *rows]


class _Loaded(Exception):
    """Raised in place of the statistics: the table passed every check."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables(), command=st.sampled_from(["analyze", "compare"]))
def test_generated_tables_load_or_give_one_error_line(tmp_path, monkeypatch, capsys, table, command):
    from harness.analysis import compare as compare_mod
    from harness.report import pipeline
    from harness.store import schema

    def loaded(runs, *args, **kwargs):
        schema.normalize_runs(runs)  # what every statistic starts from: may refuse, never crash
        raise _Loaded

    monkeypatch.setattr(pipeline, "write_outputs", loaded)
    monkeypatch.setattr(compare_mod, "compare_runs", loaded)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(table)
    path = tmp_path / "generated.csv"
    path.write_text(buffer.getvalue())
    argv = ["analyze", str(path), "--out", str(tmp_path / "a")] if command == "analyze" else \
        ["compare", str(path), str(path)]
    try:
        code = main(argv)
    except _Loaded:
        event("loaded")
        return
    err = capsys.readouterr().err
    event("refused")
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err


# ---------------------------------------------------------------- a long per-example CSV (task-level inference)

def _examples_csv(tmp_path, lead: float, *, n_seeds=8, n_ex=1000, seed=0, name="examples.csv"):
    """A per-example CSV in which theseus-add/seed leads finetune-3 by `lead` points only through
    which examples are in the test sample: 3% of the examples always right for finetune-3 and wrong
    for add/seed, 3% + lead the other way; 1% of each run's answers flipped (small seed noise).
    Labels and predictions as class names."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["neg", "pos"], n_ex)
    other = np.where(labels == "neg", "pos", "neg")
    kind = np.zeros(n_ex, int)
    order = rng.permutation(n_ex)
    n_a, n_b = int(round((0.03 + lead / 100) * n_ex)), int(round(0.03 * n_ex))
    kind[order[:n_a]], kind[order[n_a:n_a + n_b]] = 1, 2
    right = rng.random(n_ex) < 0.85
    lines = ["task,arm,seed,example,label,prediction"]
    for arm in ("finetune-6", "finetune-3", "theseus-add/seed"):
        for s in range(n_seeds):
            ok = right | (rng.random(n_ex) < 0.3) if arm == "finetune-6" else right.copy()
            if arm == "theseus-add/seed":
                ok = np.where(kind == 1, True, np.where(kind == 2, False, ok))
            if arm == "finetune-3":
                ok = np.where(kind == 1, False, np.where(kind == 2, True, ok))
            ok = np.where(rng.random(n_ex) < 0.01, ~ok, ok)
            pred = np.where(ok, labels, other)
            lines += [f"trec,{arm},{s},q{i},{labels[i]},{pred[i]}" for i in range(n_ex)]
    return _csv(tmp_path, lines, name)


def _claim1(path):
    from harness.analysis.groups import analyze
    from harness.store.user_runs import read_user_csv

    runs, examples = read_user_csv(path)
    task = next(r for r in analyze(runs, n_boot=200, examples=examples).claims if r.claim == "1")
    seed_only = next(r for r in analyze(runs, n_boot=200).claims if r.claim == "1")
    return task, seed_only


def test_a_lead_only_through_the_test_sample_is_not_supported_at_the_task_level(tmp_path):
    """The issue's acceptance case: +1.5 points only through which examples happen to be in the test
    sample is not "supported" for claim 1 at the task level, while +4 points in the same layout is;
    the seed-only inference (this test set) calls both supported."""
    small, small_seed_only = _claim1(_examples_csv(tmp_path, 1.5, name="small.csv"))
    large, large_seed_only = _claim1(_examples_csv(tmp_path, 4.0, name="large.csv"))
    assert 1.0 < small.estimate < 2.0 and 3.5 < large.estimate < 4.5
    assert small.inference_unit == large.inference_unit == "task"
    assert small.verdict != "supported" and large.verdict == "supported"
    assert small.verdict_seed_only == large.verdict_seed_only == "supported"
    assert small_seed_only.verdict == large_seed_only.verdict == "supported"
    assert small.se_test_sample > 3 * small.se_seed and "no number of seeds suffices" in small.needs


def test_a_per_example_csv_builds_the_runs_and_examples_tables(tmp_path):
    from harness.store.user_runs import read_user_csv

    path = _examples_csv(tmp_path, 1.0, n_seeds=3, n_ex=50)
    runs, examples = read_user_csv(path)
    assert len(runs) == 9 and len(examples) == 9 * 50
    assert set(runs["arm"]) == {"finetune-6", "finetune-3", "theseus-add/seed"}
    assert set(runs.loc[runs["arm"] == "theseus-add/seed", "variant"]) == {"seed"}
    per_run = examples.groupby("run_id")["correct"].mean()
    assert np.allclose(runs.set_index("run_id")["test_accuracy"], per_run[runs["run_id"]])
    assert examples.groupby("run_id")["example"].apply(lambda e: tuple(sorted(e))).nunique() == 1
    assert not runs["degenerate"].any()
    # a runs CSV still reads as one
    plain = _csv(tmp_path, [HEADER, *ROWS], "plain.csv")
    runs, examples = read_user_csv(plain)
    assert examples is None and len(runs) == len(ROWS)


def test_a_run_predicting_one_class_is_flagged_failed(tmp_path):
    from harness.store.user_runs import read_examples_csv

    lines = ["task,arm,seed,example,label,prediction"]
    lines += [f"t,finetune-3,0,{i},{i % 3},0" for i in range(30)]
    lines += [f"t,finetune-3,1,{i},{i % 3},{i % 3}" for i in range(30)]
    runs, _ = read_examples_csv(_csv(tmp_path, lines))
    assert list(runs.sort_values("seed")["degenerate"]) == [True, False]


@pytest.mark.parametrize("lines, message", [
    (["task,arm,seed,example,label,prediction", "t,finetune-3,0,a,x,x", "t,finetune-3,0,a,x,y"],
     "row 2: example 'a' appears twice in one run"),
    (["task,arm,seed,example,label,prediction", "t,finetune-3,0,a,x,x", "t,finetune-3,1,a,y,y"],
     "row 2: example 'a' has label 'y' here and 'x' in another row"),
    (["task,arm,seed,example,label,prediction", "t,finetune-3,0.5,a,x,x"], "row 1: seed '0.5' is not a whole number"),
    (["task,arm,seed,example,label,prediction", "t,finetune-3,,a,x,x"], "row 1: seed is empty"),
    (["task,arm,seed,example,label,prediction", "t,,0,a,x,x"], "row 1: arm is empty"),
    (["task,arm,seed,example,label,prediction", "t,finetune-3,0,a,,x"], "row 1: label is empty"),
    (["task,arm,seed,example,label,prediction,budget", "t,finetune-3,0,a,x,x,100", "t,finetune-3,0,b,x,x,200"],
     None),
])
def test_bad_per_example_csvs_are_one_line(tmp_path, lines, message):
    from harness.store.user_runs import read_examples_csv

    if message is None:  # two budgets are two runs, not an error
        runs, _ = read_examples_csv(_csv(tmp_path, lines))
        assert len(runs) == 2
        return
    with pytest.raises(HarnessError) as info:
        read_examples_csv(_csv(tmp_path, lines))
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)
