"""A user data source's content in the run key, and stores trained on files that have since changed."""

from __future__ import annotations

import json

import pytest

from harness.data import content
from harness.errors import HarnessError
from harness.run import identity
from harness.training.config import RunConfig


def _write(path, text):
    path.write_text(text)
    return path


def test_editing_a_csv_in_place_changes_the_run_and_predecessor_keys(tmp_path):
    data = _write(tmp_path / "d.csv", "text,label\na,x\nb,y\n")
    config = RunConfig(task=f"csv:{data}", strategy="kd", predecessor_layers=6)
    before = (identity.key_of(config), identity.predecessor_key(config, 6, identity.CODE_VERSION))
    assert identity.key_of(config) == before[0], "the same bytes give the same key"
    _write(data, "text,label\na,y\nb,x\n")  # same size, labels swapped
    after = (identity.key_of(config), identity.predecessor_key(config, 6, identity.CODE_VERSION))
    assert after[0] != before[0] and after[1] != before[1]
    _write(data, "text,label\na,x\nb,y\n")
    assert identity.key_of(config) == before[0], "restoring the bytes restores the key"


def test_built_in_tasks_and_hub_names_hold_no_content_hash(tmp_path):
    assert content.data_content("rt-polarity") is None
    assert content.data_content("hf:nyu-mll/glue:sst2") is None
    assert identity.key_of(RunConfig()) == identity.run_key(RunConfig(), identity.CODE_VERSION)


def test_clue_folders_and_local_hf_folders_hash_every_file(tmp_path):
    folder = tmp_path / "clue"
    folder.mkdir()
    _write(folder / "train.json", '{"sentence": "a", "label": "1"}\n')
    _write(folder / "dev.json", '{"sentence": "b", "label": "1"}\n')
    first = content.data_content(f"clue:{folder}")
    _write(folder / "dev.json", '{"sentence": "c", "label": "1"}\n')
    assert content.data_content(f"clue:{folder}") != first
    _write(folder / "notes.txt", "not part of CLUE's layout")
    second = content.data_content(f"clue:{folder}")
    assert content.data_content(f"clue:{folder}") == second
    hf = tmp_path / "hfdata"
    (hf / "data").mkdir(parents=True)
    _write(hf / "data" / "train.csv", "text,label\na,x\n")
    one = content.data_content(f"hf:{hf}")
    _write(hf / "data" / "test.csv", "text,label\nb,x\n")
    assert content.data_content(f"hf:{hf}") != one and content.data_content(f"hf:{hf}:default") is not None


def test_a_missing_user_file_is_one_error_naming_it(tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        content.data_content(f"csv:{tmp_path / 'gone.csv'}")
    with pytest.raises(HarnessError, match="no such CLUE directory"):
        content.data_content(f"clue:{tmp_path / 'gone'}")


def test_stale_data_warnings_name_each_changed_source_once(tmp_path):
    from harness.data.sources import file_sha256

    data = _write(tmp_path / "d.csv", "text,label\na,x\nb,y\n")
    record = {"run_id": "r1", "task": {"name": f"csv:{data}", "source": {
        "kind": "csv", "file": str(data), "file_sha256": file_sha256(data)}}}
    builtin = {"run_id": "r0", "task": {"name": "rt-polarity", "source": {"kind": "builtin", "file": "/x",
                                                                          "file_sha256": "0" * 64}}}
    assert content.stale_data_warnings([record, builtin]) == []
    _write(data, "text,label\na,y\n")
    lines = content.stale_data_warnings([record, json.loads(json.dumps(record)) | {"run_id": "r2"}, builtin])
    assert len(lines) == 1 and lines[0].startswith("warning: 2 stored run(s) of csv:") and "now has sha256" in lines[0]
    data.unlink()
    assert "is gone" in content.stale_data_warnings([record])[0]
