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
    from harness import sources

    monkeypatch.setattr(sources, "fetch", lambda name: (_ for _ in ()).throw(AssertionError(f"fetched {name}")))
    monkeypatch.setattr("harness.runner.load_pretrained", lambda name: type("P", (), {"num_layers": 6})())
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
