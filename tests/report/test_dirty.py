"""Runs made from a dirty working tree: the record lists the uncommitted files, and the report says how
many runs and whether any of those files is the harness's own code."""

from __future__ import annotations

import subprocess

from harness.report.pipeline import dirty_summary
from harness.report.sections.summary import dirty_details
from harness.run.runner import git_dirty_files


def test_the_uncommitted_tracked_files_are_listed(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name in ("a.py", "b.md"):
        (tmp_path / name).write_text("x\n")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    assert git_dirty_files(tmp_path) == []
    git_dirty_files.cache_clear()  # read once per process: a worker runs the code it started with
    (tmp_path / "b.md").write_text("a longer change\n")
    (tmp_path / "new.txt").write_text("untracked\n")
    assert git_dirty_files(tmp_path) == ["b.md"]


def _record(commit: str, files=None) -> dict:
    prov = {"git_commit": commit, **({"git_dirty_files": files} if files else {})}
    return {"provenance": prov}


def test_the_report_says_which_files_and_whether_they_are_harness_code():
    docs_only = [_record("abc-dirty", ["docs/x.md"]), _record("abc-dirty", ["docs/x.md", "tests/t.py"]),
                 _record("abc"), _record("old-dirty")]
    d = dirty_summary(docs_only)
    assert d == {"runs": 3, "of": 4, "files": {"docs/x.md": 2, "tests/t.py": 1}, "unlisted": 1}
    text = dirty_details({"git_dirty": d})
    assert text.startswith("3 of 4 runs were made from a dirty tree")
    assert "`docs/x.md` (2)" in text and "none is the harness package's code" in text
    assert "1 run(s) predate records listing the changed files" in text
    code = dirty_details({"git_dirty": dirty_summary([_record("abc-dirty", ["harness/training/loop.py"])])})
    assert "1 of them are the harness's own code, so those runs' code is not a commit" in code
    assert dirty_details({"git_dirty": dirty_summary([_record("abc")])}) == ""
