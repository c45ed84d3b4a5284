"""The docs as a reader meets them: every relative link and anchor resolves, the README links each
reference page once, and each page stays a page (≤ 12 KB; measurement logs live in docs/notes/)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(path: Path) -> str:
    return re.sub(r"```.*?```", "", path.read_text(), flags=re.S)


def anchors(path: Path) -> set:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces as dashes, repeats numbered."""
    found, seen = set(), Counter()
    for heading in re.findall(r"^#{1,6}\s+(.*)$", prose(path), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(dest):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


def test_the_readme_links_each_page_once_and_pages_stay_short():
    linked = Counter(t.partition("#")[0] for t in LINK.findall(prose(ROOT / "README.md")) if t.startswith("docs/"))
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages
    assert {f"docs/{p.name}": linked[f"docs/{p.name}"] for p in pages} == {f"docs/{p.name}": 1 for p in pages}
    assert [p.name for p in pages if p.stat().st_size > 12 * 1024] == []
