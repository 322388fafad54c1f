"""The mutation guard's list (scripts/mutants.py) keeps up with the code: each mutant still applies, and its tests exist.

`make mutants` itself takes minutes and is not part of `make test`; this is the cheap half of it, so that a change
to the timing model or a provider that moves a mutated line says so here, at once, instead of at the next mutants run.
"""

from __future__ import annotations

import pathlib
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MUTANTS = runpy.run_path(str(ROOT / 'scripts' / 'mutants.py'))


@pytest.mark.parametrize('mutant', MUTANTS['MUTANTS'], ids=lambda mutant: mutant.name)
def test_the_mutant_applies_once_and_compiles(mutant):
    assert MUTANTS['check_applies'](mutant, ROOT) is None, f'update {mutant.name} in scripts/mutants.py to the code as it is now'
    original = (ROOT / mutant.path).read_text(encoding='utf-8')
    mutated = MUTANTS['mutated_text'](mutant, original)
    assert mutated != original


@pytest.mark.parametrize('mutant', MUTANTS['MUTANTS'], ids=lambda mutant: mutant.name)
def test_the_tests_that_should_kill_it_exist(mutant):
    assert mutant.tests
    for node_id in mutant.tests:
        path, name = (node_id.split('::', 1) + [''])[:2]
        assert (ROOT / path).is_file(), node_id
        if name:
            assert f'def {name.split("[")[0]}(' in (ROOT / path).read_text(encoding='utf-8'), node_id


def test_names_are_unique_and_each_file_is_one_the_guard_covers():
    names = [mutant.name for mutant in MUTANTS['MUTANTS']]
    assert len(names) == len(set(names))
    covered = {MUTANTS[key] for key in ('TIMING', 'HEALTH', 'CORE', 'HAPROXY', 'PROVIDERS', 'REAL_PARTS', 'CAPACITY', 'GUARD', 'CLAIMS')}
    assert {mutant.path for mutant in MUTANTS['MUTANTS']} == covered


@pytest.mark.parametrize(
    ('junit_case', 'node_id'),
    [
        ('<testcase file="tests/unit/test_a.py" classname="tests.unit.test_a" name="test_b[x.y-1]"><failure message="boom"/></testcase>',
         'tests/unit/test_a.py::test_b[x.y-1]'),
        ('<testcase file="tests/unit/test_a.py" classname="tests.unit.test_a.TestC" name="test_d"><error message="oops"/></testcase>',
         'tests/unit/test_a.py::TestC::test_d'),
    ],
)
def test_a_failed_test_is_named_by_its_node_id(tmp_path, junit_case, node_id):
    """The ids are handed back to pytest (--deselect of what fails without a mutant), so they must be pytest's own."""
    junit = tmp_path / 'junit.xml'
    junit.write_text(f'<testsuites><testsuite><testcase file="tests/unit/test_a.py" classname="tests.unit.test_a" name="test_ok"/>'
                     f'{junit_case}</testsuite></testsuites>', encoding='utf-8')
    failed, first = MUTANTS['failures'](junit)
    assert failed == [node_id] and first in ('boom', 'oops')


def test_the_report_replaces_only_its_own_part_of_the_page(tmp_path):
    m = MUTANTS
    page = tmp_path / 'mutants.md'
    page.write_text('# Mutants\n\nhand-written\n\n<!-- mutants:begin -->\nold result\n<!-- mutants:end -->\n\nafter\n', encoding='utf-8')
    mutant = m['MUTANTS'][0]
    result = m['Result']('commit abc', m['Run']('passed', [], '', 3.0), [m['Outcome'](mutant, m['Run']('failed', ['tests/unit/x.py::test_y'], 'boom', 1.0))])
    m['report'](page, result, 'make mutants')
    text = page.read_text(encoding='utf-8')
    assert text.startswith('# Mutants\n\nhand-written\n\n<!-- mutants:begin -->\n`make mutants` on the commit abc')
    assert text.endswith('<!-- mutants:end -->\n\nafter\n') and 'old result' not in text
    assert f'| `{mutant.name}` | `{mutant.path}` | {mutant.why} | killed | `x.py::test_y` | 1 |' in text
    assert '**1 of 1 mutants killed**' in text
