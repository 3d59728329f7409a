"""What a user data source holds now: the content hash that enters its runs' keys, and whether a
store's runs were trained on the files as they are now.

A built-in task is pinned by the sha256 of its archive (harness/data/sources.py), so its name is
its content. A user source (csv:FILE, jsonl:FILE, clue:DIR, hf:LOCAL_PATH) is named by a path
whose file can be edited in place: its runs' keys therefore hash the files' bytes too
(harness/run/identity.py), so an edited file gives new runs, and a predecessor trained on the old
file is never reused (docs/method.md, "Runs and seeds"). Hashes are cached per process by path,
size, inode and modification times (a file modified in the last RACY_SECONDS is hashed again), so planning a sweep of hundreds of runs reads each file once.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from harness.data.sources import file_sha256
from harness.errors import HarnessError

_HASHES: dict[tuple, str] = {}
CLUE_FILES = ("train.json", "dev.json", "test.json")


RACY_SECONDS = 2.0  # a file modified this recently is hashed again each time (an edit within the
                   # file system's timestamp granularity would keep its size and mtime: git's "racy clean")


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    if key in _HASHES:
        return _HASHES[key]
    digest = file_sha256(path)
    if time.time() - st.st_mtime > RACY_SECONDS:
        _HASHES[key] = digest
    return digest


def source_files(spec: str) -> dict[str, Path] | None:
    """The files whose bytes a task spec's data comes from, by a stable name (None: a built-in task
    or a hub dataset, pinned elsewhere). A missing file or folder is a HarnessError naming it."""
    from harness.data.tasks import TASKS

    if spec in TASKS:
        return None
    kind, _, arg = spec.partition(":")
    if kind in ("csv", "jsonl") and arg:
        path = Path(arg)
        if not path.is_file():
            raise HarnessError(f"task {spec}: no such file: {arg}")
        return {path.name: path}
    if kind == "clue" and arg:
        folder = Path(arg)
        if not folder.is_dir():
            raise HarnessError(f"task {spec}: no such CLUE directory: {arg}")
        return {name: folder / name for name in CLUE_FILES if (folder / name).is_file()}
    if kind == "hf" and arg:
        local = Path(arg.partition(":")[0]) if not Path(arg).exists() else Path(arg)
        if local.is_file():
            return {local.name: local}
        if local.is_dir():  # a dataset folder: every file under it, hidden ones (caches, .git) aside
            return {str(p.relative_to(local)): p for p in sorted(local.rglob("*"))
                    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(local).parts)}
        return None  # a hub name: the hub's revision, not a local file, pins it
    return None


def data_content(spec: str) -> str | None:
    """sha256 over the source files of a user task (name and bytes of each, in name order); None for a
    built-in task or a hub dataset. This enters the run key (identity.run_key)."""
    files = source_files(spec)
    if files is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{_cached_sha256(files[name])}\n".encode())
    return digest.hexdigest()


def _stored_hashes(source: dict) -> dict[str, str]:
    """file name -> sha256 as a record's task source names them (csv/jsonl: one file; clue: files)."""
    if source.get("kind") in ("csv", "jsonl") and source.get("file") and source.get("file_sha256"):
        return {Path(source["file"]).name: source["file_sha256"]}
    if source.get("kind") == "clue" and isinstance(source.get("files"), dict):
        return dict(source["files"])
    return {}


def stale_data_warnings(records: list[dict]) -> list[str]:
    """One line per user data source whose stored runs were trained on files that differ from the
    files now (edited in place, or gone): those runs stay in the store and its report, but a sweep
    over the file as it is now trains new runs (their keys hash the content). Built-in tasks and
    hub datasets are not checked (they are pinned)."""
    stale: dict[str, list[str]] = {}  # task -> the stored runs trained on other content
    why: dict[str, str] = {}
    for r in records:
        task = r.get("task") or {}
        source = task.get("source") or {}
        stored = _stored_hashes(source)
        if not stored:
            continue
        name = task.get("name") or r.get("config", {}).get("task", "?")
        folder = Path(source["file"]).parent if "file" in source else Path(source.get("directory", ""))
        for file, sha in stored.items():
            path = folder / file
            try:
                now = _cached_sha256(path)
            except OSError:
                now = None
            if now != sha:
                stale.setdefault(name, []).append(r.get("run_id", "?"))
                why[name] = (f"{path} is gone" if now is None else
                             f"{path} now has sha256 {now[:12]}, the runs were trained on {sha[:12]}")
                break
    return [f"warning: {len(runs)} stored run(s) of {name} were trained on other data ({why[name]}); they are "
            f"kept and reported as they are, and runs over the file as it is now get new keys (trained anew)"
            for name, runs in sorted(stale.items())]
