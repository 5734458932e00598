"""The front door stays short and every relative link in the user docs resolves to a committed file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    broken = []
    for url in LINK.findall(text):
        if re.match(r"^(https?:|mailto:|#)", url):
            continue
        target = (page.parent / url.split("#", 1)[0]).resolve()
        if not target.exists():
            broken.append(url)
    assert not broken, f"{page.name}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_docs_name_no_issue_numbers(page):
    assert not re.search(r"\bissues? #?\d+", page.read_text(), flags=re.I)


def test_the_api_page_lists_every_step_metric():
    """docs/api.md names every ``oar/*`` metric the OAR step logs (``step_metrics``), and no other."""
    source = (ROOT / "src" / "oarl" / "batch" / "step.py").read_text()
    logged = set(re.findall(r'"(oar/[a-z0-9_]+)":', source))
    documented = set(re.findall(r"`(oar/[a-z0-9_]+)`", (ROOT / "docs" / "api.md").read_text()))
    assert logged and logged == documented


def test_the_readme_families_table_is_the_committed_studies():
    """The README's families x testbeds table is what ``benchmarks/families_testbeds.py`` prints from the
    committed study folders (rerun it with ``--write README.md`` after a study changes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "families_testbeds", ROOT / "benchmarks" / "families_testbeds.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (ROOT / "README.md").read_text()
    written = readme.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0].strip()
    assert written == mod.table().strip()
