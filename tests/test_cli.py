"""Bad input: one clear line on stderr, exit status 2, nothing written."""

from __future__ import annotations

import json

import pytest

from harness.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def base(tiny_model_dir, tiny_task, tmp_path):
    return ["run", "--task", tiny_task, "--model", tiny_model_dir, "--train-size", "100", "--dev-size", "40",
            "--test-size", "40", "--epochs", "1", "--lr", "3e-3", "--max-length", "16", "--out", str(tmp_path / "store")]


def _csv(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return f"csv:{path}"


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--layers", "9"], "cannot fine-tune the first 9 layers of a 4-layer model"),
    (["--strategy", "theseus-binary", "--layers", "3"], "must be divisible by successor layers (3)"),
    (["--strategy", "theseus-binary", "--layers", "2", "--option", "replacement_rate=2"],
     "replacement rate must be in (0, 1]"),
    (["--strategy", "theseus-add", "--layers", "2", "--option", "k=1"], "k must be in [0, 1)"),
    (["--strategy", "theseus-binary", "--variant", "fast"], "has no variant 'fast'"),
    (["--task", "no-such-task"], "no-such-task"),
    (["--model", "/nonexistent/model"], "could not load model"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--train-size", "100000"], "split sizes"),
    (["--defaults", "bogus"], "argument --defaults: invalid choice: 'bogus' (choose from 'studied', 'seed')"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, base, tmp_path, extra, message):
    code, out, err = _run(capsys, *base, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "store").exists(), "nothing may be written for bad input"


@pytest.mark.parametrize("content, message", [
    ("text,label\n", "no rows"),
    ("words,label\nhello,a\n", "text"),
])
def test_malformed_data_file(capsys, base, tmp_path, content, message):
    args = list(base)
    args[args.index("--task") + 1] = _csv(tmp_path, content)
    code, _, err = _run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_bad_json_line_names_its_line(capsys, base, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "good", "label": "a"}) + "\n{oops\n")
    args = list(base)
    args[args.index("--task") + 1] = f"jsonl:{path}"
    code, _, err = _run(capsys, *args)
    assert code == 2 and "bad.jsonl:2:" in err and err.count("\n") == 1, err


def test_clue_label_mismatch(capsys, base, tmp_path):
    folder = tmp_path / "clue"
    folder.mkdir()
    (folder / "train.json").write_text("".join(json.dumps({"sentence": f"good {i}", "label": str(i % 2)}) + "\n"
                                               for i in range(20)))
    (folder / "dev.json").write_text(json.dumps({"sentence": "bad", "label": "7"}) + "\n")
    args = list(base)
    args[args.index("--task") + 1] = f"clue:{folder}"
    code, _, err = _run(capsys, *args)
    assert code == 2 and "label set mismatch" in err, err


def test_chinese_task_with_the_english_model_is_refused_before_any_download(capsys, tmp_path, monkeypatch):
    from harness.data import sources

    monkeypatch.setattr(sources, "fetch", lambda name: (_ for _ in ()).throw(AssertionError(f"fetched {name}")))
    monkeypatch.setattr("harness.run.runner.load_pretrained", lambda name: type("P", (), {"num_layers": 6})())
    code, _, err = _run(capsys, "run", "--task", "thucnews-10", "--model", "minilm-l6", "--out", str(tmp_path / "s"))
    assert code == 2 and "is Chinese but model 'minilm-l6' is English-only" in err, err


def test_unknown_command_and_bad_option_syntax(capsys, base):
    assert _run(capsys, "frobnicate")[0] == 2
    code, _, err = _run(capsys, *base, "--option", "noequals")
    assert code == 2 and "KEY=VALUE" in err


def test_good_run_writes_one_record(capsys, base, tmp_path):
    code, out, err = _run(capsys, *base, "--layers", "2")
    assert code == 0, err
    records = list((tmp_path / "store" / "runs").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["strategy"] == "finetune-2" and record["status"] == "ok"
    assert "test acc" in out
    assert len(list((tmp_path / "store" / "splits").glob("*.json"))) == 1


def test_list_names_every_strategy_and_task(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in ("finetune", "theseus-binary", "theseus-add", "two-stage", "kd", "rt-polarity", "trec-6",
                 "thucnews-10", "minilm-l6", "variant official", "clue:DIR"):
        assert name in out, name
    assert "Chinese" in out or "zh" in out
    assert "\n  studied        the budget study's converged settings (default): lr 1e-4, 567 student" in out
    assert "\n  seed           the seed's settings: lr 5e-5, 3 epochs, dev after every epoch\n" in out


# ---- the user's own data: language from the text, sizes from the data ---------------------------

def _write_clue(folder, texts, labels):
    folder.mkdir()
    for name, part in (("train", slice(0, 120)), ("dev", slice(120, 160))):
        (folder / f"{name}.json").write_text("".join(
            json.dumps({"sentence": t, "label": y}, ensure_ascii=False) + "\n"
            for t, y in zip(texts[part], labels[part])), encoding="utf-8")
    return f"clue:{folder}"


def _as_minilm(monkeypatch, tiny_model_dir):
    """Load the tiny model under the bundled English-only model's name (no download)."""
    from harness.run import runner

    real = runner.load_pretrained
    monkeypatch.setattr(runner, "load_pretrained", lambda name: real(tiny_model_dir if name == "minilm-l6" else name))


def test_an_english_clue_directory_trains_with_the_english_model(capsys, tmp_path, monkeypatch, tiny_model_dir):
    from conftest import make_texts

    _as_minilm(monkeypatch, tiny_model_dir)
    task = _write_clue(tmp_path / "clue-en", *make_texts(160))
    code, out, err = _run(capsys, "run", "--task", task, "--model", "minilm-l6", "--epochs", "1", "--max-length", "16",
                          "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert "split sizes: train 105, dev 15, test 40 (train/dev/test sized for a data set of 160 examples" in out


def test_a_chinese_clue_directory_with_the_english_model_is_refused_in_one_line(capsys, tmp_path, monkeypatch,
                                                                                 tiny_model_dir):
    _as_minilm(monkeypatch, tiny_model_dir)
    texts = ["股市上涨", "球队夺冠", "新片上映", "基金下跌"] * 40
    task = _write_clue(tmp_path / "clue-zh", texts, ["a", "b", "c", "a"] * 40)
    code, _, err = _run(capsys, "run", "--task", task, "--model", "minilm-l6", "--out", str(tmp_path / "s"))
    assert code == 2 and err.count("\n") == 1
    assert f"error: task '{task}' is Chinese but model 'minilm-l6' is English-only" in err
    assert not (tmp_path / "s").exists()


def test_text_the_tokenizer_cannot_read_is_refused_unless_forced(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "zh.csv"
    rows = "".join(f"股市上涨{i},a\n球队夺冠{i},b\n" for i in range(60))
    path.write_text("text,label\n" + rows, encoding="utf-8")
    args = ["run", "--task", f"csv:{path}", "--model", tiny_model_dir, "--epochs", "1", "--max-length", "16",
            "--out", str(tmp_path / "s")]
    code, _, err = _run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and "to [UNK]: wrong language for this tokenizer" in err, err
    code, _, err = _run(capsys, *args, "--force")
    assert code == 0, err


def test_a_small_user_csv_trains_without_size_flags_and_the_summary_shows_the_sizes(capsys, tmp_path, tiny_model_dir):
    """The issue's case: 2,700 rows failed with "split sizes [4000, 500, 2000] need 6500 examples"."""
    import csv

    from conftest import make_texts

    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(*make_texts(2700))])
    args = ["run", "--task", f"csv:{path}", "--model", tiny_model_dir, "--epochs", "1", "--max-length", "16",
            "--lr", "3e-3", "--out", str(tmp_path / "s")]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert ("split sizes: train 1,890, dev 270, test 540 (train/dev/test sized for a data set of 2,700 examples; "
            "--train-size, --dev-size and --test-size set them)") in out
    code, _, err = _run(capsys, *args, "--train-size", "4000", "--dev-size", "500", "--test-size", "2000")
    assert code == 2 and "split sizes [4000, 500, 2000] need 6500 examples but the task has 2700" in err


# ---- the defaults a user meets first: the budget study's converged settings ------------------------

PROFILE_KEYS = ("lr", "budget", "eval_points", "epochs")


def _run_record(capsys, out, *argv):
    code, text, err = _run(capsys, *argv, "--out", str(out))
    assert code == 0, err
    (path,) = (out / "runs").glob("*.json")
    record = json.loads(path.read_text())
    return record, {k: record["config"][k] for k in PROFILE_KEYS}, text


def test_run_with_no_optional_flags_trains_the_studied_defaults_and_names_them(capsys, tmp_path, tiny_model_dir):
    """The issue's case on a small two-class CLUE folder: `run --task clue:DIR --strategy finetune --layers 3`.
    The seed's settings (3 epochs at 5e-5: 12 steps of 105 examples) end predicting one class; the
    defaults (567 steps at 1e-4, however small the data) learn the task."""
    from conftest import make_texts

    args = ["run", "--task", _write_clue(tmp_path / "clue", *make_texts(160)), "--model", tiny_model_dir,
            "--strategy", "finetune", "--layers", "3"]
    record, used, text = _run_record(capsys, tmp_path / "studied", *args)
    assert used == {"lr": 1e-4, "budget": 567, "eval_points": 10, "epochs": 3}
    assert record["final"]["steps"] == 567 and not record["final"]["degenerate"]
    assert ("defaults: studied (the budget study's converged settings): lr 1e-4, 567 student optimizer steps "
            "(the predecessor 3 epochs), dev at 10 evenly spaced steps; --defaults seed: the seed's settings") in text
    record, used, text = _run_record(capsys, tmp_path / "seed", *args, "--defaults", "seed")
    assert used == {"lr": 5e-5, "budget": None, "eval_points": 0, "epochs": 3}
    assert record["final"]["steps"] == 3 * 4 and record["final"]["degenerate"]
    assert "defaults: seed (the seed's settings): lr 5e-5, 3 epochs, dev after every epoch;" in text
    # --epochs alone is a run of that many epochs (no budget); a flag given is named in the summary
    record, used, text = _run_record(capsys, tmp_path / "given", *args, "--epochs", "1", "--lr", "3e-3")
    assert used == {"lr": 3e-3, "budget": None, "eval_points": 10, "epochs": 1} and record["final"]["steps"] == 4
    assert "defaults: studied (the budget study's converged settings): lr 1e-4, " in text
    assert "; given instead: --lr, --epochs;" in text


def test_design_checks_a_presets_error_rate_and_power_before_any_run(tmp_path, capsys):
    """`design` simulates the whole claims procedure at the preset's design: the error rate with no
    arm differing stays at 5% or below, power grows with the effect, and the seeds are the preset's."""
    import json

    from harness.cli import main

    out = tmp_path / "design.json"
    assert main(["design", "--preset", "default", "--sims", "200", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["seeds"] == d["fixed_seeds"] == 5 and d["groups"] == 1 and len(d["arms"]) == 11
    assert d["fwer_null"] <= 0.05 + 2.5 * (0.05 * 0.95 / 200) ** 0.5
    assert d["power"]["0.5"] <= d["power"]["1.5"] and d["power"]["1.5"] > d["fwer_null"]
    assert "any false primary verdict" in capsys.readouterr().out
    assert main(["design", "--preset", "default", "--seeds", "2"]) == 2
    assert capsys.readouterr().err.startswith("error: --seeds must be >= 3")


# ---- a CLI that explains itself (issue 34) ----------------------------------------------------------

def _options(parser):
    """(command, option string, action) of every option of every subcommand."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and not isinstance(
                    action, argparse._HelpAction):
                yield name, action.option_strings[0], action


def test_every_option_has_help_and_shows_its_default():
    import argparse

    from harness.cli import _Formatter, build_parser

    parser = build_parser()
    seen = 0
    for name, option, action in _options(parser):
        seen += 1
        assert action.help and action.help.strip(), f"{name} {option} has no help text"
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) and option != "--no-warmup":
            continue  # a flag: off unless given
        shown = _Formatter("x")._get_help_string(action)
        assert "default" in shown, f"{name} {option}: no default shown in {shown!r}"
    assert seen > 60


def test_every_parser_refuses_abbreviations():
    from harness.cli import build_parser

    parser = build_parser()
    assert not parser.allow_abbrev
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    assert all(not p.allow_abbrev for p in sub.choices.values())


def test_version_and_bare_command_exit_0(capsys):
    from harness import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("list", "run", "run-all", "copy-preset", "design", "report", "analyze", "compare", "bench"):
        assert f"    {command}" in out


def test_copy_preset_copies_a_shipped_preset_under_its_new_name(capsys, tmp_path, monkeypatch):
    from harness.sweep.plan import PRESETS, load_sweep

    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "copy-preset", "smoke")
    assert code == 0, err
    assert (tmp_path / "smoke.toml").read_text() == (PRESETS / "smoke.toml").read_text()
    assert "run-all --config" in out
    code, out, err = _run(capsys, "copy-preset", "smoke", "mine.toml")
    assert code == 0 and load_sweep(config_path=tmp_path / "mine.toml").name == "mine"
    code, _, err = _run(capsys, "copy-preset", "smoke", "mine.toml")
    assert code == 2 and "mine.toml exists" in err and "--force" in err
    assert _run(capsys, "copy-preset", "smoke", "mine.toml", "--force")[0] == 0
    (tmp_path / "d").mkdir()
    assert _run(capsys, "copy-preset", "default", "d")[0] == 0 and (tmp_path / "d" / "default.toml").is_file()
    code, _, err = _run(capsys, "copy-preset", "nope")
    assert code == 2 and err.startswith("error: unknown preset 'nope'")


def test_design_writes_json_with_json_and_still_reads_the_old_out(tmp_path, capsys):
    assert main(["design", "--preset", "smoke", "--seeds", "3", "--sims", "10", "--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["seeds"] == 3
    assert main(["design", "--preset", "smoke", "--seeds", "3", "--sims", "10", "--out", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "b.json").is_file() and "is now `design --json FILE`" in capsys.readouterr().err
