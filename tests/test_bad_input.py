"""Issue 33's done-when checks through the CLI: a user's edited data never reuses old runs, and
every mistake stops before any work with one `error:` line and exit status 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_texts, write_tiny_sweep

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent


def _main(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli(*argv, cwd=None, timeout=300):
    """`python -m harness ARGV` in a fresh process: (exit status, stdout, stderr, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def _write_csv(path: Path, n: int, seed: int = 0, columns=("text", "label")) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([columns, *zip(*make_texts(n, seed))])
    return path


def _one_error_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_editing_a_csv_in_place_gives_a_new_run_key(tmp_path, tiny_model_dir):
    """`run --task csv:F` twice with F edited in place between: two records, different keys and data hashes."""
    data = _write_csv(tmp_path / "mine.csv", 300)
    args = ["run", "--task", f"csv:{data}", "--model", tiny_model_dir, "--layers", "2", "--budget", "2",
            "--max-length", "16", "--train-size", "100", "--dev-size", "20", "--test-size", "100",
            "--out", tmp_path / "O"]
    code, _, err, _ = _cli(*args)
    assert code == 0, err
    rows = data.read_text().splitlines()
    flipped = [r.replace(",pos", ",NEG").replace(",neg", ",pos").replace(",NEG", ",neg") for r in rows[101:201]]
    data.write_text("\n".join(rows[:101] + flipped + rows[201:]) + "\n")  # labels of 100 rows flipped, same size
    code, _, err, _ = _cli(*args)
    assert code == 0, err
    records = [json.loads(p.read_text()) for p in (tmp_path / "O" / "runs").glob("*.json")]
    assert len(records) == 2
    assert len({r["run_id"] for r in records}) == 2
    assert len({r["task"]["data_hash"] for r in records}) == 2
    assert len({r["task"]["source"]["file_sha256"] for r in records}) == 2


def test_only_an_arm_not_in_the_sweep_is_refused_before_any_training(capsys, tmp_path, tiny_model_dir, tiny_task):
    config = write_tiny_sweep(tmp_path / "c.toml", tiny_model_dir, tiny_task, base={"test_size": 100})
    code, _, err = _main(capsys, "run-all", "--config", config, "--only", "kd", "--out", tmp_path / "s")
    _one_error_line(err, "--only kd: no such arm or family in sweep tiny", "finetune-2", "finetune-4")
    assert code == 2 and not (tmp_path / "s").exists()


def test_run_out_an_existing_file_fails_fast_without_a_traceback(tmp_path, tiny_task):
    target = tmp_path / "a-file"
    target.write_text("x")
    code, out, err, seconds = _cli("run", "--task", tiny_task, "--out", target)
    assert code == 2 and seconds < 60
    _one_error_line(err, str(target), "is a file")
    assert target.read_text() == "x"


@pytest.mark.parametrize("argv, words", [
    (["run-all", "--seed", "2"], ["unrecognized arguments: --seed 2"]),
    (["run-all", "--preset", "smoke", "--config", "C.toml"], ["--config", "not allowed with argument --preset"]),
    (["run", "--lab", "x"], ["unrecognized arguments: --lab"]),
])
def test_no_prefix_matching_and_no_preset_beside_a_config(capsys, argv, words):
    code, _, err = _main(capsys, *argv)
    assert code == 2
    _one_error_line(err, *words)


@pytest.mark.parametrize("command", [
    lambda f, c: ["run-all", "--config", c, "--out", f],
    lambda f, c: ["run-all", "--config", c, "--out", f.parent / "fresh", "--report-dir", f],
    lambda f, c: ["run-all", "--config", c, "--out", f / "below"],
    lambda f, c: ["report", f],
    lambda f, c: ["analyze", c, "--out", f],
    lambda f, c: ["compare", c, c, "--out", f],
    lambda f, c: ["design", "--config", c, "--json", f / "x.json"],
])
def test_a_file_where_a_folder_is_needed_is_one_error_line(capsys, tmp_path, tiny_model_dir, tiny_task, command):
    config = write_tiny_sweep(tmp_path / "c.toml", tiny_model_dir, tiny_task, base={"test_size": 100})
    target = tmp_path / "a-file"
    target.write_text("x")
    code, _, err = _main(capsys, *command(target, config))
    assert code == 2
    _one_error_line(err, str(target))
    assert not (tmp_path / "fresh").exists()


def test_a_wrong_label_column_in_a_sweep_is_one_line_naming_the_file_and_key(capsys, tmp_path, tiny_model_dir):
    data = _write_csv(tmp_path / "mine.csv", 300)
    config = write_tiny_sweep(tmp_path / "mine.toml", tiny_model_dir, f"csv:{data}",
                              base={"label_column": "sentiment", "test_size": 100})
    code, _, err = _main(capsys, "run-all", "--config", config, "--out", tmp_path / "s")
    assert code == 2
    _one_error_line(err, "sweep config mine.toml", "[base] label_column = 'sentiment'", str(data),
                    "missing column 'sentiment'")
    assert not (tmp_path / "s").exists(), "no record, no manifest"


def test_a_wrong_text_column_in_an_arm_names_that_arm(capsys, tmp_path, tiny_model_dir):
    data = _write_csv(tmp_path / "mine.csv", 300)
    arms = ({"strategy": "finetune", "layers": "predecessor"}, {"strategy": "finetune", "set": {"text_column": "t"}})
    config = write_tiny_sweep(tmp_path / "mine.toml", tiny_model_dir, f"csv:{data}", arms=arms,
                              base={"test_size": 100})
    code, _, err = _main(capsys, "run-all", "--config", config, "--out", tmp_path / "s")
    assert code == 2
    _one_error_line(err, "[[arms]] #2 set text_column = 't'", "missing column 't'")


@pytest.mark.min_test_size
def test_a_40_row_csv_with_default_sizes_is_refused_naming_the_test_size(capsys, tmp_path, tiny_model_dir):
    data = _write_csv(tmp_path / "small.csv", 40)
    code, out, err = _main(capsys, "run", "--task", f"csv:{data}", "--model", tiny_model_dir, "--out", tmp_path / "O")
    assert code == 2, (out, err)
    _one_error_line(err, "the test split would have 8 examples", "12.50 points", "--allow-small-test")
    assert not (tmp_path / "O" / "runs").exists()
    config = tmp_path / "small.toml"  # no sizes: chosen from the data, as `run` chooses them
    config.write_text(f'name = "small"\nseeds = 1\nsuccessor_layers = [2]\n[base]\ntask = "csv:{data}"\n'
                      f'model = "{tiny_model_dir}"\n[[arms]]\nstrategy = "finetune"\n')
    code, _, err = _main(capsys, "run-all", "--config", config, "--out", tmp_path / "s")
    assert code == 2
    _one_error_line(err, "sweep config small.toml", "test_size", "the test split would have 8 examples",
                    "allow_small_test = true")
    assert not (tmp_path / "s").exists()
    code, out, err = _main(capsys, "run-all", "--config", config, "--out", tmp_path / "s", "--allow-small-test",
                           "--dry-run")
    assert code == 0, err
    assert "nothing trained (--dry-run)" in out and not (tmp_path / "s").exists()
