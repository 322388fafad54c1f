"""Every relative link and picture of the user docs (README.md, docs/*.md) points at a file of the repository."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
# [text](target) and ![alt](target); the target up to a space, '#' or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\((?P<target>[^)\s#]*)(?:#[^)\s]*)?\)')
FENCE = re.compile(r'^(```|~~~).*?^\1', re.MULTILINE | re.DOTALL)


def relative_targets(page: pathlib.Path) -> list[str]:
    text = FENCE.sub('', page.read_text(encoding='utf-8'))  # examples in code blocks are not links
    return [m.group('target') for m in LINK.finditer(text) if m.group('target') and '://' not in m.group('target')
            and not m.group('target').startswith('mailto:')]


@pytest.mark.parametrize('page', PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_and_pictures_exist(page):
    missing = [target for target in relative_targets(page) if not (page.parent / target).exists()]
    assert not missing, f'{page.relative_to(ROOT)} links to what is not there: {missing}'


def test_the_readme_shows_a_rehearsal_picture():
    pictures = [target for target in relative_targets(ROOT / 'README.md') if target.endswith('.png')]
    assert pictures and all((ROOT / target).stat().st_size > 10_000 for target in pictures), pictures
