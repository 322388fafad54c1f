"""l4vip.rollout.health_check through real ansible-playbook, checked by os.stat and by a real web server."""

from __future__ import annotations

import os
import stat
import urllib.error
import urllib.request

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_playbook
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import LoopThread

CONTENT = 'OK from web1\n'
MTIME = 1_600_000_000
OWNER = (4242, 4343)  # a foreign owner shows that nothing rewrote the file as the playbook's user


@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / 'html'
    root.mkdir()
    path = root / 'health_check.html'
    path.write_text(CONTENT)
    path.chmod(0o604)
    if os.geteuid() == 0:
        os.chown(path, *OWNER)
    os.utime(path, (MTIME, MTIME))
    return root


@pytest.fixture
def web_server(docroot):
    """The embedded real server serving the docroot on loopback; always stopped."""
    loop_thread = LoopThread()
    server = RealServer('web1', '127.0.0.91', 0, str(docroot))
    try:
        loop_thread.run(server.start())
        yield server
    finally:
        loop_thread.run(server.stop())
        loop_thread.close()


def http_status(url: str) -> int:
    """An independent reader: what the web server answers for the health check now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def file_facts(name) -> tuple:
    info = os.stat(name)
    with open(name, encoding='utf-8') as handle:
        content = handle.read()
    return info.st_ino, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime, content


def task(name, **args):
    return {'name': name, 'l4vip.rollout.health_check': args, 'register': 'result', 'diff': True}


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_out_of_service_and_back_four_times_each(tmp_path, docroot, web_server):
    path = str(docroot / 'health_check.html')
    disabled = path + '.disabled'
    url = f'http://{web_server.address}/health_check.html'
    original = file_facts(path)
    if os.geteuid() == 0:
        assert original[2:4] == OWNER
    assert http_status(url) == 200

    for desired, present, absent, status in (('out_of_service', disabled, path, 404),
                                             ('in_service', path, disabled, 200)):
        tasks = [task('toggle', path=path, state=desired, verify_url=url, verify_timeout=5, verify_poll_interval=0.1)]
        previous = 'in_service' if desired == 'out_of_service' else 'out_of_service'

        checked = run_playbook(tmp_path, tasks, check=True)
        assert checked.returncode == 0, checked.stderr
        result = checked.task('toggle')
        assert (result['changed'], result['state'], result['previous_state']) == (True, desired, previous)
        assert result['diff'] == {'before': {'state': previous, 'present': absent},
                                  'after': {'state': desired, 'present': present}}
        assert 'verify' not in result  # check mode requests nothing
        assert listing(docroot) == [os.path.basename(absent)] and file_facts(absent) == original
        assert http_status(url) == (200 if desired == 'out_of_service' else 404)

        real = run_playbook(tmp_path, tasks)
        assert real.returncode == 0, real.stderr
        result = real.task('toggle')
        assert (result['changed'], result['state'], result['previous_state']) == (True, desired, previous)
        assert result['path'] == path and result['disabled_path'] == disabled
        assert result['verify']['status'] == status and result['verify']['url'] == url
        assert result['verify']['attempts'] >= 1 and 0 <= result['verify']['elapsed'] < 5

        for check in (True, False):
            again = run_playbook(tmp_path, tasks, check=check)
            assert again.returncode == 0, again.stderr
            assert again.task('toggle')['changed'] is False
            assert again.task('toggle')['state'] == desired

        assert listing(docroot) == [os.path.basename(present)]
        assert file_facts(present) == original  # same inode, mode, owner, mtime and content
        assert http_status(url) == status

    queried = run_playbook(tmp_path, [task('query', path=path, state='query')])
    assert queried.task('query')['state'] == 'in_service' and queried.task('query')['changed'] is False


@pytest.mark.parametrize(('args', 'message'), [
    ({'path': 'health_check.html', 'state': 'out_of_service'},
     "path: expected an absolute path, got 'health_check.html'"),
    ({'state': 'out_of_service', 'verify_timeout': -1}, 'verify_timeout: expected a number of seconds greater than 0, got -1.0'),
    ({'state': 'out_of_service', 'disabled_path': '/tmp/health_check.off'},
     "disabled_path: expected a name in the directory of path ({docroot}) so that the rename is atomic, "
     "got '/tmp/health_check.off'"),
])
def test_bad_value_fails_naming_the_option_and_leaves_the_files(tmp_path, docroot, args, message):
    path = str(docroot / 'health_check.html')
    original = file_facts(path)
    run = run_playbook(tmp_path, [task('bad', **({'path': path} | args))])
    assert run.returncode != 0
    result = run.task('bad')
    assert result['failed'] is True and result['msg'] == message.format(docroot=docroot)
    assert listing(docroot) == ['health_check.html'] and file_facts(path) == original


def test_both_names_and_a_verify_timeout_fail_through_the_playbook(tmp_path, docroot, web_server):
    path = str(docroot / 'health_check.html')
    (docroot / 'health_check.html.disabled').write_text('stale\n')
    run = run_playbook(tmp_path, [task('both', path=path, state='out_of_service')])
    assert run.task('both')['failed'] is True and 'refusing to choose one' in run.task('both')['msg']
    assert listing(docroot) == ['health_check.html', 'health_check.html.disabled']
    (docroot / 'health_check.html.disabled').unlink()

    # "/" always answers 200: the file is out of service but this URL never shows it, so the wait gives up.
    url = f'http://{web_server.address}/'
    run = run_playbook(tmp_path, [task('unverified', path=path, state='out_of_service', verify_url=url,
                                       verify_timeout=0.5, verify_poll_interval=0.1)])
    result = run.task('unverified')
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'].startswith(f'verify_url: {url} did not answer a status other than 2xx for out_of_service '
                                    'within 0.5 s; last saw status 200 after ')
    assert result['verify']['status'] == 200 and result['verify']['attempts'] >= 2
    assert listing(docroot) == ['health_check.html.disabled']  # a failure leaves the member out
