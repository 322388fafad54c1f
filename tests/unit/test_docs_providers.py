"""docs/providers.md's table of what each provider can do says what the provider classes declare."""

from __future__ import annotations

import pathlib

from ansible_collections.l4vip.rollout.plugins.module_utils._presets import PRESET_CLASSES
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import PROVIDER_CLASSES, Capability

PAGE = pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'providers.md'
# The table's columns that answer "can it?", by the capability each one is about.
COLUMNS = {'wait down/up': Capability.OBSERVE, 'admin state': Capability.ADMIN, 'L4 session count': Capability.SESSIONS,
           'list the pool': Capability.POOL, 'hold the claims': Capability.CLAIMS}


def table(first: str = 'provider') -> tuple[list[str], dict[str, list[str]]]:
    lines = PAGE.read_text(encoding='utf-8').splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f'| {first} |'))
    rows = []
    for line in lines[start:]:
        if not line.startswith('|'):
            break
        # A cell may hold an escaped pipe (maint\|drain): split on the others only.
        rows.append([cell.strip() for cell in line.replace('\\|', '\0').strip('|').split('|')])
    header = [cell.replace('\0', '|') for cell in rows[0]]
    return header, {row[0].strip('`'): row for row in rows[2:]}


def test_the_table_lists_every_provider_once():
    _header, rows = table()
    assert sorted(rows) == sorted(PROVIDER_CLASSES)


def test_each_yes_or_no_matches_the_declared_capabilities():
    header, rows = table()
    checked = 0
    for title, capability in COLUMNS.items():
        column = next(i for i, cell in enumerate(header) if cell.startswith(title))
        for name, row in rows.items():
            # A provider that cannot observe the L4 still waits: the timing model's worst case.
            says_no = row[column].startswith(('no', 'waits'))
            assert says_no is not PROVIDER_CLASSES[name].can(capability), (name, title, row[column])
            checked += 1
    assert checked == len(COLUMNS) * len(PROVIDER_CLASSES)


def test_the_presets_table_lists_every_preset_once():
    _header, rows = table('preset')
    assert list(rows) == list(PRESET_CLASSES)


def test_each_presets_yes_or_no_matches_its_declared_capabilities():
    header, rows = table('preset')
    checked = 0
    for title, capability in COLUMNS.items():
        columns = [i for i, cell in enumerate(header) if cell.startswith(title)]
        if not columns:
            continue  # a preset never holds the claims: the table has no such column
        for name, row in rows.items():
            says_no = row[columns[0]].startswith('no')
            assert says_no is not PRESET_CLASSES[name].can(capability), (name, title, row[columns[0]])
            checked += 1
    assert checked == 4 * len(PRESET_CLASSES)
    assert not any(cls.can(Capability.CLAIMS) for cls in PRESET_CLASSES.values())
