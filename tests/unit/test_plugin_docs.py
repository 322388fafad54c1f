"""Every module, role and plugin of the collection has a rendered page in docs/plugins/, and the
docs index links every page: a new plugin without `make docs` fails here."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGES = REPO / 'docs' / 'plugins'
HINT = 'run `make docs` and commit docs/plugins/'


def _stems(directory: str) -> list[str]:
    return sorted(p.stem for p in (REPO / directory).glob('*.py') if not p.name.startswith('_'))


def _named(kind: str, directory: str, method: str) -> list[str]:
    """Filter and test plugins: one file may define several names."""
    names = []
    for stem in _stems(directory):
        module = importlib.import_module(f'ansible_collections.l4vip.rollout.{directory.replace("/", ".")}.{stem}')
        names.extend(getattr(getattr(module, kind)(), method)())
    return sorted(names)


def plugins() -> list[tuple[str, str]]:
    """(type, name) of everything in the collection that ansible-doc documents."""
    found = [('module', name) for name in _stems('plugins/modules')]
    found += [('role', p.name) for p in sorted((REPO / 'roles').iterdir()) if p.is_dir()]
    found += [('filter', name) for name in _named('FilterModule', 'plugins/filter', 'filters')]
    found += [('callback', name) for name in _stems('plugins/callback')]
    if (REPO / 'plugins' / 'lookup').is_dir():
        found += [('lookup', name) for name in _stems('plugins/lookup')]
    if (REPO / 'plugins' / 'test').is_dir():
        found += [('test', name) for name in _named('TestModule', 'plugins/test', 'tests')]
    return found


def test_the_collection_has_modules_roles_a_filter_and_a_callback():
    kinds = {kind for kind, unused in plugins()}
    assert {'module', 'role', 'filter', 'callback'} <= kinds


@pytest.mark.parametrize(('kind', 'name'), plugins(), ids=lambda value: value)
def test_plugin_has_a_rendered_page(kind, name):
    page = PAGES / f'{name}.md'
    assert page.is_file(), f'no docs/plugins/{name}.md for {kind} l4vip.rollout.{name}: {HINT}'
    text = page.read_text(encoding='utf-8')
    assert text.startswith(f'# l4vip.rollout.{name} ({kind})\n'), f'docs/plugins/{name}.md is not the {kind} page: {HINT}'
    assert f'l4vip.rollout.{name}' in text.split('```text', 1)[-1], f'docs/plugins/{name}.md has no ansible-doc text: {HINT}'


def test_no_page_for_a_plugin_that_is_gone():
    names = {name for unused, name in plugins()}
    stale = sorted(p.name for p in PAGES.glob('*.md') if p.stem not in names)
    assert not stale, f'pages without a plugin: {stale}: {HINT}'


def test_the_docs_index_links_every_page():
    index = (REPO / 'docs' / 'README.md').read_text(encoding='utf-8')
    linked = set(re.findall(r'\]\(([^)#\s]+)', index))
    pages = {p.relative_to(REPO / 'docs').as_posix() for p in (REPO / 'docs').rglob('*.md') if p.name != 'README.md'}
    assert not pages - linked, f'docs/README.md does not link: {sorted(pages - linked)}'
