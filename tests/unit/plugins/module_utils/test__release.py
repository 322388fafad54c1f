from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _release as release
from ansible_collections.l4vip.rollout.plugins.module_utils._release import (
    OptionError,
    ReleaseError,
    Snapshot,
    layout,
    mode_option,
    prepare,
    query,
    read_link,
    releases_to_remove,
    roll_back,
    run,
    switch,
    version_name,
)
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

MTIME = 1_600_000_000  # before the fake clock's now: a release never made current ranks below those that were


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def tree(tmp_path):
    return layout(str(tmp_path / 'app'))


def make_release(tree, version, mtime=MTIME, files=None):
    """A release as an unpack leaves it: a public/VERSION file, its directory mtime set as an archive would."""
    directory = os.path.join(tree.releases, version)
    os.makedirs(os.path.join(directory, 'public'))
    for name, content in (files or {'public/VERSION': version}).items():
        with open(os.path.join(directory, name), 'w', encoding='utf-8') as handle:
            handle.write(content)
    os.utime(directory, (mtime, mtime))
    return directory


def link_target(tree, name):
    """An independent reader: the link as the kernel holds it."""
    path = tree.link(name)
    return os.readlink(path) if os.path.islink(path) else None


def listing(directory):
    return sorted(os.listdir(directory))


def tree_state(tree):
    """Everything a task may change: the links, the history file and the entries of releases/."""
    history = open(tree.history, encoding='utf-8').read() if os.path.exists(tree.history) else None
    releases = listing(tree.releases) if os.path.isdir(tree.releases) else None
    return link_target(tree, 'current'), link_target(tree, 'previous'), history, releases


def params(tree, **more):
    return dict({'path': tree.base, 'keep': 5, 'allow_empty': False, 'mode': None}, **more)


# --- option values ------------------------------------------------------------------------

@pytest.mark.parametrize('value', ['1.4.2', 'v2', '20260101T120000Z', 'release-with spaces', 'a..b'])
def test_a_version_is_one_directory_name(value):
    assert version_name(value) == value


@pytest.mark.parametrize('value', ['', '.', '..', '../etc', 'a/b', '/abs', '.hidden', 'nul\x00', None, 3])
def test_a_version_that_could_leave_releases_is_refused_naming_the_option(value):
    with pytest.raises(OptionError) as raised:
        version_name(value)
    assert str(raised.value).startswith('version: expected a directory name')
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize('value', ['app', 'srv/app', '', None, '/'])
def test_path_must_be_absolute_and_not_the_root(value):
    with pytest.raises(OptionError, match='^path: ') as raised:
        layout(value)
    assert repr(value) in str(raised.value)


def test_every_name_is_built_under_the_base():
    tree = layout('/srv/app/')
    assert (tree.base, tree.releases, tree.history) == ('/srv/app', '/srv/app/releases', '/srv/app/release-history.json')
    assert (tree.link('current'), tree.release('1.0')) == ('/srv/app/current', '/srv/app/releases/1.0')


@pytest.mark.parametrize(('value', 'expected'), [(None, 0o755), ('0750', 0o750), ('755', 0o755), (0o700, 0o700),
                                                 ('2775', 0o2775)])
def test_mode_is_octal(value, expected):
    assert mode_option(value) == expected


@pytest.mark.parametrize('value', ['u=rwx', '0855', '75', True, -1, 0o10000, 7.5])
def test_a_bad_mode_is_refused_naming_the_option(value):
    with pytest.raises(OptionError, match="^mode: expected an octal mode such as '0755'"):
        mode_option(value)


@pytest.mark.parametrize(('more', 'message'), [
    ({'state': 'current'}, 'version: expected the release directory name, required with state=current, got None'),
    ({'state': 'prepared'}, 'version: expected the release directory name, required with state=prepared, got None'),
    ({'state': 'current', 'version': '../x'}, "version: expected a directory name"),
    ({'state': 'current', 'version': '1', 'keep': -1}, 'keep: expected a number of releases, 0 (keep all) or more, got -1'),
    ({'state': 'current', 'version': '1', 'keep': True}, 'keep: expected a number of releases'),
    ({'state': 'switched', 'version': '1'}, "state: expected one of prepared, current, rolled_back, query, got 'switched'"),
])
def test_run_refuses_bad_options_before_touching_anything(tree, more, message):
    with pytest.raises(OptionError) as raised:
        run(params(tree, **more))
    assert str(raised.value).startswith(message)
    assert not os.path.exists(tree.base)


# --- prepared -----------------------------------------------------------------------------

def test_prepared_creates_the_base_releases_and_the_release_with_mode(tree):
    old_umask = os.umask(0o077)  # the mode is exact, whatever the umask
    try:
        result = run(params(tree, state='prepared', version='1.0', mode='0750'))
    finally:
        os.umask(old_umask)
    assert result['changed'] is True
    assert result['release_path'] == tree.release('1.0') and result['version'] == '1.0'
    assert (result['current'], result['previous'], result['releases'], result['removed']) == (None, None, ['1.0'], [])
    for directory in (tree.base, tree.releases, tree.release('1.0')):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o750, directory
    assert listing(tree.release('1.0')) == [] and listing(tree.base) == ['releases']


def test_prepared_is_idempotent_and_leaves_an_existing_release_alone(tree):
    directory = make_release(tree, '1.0')
    os.chmod(directory, 0o700)
    before = tree_state(tree)
    result = run(params(tree, state='prepared', version='1.0', mode='0755'))
    assert result['changed'] is False and result['release_path'] == directory
    assert tree_state(tree) == before and stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert listing(directory) == ['public']


def test_prepared_never_touches_current(tree, clock):
    make_release(tree, '1.0')
    switch(tree, '1.0', keep=5, clock=clock)
    result = run(params(tree, state='prepared', version='2.0'))
    assert result['changed'] is True and result['current'] == '1.0'
    assert link_target(tree, 'current') == 'releases/1.0' and link_target(tree, 'previous') is None
    assert result['releases'] == ['2.0', '1.0']  # just made: the most recent by its mtime


def test_prepared_makes_room_while_serving_so_the_switch_removes_nothing(tree, clock):
    for version in ('1', '2', '3', '4', '5', '6'):
        make_release(tree, version)
        switch(tree, version, keep=0, clock=clock)
        clock.advance(10)
    before = tree_state(tree)
    checked = run(params(tree, state='prepared', version='7', keep=5), check_mode=True, clock=clock)
    assert tree_state(tree) == before
    prepared = run(params(tree, state='prepared', version='7', keep=5), clock=clock)
    assert checked == prepared
    assert (prepared['removed'], prepared['releases'], prepared['current']) == (['2', '1'], ['7', '6', '5', '4', '3'], '6')
    assert listing(tree.releases) == ['3', '4', '5', '6', '7'] and link_target(tree, 'current') == 'releases/6'
    assert set(json.load(open(tree.history, encoding='utf-8'))['became_current']) == {'3', '4', '5', '6'}
    with open(os.path.join(tree.release('7'), 'VERSION'), 'w', encoding='utf-8') as handle:  # the unpack
        handle.write('7')
    clock.advance(10)
    switched = switch(tree, '7', keep=5, clock=clock)
    assert switched.removed == () and switched.after.releases == ('7', '6', '5', '4', '3')


def test_prepared_keeps_current_previous_and_itself_whatever_keep(tree, clock):
    for version in ('1', '2', '3'):
        make_release(tree, version)
        switch(tree, version, keep=0, clock=clock)
        clock.advance(10)
    result = prepare(tree, '4', 0o755, keep=1)
    assert result.removed == ('1',) and listing(tree.releases) == ['2', '3', '4']


def test_prepared_in_check_mode_creates_nothing_and_says_what_it_would(tree):
    result = run(params(tree, state='prepared', version='1.0'), check_mode=True, want_diff=True)
    assert result['changed'] is True and result['release_path'] == tree.release('1.0')
    assert result['diff'] == {'before': {'current': None, 'previous': None, 'releases': []},
                              'after': {'current': None, 'previous': None, 'releases': ['1.0']}}
    assert not os.path.exists(tree.base)


def test_prepared_refuses_a_missing_parent_and_a_release_that_is_not_a_directory(tmp_path, tree):
    with pytest.raises(ReleaseError, match=r'^path: .*/nowhere, the parent of .* does not exist'):
        prepare(layout(str(tmp_path / 'nowhere' / 'app')), '1.0', 0o755)
    assert not os.path.exists(tmp_path / 'nowhere')
    os.makedirs(tree.releases)
    os.symlink('/etc', tree.release('1.0'))
    with pytest.raises(ReleaseError, match='^version: .*/releases/1.0 exists and is not a directory'):
        prepare(tree, '1.0', 0o755)


# --- current ------------------------------------------------------------------------------

def test_the_first_switch_makes_a_relative_current_link_and_no_previous(tree, clock):
    make_release(tree, '1.0')
    result = run(params(tree, state='current', version='1.0'), want_diff=True, clock=clock)
    assert (result['changed'], result['current'], result['previous'], result['removed']) == (True, '1.0', None, [])
    assert link_target(tree, 'current') == 'releases/1.0' and link_target(tree, 'previous') is None
    assert open(os.path.join(tree.link('current'), 'public', 'VERSION'), encoding='utf-8').read() == '1.0'
    assert result['diff'] == {'before': {'current': None, 'previous': None, 'releases': ['1.0']},
                              'after': {'current': '1.0', 'previous': None, 'releases': ['1.0']}}
    assert json.load(open(tree.history, encoding='utf-8')) == {'became_current': {'1.0': clock.now}}


def test_a_switch_remembers_the_release_it_replaced_and_is_idempotent(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    switch(tree, '1.0', keep=5, clock=clock)
    clock.advance(60)
    result = run(params(tree, state='current', version='2.0'), want_diff=True, clock=clock)
    assert (result['changed'], result['current'], result['previous']) == (True, '2.0', '1.0')
    assert result['diff']['before'] == {'current': '1.0', 'previous': None, 'releases': ['1.0', '2.0']}
    assert result['diff']['after'] == {'current': '2.0', 'previous': '1.0', 'releases': ['2.0', '1.0']}
    assert (link_target(tree, 'current'), link_target(tree, 'previous')) == ('releases/2.0', 'releases/1.0')

    before = tree_state(tree)
    clock.advance(60)
    for check_mode in (True, False):
        again = run(params(tree, state='current', version='2.0'), check_mode=check_mode, clock=clock)
        assert (again['changed'], again['current'], again['previous'], again['removed']) == (False, '2.0', '1.0', [])
        assert tree_state(tree) == before


def test_a_switch_in_check_mode_changes_nothing_and_reports_the_same_as_the_real_one(tree, clock):
    for index, version in enumerate(('1', '2', '3', '4')):
        make_release(tree, version, mtime=MTIME + index)
    for version in ('1', '2', '3'):
        switch(tree, version, keep=5, clock=clock)
        clock.advance(1)
    before = tree_state(tree)
    checked = run(params(tree, state='current', version='4', keep=2), check_mode=True, want_diff=True, clock=clock)
    assert tree_state(tree) == before
    real = run(params(tree, state='current', version='4', keep=2), want_diff=True, clock=clock)
    assert checked == real
    assert (real['current'], real['previous'], real['removed'], real['releases']) == ('4', '3', ['2', '1'], ['4', '3'])


@pytest.mark.parametrize(('prepare_it', 'message'), [
    (lambda tree: None, r"^version: the release '2.0' does not exist \(.*/releases/2.0\); prepare it first"),
    (lambda tree: os.makedirs(tree.release('2.0')), r"^version: the release '2.0' is empty .*allow_empty=true"),
    (lambda tree: open(tree.release('2.0'), 'w').close(), r'^version: .*/releases/2.0 is not a directory'),
    (lambda tree: os.symlink('1.0', tree.release('2.0')), r'^version: .*/releases/2.0 is not a directory'),
])
def test_a_switch_to_a_missing_empty_or_odd_release_is_refused_and_changes_nothing(tree, clock, prepare_it, message):
    make_release(tree, '1.0')
    make_release(tree, '0.9')
    switch(tree, '0.9', keep=5, clock=clock)
    switch(tree, '1.0', keep=5, clock=clock)
    prepare_it(tree)
    before = tree_state(tree)
    with pytest.raises(ReleaseError, match=message):
        run(params(tree, state='current', version='2.0', keep=1), clock=clock)
    assert tree_state(tree) == before


def test_allow_empty_makes_an_empty_release_current(tree, clock):
    os.makedirs(tree.release('maintenance'))
    result = run(params(tree, state='current', version='maintenance', allow_empty=True), clock=clock)
    assert result['changed'] is True and link_target(tree, 'current') == 'releases/maintenance'


@pytest.mark.parametrize('name', ['current', 'previous'])
def test_a_real_directory_under_a_link_name_is_refused_with_an_explanation(tree, clock, name):
    make_release(tree, '1.0')
    os.makedirs(os.path.join(tree.link(name), 'public'))
    before = tree_state(tree)
    for state in ('prepared', 'current', 'query', 'rolled_back'):
        with pytest.raises(ReleaseError) as raised:
            run(params(tree, state=state, version='1.0'), clock=clock)
        message = str(raised.value)
        assert message.startswith(f'path: {tree.link(name)} is a directory; {name} must be a symlink to a release')
        assert 'Move the live files to' in message and raised.value.detail['link'] == tree.link(name)
    assert tree_state(tree) == before and os.path.isdir(os.path.join(tree.link(name), 'public'))


@pytest.mark.parametrize('target', ['/etc', '../elsewhere/1.0', 'releases/1.0/public', 'releases/.hidden', 'shared'])
def test_a_link_that_names_something_other_than_a_release_is_refused(tree, clock, target):
    make_release(tree, '1.0')
    os.symlink(target, tree.link('current'))
    with pytest.raises(ReleaseError, match=f'^path: .*/current points to {target}, which is not a release under'):
        switch(tree, '1.0', keep=5, clock=clock)
    assert link_target(tree, 'current') == target


def test_an_absolute_link_into_releases_is_read_and_replaced_by_a_relative_one(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    os.symlink(tree.release('1.0'), tree.link('current'))  # as other deploy tools make it
    assert read_link(tree, 'current') == '1.0'
    switch(tree, '2.0', keep=5, clock=clock)
    assert (link_target(tree, 'current'), link_target(tree, 'previous')) == ('releases/2.0', 'releases/1.0')


def test_the_base_reached_through_a_symlink_reads_links_made_through_its_real_path(tmp_path, clock):
    real = layout(str(tmp_path / 'data' / 'app'))
    make_release(real, '1.0')
    os.symlink(real.release('1.0'), real.link('current'))
    os.symlink(str(tmp_path / 'data'), str(tmp_path / 'srv'))
    assert read_link(layout(str(tmp_path / 'srv' / 'app')), 'current') == '1.0'


def test_a_dangling_current_is_replaced(tree, clock):
    make_release(tree, '2.0')
    os.makedirs(tree.releases, exist_ok=True)
    os.symlink('releases/1.0', tree.link('current'))  # its release was removed by hand
    result = switch(tree, '2.0', keep=5, clock=clock)
    assert (result.after.current, result.after.previous) == ('2.0', '1.0')
    with pytest.raises(ReleaseError, match=r"^state: the release '1.0' does not exist"):
        roll_back(tree, clock=clock)


def test_a_stale_previous_goes_when_current_did_not_exist(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    os.symlink('releases/1.0', tree.link('previous'))
    result = switch(tree, '2.0', keep=5, clock=clock)
    assert (result.after.current, result.after.previous) == ('2.0', None)
    assert link_target(tree, 'previous') is None


def test_the_switch_never_unlinks_current(tree, clock, monkeypatch):
    """There is no moment without current: it is only ever replaced by a rename onto its name."""
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    calls = []
    for name in ('unlink', 'remove', 'rename', 'replace'):
        original = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *args, _name=name, _original=original: (calls.append((_name, *args)),
                                                                                     _original(*args))[1])
    for version in ('1.0', '2.0', '1.0'):
        switch(tree, version, keep=5, clock=clock)
    onto_current = [call for call in calls if tree.link('current') in call[1:]]
    assert onto_current and all(call[0] == 'rename' and call[2] == tree.link('current') for call in onto_current)
    assert all(os.path.dirname(call[1]) == tree.base for call in onto_current)  # made in the same directory
    assert [name for name in listing(tree.base) if name.endswith('.tmp')] == []


# --- keep ---------------------------------------------------------------------------------

@pytest.mark.parametrize(('ranked', 'keep', 'protected', 'expected'), [
    (['5', '4', '3', '2', '1'], 5, ('5', '4'), []),
    (['6', '5', '4', '3', '2', '1'], 5, ('6', '5'), ['1']),
    (['6', '5', '4', '3', '2', '1'], 2, ('6', '5'), ['4', '3', '2', '1']),
    (['6', '5', '4', '3', '2', '1'], 1, ('6', '5'), ['4', '3', '2', '1']),  # the one it replaced stays
    (['6', '5', '4', '3', '2', '1'], 2, ('6', '1'), ['5', '4', '3', '2']),  # previous is old (after a rollback)
    (['6', '5', '4', '3', '2', '1'], 3, ('6', '1'), ['4', '3', '2']),
    (['6', '5', '4', '3', '2', '1'], 0, ('6', '5'), []),  # 0 keeps all
    (['4', '3', '2', '1'], 2, ('2', None), ['3', '1']),  # the first switch, to a release that ranks third
    ([], 5, (None, None), []),
])
def test_releases_to_remove(ranked, keep, protected, expected):
    assert releases_to_remove(ranked, keep, protected) == expected


def test_keep_counts_the_order_releases_became_current_not_their_mtime(tree, clock):
    # Unpacking set each directory's mtime from its archive: the newest release has the oldest mtime.
    for version, mtime in (('1', MTIME + 3), ('2', MTIME + 2), ('3', MTIME + 1), ('4', MTIME)):
        make_release(tree, version, mtime=mtime)
    for version in ('1', '2', '3'):
        switch(tree, version, keep=5, clock=clock)
        clock.advance(10)
    result = switch(tree, '4', keep=3, clock=clock)
    assert result.removed == ('1',) and result.after.releases == ('4', '3', '2')
    assert listing(tree.releases) == ['2', '3', '4']
    assert set(json.load(open(tree.history, encoding='utf-8'))['became_current']) == {'2', '3', '4'}


def test_a_release_never_made_current_ranks_by_its_mtime(tree, clock):
    make_release(tree, 'old-unused', mtime=MTIME - 100)
    make_release(tree, '1')
    switch(tree, '1', keep=5, clock=clock)
    make_release(tree, 'staged', mtime=clock.now + 5)  # prepared after the last switch
    clock.advance(10)
    make_release(tree, '2')
    result = switch(tree, '2', keep=3, clock=clock)
    assert result.after.releases == ('2', 'staged', '1') and result.removed == ('old-unused',)


def test_pruning_never_removes_the_current_or_the_replaced_release_however_old(tree, clock):
    for version in ('a', 'b', 'c', 'd'):
        make_release(tree, version)
        switch(tree, version, keep=0, clock=clock)
        clock.advance(10)
    roll_back(tree, clock=clock)  # current c, previous c
    clock.advance(10)
    # 'a' becomes current again by hand of the module; 'c' is the one it replaced.
    result = switch(tree, 'a', keep=1, clock=clock)
    assert (result.after.current, result.after.previous) == ('a', 'c')
    assert sorted(result.removed) == ['b', 'd'] and listing(tree.releases) == ['a', 'c']


def test_a_removal_cut_short_is_never_a_release_and_is_finished_by_the_next_switch(tree, clock, monkeypatch):
    for version in ('1', '2', '3'):
        make_release(tree, version)
        switch(tree, version, keep=0, clock=clock)
        clock.advance(10)
    real_rmtree = release.shutil.rmtree

    def cut_short(path, *args, **kwargs):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(release.shutil, 'rmtree', cut_short)
    with pytest.raises(ReleaseError, match=r"^cannot remove the release '1'"):
        switch(tree, '3', keep=1, clock=clock)
    leftover = [name for name in listing(tree.releases) if name.startswith('.removing.1.')]
    assert leftover and '1' not in query(tree).after.releases
    with pytest.raises(ReleaseError, match="^version: the release '1' does not exist"):
        switch(tree, '1', keep=5, clock=clock)
    monkeypatch.setattr(release.shutil, 'rmtree', real_rmtree)
    switch(tree, '3', keep=1, clock=clock)
    assert listing(tree.releases) == ['2', '3']


# --- rolled_back --------------------------------------------------------------------------

def test_a_rollback_points_current_back_and_a_second_one_changes_nothing(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    switch(tree, '1.0', keep=5, clock=clock)
    clock.advance(10)
    switch(tree, '2.0', keep=5, clock=clock)
    clock.advance(10)
    checked = run(params(tree, state='rolled_back'), check_mode=True, want_diff=True, clock=clock)
    assert link_target(tree, 'current') == 'releases/2.0'
    result = run(params(tree, state='rolled_back'), want_diff=True, clock=clock)
    assert checked == result
    assert (result['changed'], result['current'], result['previous'], result['rolled_back_from']) == \
        (True, '1.0', '1.0', '2.0')
    assert result['release_path'] == tree.release('1.0') and result['releases'] == ['1.0', '2.0']
    assert result['diff'] == {'before': {'current': '2.0', 'previous': '1.0', 'releases': ['2.0', '1.0']},
                              'after': {'current': '1.0', 'previous': '1.0', 'releases': ['1.0', '2.0']}}
    assert (link_target(tree, 'current'), link_target(tree, 'previous')) == ('releases/1.0', 'releases/1.0')

    before = tree_state(tree)
    for check_mode in (True, False):
        again = run(params(tree, state='rolled_back'), check_mode=check_mode, clock=clock)
        assert (again['changed'], again['current'], again['rolled_back_from']) == (False, '1.0', None)
        assert tree_state(tree) == before


def test_a_rollback_with_nothing_to_roll_back_to_is_refused(tree, clock):
    make_release(tree, '1.0')
    switch(tree, '1.0', keep=5, clock=clock)
    before = tree_state(tree)
    with pytest.raises(ReleaseError, match=r'^state: nothing to roll back to - .*/previous does not exist') as raised:
        run(params(tree, state='rolled_back'), clock=clock)
    assert raised.value.detail['current'] == '1.0' and tree_state(tree) == before


def test_a_rollback_to_an_emptied_release_is_refused_unless_allowed(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    switch(tree, '1.0', keep=5, clock=clock)
    switch(tree, '2.0', keep=5, clock=clock)
    for name in listing(tree.release('1.0')):
        os.rename(os.path.join(tree.release('1.0'), name), os.path.join(tree.base, name))
    before = tree_state(tree)
    with pytest.raises(ReleaseError, match=r"^state: the release '1.0' is empty"):
        roll_back(tree, clock=clock)
    assert tree_state(tree) == before
    assert roll_back(tree, allow_empty=True, clock=clock).after.current == '1.0'


# --- query --------------------------------------------------------------------------------

def test_query_reports_and_changes_nothing(tree, clock):
    assert run(params(tree, state='query')) == {
        'changed': False, 'path': tree.base, 'release_path': None, 'current': None, 'previous': None,
        'releases': [], 'removed': []}
    assert not os.path.exists(tree.base)
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    switch(tree, '1.0', keep=5, clock=clock)
    clock.advance(10)
    switch(tree, '2.0', keep=5, clock=clock)
    before = tree_state(tree)
    result = run(params(tree, state='query'), check_mode=True, want_diff=True)
    assert (result['current'], result['previous'], result['releases']) == ('2.0', '1.0', ['2.0', '1.0'])
    assert result['changed'] is False and result['diff']['before'] == result['diff']['after']
    assert tree_state(tree) == before


def test_a_damaged_history_is_refused_not_guessed(tree, clock):
    make_release(tree, '1.0')
    switch(tree, '1.0', keep=5, clock=clock)
    for content in ('{not json', '{"became_current": {"1.0": "yesterday"}}', '[]'):
        with open(tree.history, 'w', encoding='utf-8') as handle:
            handle.write(content)
        with pytest.raises(ReleaseError, match='release-history.json.*remove it and the releases are ranked by'):
            switch(tree, '1.0', keep=1, clock=clock)


def test_snapshot_diff_is_plain_data():
    assert Snapshot('2', '1', ('2', '1')).as_diff() == {'current': '2', 'previous': '1', 'releases': ['2', '1']}


# --- a reader during switches -------------------------------------------------------------

SWITCHES = 200
READER_SECONDS = 30.0  # the limit on the reader; the switches take well under a second
READS_BOUND = 10_000_000


class CurrentReader(threading.Thread):
    """Resolves current/public/VERSION in a loop, as a web server does per request; limited in count and time."""

    def __init__(self, tree, versions):
        super().__init__(daemon=True)
        self.path = os.path.join(tree.link('current'), 'public', 'VERSION')
        self.versions = versions
        self.stop = threading.Event()
        self.started_reading = threading.Event()
        self.seen = set()
        self.failures = []
        self.reads = 0

    def run(self):
        deadline = time.monotonic() + READER_SECONDS
        while not self.stop.is_set() and self.reads < READS_BOUND and time.monotonic() < deadline:
            self.reads += 1
            try:
                with open(self.path, encoding='utf-8') as handle:
                    content = handle.read()
            except OSError as error:
                self.failures.append(f'{type(error).__name__}: {error.strerror}')
            else:
                self.seen.add(content)
                if content not in self.versions:
                    self.failures.append(f'incomplete: {content!r}')
            self.started_reading.set()


def switch_back_and_forth(tree, reader, switch_to, count):
    """Switch ``count`` times while ``reader`` reads, stopping early once it failed; the reader always stopped."""
    reader.start()
    try:
        assert reader.started_reading.wait(10), 'the reader never read'
        for index in range(count):
            switch_to(('1.0', '2.0')[index % 2])
            if reader.failures:
                break
    finally:
        reader.stop.set()
        reader.join(READER_SECONDS)
    assert not reader.is_alive()


def two_releases(tree, clock):
    make_release(tree, '1.0')
    make_release(tree, '2.0')
    switch(tree, '2.0', keep=5, clock=clock)


def test_a_reader_of_current_always_finds_a_complete_release_during_switches(tree, clock):
    two_releases(tree, clock)
    reader = CurrentReader(tree, {'1.0', '2.0'})
    switch_back_and_forth(tree, reader, lambda version: switch(tree, version, keep=5, clock=clock), SWITCHES)
    assert reader.failures == []
    assert reader.seen == {'1.0', '2.0'}, 'the reader did not overlap the switches'
    assert link_target(tree, 'current') == 'releases/2.0'  # the last of an even number of switches


def test_the_reader_catches_an_unlink_then_create_switch(tree, clock):
    """The reader above can fail: the switch done the naive way leaves moments without current, and it sees one."""
    two_releases(tree, clock)

    def naive_switch(version):
        os.unlink(tree.link('current'))
        os.symlink(os.path.join('releases', version), tree.link('current'))

    reader = CurrentReader(tree, {'1.0', '2.0'})
    switch_back_and_forth(tree, reader, naive_switch, 100 * SWITCHES)
    assert any(failure.startswith('FileNotFoundError') for failure in reader.failures), reader.reads
