"""l4vip.rollout.release through real ansible-playbook (--check, --diff): prepare, unpack, switch, roll back.

Checked by independent readers: os.readlink and the directory listing, and a real web server whose docroot is
``current/public``, which resolves the link per request as nginx does.
"""

from __future__ import annotations

import io
import os
import tarfile
import urllib.request

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
from ansible_collections.l4vip.rollout.tests.harness.ansible import _local_play, _played, run_stopped_on_timeout
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import LoopThread

TIMEOUT = 120


def play(tmp_path, tasks, check=False):
    """ansible-playbook with --diff (and --check when asked), as a user previews a deploy."""
    command, env, results = _local_play(tmp_path, tasks, check=check)
    returncode, out = run_stopped_on_timeout(command + ['--diff'], env, TIMEOUT)
    return _played(returncode, out, results)


def release_task(name, **args):
    return {'name': name, 'l4vip.rollout.release': args, 'register': 'release'}


def prepare_tasks(base, version, archive):
    """What a role's prepare tasks hold: the release directory, then the unpack into it."""
    unpack = {'src': archive, 'dest': '{{ release.release_path }}', 'remote_src': True}
    return [release_task('prepare', path=base, version=version, state='prepared'),
            {'name': 'unpack', 'ansible.builtin.unarchive': unpack, 'when': 'not (ansible_check_mode and release.changed)'}]


def make_archive(tmp_path, version):
    """A release tarball as a build produces it: public/VERSION and an index page."""
    archive = tmp_path / f'app-{version}.tar.gz'
    with tarfile.open(archive, 'w:gz') as tar:
        for name, content in (('public/VERSION', f'{version}\n'), ('public/index.html', f'<p>{version}</p>\n')):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000  # an old build: the unpacked directories' mtimes say nothing of the deploy
            tar.addfile(info, io.BytesIO(data))
    return str(archive)


def links(base):
    """The independent reader: what the kernel says the links name."""
    return tuple(os.readlink(os.path.join(base, name)) if os.path.islink(os.path.join(base, name)) else None
                 for name in ('current', 'previous'))


def served_version(server) -> str:
    with urllib.request.urlopen(f'http://{server.address}/', timeout=5) as answer:
        return answer.read().decode()


def four_times(tmp_path, tasks, name):
    """Check mode, real, check mode again, real again: the first two change ``name``, the last two must not; the runs."""
    runs = []
    for check, changed in ((True, True), (False, True), (True, False), (False, False)):
        run = play(tmp_path, tasks, check=check)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.task(name)['changed'] is changed, (check, run.task(name))
        runs.append(run)
    return runs


@pytest.fixture
def web_server():
    """The embedded web server, started later on a docroot under current; always stopped."""
    loop_thread = LoopThread()
    servers = []

    def start(docroot):
        server = RealServer('web1', '127.0.0.92', 0, docroot)
        loop_thread.run(server.start())
        servers.append(server)
        return server
    try:
        yield start
    finally:
        for server in servers:
            loop_thread.run(server.stop())
        loop_thread.close()


def test_prepare_switch_and_roll_back_through_ansible_playbook(tmp_path, web_server):
    base = str(tmp_path / 'srv' / 'app')
    (tmp_path / 'srv').mkdir()
    archives = {version: make_archive(tmp_path, version) for version in ('1.0', '2.0')}

    # Prepare 1.0 while "serving": check mode creates nothing, then the real run; the unpack fills it.
    checked, real = (run.task('prepare') for run in
                     four_times(tmp_path, prepare_tasks(base, '1.0', archives['1.0']), 'prepare')[:2])
    assert checked['diff'] == {'before': {'current': None, 'previous': None, 'releases': []},
                               'after': {'current': None, 'previous': None, 'releases': ['1.0']}}
    assert real['release_path'] == f'{base}/releases/1.0'
    assert sorted(os.listdir(f'{base}/releases/1.0/public')) == ['VERSION', 'index.html']
    assert links(base) == (None, None)  # prepare never touches current

    switched = play(tmp_path, [release_task('switch', path=base, version='1.0', state='current')])
    assert switched.returncode == 0, switched.stderr[-3000:]
    real = switched.task('switch')
    assert (real['changed'], real['current'], real['previous'], real['removed']) == (True, '1.0', None, [])
    assert real['diff']['before']['current'] is None and real['diff']['after']['current'] == '1.0'
    assert links(base) == ('releases/1.0', None)
    server = web_server(f'{base}/current/public')
    assert served_version(server) == 'server=web1 version=1.0\n'

    # Prepare 2.0 while 1.0 serves, then the switch alone.
    prepared = play(tmp_path, prepare_tasks(base, '2.0', archives['2.0']))
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert links(base) == ('releases/1.0', None) and served_version(server) == 'server=web1 version=1.0\n'
    os.makedirs(f'{base}/releases/0.9/public')  # left by an older deploy, never current here
    os.utime(f'{base}/releases/0.9', (1_500_000_000, 1_500_000_000))
    switch_2 = [release_task('switch', path=base, version='2.0', state='current', keep=2)]
    checked, real, check_again = (run.task('switch') for run in four_times(tmp_path, switch_2, 'switch')[:3])
    # 2.0 ranks first already: prepared after 1.0 became current.
    assert checked['diff'] == {'before': {'current': '1.0', 'previous': None, 'releases': ['2.0', '1.0', '0.9']},
                               'after': {'current': '2.0', 'previous': '1.0', 'releases': ['2.0', '1.0']}}
    assert checked['removed'] == real['removed'] == ['0.9'] and check_again['removed'] == []
    assert (real['current'], real['previous'], real['releases']) == ('2.0', '1.0', ['2.0', '1.0'])
    assert sorted(os.listdir(f'{base}/releases')) == ['1.0', '2.0']
    assert check_again['diff']['before'] == check_again['diff']['after']
    assert links(base) == ('releases/2.0', 'releases/1.0')
    assert served_version(server) == 'server=web1 version=2.0\n'  # the same server, the next request

    rollback = [release_task('rollback', path=base, state='rolled_back'), release_task('query', path=base, state='query')]
    runs = four_times(tmp_path, rollback, 'rollback')
    checked, real, last = (run.task('rollback') for run in (runs[0], runs[1], runs[3]))
    assert checked['diff']['before']['current'] == '2.0' and checked['diff']['after']['current'] == '1.0'
    assert (real['current'], real['previous'], real['rolled_back_from']) == ('1.0', '1.0', '2.0')
    assert (last['current'], last['rolled_back_from']) == ('1.0', None)
    queried = runs[-1].task('query')
    assert (queried['changed'], queried['current'], queried['previous'], queried['releases']) == \
        (False, '1.0', '1.0', ['1.0', '2.0'])
    assert links(base) == ('releases/1.0', 'releases/1.0')
    assert served_version(server) == 'server=web1 version=1.0\n'
    assert sorted(os.listdir(f'{base}/releases')) == ['1.0', '2.0']


def test_refusals_fail_the_task_naming_the_option_and_change_nothing(tmp_path):
    base = tmp_path / 'app'
    (base / 'releases' / '1.0').mkdir(parents=True)
    (base / 'releases' / '1.0' / 'VERSION').write_text('1.0\n')
    (base / 'releases' / 'empty').mkdir()
    (base / 'current').symlink_to('releases/1.0')
    tasks = [dict(release_task(name, path=str(base), **args), ignore_errors=True) for name, args in (
        ('missing', {'version': '3.0', 'state': 'current'}),
        ('empty', {'version': 'empty', 'state': 'current'}),
        ('outside', {'version': '../../etc', 'state': 'current'}),
        ('no version', {'state': 'current'}),
        ('nothing to roll back to', {'state': 'rolled_back'}),
    )]
    run = play(tmp_path, tasks)
    messages = {name: run.task(name)['msg'] for name in ('missing', 'empty', 'outside', 'no version',
                                                         'nothing to roll back to')}
    assert all(run.task(name)['failed'] for name in messages)
    assert messages['missing'].startswith(f"version: the release '3.0' does not exist ({base}/releases/3.0)")
    assert messages['empty'].startswith("version: the release 'empty' is empty")
    assert messages['outside'].startswith("version: expected a directory name (no /, not . or .., not starting "
                                          "with .), got '../../etc'")
    assert messages['no version'] == 'state is current but all of the following are missing: version'
    assert messages['nothing to roll back to'].startswith('state: nothing to roll back to')
    assert links(str(base)) == ('releases/1.0', None)
    assert sorted(os.listdir(base)) == ['current', 'releases']
