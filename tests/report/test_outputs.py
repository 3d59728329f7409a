"""Works from any directory: presets ship inside the package, outputs follow the working directory
or --out, and nothing is ever written inside the package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import write_tiny_sweep

import harness
from harness.cli import main
from harness.sweep import execute
from harness.sweep import plan as sweep_mod

PACKAGE = Path(harness.__file__).resolve().parent
REPO = PACKAGE.parent


def _package_files() -> dict[str, int]:
    """Every file in the package that is not source (code, presets) or bytecode, with its mtime,
    and the test sweep's outputs next to the package (an installed package's parent is
    site-packages): where a stray output would show. Source files are left out so that editing
    the package meanwhile does not count as a write."""
    files = [p for p in PACKAGE.rglob("*") if "__pycache__" not in p.parts and p.suffix not in (".py", ".toml")]
    files += [REPO / "report" / "tiny.md", *(REPO / "results" / "tiny").rglob("*")]
    return {str(p.relative_to(REPO)): p.stat().st_mtime_ns for p in files if p.is_file()}


def _tiny_sweep(tmp_path: Path, model: str, task: str) -> Path:
    return write_tiny_sweep(tmp_path / "config" / "tiny.toml", model, task)


def test_presets_ship_in_the_package_and_are_found_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    presets = sweep_mod.list_presets()
    assert {"default", "default-fp32", "smoke", "full", "iflytek"} <= set(presets)
    assert sweep_mod.PRESETS == PACKAGE / "sweep" / "presets"
    assert sweep_mod.load_sweep("smoke").name == "smoke"
    assert main(["list"]) == 0
    assert "\n  smoke " in capsys.readouterr().out
    assert not (REPO / "experiments").exists(), "presets live in harness/sweep/presets only"


def test_the_wheel_declares_every_preset_as_package_data():
    """pyproject's package-data glob must cover every preset, or a wheel ships without them
    (.ci/run installs the wheel non-editably and runs a preset from an empty directory)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["harness.sweep"]
    presets = sorted((PACKAGE / "sweep" / "presets").glob("*.toml"))
    assert presets
    for preset in presets:
        assert any(preset.relative_to(PACKAGE / "sweep").match(g) for g in globs), preset.name


def test_unknown_preset_names_the_presets_and_a_path_points_to_config(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="presets: .*smoke"):
        sweep_mod.load_sweep(preset="nope")
    with pytest.raises(HarnessError, match="--config ../x.toml"):
        sweep_mod.load_sweep(preset="../x.toml")


def test_run_all_writes_under_the_working_directory_by_default(tiny_model_dir, tiny_task, tmp_path, monkeypatch):
    config = _tiny_sweep(tmp_path, tiny_model_dir, tiny_task)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _package_files()
    assert execute.run_sweep(config_path=config, say=lambda *_: None) == 0
    assert len(list((work / "results" / "tiny" / "runs").glob("*.json"))) == 2
    assert (work / "results" / "tiny" / "runs.csv").exists() and (work / "results" / "tiny" / "tables").is_dir()
    assert (work / "report" / "tiny.md").exists() and (work / "report" / "README.md").exists()
    # `report` on the default store writes where run-all did
    (work / "report" / "tiny.md").unlink()
    assert main(["report", "results/tiny"]) == 0
    assert (work / "report" / "tiny.md").exists()
    assert _package_files() == before, "nothing may be written inside the package"


def test_out_puts_everything_of_the_sweep_under_it(tiny_model_dir, tiny_task, tmp_path, monkeypatch):
    config = _tiny_sweep(tmp_path, tiny_model_dir, tiny_task)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _package_files()
    out = tmp_path / "elsewhere"
    assert main(["run-all", "--config", str(config), "--out", str(out)]) == 0
    assert (out / "report" / "tiny.md").exists() and (out / "runs.csv").exists() and (out / "plots").is_dir()
    assert list(work.iterdir()) == [], "with --out nothing lands in the working directory"
    report = (out / "report" / "tiny.md").read_text()
    assert "](../plots/" in report  # figures linked relative to the report
    # `report DIR` on a store that is not results/<name> rebuilds the report inside DIR
    (out / "report" / "tiny.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "tiny.md").exists() and list(work.iterdir()) == []
    # --report-dir says otherwise
    assert main(["report", str(out), "--report-dir", str(tmp_path / "reports")]) == 0
    assert (tmp_path / "reports" / "tiny.md").exists()
    assert _package_files() == before


def test_single_run_store_defaults_to_the_working_directory(base_args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(base_args) == 0
    records = list((tmp_path / "results" / "runs" / "runs").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"


@pytest.fixture
def base_args(tiny_model_dir, tiny_task):
    return ["run", "--task", tiny_task, "--model", tiny_model_dir, "--train-size", "100", "--dev-size", "40",
            "--test-size", "40", "--epochs", "1", "--lr", "3e-3", "--max-length", "16"]


def test_python_m_harness_list_runs_from_another_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "presets:" in out.stdout and "\n  default " in out.stdout
    assert list(tmp_path.iterdir()) == []
