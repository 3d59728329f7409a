"""The README stays a few screens long and every page it points to exists.

README.md: at most 300 lines, the quick start's commands within its first 40, every relative link
(docs/ pages, reports) resolving to a file and, where it names one, to a heading of that file. No
"SPEC" citation in README.md, harness/ or the shipped presets: there is no SPEC file in the
repository, so a citation must name a docs/method.md section instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
SPEC = re.compile(r"\bSPEC\b")   # a citation of SPEC or SPEC.md; TORCH_SPEC (an environment variable) is no citation


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    in_code = False
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_slug_follows_github():
    assert _slug(" Your own runs CSV: `analyze`") == "your-own-runs-csv-analyze"
    assert _slug("Did a change move the results? `compare`") == "did-a-change-move-the-results-compare"


def test_readme_fits_a_few_screens():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"


def test_quick_start_within_first_40_lines():
    head = README.read_text(encoding="utf-8").splitlines()[:40]
    assert "## Quick start" in head
    start = head.index("## Quick start")
    commands = [line for line in head[start:] if line.startswith(("./run-all", "./run-tests"))]
    assert len(commands) == 2, "the two quick-start commands must both be within the first 40 lines"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve()
        assert file.exists(), f"{page.name}: link to {target} names no file"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: link to {target} names no heading"


def test_readme_reaches_docs_pages():
    linked = {t.partition("#")[0] for t in _relative_links(README)}
    pages = {t for t in linked if t.startswith("docs/")}
    assert len(pages) >= 3
    assert "docs/method.md" in pages and "report/README.md" in linked


def test_no_spec_citation():
    files = [README, *(ROOT / "harness").rglob("*.py"), *(ROOT / "harness" / "sweep" / "presets").glob("*.toml")]
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in files
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if SPEC.search(line)]
    assert not hits, "cite docs/method.md sections, not a SPEC: " + ", ".join(hits)
